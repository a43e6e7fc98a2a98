"""The fraud loop as one AI.DAGEXECUTE against the same loop as three commands.

What it measures
    Loops per second (and per-loop latency) of the fraud-detection loop of the seeds, done two
    ways against one redis-server with the redisai_py module:

    * DAG, one round trip per loop:
      ``AI.DAGEXECUTE LOAD 1 ref |> AI.TENSORSET tx FLOAT 1 30 BLOB <tx>
      |> AI.MODELEXECUTE fraud INPUTS 2 tx ref OUTPUTS 1 score |> AI.TENSORGET score VALUES``
    * three commands, three round trips per loop (keys of the client's own):
      ``AI.TENSORSET tx:<c> FLOAT 1 30 BLOB <tx>``, ``AI.MODELEXECUTE fraud INPUTS 2 tx:<c> ref
      OUTPUTS 1 score:<c>``, ``AI.TENSORGET score:<c> VALUES``

    The model is the fraud MLP of tests/model_builders.py as TorchScript (tx 1x30, ref 1x256).
    Both ways run at 1 and 16 concurrent clients. A client is a process of its own (so client
    CPU is not serialised on one Python interpreter) with a raw socket and pre-encoded commands;
    it checks the score of its first loop against the numpy reference and stops at a shared
    deadline. Each (clients, way) run lasts RUN_S seconds; the two ways alternate order between
    REPEATS repeats and medians are reported; the ratio is the median of the per-repeat ratios.
    After every run the server's commandstats must show exactly the commands the clients
    counted, none failed.

How to run
    .venv/bin/python benchmarks/dag_vs_commands.py [--quick]

    It starts its own redis-server on a free loopback port (below 55535) in a temporary
    directory and stops it by PID. Results go to benchmarks/results/dag_vs_commands.{md,json,png}.
    It takes about 1-2 minutes.
"""

from __future__ import annotations

import multiprocessing as mp
import socket
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

import _bench_common as common

NAME = "dag_vs_commands"
CLIENTS = (1, 16)
REPEATS = 3
RUN_S = 4.0
WARMUP_S = 1.0
MAX_LATENCY_SAMPLES = 200_000  # per client and run
MODEL_KEY, REF_KEY = "fraud", "ref"
WAYS = ("DAG", "3 commands")


# --------------------------------------------------------------------------- a minimal client


def resp(*args: object) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class ReplyError(RuntimeError):
    pass


def read_reply(stream: Any) -> Any:
    """One RESP2 reply from a buffered socket file; errors raise."""
    line = stream.readline()
    if not line:
        raise ConnectionError("server closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest
    if kind == b"-":
        raise ReplyError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else stream.read(n + 2)[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [read_reply(stream) for _ in range(n)]
    raise RuntimeError(f"unexpected reply line {line[:50]!r}")


def loop_commands(way: str, client: int, tx: bytes) -> list[bytes]:
    if way == "DAG":
        return [resp(*common.dag_loop_args(MODEL_KEY, tx, reply="VALUES"))]
    tx_key, score_key = f"tx:{client}", f"score:{client}"
    return [resp("AI.TENSORSET", tx_key, "FLOAT", 1, common.TX_FEATURES, "BLOB", tx),
            resp("AI.MODELEXECUTE", MODEL_KEY, "INPUTS", 2, tx_key, REF_KEY, "OUTPUTS", 1, score_key),
            resp("AI.TENSORGET", score_key, "VALUES")]


def score_of(way: str, replies: list[Any]) -> np.ndarray:
    if way == "DAG":
        assert replies[0][:2] == [b"OK", b"OK"], replies
        values = replies[0][2]
    else:
        assert replies[:2] == [b"OK", b"OK"], replies
        values = replies[2]
    return np.array([float(v) for v in values])


def client_task(task: tuple[str, int, int, bytes, list[float], float, float]) -> dict[str, Any]:
    """One client: wait for start_at, run loops until end_at; counts and latencies (ns)."""
    way, port, client, tx, expected, start_at, end_at = task
    commands = loop_commands(way, client, tx)
    latencies: list[int] = []
    loops = 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stream = sock.makefile("rb", buffering=65536)
        while time.monotonic() < start_at:
            time.sleep(0.001)
        while True:
            t0 = time.perf_counter_ns()
            replies = []
            for command in commands:
                sock.sendall(command)
                replies.append(read_reply(stream))
            t1 = time.perf_counter_ns()
            if loops == 0:
                score = score_of(way, replies)
                if not np.allclose(score, expected, rtol=1e-4, atol=1e-6):
                    raise AssertionError(f"{way}: score {score} != expected {expected}")
            loops += 1
            if len(latencies) < MAX_LATENCY_SAMPLES:
                latencies.append(t1 - t0)
            if time.monotonic() >= end_at:
                break
    return {"loops": loops, "latencies_ns": latencies}


# --------------------------------------------------------------------------- runs


@dataclass
class RunResult:
    way: str
    clients: int
    seconds: float
    loops: int
    loops_per_s: float
    p50_ms: float
    p99_ms: float


@dataclass
class Row:
    clients: int
    dag_loops_per_s: float
    commands_loops_per_s: float
    ratio: float
    dag_p50_ms: float
    commands_p50_ms: float
    dag_p99_ms: float
    commands_p99_ms: float
    ratio_per_repeat: list[float] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)


SERVER_COMMANDS = {"DAG": ("ai.dagexecute",), "3 commands": ("ai.tensorset", "ai.modelexecute", "ai.tensorget")}


def run(pool: Any, server: common.Server, way: str, clients: int, seconds: float,
        tx: bytes, expected: list[float]) -> RunResult:
    control = server.client()
    control.config_resetstat()
    start_at = time.monotonic() + 0.5  # every client connected and waiting by then
    end_at = start_at + seconds
    tasks = [(way, server.port, c, tx, expected, start_at, end_at) for c in range(clients)]
    results = list(pool.imap_unordered(client_task, tasks, chunksize=1))
    elapsed = max(time.monotonic() - start_at, 1e-3)
    loops = sum(r["loops"] for r in results)
    for command in SERVER_COMMANDS[way]:
        stats = common.command_stats(control, command)
        if stats["calls"] != loops or stats["failed_calls"] or stats["rejected_calls"]:
            raise RuntimeError(f"{way} c={clients}: {command} {stats}, clients counted {loops} loops")
    control.close()
    latencies = np.concatenate([np.asarray(r["latencies_ns"], dtype=np.int64) for r in results])
    return RunResult(way, clients, round(elapsed, 3), loops, loops / elapsed,
                     float(np.percentile(latencies, 50)) / 1e6, float(np.percentile(latencies, 99)) / 1e6)


def run_all(pool: Any, server: common.Server, tx: bytes, expected: list[float]) -> list[Row]:
    for way in WAYS:  # warm the server, the model's session and the clients
        run(pool, server, way, 1, WARMUP_S, tx, expected)
    samples: dict[int, dict[str, list[RunResult]]] = {c: {w: [] for w in WAYS} for c in CLIENTS}
    for repeat in range(REPEATS):
        for clients in CLIENTS:
            order = WAYS if repeat % 2 == 0 else WAYS[::-1]
            for way in order:
                samples[clients][way].append(run(pool, server, way, clients, RUN_S, tx, expected))
            dag, cmds = samples[clients]["DAG"][-1], samples[clients]["3 commands"][-1]
            print(f"  repeat {repeat + 1}/{REPEATS}  c={clients:<2}  DAG {dag.loops_per_s:>8.0f} loops/s"
                  f"  3 commands {cmds.loops_per_s:>8.0f} loops/s  ratio {dag.loops_per_s / cmds.loops_per_s:.2f}",
                  flush=True)
    rows = []
    for clients in CLIENTS:
        dag, cmds = samples[clients]["DAG"], samples[clients]["3 commands"]
        ratios = [d.loops_per_s / c.loops_per_s for d, c in zip(dag, cmds)]
        rows.append(Row(
            clients=clients,
            dag_loops_per_s=statistics.median(r.loops_per_s for r in dag),
            commands_loops_per_s=statistics.median(r.loops_per_s for r in cmds),
            ratio=statistics.median(ratios),
            dag_p50_ms=statistics.median(r.p50_ms for r in dag),
            commands_p50_ms=statistics.median(r.p50_ms for r in cmds),
            dag_p99_ms=statistics.median(r.p99_ms for r in dag),
            commands_p99_ms=statistics.median(r.p99_ms for r in cmds),
            ratio_per_repeat=[round(x, 3) for x in ratios],
            runs=[asdict(r) for r in dag + cmds],
        ))
    return rows


# --------------------------------------------------------------------------- reports


def table(rows: list[Row]) -> list[str]:
    lines = ["| clients | DAGEXECUTE loops/s | 3 commands loops/s | DAG / 3 commands | "
             "p50 ms DAG / 3 cmds | p99 ms DAG / 3 cmds |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.clients} | {r.dag_loops_per_s:,.0f} | {r.commands_loops_per_s:,.0f} | "
                     f"**{r.ratio:.2f}x** | {r.dag_p50_ms:.3f} / {r.commands_p50_ms:.3f} | "
                     f"{r.dag_p99_ms:.3f} / {r.commands_p99_ms:.3f} |")
    return lines


def draw_chart(plt: Any, rows: list[Row], env: dict[str, str]) -> Any:
    xs = range(len(rows))
    width = 0.38
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.bar([x - width / 2 for x in xs], [r.commands_loops_per_s for r in rows], width,
           label="TENSORSET + MODELEXECUTE + TENSORGET (3 round trips)")
    bars = ax.bar([x + width / 2 for x in xs], [r.dag_loops_per_s for r in rows], width,
                  label="one AI.DAGEXECUTE (1 round trip)")
    common.annotate_bars(ax, bars, [f"{r.ratio:.2f}x" for r in rows])
    ax.set_xticks(list(xs), [f"{r.clients} client{'s' if r.clients > 1 else ''}" for r in rows])
    ax.set_ylabel("fraud loops / second (median)")
    ax.set_title(f"Fraud loop: DAG vs three commands - redis {env['redis_version']}, nproc={env['nproc']}",
                 fontsize=10)
    top = max(max(r.dag_loops_per_s, r.commands_loops_per_s) for r in rows)
    ax.set_ylim(0, top * 1.3)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def main() -> int:
    global REPEATS, RUN_S
    args = common.parse_args(__doc__, quick="1 repeat of 1 s runs")
    if args.quick:
        REPEATS, RUN_S = 1, 1.0
    tx_array, ref_array = common.fraud_inputs()
    expected = common.model_builders.mlp_reference(common.model_builders.mlp_weights(), tx_array, ref_array)
    tx = tx_array.astype(np.float32).tobytes()
    blob = common.model_builders.torch_mlp()
    watch = common.Watch()
    ctx = mp.get_context("spawn")
    with common.running_server() as server, ctx.Pool(processes=max(CLIENTS)) as pool:
        client = server.client()
        assert common.ok(client.execute_command("AI.MODELSTORE", MODEL_KEY, "TORCH", "CPU", "BLOB", blob))
        assert common.ok(client.execute_command("AI.TENSORSET", REF_KEY, "FLOAT", 1, common.REF_FEATURES,
                                                "BLOB", ref_array.tobytes()))
        env = common.environment(client)
        print(f"redis-server {env['redis_version']} on 127.0.0.1:{server.port}, nproc={env['nproc']}",
              flush=True)
        rows = run_all(pool, server, tx, expected.reshape(-1).tolist())
        env.update(watch.fields())
        info = common.run_info(client, MODEL_KEY)
        if info.errors:
            raise RuntimeError(f"the model counted {info.errors} errors")
        client.close()
    lines = table(rows)
    common.show(lines)
    common.write_report(
        NAME, title="The fraud loop: one AI.DAGEXECUTE vs three commands", env=env,
        about=[
            "- loop: tx FLOAT 1x30 set, fraud MLP (TorchScript, tx + ref 1x256 -> 1x2) run, score "
            "read as VALUES; DAG: `AI.DAGEXECUTE LOAD 1 ref |> AI.TENSORSET tx ... |> "
            "AI.MODELEXECUTE fraud ... |> AI.TENSORGET score VALUES`; 3 commands: the same as "
            "AI.TENSORSET / AI.MODELEXECUTE / AI.TENSORGET on keys of the client's own",
            f"- clients: one process each, raw socket, no pipelining; {RUN_S:.0f} s per run, "
            f"{REPEATS} repeats with alternating order, medians shown; every run checked against "
            "commandstats",
        ],
        body=[
            *lines,
            "",
            "loops/s counts whole loops (the 3-command way sends three requests per loop); ratio = "
            "median of the per-repeat ratios DAG loops/s / 3-command loops/s: "
            + "; ".join(f"c={r.clients}: {r.ratio_per_repeat}" for r in rows),
            "",
        ],
        data={"run_s": RUN_S, "repeats": REPEATS, "rows": [asdict(r) for r in rows]},
        charts={"": lambda plt: draw_chart(plt, rows, env)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
