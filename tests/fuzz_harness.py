"""The fuzzer's harness: guard keys, several connections at once, a liveness
check after every round, and a report that turns a crash into a test.

Used by tests/test_fuzz.py (a bounded run in `make test`) and by
benchmarks/fuzz.py (the long run, `make fuzz`); both draw their commands
from tests/fuzz_grammar.py.

Why Hypothesis runs rounds rather than single commands: the target is one
long-lived server whose state every command changes, so a failing command
cannot be replayed or shrunk in isolation (and after a crash there is no
server to replay against). Each Hypothesis example is therefore one round,
a list of command recipes per connection (tests/fuzz_grammar.py).
Generation is seeded (`@seed`), keeps no example database and has only the
generate phase, so a seed always gives the same command stream (up to the
TorchScript model's bytes, which torch writes a little differently each
time); only the interleaving of the connections varies. What becomes a
regression test after a crash is the list of the last commands each
connection sent, which the report prints.

A crash is any of: the process exits, PING goes unanswered after a round,
or a command gets no reply within REPLY_TIMEOUT_S (a deadlock is a crash
for whoever waits on it).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import math
import subprocess
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings
from redis.backoff import NoBackoff
from redis.connection import Connection
from redis.retry import Retry

import fuzz_grammar as grammar
import model_builders as mb

CONNECTIONS = 8
COMMANDS_PER_CONNECTION = 10  # per round: 80 commands between two liveness checks
REPLY_TIMEOUT_S = 20.0  # longer than any legitimate reply on a busy 2-core box
HISTORY = 12  # commands remembered per connection for the crash report
GUARD_PREFIX = b"guard:"
# redis-py retries a timed-out command by default; here a timeout is the finding.
NO_RETRY = Retry(NoBackoff(), 0)
# The last lane sends as a user that may touch only the fuzz keys and may
# not run CONFIG SET or MODULE LOAD, so the module's own ACL checks (AI.CONFIG's
# setters, AI.FUNCTION's changes, a script's redis.execute, a function's
# execute()) meet the fuzzed stream too.
RESTRICTED_USER = ("fuzz-tenant", "pw")
RESTRICTED_RULES = ("on", ">pw", "resetkeys", "~fz:*", "+@all", "-config|set", "-module|load")


class FuzzCrash(AssertionError):
    """The server died, stopped answering PING, or left a command without a
    reply for REPLY_TIMEOUT_S; the message says what each connection sent."""


# ---------------------------------------------------------------- material and guards


def build_models() -> dict[str, grammar.ModelSpec]:
    """One small valid model per backend, built once per run."""
    return {
        "TORCH": grammar.ModelSpec("TORCH", mb.torch_add(), (b"a", b"b"), ()),
        "ONNX": grammar.ModelSpec("ONNX", mb.onnx_add(), (b"a", b"b"), (b"sum", b"product")),
        "TF": grammar.ModelSpec("TF", mb.tf_graph_def_mul(), (b"a", b"b"), (b"mul",)),
        "TFLITE": grammar.ModelSpec("TFLITE", mb.tflite_add_mul(), (b"a", b"b"), ()),
    }


def model_store_args(key: bytes, spec: grammar.ModelSpec, device: bytes = b"CPU") -> list[bytes]:
    io = [b"INPUTS", b"2", *spec.inputs, b"OUTPUTS", b"1", *spec.outputs] if spec.backend == "TF" else []
    return [b"AI.MODELSTORE", key, spec.backend.encode(), device, *io, b"BLOB", spec.blob]


def guard_commands(models: dict[str, grammar.ModelSpec]) -> list[list[bytes]]:
    """Keys of every type the fuzzer must leave alone: a tensor of each dtype,
    a model of each backend, a script and a plain string."""
    commands = [
        [b"AI.TENSORSET", b"guard:t:FLOAT", b"FLOAT", b"2", b"VALUES", b"1.5", b"-2"],
        [b"AI.TENSORSET", b"guard:t:DOUBLE", b"DOUBLE", b"2", b"2", b"VALUES", b"1", b"2", b"3", b"4"],
        [b"AI.TENSORSET", b"guard:t:INT8", b"INT8", b"3", b"VALUES", b"1", b"2", b"127"],
        [b"AI.TENSORSET", b"guard:t:INT16", b"INT16", b"1", b"BLOB", b"\x01\x80"],
        [b"AI.TENSORSET", b"guard:t:INT32", b"INT32", b"2", b"VALUES", b"7", b"2147483647"],
        [b"AI.TENSORSET", b"guard:t:INT64", b"INT64", b"1", b"1", b"VALUES", b"9223372036854775807"],
        [b"AI.TENSORSET", b"guard:t:UINT8", b"UINT8", b"2", b"VALUES", b"0", b"255"],
        [b"AI.TENSORSET", b"guard:t:UINT16", b"UINT16", b"2", b"VALUES", b"65535", b"1"],
        [b"AI.TENSORSET", b"guard:t:BOOL", b"BOOL", b"3", b"VALUES", b"1", b"0", b"1"],
        [b"AI.TENSORSET", b"guard:t:STRING", b"STRING", b"2", b"VALUES", b"guard", b"\xc3\xa9t\xc3\xa9"],
        [b"AI.TENSORSET", b"guard:t:FLOAT13", b"FLOAT", b"1", b"3", b"VALUES", b"1", b"2", b"3"],
        [b"AI.SCRIPTSTORE", b"guard:s", b"CPU", b"TAG", b"guard", b"ENTRY_POINTS", b"2", b"add", b"concat",
         b"SOURCE", grammar.SCRIPT_SOURCE],
        [b"SET", b"guard:str", b"a plain string"],
    ]
    commands += [model_store_args(b"guard:m:" + name.encode(), spec) for name, spec in models.items()]
    return commands


# Runs that prove the guard models and script still serve after the fuzz.
GUARD_RUNS = (
    [b"AI.MODELEXECUTE", b"guard:m:TORCH", b"INPUTS", b"2", b"guard:t:FLOAT", b"guard:t:FLOAT",
     b"OUTPUTS", b"2", b"check:o1", b"check:o2"],
    [b"AI.MODELEXECUTE", b"guard:m:ONNX", b"INPUTS", b"2", b"guard:t:FLOAT", b"guard:t:FLOAT",
     b"OUTPUTS", b"2", b"check:o1", b"check:o2"],
    [b"AI.MODELEXECUTE", b"guard:m:TF", b"INPUTS", b"2", b"guard:t:FLOAT", b"guard:t:FLOAT",
     b"OUTPUTS", b"1", b"check:o1"],
    [b"AI.MODELEXECUTE", b"guard:m:TFLITE", b"INPUTS", b"2", b"guard:t:FLOAT13", b"guard:t:FLOAT13",
     b"OUTPUTS", b"2", b"check:o1", b"check:o2"],
    [b"AI.SCRIPTEXECUTE", b"guard:s", b"add", b"INPUTS", b"2", b"guard:t:FLOAT", b"guard:t:FLOAT",
     b"OUTPUTS", b"1", b"check:o1"],
)


def pool_commands(models: dict[str, grammar.ModelSpec]) -> list[list[bytes]]:
    """The fuzz keys' starting state, so the first rounds already meet every
    type (the fuzz itself then overwrites, copies and deletes them)."""
    tensors = [[b"AI.TENSORSET", key, b"FLOAT", b"2", b"VALUES", b"1", b"2"] for key in grammar.FUZZ_TENSORS[:3]]
    tensors += [[b"AI.TENSORSET", key, b"FLOAT", b"1", b"3", b"VALUES", b"1", b"2", b"3"]
                for key in grammar.FUZZ_TENSORS[3:]]
    backends = ("TORCH", "ONNX", "TF", "TFLITE", "TORCH")
    stores = [model_store_args(key, models[backend], b"CPU:1" if i == 4 else b"CPU")
              for i, (key, backend) in enumerate(zip(grammar.FUZZ_MODELS, backends))]
    return [*tensors, *stores,
            *[[b"AI.SCRIPTSTORE", key, b"CPU", b"ENTRY_POINTS", str(len(grammar.SCRIPT_ENTRY_POINTS)).encode(),
               *grammar.SCRIPT_ENTRY_POINTS, b"SOURCE", grammar.SCRIPT_SOURCE] for key in grammar.FUZZ_SCRIPTS],
            [b"SET", b"fz:str", b"plain"], [b"RPUSH", b"fz:list", b"x"], [b"HSET", b"fz:hash", b"f", b"v"],
            *[[b"AI.FUNCTION", b"LOAD", b"REPLACE", grammar.LIBRARY_TEMPLATE.replace(b"LIB", library)]
              for library in grammar.FUNCTION_LIBRARIES]]


# ---------------------------------------------------------------- rendering


def render(argv: list[bytes], limit: int = 64) -> str:
    """A redis-cli style line; arguments longer than `limit` bytes are shown
    by length and hash (the crash file keeps them whole)."""
    words = []
    for arg in argv:
        if len(arg) > limit:
            words.append(f"<{len(arg)} bytes sha1:{hashlib.sha1(arg).hexdigest()[:12]}>")
        elif arg and all(33 <= b < 127 and b not in b"\"'\\" for b in arg):
            words.append(arg.decode())
        else:
            escaped = "".join(chr(b) if 32 <= b < 127 and b not in b"\"\\" else
                              "\\" + chr(b) if b in b"\"\\" else f"\\x{b:02x}" for b in arg)
            words.append(f'"{escaped}"')
    return " ".join(words)


# ---------------------------------------------------------------- connections


@dataclass
class Stats:
    sent: int = 0
    ok: int = 0
    errors: int = 0
    blocked: list[list[bytes]] = field(default_factory=list)  # no reply within REPLY_TIMEOUT_S
    disconnects: int = 0  # the server closed a connection yet kept answering PING
    skipped: int = 0  # a command that named a guard key (never expected)
    by_command: Counter[tuple[str, str]] = field(default_factory=Counter)
    error_texts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (command, error text)

    def top_errors(self, n: int, command: str | None = None) -> list[tuple[str, int]]:
        """The n most common error texts, of one command or of all."""
        counts: Counter[str] = Counter()
        for (name, text), count in self.error_texts.items():
            if command is None or name == command:
                counts[text] += count
        return counts.most_common(n)

    def merge(self, other: Stats) -> None:
        self.sent += other.sent
        self.ok += other.ok
        self.errors += other.errors
        self.blocked += other.blocked
        self.disconnects += other.disconnects
        self.skipped += other.skipped
        self.by_command.update(other.by_command)
        self.error_texts.update(other.error_texts)


def _error_key(text: str) -> str:
    """An error text cut to its stable part, for counting."""
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text[:70]


class Lane:
    """One client connection; it runs its share of each round in a pool thread.
    Even lanes speak RESP2 and odd ones RESP3, so both reply paths are fuzzed;
    `user` (name, password) logs the lane in as that ACL user."""

    def __init__(self, index: int, port: int, guards: frozenset[bytes],
                 user: tuple[str, str] | None = None) -> None:
        self.index = index
        self.port = port
        self.guards = guards
        self.user = user
        self.history: deque[list[bytes]] = deque(maxlen=HISTORY)
        self.connection = self._connect()

    def _connect(self) -> Connection:
        connection = Connection(host="127.0.0.1", port=self.port, socket_timeout=REPLY_TIMEOUT_S,
                                socket_connect_timeout=REPLY_TIMEOUT_S, retry=NO_RETRY,
                                protocol=2 + self.index % 2,
                                username=self.user[0] if self.user else None,
                                password=self.user[1] if self.user else None)
        connection.connect()
        return connection

    def run(self, commands: list[list[bytes]]) -> Stats:
        stats = Stats()
        for argv in commands:
            if any(arg in self.guards for arg in argv):
                stats.skipped += 1
                continue
            self.history.append(argv)
            stats.sent += 1
            name = argv[0].decode(errors="replace").upper()
            try:
                self.connection.send_command(*argv)
                self.connection.read_response()
            except redis.ResponseError as exc:
                stats.errors += 1
                stats.by_command[(name, "error")] += 1
                stats.error_texts[(name, _error_key(str(exc)))] += 1
                continue
            except redis.TimeoutError:
                stats.blocked.append(argv)
                stats.by_command[(name, "blocked")] += 1
                if not self._reconnect():
                    return stats
                continue
            except redis.ConnectionError:
                stats.disconnects += 1
                stats.by_command[(name, "disconnected")] += 1
                if not self._reconnect():
                    return stats  # the server is gone: the round's check reports it
                continue
            stats.ok += 1
            stats.by_command[(name, "ok")] += 1
        return stats

    def _reconnect(self) -> bool:
        self.connection.disconnect()
        try:
            self.connection = self._connect()
        except (redis.ConnectionError, redis.TimeoutError):
            return False  # the round's liveness check says why
        return True

    def close(self) -> None:
        self.connection.disconnect()


# ---------------------------------------------------------------- the fuzzer


@dataclass
class Outcome:
    stats: Stats
    seconds: float
    rss_before: int
    rss_after: int
    used_memory_before: int
    used_memory_after: int
    threads_before: int
    threads_after: int
    guards: dict[str, bool]  # guard key -> DUMP identical to the one taken before
    guard_runs: dict[str, str]  # the runs of GUARD_RUNS -> reply after the fuzz

    @property
    def guards_intact(self) -> bool:
        return all(self.guards.values())

    @property
    def commands_per_s(self) -> float:
        return self.stats.sent / self.seconds if self.seconds else 0.0


class Fuzzer:
    """Fuzzes one running server. `proc` is its process (to tell a crash from
    a slow reply), `log` returns its log, `artifacts` is where a crash's
    exact commands are written."""

    def __init__(self, port: int, proc: subprocess.Popen[bytes], log: Callable[[], str],
                 artifacts: Path, connections: int = CONNECTIONS) -> None:
        self.port = port
        self.proc = proc
        self.log = log
        self.artifacts = artifacts
        self.connections = connections
        self.client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=REPLY_TIMEOUT_S, retry=NO_RETRY)
        self.models: dict[str, grammar.ModelSpec] = {}
        self.guard_dumps: dict[bytes, bytes] = {}
        self.crash: FuzzCrash | None = None
        self.stats = Stats()
        self.lanes: list[Lane] = []
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=connections)
        self.on_round: Callable[[Stats], None] | None = None

    # -- setup

    def prepare(self) -> grammar.Material:
        """Build the models, store guards and the fuzz keys' starting state;
        returns the grammar's material. Every backend is loaded before the
        first fuzzed command, so no AI.CONFIG the fuzzer sends can change
        which backends later commands find."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as loader:
            # The server imports the frameworks while this process builds the models.
            loading = loader.submit(self._load_backends)
            self.models = build_models()
            loading.result()
        for argv in guard_commands(self.models) + pool_commands(self.models):
            reply = self.client.execute_command(*argv)
            assert reply in (b"OK", True, 1, *grammar.FUNCTION_LIBRARIES), (render(argv), reply)
        guards = sorted(self.client.keys(GUARD_PREFIX + b"*"))
        self.guard_dumps = {key: self.client.dump(key) for key in guards}
        self.chunk_size = self.client.execute_command("AI.CONFIG", "GET", "MODEL_CHUNK_SIZE")
        self.backends_path = self.client.execute_command("AI.CONFIG", "GET", "BACKENDSPATH")
        self.session_budget = {name: self.client.execute_command("AI.CONFIG", "GET", name)
                               for name in ("MODEL_SESSIONS_MEMORY", "MODEL_SESSIONS_MAX")}
        frozen = frozenset(guards)
        self.client.execute_command("ACL", "SETUSER", RESTRICTED_USER[0], *RESTRICTED_RULES)
        self.lanes = [Lane(i, self.port, frozen, RESTRICTED_USER if i == self.connections - 1 > 0 else None)
                      for i in range(self.connections)]
        payloads = tuple(dump for key, dump in self.guard_dumps.items() if not key.startswith(b"guard:str"))
        return grammar.Material(self.models, payloads)

    def _load_backends(self) -> None:
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=120)
        try:
            for backend in grammar.BACKENDS:
                try:
                    client.execute_command("AI.CONFIG", "LOADBACKEND", backend, "unused")
                except redis.ResponseError:
                    pass  # already loaded; the guard stores below check that every backend works
        finally:
            client.close()

    # -- rounds

    def round(self, commands_by_connection: list[list[list[bytes]]]) -> None:
        """Each connection sends its list at the same time; then PING."""
        if self.crash:
            raise self.crash
        blocked_before = len(self.stats.blocked)
        for stats in self.pool.map(Lane.run, self.lanes, commands_by_connection):
            self.stats.merge(stats)
        self.check_alive()
        if len(self.stats.blocked) > blocked_before:
            # A command the server never answered: a deadlock or a lost
            # reply, as serious as a crash (later commands may queue behind it).
            blocked = "\n".join(f"    {render(argv)}" for argv in self.stats.blocked[blocked_before:])
            self.crash = FuzzCrash(self.crash_report(
                f"left commands without a reply for {REPLY_TIMEOUT_S:.0f} s:\n{blocked}\n"))
            raise self.crash
        if self.on_round:
            self.on_round(self.stats)

    def check_alive(self) -> None:
        code = self.proc.poll()
        if code is None:
            try:
                if self.client.ping():
                    return
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                why = f"stopped answering PING ({exc})"
            else:
                why = "PING did not answer PONG"
        else:
            why = f"exited with code {code}"
        self.crash = FuzzCrash(self.crash_report(why))
        raise self.crash

    def crash_report(self, why: str) -> str:
        self.artifacts.mkdir(parents=True, exist_ok=True)
        path = self.artifacts / "fuzz_crash_commands.py"
        lines = [f"redis-server {why} after {self.stats.sent} fuzzed commands (pid {self.proc.pid}).",
                 "Last commands of each connection, oldest first (one of the last ones is the culprit):"]
        exact = ["# argv of the last commands of each connection, oldest first", "LAST_COMMANDS = {"]
        for lane in self.lanes:
            lines.append(f"  connection {lane.index}:")
            lines += [f"    {render(argv)}" for argv in lane.history]
            exact.append(f"    {lane.index}: [")
            exact += [f"        {argv!r}," for argv in lane.history]
            exact.append("    ],")
        exact.append("}")
        path.write_text("\n".join(exact) + "\n")
        lines.append(f"Exact argv (blobs included): {path}")
        tail = self.log().splitlines()[-60:]
        lines.append("Server log (last lines):")
        lines += [f"  {line}" for line in tail]
        return "\n".join(lines)

    # -- the run

    def run(self, commands: int, seed_value: int, material: grammar.Material) -> Outcome:
        rss_before, used_before = self._memory()
        threads_before = self._threads()
        started = time.monotonic()
        rounds = max(1, math.ceil(commands / (self.connections * COMMANDS_PER_CONNECTION)))
        strategy = grammar.batch(self.connections, COMMANDS_PER_CONNECTION)
        position = 0

        # Hypothesis's health checks measure generation time and example size;
        # these examples are large and slow on purpose (a round of 80 commands).
        @settings(max_examples=rounds, database=None, deadline=None, derandomize=False,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck),
                  verbosity=Verbosity.quiet, report_multiple_bugs=False, print_blob=False)
        @seed(seed_value)
        @given(strategy)
        def one_round(recipes: list[list[grammar.Recipe]]) -> None:
            nonlocal position
            commands = grammar.build_round(material, recipes, position)
            position += sum(len(lane) for lane in recipes)
            self.round(commands)

        try:
            one_round()
        except FuzzCrash as crash:
            raise FuzzCrash(str(crash)) from None  # without Hypothesis's notes (the whole round)
        seconds = time.monotonic() - started
        guards, guard_runs = self.check_guards()
        rss_after, used_after = self._memory()
        return Outcome(self.stats, seconds, rss_before, rss_after, used_before, used_after,
                       threads_before, self._threads(), guards, guard_runs)

    def check_guards(self) -> tuple[dict[str, bool], dict[str, str]]:
        """Byte-for-byte DUMP comparison of every guard (with MODEL_CHUNK_SIZE,
        by which a model's RDB form is chunked, set back first), then one run
        of each guard model and of the guard script (with the session budget
        the fuzz may have shrunk set back too)."""
        self.check_alive()
        self.client.execute_command("AI.CONFIG", "MODEL_CHUNK_SIZE", self.chunk_size)
        self.client.execute_command("AI.CONFIG", "BACKENDSPATH", self.backends_path)
        for name, value in self.session_budget.items():  # the guard runs need no eviction storm
            self.client.execute_command("AI.CONFIG", name, value)
        guards = {key.decode(): self.client.dump(key) == dump for key, dump in self.guard_dumps.items()}
        runs = {}
        for argv in GUARD_RUNS:
            try:
                reply = self.client.execute_command(*argv)
                runs[argv[1].decode()] = reply.decode() if isinstance(reply, bytes) else repr(reply)
            except redis.ResponseError as exc:
                runs[argv[1].decode()] = f"error: {exc}"
        self.client.delete(b"check:o1", b"check:o2")
        return guards, runs

    def _memory(self) -> tuple[int, int]:
        memory = self.client.info("memory")
        return int(memory["used_memory_rss"]), int(memory["used_memory"])

    def _threads(self) -> int:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("Threads:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return -1

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for lane in self.lanes:
            lane.close()
        self.client.close()
