"""End-to-end stories of scripts and DAGs, as an application would use them.

1. The fraud loop in one round trip: a transaction arrives, its reference
   data is already in Redis, and one AI.DAGEXECUTE loads the reference, sets
   the transaction, runs the fraud model and reads the score. The score is
   the model's own answer (the same TorchScript run in this process), nothing
   is left in the keyspace, and it took one command.

2. BERT-style question answering next to the data: context passages are
   stored pre-tokenized as INT64 tensors; a script stored with SCRIPTSTORE
   builds the model input (CLS question SEP context SEP, padded), the
   attention mask and the token types, runs the model with
   redisAI.model_execute and returns the start/end scores; the application
   takes the argmax span and gets the right answer. The model is a tiny
   torch.nn.TransformerEncoder built here, untrained, but constructed so that
   the answer is known: the start head reads one embedding dimension that only
   the token START_TOKEN lights up, the end head another one for END_TOKEN,
   and positions that are not context (question, padding) are masked out.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import redis

import model_builders as mb
from conftest import RedisServer
from keyspace import snapshot


@pytest.fixture
def r(shared_server: RedisServer, request: pytest.FixtureRequest) -> redis.Redis:
    request.node.redis_servers = [shared_server]  # conftest attaches its log on failure
    client = shared_server.client(socket_timeout=60)
    client.flushall()
    client.config_resetstat()
    return client


def command_calls(r: redis.Redis) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): int(stats["calls"])
            for name, stats in r.info("commandstats").items()}


def torchscript_bytes(module: object) -> bytes:
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(module), buffer)
    return buffer.getvalue()


def run_in_process(blob: bytes, *inputs: np.ndarray) -> list[np.ndarray]:
    """The same TorchScript module, loaded and run here."""
    import torch

    module = torch.jit.load(io.BytesIO(blob))
    with torch.no_grad():
        result = module(*[torch.from_numpy(np.ascontiguousarray(x)) for x in inputs])
    results = result if isinstance(result, (tuple, list)) else [result]
    return [t.numpy() for t in results]


# ---------------------------------------------------------------------------
# 1. the fraud loop in one round trip


def test_fraud_loop_in_one_round_trip(r: redis.Redis) -> None:
    blob = mb.torch_mlp()
    assert r.execute_command("AI.MODELSTORE", "fraud{u}", "TORCH", "CPU", "TAG", "fraud-v1",
                             "BLOB", blob) == b"OK"
    transactions, reference = mb.mlp_inputs(batch=8, seed=7)
    ref = reference[:1]  # the user's reference data, stored once
    assert r.execute_command("AI.TENSORSET", "ref{u}", "FLOAT", 1, 256, "BLOB", ref.tobytes()) == b"OK"
    before = snapshot(r)
    r.config_resetstat()

    weights = mb.mlp_weights()
    for tx in transactions:
        tx = tx.reshape(1, 30)
        reply = r.execute_command(
            "AI.DAGEXECUTE", "LOAD", 1, "ref{u}",
            "|>", "AI.TENSORSET", "tx", "FLOAT", 1, 30, "BLOB", tx.tobytes(),
            "|>", "AI.MODELEXECUTE", "fraud{u}", "INPUTS", 2, "tx", "ref{u}", "OUTPUTS", 1, "score",
            "|>", "AI.TENSORGET", "score", "VALUES")
        assert reply[:2] == [b"OK", b"OK"] and len(reply) == 3
        score = np.array([float(v) for v in reply[2]], dtype=np.float64).reshape(1, 2)
        # The same model run here gives the same score; the numpy reference agrees too.
        (expected,) = run_in_process(blob, tx, ref)
        np.testing.assert_allclose(score, expected, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(score, mb.mlp_reference(weights, tx, ref), rtol=1e-4, atol=1e-6)
        assert abs(score.sum() - 1.0) < 1e-5  # a softmax over two classes

    # One command per transaction, nothing else, and nothing left in the keyspace.
    calls = command_calls(r)
    assert calls.get("ai.dagexecute") == len(transactions)
    assert not any(name in calls for name in ("ai.tensorset", "ai.modelexecute", "ai.tensorget"))
    assert snapshot(r) == before
    info = r.execute_command("AI.INFO", "fraud{u}")
    assert info[12:] == [b"samples", len(transactions), b"calls", len(transactions), b"errors", 0]

    # With PERSIST, the application can keep the score of a transaction it flags.
    tx = transactions[3].reshape(1, 30)
    reply = r.execute_command(
        "AI.DAGEXECUTE", "LOAD", 1, "ref{u}", "PERSIST", 1, "score:3{u}",
        "|>", "AI.TENSORSET", "tx", "FLOAT", 1, 30, "BLOB", tx.tobytes(),
        "|>", "AI.MODELEXECUTE", "fraud{u}", "INPUTS", 2, "tx", "ref{u}", "OUTPUTS", 1, "score:3{u}",
        "|>", "AI.TENSORGET", "score:3{u}", "META")
    assert reply == [b"OK", b"OK", [b"dtype", b"FLOAT", b"shape", [1, 2]]]
    stored = r.execute_command("AI.TENSORGET", "score:3{u}", "BLOB")
    np.testing.assert_allclose(np.frombuffer(stored, dtype=np.float32).reshape(1, 2),
                               run_in_process(blob, tx, ref)[0], rtol=1e-6)
    assert set(snapshot(r)) == set(before) | {b"score:3{u}"}


# ---------------------------------------------------------------------------
# 2. question answering with a tiny transformer

VOCAB, WIDTH, MAX_LEN = 64, 32, 96
PAD, CLS, SEP, START_TOKEN, END_TOKEN = 0, 1, 2, 60, 61

QA_SCRIPT = '''
def prepare(tensors: List[Tensor], keys: List[str], args: List[str]):
    question = tensors[0]
    context = tensors[1]
    cls = torch.tensor([[int(args[0])]])
    sep = torch.tensor([[int(args[1])]])
    length = int(args[2])
    ids = torch.cat([cls, question, sep, context, sep], dim=1)
    first = torch.zeros_like(torch.cat([cls, question, sep], dim=1))
    second = torch.ones_like(torch.cat([context, sep], dim=1))
    types = torch.cat([first, second], dim=1)
    mask = torch.ones_like(ids)
    padding = torch.tensor([[0]]).repeat(1, length - ids.size(1))
    return torch.cat([ids, padding], dim=1), torch.cat([mask, padding], dim=1), torch.cat([types, padding], dim=1)

def answer(tensors: List[Tensor], keys: List[str], args: List[str]):
    inputs = prepare(tensors, keys, args)
    scores = redisAI.model_execute(keys[0], [inputs[0], inputs[1], inputs[2]], 2)
    return scores[0], scores[1]
'''


def tiny_qa_model() -> bytes:
    """forward(input_ids, attention_mask, token_type_ids: INT64 [1, L]) -> (start, end) FLOAT [1, L]."""
    import torch

    class TinyQA(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.words = torch.nn.Embedding(VOCAB, WIDTH)
            self.types = torch.nn.Embedding(2, WIDTH)
            self.positions = torch.nn.Embedding(MAX_LEN, WIDTH)
            layer = torch.nn.TransformerEncoderLayer(WIDTH, 2, dim_feedforward=64, dropout=0.0,
                                                     batch_first=True)
            self.encoder = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            self.qa_outputs = torch.nn.Linear(WIDTH, 2)
            with torch.no_grad():
                for table in (self.words, self.types, self.positions):
                    table.weight.mul_(0.1)
                # Only START_TOKEN lights up dimension 0, only END_TOKEN dimension 1 ...
                self.words.weight[START_TOKEN, 0] = 8.0
                self.words.weight[END_TOKEN, 1] = 8.0
                for block in self.encoder.layers:  # ... and the random layers keep that visible
                    block.self_attn.out_proj.weight.mul_(0.1)
                    block.linear2.weight.mul_(0.1)
                # The start head reads dimension 0, the end head dimension 1.
                self.qa_outputs.weight.zero_()
                self.qa_outputs.bias.zero_()
                self.qa_outputs.weight[0, 0] = 1.0
                self.qa_outputs.weight[1, 1] = 1.0

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            positions = torch.arange(input_ids.size(1)).unsqueeze(0)
            h = self.words(input_ids) + self.types(token_type_ids) + self.positions(positions)
            h = self.encoder(h, src_key_padding_mask=attention_mask == 0)
            logits = self.qa_outputs(h)
            # Only context tokens (type 1, not padding) can be part of an answer.
            outside = (1 - attention_mask * token_type_ids).to(logits.dtype) * 10000.0
            return logits[:, :, 0] - outside, logits[:, :, 1] - outside

    return torchscript_bytes(TinyQA().eval())


def make_passages(rng: np.random.Generator) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """Context passages (INT64 [1, n]) with the answer span each one holds."""
    passages = []
    for length in (12, 40, 27, 55):
        tokens = rng.integers(3, 60, size=length)
        start = int(rng.integers(0, length - 4))
        end = int(rng.integers(start + 1, min(length, start + 8)))
        tokens[start], tokens[end] = START_TOKEN, END_TOKEN
        passages.append((tokens.astype(np.int64).reshape(1, length), (start, end)))
    return passages


def answer_span(start_scores: np.ndarray, end_scores: np.ndarray, offset: int) -> tuple[int, int]:
    """The best span with end >= start, as positions in the context."""
    start = int(np.argmax(start_scores))
    end = start + int(np.argmax(end_scores[start:]))
    return start - offset, end - offset


def test_question_answering_with_a_script_and_a_transformer(r: redis.Redis) -> None:
    blob = tiny_qa_model()
    assert r.execute_command("AI.MODELSTORE", "bert{qa}", "TORCH", "CPU", "BLOB", blob) == b"OK"
    assert r.execute_command("AI.SCRIPTSTORE", "qa_script{qa}", "CPU", "ENTRY_POINTS", 2, "prepare", "answer",
                             "SOURCE", QA_SCRIPT) == b"OK"
    passages = make_passages(np.random.default_rng(11))
    for i, (tokens, _) in enumerate(passages):
        assert r.execute_command("AI.TENSORSET", f"context:{i}{{qa}}", "INT64", *tokens.shape,
                                 "BLOB", tokens.tobytes()) == b"OK"
    # The question mentions the start token too: only the context may answer.
    question = np.array([[5, 9, START_TOKEN, 17, 33]], dtype=np.int64)
    assert r.execute_command("AI.TENSORSET", "question{qa}", "INT64", *question.shape,
                             "BLOB", question.tobytes()) == b"OK"
    offset = question.shape[1] + 2  # CLS question SEP
    args = [CLS, SEP, MAX_LEN]

    for i, (tokens, (start, end)) in enumerate(passages):
        assert r.execute_command("AI.SCRIPTEXECUTE", "qa_script{qa}", "answer", "KEYS", 1, "bert{qa}",
                                 "INPUTS", 2, "question{qa}", f"context:{i}{{qa}}", "ARGS", 3, *args,
                                 "OUTPUTS", 2, "start{qa}", "end{qa}") == b"OK"
        scores = []
        for key in ("start{qa}", "end{qa}"):
            reply = r.execute_command("AI.TENSORGET", key, "META", "BLOB")
            assert reply[:4] == [b"dtype", b"FLOAT", b"shape", [1, MAX_LEN]]
            scores.append(np.frombuffer(reply[5], dtype=np.float32).reshape(1, MAX_LEN))

        # The script built exactly what a client would have sent the model.
        ids = np.concatenate([[[CLS]], question, [[SEP]], tokens, [[SEP]]], axis=1)
        n = ids.shape[1]
        padded = np.zeros((1, MAX_LEN), dtype=np.int64)
        padded[:, :n] = ids
        mask = (np.arange(MAX_LEN) < n).astype(np.int64).reshape(1, MAX_LEN)
        types = ((np.arange(MAX_LEN) >= offset) & (np.arange(MAX_LEN) < n)).astype(np.int64).reshape(1, MAX_LEN)
        expected = run_in_process(blob, padded, mask, types)
        for got, want in zip(scores, expected):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

        assert answer_span(scores[0][0], scores[1][0], offset) == (start, end)
        answer_tokens = tokens[0, start:end + 1]
        assert answer_tokens[0] == START_TOKEN and answer_tokens[-1] == END_TOKEN

    # The same question in one round trip: load the passage, set the question, run, read.
    tokens, (start, end) = passages[2]
    before = snapshot(r)
    reply = r.execute_command(
        "AI.DAGEXECUTE", "LOAD", 1, "context:2{qa}", "ROUTING", "{qa}",
        "|>", "AI.TENSORSET", "q", "INT64", *question.shape, "BLOB", question.tobytes(),
        "|>", "AI.SCRIPTEXECUTE", "qa_script{qa}", "answer", "KEYS", 1, "bert{qa}", "INPUTS", 2, "q",
        "context:2{qa}", "ARGS", 3, *args, "OUTPUTS", 2, "s", "e",
        "|>", "AI.TENSORGET", "s", "BLOB", "|>", "AI.TENSORGET", "e", "BLOB")
    assert reply[:2] == [b"OK", b"OK"]
    start_scores, end_scores = (np.frombuffer(b, dtype=np.float32) for b in reply[2:])
    assert answer_span(start_scores, end_scores, offset) == (start, end)
    assert snapshot(r) == before
    info = r.execute_command("AI.INFO", "qa_script{qa}")
    assert info[14:] == [b"calls", len(passages) + 1, b"errors", 0]
