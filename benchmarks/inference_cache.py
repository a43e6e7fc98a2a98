"""The inference result cache: throughput by repeat rate, and a hit against AI.TENSORGET.

What it measures
    A TorchScript MLP sized (calibrated at start, from AI.INFO's worker time) to take about
    4 ms per call, input [1, 256] float, output [1, 2]; 16 clients. Two parts:

    1. Streams of requests whose repeat rate is 0 %, 50 %, 90 % and 100 %: a request repeats
       (with that probability) one of 32 hot inputs seen before, else it sends an input never
       seen. Three ways to serve them, each for a fixed time per rate:

       * ``cached``: the model stored with ``CACHE``; a request is one round trip,
         ``AI.TENSORSET in BLOB`` + ``AI.MODELEXECUTE`` + ``AI.TENSORGET out BLOB`` pipelined;
       * ``uncached``: the same model without CACHE, the same round trip;
       * ``external``: what users build today in front of a model server (Triton + Redis does
         the same): ``GET result:<sha1 of input>``; on a miss the round trip above and then
         ``SET result:<sha1> <output>``;
       * ``cached_dag``: the cached model, the same work as one ``AI.DAGEXECUTE`` (TENSORSET,
         MODELEXECUTE, TENSORGET ops; nothing written to the keyspace).

       The load generator is Python: 4 processes x 4 threads (16 connections), on the same
       machine as the server, so it takes CPU the server could use; it limits the 100 % rate.
    2. At 100 % hits, with redis-benchmark (C, 16 clients, -P 1): ``AI.MODELEXECUTE`` of the
       cached model on one input (every request a hit) against ``AI.TENSORGET out BLOB`` of its
       output (the ceiling of a hit) and against the uncached model.

    Goals (issue 10): at 100 % hits >= 0.8x the TENSORGET rate; at 50 % repeats >= 1.9x the
    uncached throughput; p99 of a hit < 0.5 ms under the 16-client load.

How to run
    .venv/bin/python benchmarks/inference_cache.py [--quick]

    It starts its own redis-server on a free loopback port and stops it by PID. Results go to
    benchmarks/results/inference_cache.{md,json,png}. About 4 minutes (--quick: about 1).
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing as mp
import statistics
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import redis

import _bench_common as common

NAME = "inference_cache"
CLIENTS = 16
PROCESSES = 4  # x CLIENTS // PROCESSES threads each
RATES = (0, 50, 90, 100)
MODES = ("cached", "uncached", "external", "cached_dag")
HOT_INPUTS = 32
WIDTH, ROWS = 256, 128  # the MLP's input width; rows it expands the input to (its work)
TARGET_MS = 4.0
SECONDS_PER_CELL = 10.0
BENCH_REQUESTS = {"hit": 200_000, "tensorget": 200_000, "uncached": 1_500}
GOALS = {"hit_over_tensorget": 0.8, "cached_over_uncached_at_50": 1.9, "hit_p99_ms": 0.5}


# --------------------------------------------------------------------------- the model


def busy_mlp(depth: int) -> bytes:
    """forward(x [1, WIDTH]) -> softmax over 2 classes, after `depth` tanh(Linear) layers run
    on the input repeated ROWS times: the work grows with depth, the output stays [1, 2]."""
    import torch

    torch.manual_seed(0)

    class Busy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = torch.nn.ModuleList(torch.nn.Linear(WIDTH, WIDTH) for _ in range(depth))
            self.out = torch.nn.Linear(WIDTH, 2)
            self.rows, self.width = ROWS, WIDTH  # attributes: TorchScript cannot read globals

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = x.expand(self.rows, self.width)
            for layer in self.layers:
                h = torch.tanh(layer(h))
            return torch.softmax(self.out(h.mean(dim=0, keepdim=True)), dim=1)

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(Busy().eval()), buffer)
    return buffer.getvalue()


def worker_ms_per_call(client: redis.Redis, key: str, runs: int) -> float:
    client.execute_command("AI.INFO", key, "RESETSTAT")
    for _ in range(runs):
        assert common.ok(client.execute_command("AI.MODELEXECUTE", key, "INPUTS", 1, "in",
                                                "OUTPUTS", 1, "out"))
    info = common.run_info(client, key)
    return info.duration_us / info.calls / 1000.0


def store_calibrated(client: redis.Redis) -> tuple[int, float]:
    """Stores the ~TARGET_MS model as `cached` (CACHE) and `uncached`; returns its depth and
    the worker time per call measured for it."""
    x = np.random.default_rng(0).standard_normal((1, WIDTH)).astype(np.float32)
    client.execute_command("AI.TENSORSET", "in", "FLOAT", 1, WIDTH, "BLOB", x.tobytes())
    depth = 8
    for _ in range(2):  # a probe, then a correction (a layer's time is not quite linear)
        assert common.ok(client.execute_command("AI.MODELSTORE", "probe", "TORCH", "CPU", "BLOB",
                                                busy_mlp(depth)))
        per_layer = worker_ms_per_call(client, "probe", 30) / depth
        depth = max(1, min(400, round(TARGET_MS / per_layer)))
    blob = busy_mlp(depth)
    client.delete("probe")
    for key, options in (("cached", ["CACHE"]), ("uncached", [])):
        assert common.ok(client.execute_command("AI.MODELSTORE", key, "TORCH", "CPU", *options, "BLOB", blob))
    return depth, worker_ms_per_call(client, "uncached", 20)


# --------------------------------------------------------------------------- part 1: streams


def request(r: redis.Redis, mode: str, client_id: int, x: bytes) -> bytes:
    """One request; returns the output's bytes."""
    inp, out = f"in:{client_id}", f"out:{client_id}"
    result_key = ""
    if mode == "external":
        result_key = "result:" + hashlib.sha1(x).hexdigest()
        cached = r.get(result_key)
        if cached is not None:
            return cached
    if mode == "cached_dag":  # the same work as one command: nothing written to the keyspace
        return r.execute_command("AI.DAGEXECUTE", "ROUTING", inp, "|>",
                                 "AI.TENSORSET", "x", "FLOAT", 1, WIDTH, "BLOB", x, "|>",
                                 "AI.MODELEXECUTE", "cached", "INPUTS", 1, "x", "OUTPUTS", 1, "y", "|>",
                                 "AI.TENSORGET", "y", "BLOB")[-1]
    pipe = r.pipeline(transaction=False)
    pipe.execute_command("AI.TENSORSET", inp, "FLOAT", 1, WIDTH, "BLOB", x)
    pipe.execute_command("AI.MODELEXECUTE", "cached" if mode == "cached" else "uncached",
                         "INPUTS", 1, inp, "OUTPUTS", 1, out)
    pipe.execute_command("AI.TENSORGET", out, "BLOB")
    output = pipe.execute()[-1]
    if mode == "external":
        r.set(result_key, output)
    return output


def hot_inputs() -> list[bytes]:
    rng = np.random.default_rng(1)
    return [rng.standard_normal((1, WIDTH)).astype(np.float32).tobytes() for _ in range(HOT_INPUTS)]


def client_thread(port: int, mode: str, rate: int, client_id: int, seconds: float,
                  out: list[tuple[int, list[float]]]) -> None:
    r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=60)
    rng = np.random.default_rng(1000 + client_id)
    hot = hot_inputs()
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if rng.random() * 100 < rate:
            x = hot[int(rng.integers(HOT_INPUTS))]
        else:
            x = rng.standard_normal((1, WIDTH)).astype(np.float32).tobytes()  # never seen
        t0 = time.perf_counter()
        request(r, mode, client_id, x)
        latencies.append(time.perf_counter() - t0)
    r.close()
    out.append((len(latencies), latencies))


def client_process(port: int, mode: str, rate: int, first_id: int, threads: int, seconds: float,
                   queue: Any) -> None:
    results: list[tuple[int, list[float]]] = []
    workers = [threading.Thread(target=client_thread,
                                args=(port, mode, rate, first_id + i, seconds, results))
               for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    queue.put([lat for _, lats in results for lat in lats])


@dataclass
class Cell:
    mode: str
    rate: int
    rps: float
    p50_ms: float
    p99_ms: float
    model_calls: int
    cache_hits: int


def warm(client: redis.Redis, mode: str) -> None:
    """Every mode starts with the hot inputs seen once (cached: in the cache; external: as
    result keys) and nothing else."""
    client.execute_command("AI.CONFIG", "CACHE_FLUSH")
    for key in client.scan_iter("result:*", count=1000):
        client.delete(key)
    for x in hot_inputs():
        request(client, mode, 0, x)


def run_cell(client: redis.Redis, port: int, mode: str, rate: int, seconds: float) -> Cell:
    warm(client, mode)
    model = "uncached" if mode in ("uncached", "external") else "cached"
    client.execute_command("AI.INFO", model, "RESETSTAT")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    per = CLIENTS // PROCESSES
    procs = [ctx.Process(target=client_process, args=(port, mode, rate, 1 + p * per, per, seconds, queue))
             for p in range(PROCESSES)]
    for p in procs:
        p.start()
    latencies = [lat for _ in procs for lat in queue.get(timeout=seconds + 120)]
    for p in procs:
        p.join(timeout=30)
    info = client.execute_command("AI.INFO", model)
    fields = dict(zip(info[::2], info[1::2]))
    ms = np.asarray(latencies) * 1000.0
    return Cell(mode, rate, rps=len(latencies) / seconds, p50_ms=float(np.percentile(ms, 50)),
                p99_ms=float(np.percentile(ms, 99)), model_calls=int(fields[b"calls"]),
                cache_hits=int(fields.get(b"cache_hits", 0)))


# --------------------------------------------------------------------------- part 2: ceiling


def run_ceiling(client: redis.Redis, port: int, requests: dict[str, int]) -> dict[str, dict[str, float]]:
    execute = ("AI.MODELEXECUTE", "{m}", "INPUTS", "1", "in", "OUTPUTS", "1", "out")
    commands = {
        "hit": tuple(a.replace("{m}", "cached") for a in execute),
        "tensorget": ("AI.TENSORGET", "out", "BLOB"),
        "uncached": tuple(a.replace("{m}", "uncached") for a in execute),
    }
    client.execute_command(*commands["hit"])  # the one input is cached from here on
    out: dict[str, dict[str, float]] = {}
    for label, command in commands.items():
        hits_before = common.run_info(client, "cached")
        sample = common.checked_benchmark(client, port, CLIENTS, requests[label], command, timeout_s=300)
        out[label] = asdict(sample)
        if label == "hit":  # every request was a hit: the model never ran
            after = common.run_info(client, "cached")
            if after.calls != hits_before.calls:
                raise RuntimeError(f"hit run: the cached model ran ({hits_before} -> {after})")
        print(f"  {label:9} {sample.rps:>10,.0f} req/s  p50 {sample.p50_ms:.3f} ms  "
              f"p99 {sample.p99_ms:.3f} ms", flush=True)
    return out


# --------------------------------------------------------------------------- report


def stream_table(cells: list[Cell]) -> list[str]:
    by = {(c.mode, c.rate): c for c in cells}
    lines = ["| repeat rate | cached req/s | uncached req/s | external req/s | cached DAG req/s | "
             "cached / uncached | cached / external | p50 ms cached / uncached / external / DAG | "
             "p99 ms cached / uncached / external / DAG | model runs cached / uncached |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for rate in RATES:
        c, u, e, d = (by[(m, rate)] for m in MODES)
        lines.append(
            f"| {rate} % | {c.rps:,.0f} | {u.rps:,.0f} | {e.rps:,.0f} | {d.rps:,.0f} | "
            f"**{c.rps / u.rps:.2f}x** | {c.rps / e.rps:.2f}x | "
            f"{c.p50_ms:.2f} / {u.p50_ms:.2f} / {e.p50_ms:.2f} / {d.p50_ms:.2f} | "
            f"{c.p99_ms:.2f} / {u.p99_ms:.2f} / {e.p99_ms:.2f} / {d.p99_ms:.2f} | "
            f"{c.model_calls:,} / {u.model_calls:,} |")
    return lines


def ceiling_table(ceiling: dict[str, dict[str, float]]) -> list[str]:
    lines = ["| command (redis-benchmark, 16 clients) | req/s | p50 ms | p99 ms | vs TENSORGET |",
             "|---|---:|---:|---:|---:|"]
    names = {"hit": "AI.MODELEXECUTE, cached, every request a hit", "tensorget": "AI.TENSORGET out BLOB",
             "uncached": "AI.MODELEXECUTE, uncached"}
    for label, s in ceiling.items():
        lines.append(f"| {names[label]} | {s['rps']:,.0f} | {s['p50_ms']:.3f} | {s['p99_ms']:.3f} | "
                     f"{s['rps'] / ceiling['tensorget']['rps']:.3f} |")
    return lines


def verdict(cells: list[Cell], ceiling: dict[str, dict[str, float]]) -> str:
    by = {(c.mode, c.rate): c for c in cells}
    over_tensorget = ceiling["hit"]["rps"] / ceiling["tensorget"]["rps"]
    at_50 = by[("cached", 50)].rps / by[("uncached", 50)].rps
    p99 = ceiling["hit"]["p99_ms"]
    checks = [
        f"hit / TENSORGET {over_tensorget:.2f} (goal >= {GOALS['hit_over_tensorget']}: "
        f"{'met' if over_tensorget >= GOALS['hit_over_tensorget'] else 'NOT met'})",
        f"cached / uncached at 50 % {at_50:.2f} (goal >= {GOALS['cached_over_uncached_at_50']}: "
        f"{'met' if at_50 >= GOALS['cached_over_uncached_at_50'] else 'NOT met'})",
        f"hit p99 {p99:.3f} ms (goal < {GOALS['hit_p99_ms']} ms: "
        f"{'met' if p99 < GOALS['hit_p99_ms'] else 'NOT met'})",
        f"hit / uncached {ceiling['hit']['rps'] / ceiling['uncached']['rps']:.0f}x",
    ]
    return "; ".join(checks)


def draw_chart(plt: Any, cells: list[Cell], ceiling: dict[str, dict[str, float]], env: dict[str, str],
               model_ms: float) -> Any:
    by = {(c.mode, c.rate): c for c in cells}
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [2, 1]})
    xs = np.arange(len(RATES))
    width = 0.8 / len(MODES)
    for i, mode in enumerate(MODES):
        offset = (i - (len(MODES) - 1) / 2) * width
        bars = left.bar(xs + offset, [by[(mode, r)].rps for r in RATES], width, label=mode)
        common.annotate_bars(left, bars, [f"{by[(mode, r)].rps:,.0f}" for r in RATES], fontsize=7)
    left.set_xticks(xs, [f"{r} % repeats" for r in RATES])
    left.set_ylabel("requests / second (log)")
    left.set_yscale("log")
    left.set_title(f"{CLIENTS} Python clients, a {model_ms:.1f} ms model", fontsize=10)
    left.legend(fontsize=8)
    labels = list(ceiling)
    bars = right.bar(labels, [ceiling[k]["rps"] for k in labels], color=["tab:blue", "tab:gray", "tab:orange"])
    common.annotate_bars(right, bars, [f"{ceiling[k]['rps']:,.0f}\np99 {ceiling[k]['p99_ms']:.2f} ms"
                                       for k in labels], fontsize=7)
    right.set_yscale("log")
    right.set_title("100 % hits, redis-benchmark -c 16", fontsize=10)
    fig.suptitle(f"inference cache — redis {env['redis_version']}, nproc={env['nproc']}", fontsize=10)
    return fig


def main() -> int:
    global SECONDS_PER_CELL, BENCH_REQUESTS
    args = common.parse_args(__doc__, quick="1.5 s per stream, a tenth of the redis-benchmark requests")
    if args.quick:
        SECONDS_PER_CELL = 1.5
        BENCH_REQUESTS = {k: max(100, v // 10) for k, v in BENCH_REQUESTS.items()}
    watch = common.Watch()
    with common.running_server(("CACHE_MEMORY", str(256 * 1024 * 1024))) as server:
        client = server.client(timeout_s=120)
        env = common.environment(client)
        depth, model_ms = store_calibrated(client)
        print(f"model: {depth} layers of {ROWS}x{WIDTH}, {model_ms:.2f} ms per call (worker)", flush=True)
        cells = []
        for rate in RATES:
            for mode in MODES:
                cells.append(run_cell(client, server.port, mode, rate, SECONDS_PER_CELL))
                c = cells[-1]
                print(f"  {rate:>3} % {mode:9} {c.rps:>8,.0f} req/s  p50 {c.p50_ms:.2f} ms  "
                      f"p99 {c.p99_ms:.2f} ms  model runs {c.model_calls:,}", flush=True)
        ceiling = run_ceiling(client, server.port, BENCH_REQUESTS)
        cache_info = client.info("ai_cache")
        client.close()
    env.update(watch.fields())
    streams, top = stream_table(cells), ceiling_table(ceiling)
    common.show(streams, top, verdict(cells, ceiling))
    common.write_report(
        NAME, title="Inference result cache: repeat rates, and a hit against AI.TENSORGET", env=env,
        about=[
            f"- model: TorchScript, {depth} tanh(Linear {WIDTH}x{WIDTH}) layers over the [1, {WIDTH}] "
            f"input repeated {ROWS} times, {model_ms:.2f} ms per call on the worker (AI.INFO); "
            "THREADS_PER_QUEUE 1; CACHE_MEMORY 256 MB",
            f"- streams: {CLIENTS} clients ({PROCESSES} Python processes x {CLIENTS // PROCESSES} "
            f"threads) on this machine, {SECONDS_PER_CELL:g} s per cell; a repeat is one of "
            f"{HOT_INPUTS} hot inputs seen before, every other input is new",
            "- cached/uncached request: TENSORSET + MODELEXECUTE + TENSORGET in one pipelined round "
            "trip; external: GET result:<sha1>, on a miss that round trip and a SET; cached DAG: "
            "the same three as ops of one AI.DAGEXECUTE",
            "- 100 % hits: redis-benchmark -c 16 -P 1 on one input key; requests "
            + ", ".join(f"{k} {v:,}" for k, v in BENCH_REQUESTS.items()),
        ],
        body=[*streams, "", *top, "", verdict(cells, ceiling), "",
              "INFO ai_cache at the end: " + ", ".join(f"{k}={v}" for k, v in cache_info.items()), ""],
        data={"clients": CLIENTS, "processes": PROCESSES, "depth": depth, "model_ms": model_ms,
              "seconds_per_cell": SECONDS_PER_CELL, "bench_requests": BENCH_REQUESTS, "goals": GOALS,
              "streams": [asdict(c) for c in cells], "ceiling": ceiling, "ai_cache": cache_info,
              "median_cached_over_uncached": statistics.median(
                  c.rps / u.rps for c, u in zip(cells[0::4], cells[1::4]))},
        charts={"": lambda plt: draw_chart(plt, cells, ceiling, env, model_ms)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
