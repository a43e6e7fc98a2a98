"""The question-answering story's pieces, made on the spot, for tests/test_qa_story.py,
benchmarks/qa_story.py and docs/guide_question_answering.md.

- `train_tokenizer()`: a `tokenizers` WordLevel tokenizer (lowercase, whitespace and
  punctuation split) trained on the story's paragraphs, as its JSON.
- `tiny_qa_model(vocab_size)`: a TorchScript extractive-QA model, forward(input_ids [1, L]
  int64) -> (start_logits [1, L], end_logits [1, L]): token and position embeddings, one
  self-attention layer and one MLP, random weights from a fixed seed. It answers nothing
  sensibly; the story checks the pipeline, not the answers.
- `LIBRARY`: the `#!python name=qa` library the server runs (triggers and the `qa` function).
- `ReferencePipeline`: the same pipeline in this process (tokenizer + torch), which gives the
  answer the server must give.

Key names (one hash tag, so that in a cluster they all lie in one slot): the tokenizer's JSON
under `tokenizer:{tag}`, the model under `model:{tag}`, paragraphs under `paragraph:{tag}:<id>`,
their token ids under `context:{tag}:<id>` and answers under `answer:{tag}:<id>:<question>`.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np

TAG = "{qa}"
SPECIAL_TOKENS = ["[UNK]", "[CLS]", "[SEP]"]
MAX_ANSWER_TOKENS = 8
MAX_POSITIONS = 256

PARAGRAPHS = [
    "Redis keeps its data in memory and writes it to disk in the background.",
    "The tokenizer splits a paragraph into words and maps each word to an integer id.",
    "A model reads the question and the paragraph together and scores every token as the "
    "start or the end of the answer.",
    "Paris is the capital of France, and Berlin is the capital of Germany.",
    "The river Thames flows through London before it reaches the North Sea.",
    "Functions run next to the data, so the question never leaves the server.",
]

QUESTIONS = [
    "What does Redis keep in memory?",
    "Which city is the capital of France?",
    "Where does the Thames flow?",
]


def normalize_question(question: str) -> str:
    """What an answer key holds of a question: lower case, single spaces."""
    return " ".join(question.lower().split())


def train_tokenizer(sentences: list[str] | None = None) -> str:
    """A WordLevel tokenizer trained on `sentences` (the story's paragraphs and questions), as JSON."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS, min_frequency=1)
    tokenizer.train_from_iterator(sentences or PARAGRAPHS + QUESTIONS, trainer=trainer)
    return tokenizer.to_str()


def tiny_qa_model(vocab_size: int, dim: int = 32, seed: int = 0) -> bytes:
    """TorchScript bytes of the tiny extractive-QA model (see the module's docstring)."""
    import torch

    class TinyQA(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tokens = torch.nn.Embedding(vocab_size, dim)
            self.positions = torch.nn.Embedding(MAX_POSITIONS, dim)
            self.query = torch.nn.Linear(dim, dim)
            self.key = torch.nn.Linear(dim, dim)
            self.value = torch.nn.Linear(dim, dim)
            self.mlp = torch.nn.Sequential(torch.nn.Linear(dim, 2 * dim), torch.nn.ReLU(),
                                           torch.nn.Linear(2 * dim, dim))
            self.head = torch.nn.Linear(dim, 2)
            self.scale = float(dim) ** -0.5

        def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
            x = self.tokens(input_ids) + self.positions(positions)
            weights = torch.softmax(self.query(x) @ self.key(x).transpose(1, 2) * self.scale, dim=-1)
            x = x + weights @ self.value(x)
            x = x + self.mlp(x)
            logits = self.head(x)
            return logits[:, :, 0], logits[:, :, 1]

    torch.manual_seed(seed)
    module = TinyQA().eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated in torch 2.x
        torch.jit.save(torch.jit.script(module), buffer)
    return buffer.getvalue()


def best_span(start: np.ndarray, end: np.ndarray, first: int, last: int) -> tuple[int, int]:
    """The (s, e) with first <= s <= e < last, e - s < MAX_ANSWER_TOKENS, of the highest
    start[s] + end[e] (the first such pair on ties)."""
    best, best_score = (first, first), -np.inf
    for s in range(first, last):
        for e in range(s, min(last, s + MAX_ANSWER_TOKENS)):
            score = float(start[s]) + float(end[e])
            if score > best_score:
                best, best_score = (s, e), score
    return best


def best_span_numpy(start: np.ndarray, end: np.ndarray, first: int, last: int) -> tuple[int, int]:
    """best_span with one numpy argmax over the band of allowed pairs (row-major, so ties
    resolve as in best_span): what the library and the benchmark's client use."""
    s = np.asarray(start[first:last], dtype=np.float64)
    e = np.asarray(end[first:last], dtype=np.float64)
    scores = s[:, None] + e[None, :]
    offsets = np.arange(len(s))[None, :] - np.arange(len(s))[:, None]
    scores[(offsets < 0) | (offsets >= MAX_ANSWER_TOKENS)] = -np.inf
    row, col = divmod(int(np.argmax(scores)), len(s))
    return first + row, first + col


@dataclass
class ReferencePipeline:
    """The story's pipeline in this process: what the server's answer must equal."""

    tokenizer_json: str
    model_bytes: bytes

    def __post_init__(self) -> None:
        import torch
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_str(self.tokenizer_json)
        self.model = torch.jit.load(io.BytesIO(self.model_bytes))
        self.cls, self.sep = self.tokenizer.token_to_id("[CLS]"), self.tokenizer.token_to_id("[SEP]")

    def context_ids(self, paragraph: str) -> np.ndarray:
        """The paragraph's ids and a closing [SEP]: what the `set` trigger stores."""
        return np.array(self.tokenizer.encode(paragraph).ids + [self.sep], dtype=np.int64)

    def question_ids(self, question: str) -> np.ndarray:
        return np.array([self.cls] + self.tokenizer.encode(normalize_question(question)).ids + [self.sep],
                        dtype=np.int64)

    def answer(self, question: str, paragraph: str) -> str:
        import torch

        q, c = self.question_ids(question), self.context_ids(paragraph)
        ids = np.concatenate([q, c])[None, :]
        with torch.no_grad():
            start, end = self.model(torch.from_numpy(ids))
        s, e = best_span(start[0].numpy(), end[0].numpy(), len(q), len(q) + len(c) - 1)
        return " ".join(self.tokenizer.id_to_token(int(i)) for i in ids[0, s:e + 1])


# The library the server runs. The tokenizer comes from the key tokenizer:{tag} (read once per
# tag, then kept); the model is model:{tag}. Its best-span search is written out again here, as
# a user would, rather than imported from this test helper; the reference uses the plain loop.
LIBRARY = r'''#!python name=qa
import numpy as np
import redisAI
from tokenizers import Tokenizer
from redisai_py.functions import execute, override_reply, register_function, register_trigger

MAX_ANSWER_TOKENS = 8
ANSWER_TTL_MS = 600_000
_tokenizers = {}


def tag_of(key):
    """The {hash tag} of a key such as context:{qa}:7."""
    return key[key.index("{"):key.index("}") + 1]


def tokenizer(tag):
    if tag not in _tokenizers:
        source = execute("GET", "tokenizer:" + tag)
        if source is None:
            raise ValueError("no tokenizer under tokenizer:" + tag)
        _tokenizers[tag] = Tokenizer.from_str(source)
    return _tokenizers[tag]


def tokenize_paragraph(record):
    """set paragraph:{tag}:<id>  ->  context:{tag}:<id>, the paragraph's ids and [SEP]."""
    key = record["key"]
    text = execute("GET", key)
    if text is None:
        return
    tok = tokenizer(tag_of(key))
    ids = tok.encode(text).ids + [tok.token_to_id("[SEP]")]
    tensor = redisAI.createTensorFromValues("INT64", [len(ids)], [float(i) for i in ids])
    redisAI.setTensorInKey("context:" + key[len("paragraph:"):], tensor)


def best_span(start, end, first, last):
    """The (s, e) inside [first, last) with s <= e < s + MAX_ANSWER_TOKENS of the highest
    start[s] + end[e]."""
    s = np.asarray(start[first:last], dtype=np.float64)
    e = np.asarray(end[first:last], dtype=np.float64)
    scores = s[:, None] + e[None, :]
    offsets = np.arange(len(s))[None, :] - np.arange(len(s))[:, None]
    scores[(offsets < 0) | (offsets >= MAX_ANSWER_TOKENS)] = -np.inf
    row, col = divmod(int(np.argmax(scores)), len(s))
    return first + row, first + col


async def answer(context_key, question):
    """Tokenize the question, join it with the stored context, run the model through its
    device queue, decode the best span and keep it under answer:{tag}:<id>:<question>."""
    tag = tag_of(context_key)
    tok = tokenizer(tag)
    question = " ".join(question.lower().split())
    q = [tok.token_to_id("[CLS]")] + tok.encode(question).ids + [tok.token_to_id("[SEP]")]
    context = np.asarray(redisAI.getTensorFromKey(context_key)).astype(np.int64).ravel()
    ids = np.concatenate([np.array(q, dtype=np.int64), context])
    runner = redisAI.createModelRunner("model:" + tag)
    redisAI.modelRunnerAddInput(runner, "input_ids",
                                redisAI.createTensorFromBlob("INT64", [1, len(ids)], ids.tobytes()))
    redisAI.modelRunnerAddOutput(runner, "start_logits")
    redisAI.modelRunnerAddOutput(runner, "end_logits")
    start, end = await redisAI.modelRunnerRunAsync(runner)
    s, e = best_span(np.asarray(start).ravel(), np.asarray(end).ravel(), len(q), len(ids) - 1)
    text = " ".join(tok.id_to_token(int(i)) for i in ids[s:e + 1])
    execute("SET", "answer:" + context_key[len("context:"):] + ":" + question, text, "PX", ANSWER_TTL_MS)
    return text


async def qa(keys, args):
    """AI.FCALL qa 1 context:{tag}:<id> <question>"""
    return await answer(keys[0].decode(), args[0].decode())


async def read_through(record):
    """GET answer:{tag}:<id>:<question> that missed: answer it now."""
    _, tag, paragraph, question = record["key"].split(":", 3)
    override_reply(await answer("context:" + tag + ":" + paragraph, question))


register_trigger("tokenize_paragraph", tokenize_paragraph, event="set", prefix="paragraph:")
register_function("qa", qa)
register_trigger("answer_on_miss", read_through, event="keymiss", prefix="answer:", commands=["GET"])
'''


def answer_key(paragraph_id: str, question: str, tag: str = TAG) -> str:
    return f"answer:{tag}:{paragraph_id}:{normalize_question(question)}"



def main() -> None:
    """Writes the story's pieces for docs/guide_question_answering.md: tokenizer.json, qa_model.pt
    and qa.py (the library) into the folder given (default: the current one)."""
    import argparse
    from pathlib import Path

    from tokenizers import Tokenizer

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("folder", nargs="?", default=".", type=Path)
    folder = parser.parse_args().folder
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer_json = train_tokenizer()
    vocab_size = Tokenizer.from_str(tokenizer_json).get_vocab_size()
    (folder / "tokenizer.json").write_text(tokenizer_json)
    (folder / "qa_model.pt").write_bytes(tiny_qa_model(vocab_size))
    (folder / "qa.py").write_text(LIBRARY)
    print(f"wrote {folder}/tokenizer.json ({vocab_size} words), {folder}/qa_model.pt, {folder}/qa.py")


if __name__ == "__main__":
    main()
