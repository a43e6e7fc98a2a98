"""The long fuzz run: nothing from outside can crash the server (issue 9).

What it does
    Starts a private redis-server with the module, stores guard keys of every
    type (a tensor of each dtype, a model of each backend, a script, a plain
    string), then sends COMMANDS (default 1,000,000) commands drawn from the
    AI.* grammar and mutated (tests/fuzz_grammar.py) over 8 connections at
    once (half RESP2, half RESP3; the last as an ACL user limited to the
    fuzz keys, without CONFIG SET or MODULE LOAD), 80 per round. After
    every round the server must be running and answer PING, and every
    command must have had a reply. At the end each
    guard's DUMP must equal the one taken before, byte for byte, and each
    guard model and the guard script must still run. tests/test_fuzz.py is
    the same run at 20,000 commands; both use tests/fuzz_harness.py.

What it reports
    commands/s, ok and error replies (per command and the most common error
    texts), crashes (must be 0), guard keys intact, the server's RSS
    (INFO memory used_memory_rss) and thread count before and after.
    Results: benchmarks/results/fuzz.{json,md}. On a crash or an unanswered
    command it stops, prints the last commands of each connection, writes
    them whole to benchmarks/results/fuzz_crash_commands.py, and exits 1.

How to run
    make fuzz                               (1,000,000 commands, seed 0)
    .venv/bin/python benchmarks/fuzz.py --commands 100000 --seed 7

    The same seed sends the same commands; only their interleaving across
    the connections varies. On 2 cores expect 1,800-2,700 commands/s
    (measured), so the default run takes 6-10 minutes; longer on a machine
    other work shares.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import _bench_common as bc  # puts tests/ on sys.path

import fuzz_harness  # noqa: E402  (tests/fuzz_harness.py)
from fuzz_harness import FuzzCrash, Fuzzer, Outcome, Stats  # noqa: E402

NAME = "fuzz"
TOP_ERRORS = 40


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--connections", type=int, default=fuzz_harness.CONNECTIONS)
    options = parser.parse_args()

    noise_before = bc.wait_for_quiet()
    meter = bc.CpuMeter()
    with bc.running_server() as server:
        client = server.client()
        env = bc.environment(client)
        fuzzer = Fuzzer(server.port, server.proc, lambda: server.log_tail(200), bc.RESULTS_DIR,
                        connections=options.connections)
        crash = None
        try:
            material = fuzzer.prepare()
            print(f"guards stored; fuzzing {options.commands} commands, seed {options.seed}, "
                  f"{options.connections} connections", flush=True)
            fuzzer.on_round = Progress(options.commands)
            outcome = fuzzer.run(options.commands, options.seed, material)
        except FuzzCrash as exc:
            crash = str(exc)
            outcome = None
        finally:
            fuzzer.close()
        env.update(bc.noise_fields(noise_before, meter))
        doc = document(options, env, fuzzer.stats, outcome, crash)
    bc.write_json(NAME, doc)
    bc.write_markdown(NAME, markdown(doc))
    print(summary(doc))
    if crash:
        print(crash, file=sys.stderr)
        return 1
    return 0 if doc["guards_intact"] else 1


class Progress:
    """Prints a line about every 10 s: how far, how fast, how many errors."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.started = time.monotonic()
        self.last = self.started

    def __call__(self, stats: Stats) -> None:
        now = time.monotonic()
        if now - self.last < 10:
            return
        self.last = now
        rate = stats.sent / (now - self.started)
        print(f"{stats.sent:>9} / {self.total} commands, {rate:,.0f}/s, {stats.ok} ok, "
              f"{stats.errors} errors", flush=True)


def document(options: argparse.Namespace, env: dict[str, str], stats: Stats, outcome: Outcome | None,
             crash: str | None) -> dict[str, Any]:
    by_command: dict[str, dict[str, Any]] = {}
    for (name, kind), count in sorted(stats.by_command.items()):
        by_command.setdefault(name, {})[kind] = count
    for name, kinds in by_command.items():
        kinds["top_errors"] = stats.top_errors(3, name)
    doc: dict[str, Any] = {
        "env": env,
        "seed": options.seed,
        "connections": options.connections,
        "commands_asked": options.commands,
        "commands_sent": stats.sent,
        "ok": stats.ok,
        "errors": stats.errors,
        "crashes": 1 if crash else 0,
        "unanswered": len(stats.blocked),
        "disconnects": stats.disconnects,
        "by_command": by_command,
        "top_errors": stats.top_errors(TOP_ERRORS),
        "crash_report": crash,
    }
    if outcome is not None:
        doc.update({
            "seconds": round(outcome.seconds, 1),
            "commands_per_s": round(outcome.commands_per_s),
            "guards_intact": outcome.guards_intact,
            "guards": outcome.guards,
            "guard_runs": outcome.guard_runs,
            "rss_before": outcome.rss_before,
            "rss_after": outcome.rss_after,
            "used_memory_before": outcome.used_memory_before,
            "used_memory_after": outcome.used_memory_after,
            "threads_before": outcome.threads_before,
            "threads_after": outcome.threads_after,
        })
    else:
        doc["guards_intact"] = False  # not checked: the server is gone
    return doc


def summary(doc: dict[str, Any]) -> str:
    if doc["crashes"]:
        return f"CRASH after {doc['commands_sent']} commands (see {bc.RESULTS_DIR / 'fuzz_crash_commands.py'})"
    return (f"{doc['commands_sent']} commands in {doc['seconds']} s ({doc['commands_per_s']}/s): "
            f"{doc['ok']} ok, {doc['errors']} errors, {doc['crashes']} crashes, "
            f"guard keys intact: {doc['guards_intact']}, RSS {mib(doc['rss_before'])} -> "
            f"{mib(doc['rss_after'])}, threads {doc['threads_before']} -> {doc['threads_after']}")


def mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def markdown(doc: dict[str, Any]) -> list[str]:
    lines = ["# Fuzz: nothing from outside crashes the server", "",
             *bc.header_lines(doc["env"]),
             f"- seed {doc['seed']}, {doc['connections']} connections, "
             f"{doc['commands_asked']} commands asked", ""]
    if doc["crashes"]:
        lines += ["## CRASH", "", "```", doc["crash_report"], "```", ""]
    else:
        lines += [
            "| measure | value |", "|---|---|",
            f"| commands sent | {doc['commands_sent']} |",
            f"| seconds | {doc['seconds']} |",
            f"| commands/s | {doc['commands_per_s']} |",
            f"| ok replies | {doc['ok']} |",
            f"| error replies | {doc['errors']} |",
            f"| crashes | {doc['crashes']} |",
            f"| commands without a reply | {doc['unanswered']} |",
            f"| connections the server closed | {doc['disconnects']} |",
            f"| guard keys intact (DUMP byte for byte) | {doc['guards_intact']} "
            f"({sum(doc['guards'].values())}/{len(doc['guards'])}) |",
            f"| guard models and script still run | "
            f"{all(reply == 'OK' for reply in doc['guard_runs'].values())} |",
            f"| RSS before / after | {mib(doc['rss_before'])} / {mib(doc['rss_after'])} |",
            f"| used_memory before / after | {mib(doc['used_memory_before'])} / "
            f"{mib(doc['used_memory_after'])} |",
            f"| server threads before / after | {doc['threads_before']} / {doc['threads_after']} |",
            "",
        ]
    lines += ["## Replies per command", "", "| command | ok | error | its most common error |", "|---|---|---|---|"]
    for name, kinds in doc["by_command"].items():
        common = kinds["top_errors"][0][0].replace("|", "/") if kinds["top_errors"] else ""
        lines.append(f"| {name} | {kinds.get('ok', 0)} | {kinds.get('error', 0)} | `{common}` |")
    lines += ["", f"## The {TOP_ERRORS} most common error replies", "", "| count | error (first 70 characters) |",
              "|---|---|"]
    for text, count in doc["top_errors"]:
        lines.append(f"| {count} | `{text.replace('|', '/')}` |")
    return lines


if __name__ == "__main__":
    sys.exit(main())
