"""Nothing from outside can crash the server: a bounded fuzz run in `make test`.

The story: guard keys of every type are stored (a tensor of each dtype, a
model of each backend, a script, a plain string) and three function
libraries are loaded for the calls to find, then 20,000 commands drawn
from the AI.* grammar and mutated (tests/fuzz_grammar.py) go to the server
over 8 connections at once (half RESP2, half RESP3; the last as an ACL
user limited to the fuzz keys, without CONFIG SET or MODULE LOAD), 80 per
round. After
every round the server must still be running and answer PING; no command
may go without a reply. At the end every guard's DUMP equals the one taken
before, byte for byte, and each guard model and the guard script still run.

A failure prints the last commands each connection sent (and writes them
whole next to the test's tmp_path) so the crash can become a story in
tests/test_fuzz_regressions.py. The long run is benchmarks/fuzz.py
(`make fuzz`, 1,000,000 commands); both share the grammar and the harness.

REDISAI_FUZZ_SEED and REDISAI_FUZZ_COMMANDS change the seed and the size;
with the same seed the same commands are sent (their interleaving across
the connections is the only thing that varies).
"""

from __future__ import annotations

import os
from pathlib import Path

from conftest import RedisServer
from fuzz_harness import Fuzzer

FUZZ_COMMANDS = int(os.environ.get("REDISAI_FUZZ_COMMANDS", "20000"))
FUZZ_SEED = int(os.environ.get("REDISAI_FUZZ_SEED", "0"))

# Commands whose replies must include both successes and errors: proof that
# the stream gets past the parsers into the backends, codecs and DAG runner.
MUST_SUCCEED_AND_FAIL = ("AI.TENSORSET", "AI.TENSORGET", "AI.MODELSTORE", "AI.MODELEXECUTE",
                         "AI.SCRIPTSTORE", "AI.SCRIPTEXECUTE", "AI.DAGEXECUTE", "RESTORE", "COPY",
                         "AI.FUNCTION", "AI.FCALL", "AI.FCALL_RO", "AI.CONFIG")


def test_fuzzed_commands_never_crash_the_server_and_leave_guard_keys_intact(server: RedisServer,
                                                                            tmp_path: Path):
    fuzzer = Fuzzer(server.port, server.proc, server.log, tmp_path / "fuzz")
    try:
        material = fuzzer.prepare()
        outcome = fuzzer.run(FUZZ_COMMANDS, FUZZ_SEED, material)  # raises FuzzCrash with the report
    finally:
        fuzzer.close()

    stats = outcome.stats
    print(f"fuzz: {stats.sent} commands in {outcome.seconds:.1f} s ({outcome.commands_per_s:.0f}/s), "
          f"{stats.ok} ok, {stats.errors} errors, RSS {outcome.rss_before} -> {outcome.rss_after}")
    # Hypothesis may drop a round that overran its size limit; nearly all are sent.
    assert stats.sent >= FUZZ_COMMANDS * 0.95
    assert stats.skipped == 0  # no command named a guard key
    assert [key for key, same in outcome.guards.items() if not same] == []
    assert len(outcome.guards) == 17  # 11 tensors, 4 models, a script, a string
    assert outcome.guard_runs == {"guard:m:TORCH": "OK", "guard:m:ONNX": "OK", "guard:m:TF": "OK",
                                  "guard:m:TFLITE": "OK", "guard:s": "OK"}
    for name in MUST_SUCCEED_AND_FAIL:
        assert stats.by_command[(name, "ok")] > 0, f"no {name} succeeded"
        assert stats.by_command[(name, "error")] > 0, f"no {name} failed"
