"""A user answers questions over paragraphs that live in Redis, with the
tokenizer and the model next to the data (the seed's story, issue 14).

The pieces are made on the spot (tests/qa_pipeline.py): a `tokenizers`
WordLevel tokenizer trained on the story's sentences, stored under
tokenizer:{qa}; a tiny TorchScript extractive-QA model with random weights,
stored with AI.MODELSTORE under model:{qa}; and the `qa` library. Writing a
paragraph fires a `set` trigger that stores its token ids as a tensor;
AI.FCALL qa tokenizes the question, runs the model through the `redisAI`
runners and keeps the answer under an answer key with a TTL; a GET of an
answer key that is not there is answered by the read-through trigger. Every
answer is checked against the same pipeline run in this process.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis

from conftest import RedisServer, wait_until
from qa_pipeline import (LIBRARY, PARAGRAPHS, QUESTIONS, TAG, ReferencePipeline, answer_key, best_span,
                         best_span_numpy, tiny_qa_model, train_tokenizer)

SHARED_SERVER_MODULE_ARGS = ["FUNCTION_THREADS", "2"]


@pytest.fixture(scope="module")
def reference() -> ReferencePipeline:
    tokenizer_json = train_tokenizer()
    from tokenizers import Tokenizer

    vocab_size = Tokenizer.from_str(tokenizer_json).get_vocab_size()
    return ReferencePipeline(tokenizer_json, tiny_qa_model(vocab_size))


@pytest.fixture
def r(shared_server: RedisServer, reference: ReferencePipeline) -> Iterator[redis.Redis]:
    """A server with the tokenizer, the model and the qa library, and no paragraphs yet."""
    client = shared_server.client(protocol=3)
    client.execute_command("AI.FUNCTION", "FLUSH")
    client.flushall()
    client.set(f"tokenizer:{TAG}", reference.tokenizer_json)
    client.execute_command("AI.MODELSTORE", f"model:{TAG}", "TORCH", "CPU", "BLOB", reference.model_bytes)
    assert client.execute_command("AI.FUNCTION", "LOAD", LIBRARY) == b"qa"
    yield client


def model_calls(r: redis.Redis) -> int:
    reply = r.execute_command("AI.INFO", f"model:{TAG}")
    stats = reply if isinstance(reply, dict) else dict(zip(reply[::2], reply[1::2]))
    return stats[b"calls"]


def write_paragraphs(r: redis.Redis) -> None:
    for i, text in enumerate(PARAGRAPHS):
        r.set(f"paragraph:{TAG}:{i}", text)
    wait_until(lambda: all(r.exists(f"context:{TAG}:{i}") for i in range(len(PARAGRAPHS))),
               timeout=20, what="the set trigger to tokenize every paragraph")


def test_a_question_is_answered_next_to_the_data_then_from_the_answer_key(
        r: redis.Redis, reference: ReferencePipeline) -> None:
    write_paragraphs(r)
    # The set trigger made each paragraph's token ids, as the tokenizer here makes them.
    for i, text in enumerate(PARAGRAPHS):
        reply = r.execute_command("AI.TENSORGET", f"context:{TAG}:{i}", "META", "VALUES")
        meta = dict(zip(reply[::2], reply[1::2]))
        dtype, shape, values = meta[b"dtype"], meta[b"shape"], meta[b"values"]
        assert (dtype, shape) == (b"INT64", [len(reference.context_ids(text))])
        assert values == reference.context_ids(text).tolist()
    assert model_calls(r) == 0  # tokenizing runs no model

    question, paragraph = QUESTIONS[1], 3
    expected = reference.answer(question, PARAGRAPHS[paragraph])
    assert expected and expected.split()[0] in PARAGRAPHS[paragraph].lower()
    reply = r.execute_command("AI.FCALL", "qa", 1, f"context:{TAG}:{paragraph}", question)
    assert reply == expected.encode()
    assert model_calls(r) == 1  # the function's run went through the model's queue

    # The answer was kept with a TTL: asking again is a plain GET, with no model run.
    key = answer_key(str(paragraph), question)
    assert 0 < r.pttl(key) <= 600_000
    assert r.get(key) == expected.encode()
    assert model_calls(r) == 1

    # A GET of an answer nobody asked for yet is answered by the read-through trigger...
    other_key = answer_key("0", QUESTIONS[0])
    assert not r.exists(other_key)
    assert r.get(other_key) == reference.answer(QUESTIONS[0], PARAGRAPHS[0]).encode()
    assert model_calls(r) == 2
    assert 0 < r.pttl(other_key) <= 600_000  # ...which also kept it
    # ...and an expired answer comes back the same as AI.FCALL gave it.
    r.delete(key)
    assert r.get(key) == expected.encode()
    assert model_calls(r) == 3
    assert r.get(key) == expected.encode()
    assert model_calls(r) == 3


def test_every_question_on_every_paragraph_matches_the_pipeline_run_here(
        r: redis.Redis, reference: ReferencePipeline) -> None:
    write_paragraphs(r)
    for i, text in enumerate(PARAGRAPHS):
        for question in QUESTIONS:
            reply = r.execute_command("AI.FCALL", "qa", 1, f"context:{TAG}:{i}", question)
            assert reply == reference.answer(question, text).encode(), (i, question)
    assert model_calls(r) == len(PARAGRAPHS) * len(QUESTIONS)
    assert r.dbsize() == 2 + 2 * len(PARAGRAPHS) + len(PARAGRAPHS) * len(QUESTIONS)


def test_rewriting_a_paragraph_retokenizes_it(r: redis.Redis, reference: ReferencePipeline) -> None:
    write_paragraphs(r)
    text = "Berlin is the capital of Germany."
    r.set(f"paragraph:{TAG}:3", text)
    wait_until(lambda: r.execute_command("AI.TENSORGET", f"context:{TAG}:3", "VALUES")
               == reference.context_ids(text).tolist(), timeout=20, what="the trigger to retokenize")
    question = QUESTIONS[1]
    assert r.execute_command("AI.FCALL", "qa", 1, f"context:{TAG}:3", question) == \
        reference.answer(question, text).encode()


def test_a_question_on_a_missing_paragraph_is_an_error_and_stores_nothing(r: redis.Redis) -> None:
    with pytest.raises(redis.ResponseError, match="^tensor key is empty$"):
        r.execute_command("AI.FCALL", "qa", 1, f"context:{TAG}:9", QUESTIONS[0])
    with pytest.raises(redis.ResponseError, match="^tensor key is empty$"):
        r.get(answer_key("9", QUESTIONS[0]))  # the read-through's error is the GET's reply
    assert r.dbsize() == 2  # the tokenizer and the model
    assert model_calls(r) == 0
    assert r.ping()


def test_the_main_thread_stayed_out_of_python(shared_server: RedisServer) -> None:
    """Tokenizing, answering and read-through all ran on function workers (runs last)."""
    assert "the Redis main thread took the GIL" not in shared_server.log()


def test_the_reference_pipeline_is_deterministic(reference: ReferencePipeline) -> None:
    """The expected answers do not depend on the run: the model's weights come from a seed."""
    from tokenizers import Tokenizer

    again = tiny_qa_model(Tokenizer.from_str(reference.tokenizer_json).get_vocab_size())
    other = ReferencePipeline(train_tokenizer(), again)
    answers = [reference.answer(q, p) for q in QUESTIONS for p in PARAGRAPHS]
    assert answers == [other.answer(q, p) for q in QUESTIONS for p in PARAGRAPHS]
    assert len(set(answers)) > 1 and all(answers)


def test_the_guide_shows_the_library_this_story_runs() -> None:
    """docs/guide_question_answering.md prints the library; it must be the one tested here."""
    guide = (Path(__file__).resolve().parent.parent / "docs" / "guide_question_answering.md").read_text()
    assert f"```python\n{LIBRARY}```" in guide


def test_the_numpy_span_search_picks_what_the_plain_loop_picks() -> None:
    """The library (and the benchmark's client) search the span with numpy; the reference
    with a plain loop. Ties included (rounded logits make many)."""
    rng = np.random.default_rng(3)
    for length in (1, 2, 7, 8, 9, 40):
        for _ in range(50):
            start, end = (np.round(rng.standard_normal(length + 5), 1).astype(np.float32) for _ in range(2))
            assert best_span_numpy(start, end, 3, 3 + length) == best_span(start, end, 3, 3 + length)
