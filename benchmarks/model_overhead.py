"""Per-call overhead the module adds to AI.MODELEXECUTE of a small model.

What it measures
    The fraud-detection MLP of tests/model_builders.py (softmax(relu(cat(tx, ref) @ W1) @ W2),
    tx 1x30, ref 1x256 -> 1x2) is stored twice, as TorchScript (key ``fraud``) and as ONNX
    (key ``fraud_onnx``), and ``tx``/``ref`` are set with AI.TENSORSET. Then ONE loop of
    N_CALLS iterations (after WARMUP_CALLS) times, with time.perf_counter_ns, one of each:

    * ``PING`` round trip (redis-py, one connection, no pipelining)
    * ``AI.MODELEXECUTE fraud INPUTS 2 tx ref OUTPUTS 1 score`` round trip, same connection
    * the raw TorchScript call in this process: ``torch.jit.load`` of the same bytes, called
      under ``torch.inference_mode()`` on torch tensors
    * the same two for ONNX: MODELEXECUTE of ``fraud_onnx``, and
      ``onnxruntime.InferenceSession.run`` on numpy arrays

    The five steps alternate inside each iteration (their order rotates every iteration),
    so CPU-frequency and idle-state drift on this 2-core machine hits all of them alike.

    added overhead = p50(MODELEXECUTE) - p50(PING) - p50(raw backend call)

    The loop runs twice: with the server's WORKER_SPIN_US (idle workers poll their queue
    before they sleep), then with WORKER_SPIN_US 0; the report's main tables are the first,
    and a table sets the two side by side with the worker threads' CPU per MODELEXECUTE.

    (PING carries the network round trip, redis-py and the main thread's command dispatch;
    raw carries the framework's own work.) The project's goal is <= 40 us, aim 15 us; RedisAI
    1.2.7 adds about 55-60 us on this machine.

    AI.INFO (reset after the warm-up) gives the time spent in the worker's Python call per run
    (adapter + backend, mean). The module's in-server time, p50(MODELEXECUTE) - p50(PING), is
    split into that worker time and the rest: queueing/thread hand-off, argument parsing,
    tensor views, writing the output key and the reply.

    Worker time per call, back to back (issue 15's goal: <= 2 us over the raw call). For each
    backend alone, WORKER_CALLS MODELEXECUTEs are sent in pipelines of PIPELINE_DEPTH, so the
    worker runs them one after another as the raw loop does. Per call it reports the worker
    thread's CPU time (INFO ai_cpu, everything the worker does: waking, the Python call, the
    output tensors, handing the job back) and AI.INFO's duration (the Python call alone),
    against the raw call's CPU time back to back in this process (time.thread_time_ns over
    WORKER_CALLS calls). Each pair is measured WORKER_ROUNDS times, alternating backends; the
    median round is reported, and the spread says how noisy the machine was.

How to run
    .venv/bin/python benchmarks/model_overhead.py [--quick]

    It starts its own redis-server on a free loopback port and stops it by PID. Results go to
    benchmarks/results/model_overhead.{md,json,png}. It takes well under a minute.
"""

from __future__ import annotations

import io
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import redis

import _bench_common as common

NAME = "model_overhead"
N_CALLS = 5000
WARMUP_CALLS = 500
HOT_CALLS = 3000
WORKER_CALLS = 5000
WORKER_ROUNDS = 5
PIPELINE_DEPTH = 50
WORKER_GOAL_US = 2.0
LOOP_TIME_LIMIT_S = 120.0
GOAL_US = 40.0
AIM_US = 15.0
REDISAI_127_US = 57.5  # ~55-60 us measured for RedisAI 1.2.7 on this machine
MODEL_KEYS = {"TORCH": "fraud", "ONNX": "fraud_onnx"}


@dataclass
class Split:
    """How one backend's MODELEXECUTE time divides up (microseconds)."""

    backend: str
    execute_p50: float
    ping_p50: float
    raw_p50: float
    overhead: float          # execute_p50 - ping_p50 - raw_p50
    in_server: float         # execute_p50 - ping_p50
    worker_mean: float       # AI.INFO duration / calls
    adapter: float           # worker_mean - raw mean: Python adapter cost around the framework
    rest: float              # in_server - worker_mean: hand-off, parsing, output key, reply
    worker_calls: int
    raw_hot_p50: float       # the raw call back to back (caches and branch predictors warm)


# --------------------------------------------------------------------------- callables


def torch_raw_call(blob: bytes) -> Callable[[], object]:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(io.BytesIO(blob), map_location="cpu")
    tx, ref = (torch.from_numpy(a) for a in common.fraud_inputs())
    inference_mode = torch.inference_mode

    def call() -> object:
        with inference_mode():
            return module(tx, ref)

    return call


def onnx_raw_call(blob: bytes) -> Callable[[], object]:
    import onnxruntime as ort

    options = ort.SessionOptions()  # the module's defaults when INTRA/INTER_OP_PARALLELISM=0
    options.log_severity_level = 3
    session = ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
    tx, ref = common.fraud_inputs()
    feeds = {"transaction": tx, "reference": ref}
    run = session.run

    def call() -> object:
        return run(None, feeds)

    return call


def execute_call(client: redis.Redis, model_key: str) -> Callable[[], object]:
    args = common.execute_args(model_key)
    execute = client.execute_command

    def call() -> object:
        reply = execute(*args)
        if reply != b"OK":
            raise RuntimeError(f"{' '.join(args)} replied {reply!r}")
        return reply

    return call


def ping_call(client: redis.Redis) -> Callable[[], object]:
    execute = client.execute_command

    def call() -> object:
        return execute("PING")

    return call


# --------------------------------------------------------------------------- measurement


def hot_loop(call: Callable[[], object], n: int) -> np.ndarray:
    """`call` back to back, n times after a short warm-up: its best-case cost."""
    clock = time.perf_counter_ns
    for _ in range(WARMUP_CALLS):
        call()
    out = np.zeros(n, dtype=np.int64)
    for i in range(n):
        t0 = clock()
        call()
        out[i] = clock() - t0
    return out


def splits(stats: dict[str, dict[str, float]], infos: dict[str, common.RunInfo],
           hot: dict[str, dict[str, float]]) -> list[Split]:
    rows = []
    ping = stats["PING"]["p50"]
    for backend in MODEL_KEYS:
        execute = stats[f"MODELEXECUTE {backend}"]["p50"]
        raw = stats[f"raw {backend}"]
        info = infos[backend]
        worker = info.duration_us / info.calls if info.calls else float("nan")
        rows.append(Split(backend=backend, execute_p50=execute, ping_p50=ping, raw_p50=raw["p50"],
                          overhead=execute - ping - raw["p50"], in_server=execute - ping,
                          worker_mean=worker, adapter=worker - raw["mean"],
                          rest=execute - ping - worker, worker_calls=info.calls,
                          raw_hot_p50=hot[backend]["p50"]))
    return rows


@dataclass
class WorkerCost:
    """One backend's back-to-back worker time per call against the raw call (microseconds)."""

    backend: str
    worker_cpu: float        # worker thread CPU (INFO ai_cpu) / calls, median round
    python_call: float       # AI.INFO duration / calls, median round
    raw_cpu: float           # raw call's thread CPU back to back / calls, median round
    over_raw: float          # worker_cpu - raw_cpu
    python_over_raw: float   # python_call - raw_cpu
    worker_cpu_rounds: list[float]
    raw_cpu_rounds: list[float]


def worker_thread_cpu_s(client: redis.Redis) -> float:
    """CPU seconds the device queues' worker threads have used (INFO ai_cpu)."""
    info = client.info("ai_cpu")
    return sum(float(v) for k, v in info.items()
               if "_bthread_" in k and k.endswith("_used_cpu_total"))


def pipelined_executes(client: redis.Redis, model_key: str, calls: int) -> None:
    args = common.execute_args(model_key)
    pipe = client.pipeline(transaction=False)
    for done in range(0, calls, PIPELINE_DEPTH):
        for _ in range(min(PIPELINE_DEPTH, calls - done)):
            pipe.execute_command(*args)
        replies = pipe.execute()
        if any(r != b"OK" for r in replies):
            raise RuntimeError(f"{' '.join(args)} replied {set(replies)!r}")


def raw_cpu_per_call_us(call: Callable[[], object], calls: int) -> float:
    clock = time.thread_time_ns
    t0 = clock()
    for _ in range(calls):
        call()
    return (clock() - t0) / calls / 1000.0


def worker_round(client: redis.Redis, model_key: str,
                 raw: Callable[[], object]) -> tuple[float, float, float]:
    """(worker CPU, Python call, raw CPU) per call, microseconds, for one round."""
    common.reset_run_info(client, model_key)
    cpu0 = worker_thread_cpu_s(client)
    pipelined_executes(client, model_key, WORKER_CALLS)
    cpu = worker_thread_cpu_s(client) - cpu0
    info = common.run_info(client, model_key)
    if info.calls != WORKER_CALLS or info.errors:
        raise RuntimeError(f"AI.INFO {model_key}: expected {WORKER_CALLS} clean calls, got {info}")
    return (cpu * 1e6 / WORKER_CALLS, info.duration_us / WORKER_CALLS,
            raw_cpu_per_call_us(raw, WORKER_CALLS))


def worker_costs(client: redis.Redis, raws: dict[str, Callable[[], object]]) -> list[WorkerCost]:
    for backend, key in MODEL_KEYS.items():  # warm-up: caches, allocator, branch predictors
        pipelined_executes(client, key, WARMUP_CALLS)
        raw_cpu_per_call_us(raws[backend], WARMUP_CALLS)
    rounds: dict[str, list[tuple[float, float, float]]] = {b: [] for b in MODEL_KEYS}
    for _ in range(WORKER_ROUNDS):
        for backend, key in MODEL_KEYS.items():
            rounds[backend].append(worker_round(client, key, raws[backend]))
    costs = []
    for backend, rows in rounds.items():
        worker = float(np.median([r[0] for r in rows]))
        python = float(np.median([r[1] for r in rows]))
        raw = float(np.median([r[2] for r in rows]))
        costs.append(WorkerCost(backend=backend, worker_cpu=worker, python_call=python,
                                raw_cpu=raw, over_raw=worker - raw, python_over_raw=python - raw,
                                worker_cpu_rounds=[round(r[0], 2) for r in rows],
                                raw_cpu_rounds=[round(r[2], 2) for r in rows]))
    return costs


# --------------------------------------------------------------------------- reports


def latency_table(stats: dict[str, dict[str, float]]) -> list[str]:
    lines = ["| measurement | p50 us | p90 us | p99 us | mean us | max us |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, s in stats.items():
        lines.append(f"| {name} | {s['p50']:.1f} | {s['p90']:.1f} | {s['p99']:.1f} | "
                     f"{s['mean']:.1f} | {s['max']:.0f} |")
    return lines


def overhead_table(rows: list[Split]) -> list[str]:
    lines = ["| backend | EXECUTE p50 | PING p50 | raw p50 | **overhead** | vs goal 40 | "
             "vs RedisAI 1.2.7 ~57.5 | worker mean (AI.INFO) | adapter (worker - raw mean) | "
             "rest (hand-off+parse+reply) | raw p50 back-to-back |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.backend} | {r.execute_p50:.1f} | {r.ping_p50:.1f} | {r.raw_p50:.1f} | "
                     f"**{r.overhead:.1f}** | {r.overhead / GOAL_US:.2f}x | "
                     f"{r.overhead / REDISAI_127_US:.2f}x | {r.worker_mean:.1f} | "
                     f"{r.adapter:.1f} | {r.rest:.1f} | {r.raw_hot_p50:.1f} |")
    return lines


def worker_table(costs: list[WorkerCost]) -> list[str]:
    lines = ["| backend | worker CPU / call | Python call (AI.INFO) | raw CPU / call | "
             f"**worker over raw** (goal <= {WORKER_GOAL_US:.0f}) | Python call over raw | "
             "worker CPU per round | raw CPU per round |",
             "|---|---:|---:|---:|---:|---:|---|---|"]
    for c in costs:
        lines.append(f"| {c.backend} | {c.worker_cpu:.2f} | {c.python_call:.2f} | "
                     f"{c.raw_cpu:.2f} | **{c.over_raw:.2f}** | {c.python_over_raw:.2f} | "
                     f"{' '.join(f'{x:.1f}' for x in c.worker_cpu_rounds)} | "
                     f"{' '.join(f'{x:.1f}' for x in c.raw_cpu_rounds)} |")
    return lines


def verdict(rows: list[Split]) -> str:
    parts = []
    for r in rows:
        state = ("aim met" if r.overhead <= AIM_US else "goal met" if r.overhead <= GOAL_US
                 else "goal NOT met")
        parts.append(f"{r.backend} {r.overhead:.1f} us ({state})")
    return f"added overhead (goal <= {GOAL_US:.0f} us, aim {AIM_US:.0f} us): " + "; ".join(parts)


def draw_chart(plt: Any, stats: dict[str, dict[str, float]], rows: list[Split],
               env: dict[str, str]) -> Any:
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [3, 2]})
    names = list(stats)
    xs = np.arange(len(names))
    width = 0.38
    for offset, key, label in ((-width / 2, "p50", "p50"), (width / 2, "p99", "p99")):
        bars = left.bar(xs + offset, [stats[n][key] for n in names], width, label=label)
        common.annotate_bars(left, bars, [f"{stats[n][key]:.0f}" for n in names], fontsize=8)
    left.set_xticks(xs, [n.replace(" ", "\n", 1) for n in names], fontsize=9)
    left.set_ylabel("microseconds")
    left.set_title(f"latency, N={stats['PING']['n']} each, interleaved", fontsize=10)
    left.legend()

    parts = [("PING p50", [r.ping_p50 for r in rows]),
             ("raw backend p50", [r.raw_p50 for r in rows]),
             ("added overhead", [r.overhead for r in rows])]
    bottoms = np.zeros(len(rows))
    for label, values in parts:
        right.bar([r.backend for r in rows], values, 0.5, bottom=bottoms, label=label)
        for i, v in enumerate(values):
            right.annotate(f"{v:.1f}", (i, bottoms[i] + v / 2), ha="center", va="center",
                           fontsize=9)
        bottoms += np.array(values)
    right.set_ylabel("microseconds (p50)")
    right.set_title(f"MODELEXECUTE p50 = PING + raw + overhead (goal <= {GOAL_US:.0f} us)",
                    fontsize=10)
    right.legend(fontsize=8)
    fig.suptitle(f"fraud MLP MODELEXECUTE overhead — redis {env['redis_version']}, "
                 f"nproc={env['nproc']}", fontsize=11)
    return fig


# --------------------------------------------------------------------------- main


@dataclass
class Loop:
    """One interleaved loop's figures."""

    stats: dict[str, dict[str, float]]
    infos: dict[str, common.RunInfo]
    n: int
    worker_cpu_us: float  # worker threads' CPU per MODELEXECUTE over the loop


Measured = tuple[dict[int, Loop], int, dict[str, dict[str, float]], dict[str, str],
                 dict[int, list[WorkerCost]]]


def measure() -> Measured:
    with common.running_server() as server:
        client = server.client()
        blobs = common.store_fraud_models(client, MODEL_KEYS)
        env = common.environment(client)
        print(f"redis-server {env['redis_version']} on 127.0.0.1:{server.port}, "
              f"nproc={env['nproc']}, module {env['module']}", flush=True)
        steps: dict[str, Callable[[], object]] = {
            "PING": ping_call(client),
            "MODELEXECUTE TORCH": execute_call(client, MODEL_KEYS["TORCH"]),
            "raw TORCH": torch_raw_call(blobs["TORCH"]),
            "MODELEXECUTE ONNX": execute_call(client, MODEL_KEYS["ONNX"]),
            "raw ONNX": onnx_raw_call(blobs["ONNX"]),
        }

        spin_us = int(client.execute_command("AI.CONFIG", "GET", "WORKER_SPIN_US"))
        loops = {}
        for spin in (spin_us, 0):  # as configured, then with workers that sleep at once
            client.execute_command("AI.CONFIG", "WORKER_SPIN_US", spin)
            loops[spin] = interleaved_loop(client, steps)
        hot = {b: common.percentiles_us(hot_loop(steps[f"raw {b}"], HOT_CALLS)) for b in MODEL_KEYS}
        raws = {b: steps[f"raw {b}"] for b in MODEL_KEYS}
        # With WORKER_SPIN_US 0 the worker's CPU is its work and wake-ups; as configured it
        # also holds its polling between two pipelines, but the calls find it awake.
        costs = {0: worker_costs(client, raws)}
        client.execute_command("AI.CONFIG", "WORKER_SPIN_US", spin_us)
        costs[spin_us] = worker_costs(client, raws)
        client.close()
    return loops, spin_us, hot, env, costs


def interleaved_loop(client: redis.Redis, steps: dict[str, Callable[[], object]]) -> Loop:
    """The interleaved loop once: percentiles, AI.INFO per backend, and the worker threads'
    CPU per MODELEXECUTE over the whole loop (idle time and warm-up included)."""

    def reset() -> None:
        for key in MODEL_KEYS.values():
            common.reset_run_info(client, key)

    cpu0 = worker_thread_cpu_s(client)
    samples = common.interleaved(steps, N_CALLS, WARMUP_CALLS, reset, LOOP_TIME_LIMIT_S)
    worker_cpu = worker_thread_cpu_s(client) - cpu0
    infos = {b: common.run_info(client, k) for b, k in MODEL_KEYS.items()}
    n = len(samples["PING"])
    for backend, info in infos.items():
        if info.calls != n or info.errors:
            raise RuntimeError(f"AI.INFO {MODEL_KEYS[backend]}: expected {n} clean calls, "
                               f"got {info}")
    executes = (n + WARMUP_CALLS) * len(MODEL_KEYS)
    return Loop({k: common.percentiles_us(v) for k, v in samples.items()}, infos, n,
                worker_cpu * 1e6 / executes)


def polling_table(loops: dict[int, Loop], hot: dict[str, dict[str, float]]) -> list[str]:
    lines = ["| WORKER_SPIN_US | backend | EXECUTE p50 - PING p50 | worker mean (AI.INFO) | "
             "rest | PING p50 | worker CPU per EXECUTE, idle included |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for spin, loop in loops.items():
        for r in splits(loop.stats, loop.infos, hot):
            lines.append(f"| {spin} | {r.backend} | {r.in_server:.1f} | {r.worker_mean:.1f} | "
                         f"{r.rest:.1f} | {r.ping_p50:.1f} | {loop.worker_cpu_us:.0f} |")
    return lines


def main() -> int:
    global N_CALLS, WARMUP_CALLS, HOT_CALLS
    args = common.parse_args(__doc__, quick="500 iterations")
    if args.quick:
        N_CALLS, WARMUP_CALLS, HOT_CALLS = 500, 100, 300
    watch = common.Watch()
    loops, spin_us, hot, env, costs = measure()
    env.update(watch.fields())
    stats, infos, n = loops[spin_us].stats, loops[spin_us].infos, loops[spin_us].n
    rows = splits(stats, infos, hot)
    lat = latency_table(stats)
    ovh = overhead_table(rows)
    wrk = [line for spin, c in costs.items() for line in (f"WORKER_SPIN_US {spin}:", "", *worker_table(c), "")]
    polling = polling_table(loops, hot)
    common.show(lat, "", ovh, verdict(rows), "", polling, "", wrk)
    common.write_report(
        NAME, title="AI.MODELEXECUTE overhead (fraud MLP, TorchScript and ONNX)", env=env,
        about=[
            f"- one redis-py connection, no pipelining; {n} timed iterations after {WARMUP_CALLS} "
            "warm-up ones; each iteration runs PING, both MODELEXECUTEs and both raw calls, in a "
            "rotating order",
            "- raw = the framework called in the benchmark process (torch.jit.load + "
            "inference_mode on torch tensors; onnxruntime InferenceSession.run on numpy arrays)",
        ],
        body=[
            "## Latency (microseconds)",
            "",
            *lat,
            "",
            "## Split (microseconds)",
            "",
            *ovh,
            "",
            "overhead = p50(MODELEXECUTE) - p50(PING) - p50(raw); worker mean = AI.INFO duration / "
            "calls (the worker's Python call: adapter + framework); rest = p50(MODELEXECUTE) - "
            "p50(PING) - worker mean. raw p50 back-to-back: the raw call alone in a tight loop "
            f"({HOT_CALLS} calls) after the interleaved loop, for reference: the interleaved raw "
            "call is slower because the server's work between calls evicts caches, as it does "
            "for the server's worker.",
            "",
            verdict(rows),
            "",
            "## Polling workers (WORKER_SPIN_US)",
            "",
            f"The tables above are the server as configured (WORKER_SPIN_US {spin_us}: a worker "
            "whose queue runs dry polls it that long before it sleeps). The same loop again "
            "right after with WORKER_SPIN_US 0, workers sleeping as soon as the queue is empty:",
            "",
            *polling,
            "",
            "worker CPU per EXECUTE = the worker threads' CPU over the whole loop (warm-up and "
            "the time between requests included) / EXECUTEs: what polling costs.",
            "",
            "## Worker time per call, back to back (microseconds)",
            "",
            *wrk,
            "",
            f"{WORKER_CALLS} MODELEXECUTEs of one backend in pipelines of {PIPELINE_DEPTH}, then "
            f"{WORKER_CALLS} raw calls back to back in this process, {WORKER_ROUNDS} rounds "
            "alternating backends, first with WORKER_SPIN_US 0, then as configured (where the "
            "worker's CPU also holds its polling between two pipelines); median round shown. worker CPU = the worker thread's CPU time "
            "(INFO ai_cpu) / calls: waking, the Python call, the output tensors, handing the job "
            "back. Python call = AI.INFO duration / calls. raw CPU = the raw call's thread CPU "
            "time / calls.",
            "",
        ],
        data={"n_calls": n, "warmup_calls": WARMUP_CALLS, "goal_us": GOAL_US, "aim_us": AIM_US,
              "redisai_1_2_7_us": REDISAI_127_US, "latency_us": stats,
              "raw_back_to_back_us": hot, "ai_info": {b: asdict(i) for b, i in infos.items()},
              "split_us": [asdict(r) for r in rows], "worker_spin_us": spin_us,
              "polling": {spin: {"latency_us": loop.stats, "worker_cpu_us_per_execute": loop.worker_cpu_us,
                                 "split_us": [asdict(r) for r in splits(loop.stats, loop.infos, hot)]}
                          for spin, loop in loops.items()},
              "worker_per_call_us": {spin: [asdict(x) for x in c] for spin, c in costs.items()}},
        charts={"": lambda plt: draw_chart(plt, stats, rows, env)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
