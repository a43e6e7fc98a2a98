"""Does the Redis main thread stay responsive while model workers are saturated?

What it measures
    A TorchScript model that does a chain of steps y = tanh(y @ w), y [1, 512], w [512, 512],
    with the step count calibrated inside each server (AI.INFO mean run time, no load) so that
    one run takes about TARGET_RUN_MS (1 ms). A vector-matrix product runs on the calling
    thread in torch (no OpenMP pool), so a run is one worker thread busy on one core for ~1 ms
    and its cost does not depend on how the pool's helper threads wait. Then, per server
    configuration:

    1. no load: one redis-py client sends PING every PING_INTERVAL_S for BASELINE_S seconds;
    2. load: ``redis-benchmark -c 32 -P 1`` in the background sends
       ``AI.MODELEXECUTE busy INPUTS 1 x OUTPUTS 1 y`` (32 clients keep the run queue full);
       after a short ramp the same PING client measures for LOAD_WINDOW_S seconds; then
       redis-benchmark is stopped by its PID.

    It reports PING p50/p99/max for both, and the MODELEXECUTE rate and mean worker time
    (AI.INFO) during the load window. Goal: PING p99 under load < 1 ms. It runs with
    THREADS_PER_QUEUE 1 (the default: one worker, one core busy) and THREADS_PER_QUEUE 2 (both
    cores of this 2-core machine busy with workers).

    Then big stores: one redis-py client stores a ~BIG_STORE_MB MB value while another PINGs
    every BIG_PING_INTERVAL_S; per round, in one server: SET of a new key, SET over it, AI.MODELSTORE
    (TorchScript of the same size) of a new key, AI.MODELSTORE over it. It reports, per kind, the
    median over BIG_ROUNDS rounds of each store's worst PING and p99, and MODELSTORE's stall as a
    ratio of SET's for the same bytes. Goal: MODELSTORE's worst PING <= 1.5x SET's.

How to run
    .venv/bin/python benchmarks/main_thread_health.py

    It starts its own redis-servers on free loopback ports and stops them (and redis-benchmark)
    by PID. Results go to benchmarks/results/main_thread_health.{md,json,png}. It takes about
    2 minutes.
"""

from __future__ import annotations

import functools
import io
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import redis

import _bench_common as common

NAME = "main_thread_health"
TARGET_RUN_MS = 1.0
ROWS, SIZE = 1, 512
LOAD_CLIENTS = 32
LOAD_REQUESTS = 200_000       # a bound; redis-benchmark is stopped after the window anyway
THREADS = (1, 2)
BASELINE_S = 5.0
RAMP_S = 1.0
LOAD_WINDOW_S = 10.0
PING_INTERVAL_S = 0.001
MAX_PINGS = 20_000
GOAL_P99_MS = 1.0
MODEL_KEY, IN_KEY, OUT_KEY = "busy", "x", "y"
BIG_STORE_MB = 190
BIG_ROUNDS = 5
BIG_PING_INTERVAL_S = 0.0005
BIG_GOAL_RATIO = 1.5
BIG_KINDS = ("SET new", "SET over", "MODELSTORE new", "MODELSTORE over")
FIRST_GUESS_STEPS = 75
CALIBRATION_ROUNDS = 4


@dataclass
class Window:
    """PING latency over one measuring window (milliseconds)."""

    pings: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float


@dataclass
class ConfigResult:
    """One server configuration: its calibrated model, PING without and with load."""

    threads_per_queue: int
    steps: int                   # model steps after calibration in this server
    run_ms_no_load: float        # AI.INFO mean run time at calibration
    idle: Window
    loaded: Window
    executes_per_s: float        # AI.INFO calls during the load window / window length
    slow_events: dict[str, dict[str, int]]  # server latency monitor (>= 1 ms), load window
    worker_ms_per_run: float     # AI.INFO duration / calls during the window
    benchmark_exit: int | None   # None: still running at the end of the window, then stopped


@dataclass
class BigStoreResult:
    """PING while one ~BIG_STORE_MB MB value is stored: per kind, medians over the rounds."""

    megabytes: float
    rounds: int
    worst_ping_ms: dict[str, float]   # median over rounds of each store's slowest PING
    p99_ping_ms: dict[str, float]     # median over rounds of each store's PING p99
    store_ms: dict[str, float]        # median time the store itself took
    all_worst_ping_ms: dict[str, list[float]]


# --------------------------------------------------------------------------- the model


def busy_model(steps: int) -> bytes:
    """TorchScript forward(x [ROWS, SIZE]) -> `steps` rounds of tanh(x @ w), w [SIZE, SIZE]."""
    import torch

    class Busy(torch.nn.Module):
        def __init__(self, n: int) -> None:
            super().__init__()
            self.steps = n
            g = torch.Generator().manual_seed(0)
            self.w = torch.nn.Parameter(torch.randn(SIZE, SIZE, generator=g) / SIZE ** 0.5,
                                        requires_grad=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = x
            for _ in range(self.steps):
                y = torch.tanh(torch.mm(y, self.w))
            return y

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(Busy(steps)), buffer)
    return buffer.getvalue()


def input_tensor() -> np.ndarray:
    return np.random.default_rng(2).standard_normal((ROWS, SIZE)).astype(np.float32)


def store_busy(client: redis.Redis, steps: int) -> float:
    """Store the model with `steps`; return its mean run time in the server (ms, AI.INFO)."""
    reply = client.execute_command("AI.MODELSTORE", MODEL_KEY, "TORCH", "CPU", "BLOB",
                                   busy_model(steps))
    assert common.ok(reply), f"AI.MODELSTORE: {reply!r}"
    args = ("AI.MODELEXECUTE", MODEL_KEY, "INPUTS", 1, IN_KEY, "OUTPUTS", 1, OUT_KEY)
    for _ in range(10):  # TorchScript's profiling executor optimises after the first runs
        assert common.ok(client.execute_command(*args))
    common.reset_run_info(client, MODEL_KEY)
    for _ in range(30):
        assert common.ok(client.execute_command(*args))
    info = common.run_info(client, MODEL_KEY)
    return info.duration_us / info.calls / 1000


def calibrated_model(client: redis.Redis, steps: int) -> tuple[int, float]:
    """Store the model, rescaling its step count until one run in the server (AI.INFO, no
    load) is within 15 % of TARGET_RUN_MS; at most CALIBRATION_ROUNDS stores."""
    assert common.ok(client.execute_command("AI.TENSORSET", IN_KEY, "FLOAT", ROWS, SIZE,
                                            "BLOB", input_tensor().tobytes()))
    run_ms = store_busy(client, steps)
    for _ in range(CALIBRATION_ROUNDS - 1):
        if abs(run_ms - TARGET_RUN_MS) <= 0.15 * TARGET_RUN_MS:
            break
        steps = max(1, round(steps * TARGET_RUN_MS / run_ms))
        run_ms = store_busy(client, steps)
    return steps, run_ms


# --------------------------------------------------------------------------- measurement


def ping_window(client: redis.Redis, seconds: float) -> Window:
    """PING every PING_INTERVAL_S for `seconds` (at most MAX_PINGS), latency of each."""
    clock = time.perf_counter_ns
    execute = client.execute_command
    samples = np.zeros(MAX_PINGS, dtype=np.int64)
    n = 0
    end = time.monotonic() + seconds
    while n < MAX_PINGS and time.monotonic() < end:
        t0 = clock()
        reply = execute("PING")
        samples[n] = clock() - t0
        if reply not in (b"PONG", True):
            raise RuntimeError(f"PING replied {reply!r}")
        n += 1
        time.sleep(PING_INTERVAL_S)
    ms = samples[:n] / 1e6
    return Window(pings=n, p50_ms=float(np.percentile(ms, 50)), p90_ms=float(np.percentile(ms, 90)),
                  p99_ms=float(np.percentile(ms, 99)), p999_ms=float(np.percentile(ms, 99.9)),
                  max_ms=float(ms.max()))


def latency_events(client: redis.Redis) -> dict[str, dict[str, int]]:
    """Redis's latency monitor since the last LATENCY RESET: per event, the number of seconds
    with a sample >= the threshold and the largest one (ms)."""
    events: dict[str, dict[str, int]] = {}
    for latest in client.execute_command("LATENCY", "LATEST"):
        name = latest[0].decode() if isinstance(latest[0], bytes) else str(latest[0])
        history = client.execute_command("LATENCY", "HISTORY", name)
        events[name] = {"seconds_with_samples": len(history), "max_ms": int(latest[3])}
    return events


def start_load(port: int) -> subprocess.Popen[bytes]:
    command = ("AI.MODELEXECUTE", MODEL_KEY, "INPUTS", "1", IN_KEY, "OUTPUTS", "1", OUT_KEY)
    argv = common.benchmark_argv(port, LOAD_CLIENTS, LOAD_REQUESTS, command)
    return common.track(subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL))


def run_config(threads: int, steps: int) -> tuple[ConfigResult, dict[str, str]]:
    with common.running_server(("THREADS_PER_QUEUE", str(threads))) as server:
        client = server.client()
        steps, run_ms = calibrated_model(client, steps)
        env = common.environment(client)
        print(f"THREADS_PER_QUEUE {threads}: redis-server {env['redis_version']} on 127.0.0.1:"
              f"{server.port}; busy model {steps} steps = {run_ms:.3f} ms per run in the server",
              flush=True)
        assert common.ok(client.config_set("latency-monitor-threshold", 1))
        idle = ping_window(client, BASELINE_S)
        print(f"  no load : {idle.pings} PINGs  p50 {idle.p50_ms:.3f}  p99 {idle.p99_ms:.3f}  "
              f"max {idle.max_ms:.3f} ms", flush=True)
        client.execute_command("LATENCY", "RESET")
        load = start_load(server.port)
        try:
            time.sleep(RAMP_S)
            before = common.run_info(client, MODEL_KEY)
            t0 = time.monotonic()
            loaded = ping_window(client, LOAD_WINDOW_S)
            elapsed = time.monotonic() - t0
            after = common.run_info(client, MODEL_KEY)
            exit_code = load.poll()
        finally:
            common.stop_pid(load)
        slow = latency_events(client)
        if after.errors != before.errors:
            raise RuntimeError(f"MODELEXECUTE errors under load: {before} -> {after}")
        calls = after.calls - before.calls
        rate = calls / elapsed
        busy_us = after.duration_us - before.duration_us
        worker_ms = busy_us / calls / 1000 if calls else float("nan")
        print(f"  32-client load: {loaded.pings} PINGs  p50 {loaded.p50_ms:.3f}  p99 "
              f"{loaded.p99_ms:.3f}  max {loaded.max_ms:.3f} ms; {rate:,.0f} MODELEXECUTE/s, "
              f"{worker_ms:.3f} ms per run", flush=True)
        if slow:
            print(f"  server latency monitor, events >= 1 ms during the load: {slow}")
        # The server must still answer promptly once the load is gone.
        assert client.ping()
        client.close()
    return ConfigResult(threads, steps, run_ms, idle, loaded, rate, slow, worker_ms,
                        exit_code), env


def heavy_model(megabytes: int, fill: float) -> bytes:
    """TorchScript forward(x) -> x + w[0], with w holding `megabytes` MB of parameters."""
    import torch

    class Heavy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.full((megabytes * 1024 * 1024 // 4,), fill),
                                        requires_grad=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.w[0]

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(Heavy()), buf)
    return buf.getvalue()


def pings_during(server: common.Server, store: Callable[[], object]) -> tuple[float, float, float]:
    """PING from a thread of its own while `store` runs: (store ms, PING p99 ms, PING max ms)."""
    samples: list[int] = []
    stop = threading.Event()

    def ping() -> None:
        client = server.client(timeout_s=120)
        while not stop.is_set():
            t0 = time.perf_counter_ns()
            client.ping()
            samples.append(time.perf_counter_ns() - t0)
            time.sleep(BIG_PING_INTERVAL_S)
        client.close()

    pinger = threading.Thread(target=ping)
    pinger.start()
    while len(samples) < 20:
        time.sleep(0.001)
    t0 = time.perf_counter()
    store()
    store_ms = (time.perf_counter() - t0) * 1000
    time.sleep(0.2)  # what the store leaves behind (frees, replies) is part of it
    stop.set()
    pinger.join()
    ms = np.array(samples) / 1e6
    return store_ms, float(np.percentile(ms, 99)), float(ms.max())


def run_big_stores() -> BigStoreResult:
    blobs = [heavy_model(BIG_STORE_MB, float(i)) for i in range(2)]
    megabytes = len(blobs[0]) / 2**20
    worst: dict[str, list[float]] = {k: [] for k in BIG_KINDS}
    p99: dict[str, list[float]] = {k: [] for k in BIG_KINDS}
    took: dict[str, list[float]] = {k: [] for k in BIG_KINDS}
    with common.running_server() as server:
        client = server.client(timeout_s=120)
        print(f"big stores: {megabytes:.0f} MB, SET vs AI.MODELSTORE, {BIG_ROUNDS} rounds", flush=True)
        for _ in range(BIG_ROUNDS):
            for kind in BIG_KINDS:
                blob = blobs[kind.endswith("over")]
                if kind.startswith("SET"):
                    store = functools.partial(client.set, "big:set", blob)
                else:
                    store = functools.partial(client.execute_command, "AI.MODELSTORE", "big:model",
                                              "TORCH", "CPU", "BLOB", blob)
                store_ms, ping_p99, ping_max = pings_during(server, store)
                worst[kind].append(ping_max)
                p99[kind].append(ping_p99)
                took[kind].append(store_ms)
            assert client.delete("big:set", "big:model") == 2
            time.sleep(0.5)
        client.close()
    median = lambda d: {k: float(np.median(v)) for k, v in d.items()}  # noqa: E731
    result = BigStoreResult(megabytes, BIG_ROUNDS, median(worst), median(p99), median(took), worst)
    for kind in BIG_KINDS:
        print(f"  {kind:16s} store {result.store_ms[kind]:7.0f} ms  PING p99 "
              f"{result.p99_ping_ms[kind]:6.2f}  worst {result.worst_ping_ms[kind]:6.2f} ms", flush=True)
    return result


# --------------------------------------------------------------------------- reports


def big_store_lines(big: BigStoreResult) -> list[str]:
    lines = ["| store of the same bytes | store ms | PING p99 ms | worst PING ms | worst / SET's |",
             "|---|---:|---:|---:|---:|"]
    for kind in BIG_KINDS:
        peer = "SET " + kind.split(" ")[1]
        ratio = big.worst_ping_ms[kind] / big.worst_ping_ms[peer]
        lines.append(f"| {kind} | {big.store_ms[kind]:.0f} | {big.p99_ping_ms[kind]:.2f} | "
                     f"{big.worst_ping_ms[kind]:.2f} | {ratio:.2f}x |")
    return lines


def big_store_verdict(big: BigStoreResult) -> str:
    parts = []
    for when in ("new", "over"):
        ratio = big.worst_ping_ms[f"MODELSTORE {when}"] / big.worst_ping_ms[f"SET {when}"]
        parts.append(f"{when} key {ratio:.2f}x ({'met' if ratio <= BIG_GOAL_RATIO else 'NOT met'})")
    return (f"goal: a {big.megabytes:.0f} MB MODELSTORE stalls PING at most {BIG_GOAL_RATIO}x as long "
            "as a SET of the same bytes: " + "; ".join(parts))



def table(results: list[ConfigResult]) -> list[str]:
    lines = ["| THREADS_PER_QUEUE | PING p50 ms idle / load | PING p99 ms idle / load | "
             "p99 load/idle | PING p99.9 ms load | PING max ms idle / load | "
             "MODELEXECUTE/s under load | worker ms/run |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(
            f"| {r.threads_per_queue} | {r.idle.p50_ms:.3f} / {r.loaded.p50_ms:.3f} | "
            f"{r.idle.p99_ms:.3f} / **{r.loaded.p99_ms:.3f}** | "
            f"{r.loaded.p99_ms / r.idle.p99_ms:.2f}x | {r.loaded.p999_ms:.3f} | "
            f"{r.idle.max_ms:.3f} / {r.loaded.max_ms:.3f} | {r.executes_per_s:,.0f} | "
            f"{r.worker_ms_per_run:.3f} |")
    return lines


def verdict(results: list[ConfigResult]) -> str:
    parts = [f"THREADS_PER_QUEUE {r.threads_per_queue}: {r.loaded.p99_ms:.3f} ms "
             f"({'met' if r.loaded.p99_ms < GOAL_P99_MS else 'NOT met'})" for r in results]
    return f"goal PING p99 under load < {GOAL_P99_MS:.0f} ms: " + "; ".join(parts)


def write_chart(results: list[ConfigResult], env: dict[str, str]) -> None:
    plt = common.pyplot()
    if plt is None:
        return
    keys = [("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9")]
    fig, ax = plt.subplots(figsize=(9, 5))
    groups = [(f"TPQ {r.threads_per_queue}\nno load", r.idle) for r in results[:1]]
    groups += [(f"TPQ {r.threads_per_queue}\n{LOAD_CLIENTS}-client load", r.loaded)
               for r in results]
    xs = np.arange(len(groups))
    width = 0.8 / len(keys)
    for i, (attr, label) in enumerate(keys):
        heights = [getattr(w, attr) for _, w in groups]
        bars = ax.bar(xs + (i - 1) * width, heights, width, label=label)
        for bar in bars:
            ax.annotate(f"{bar.get_height():.2f}", (bar.get_x() + bar.get_width() / 2,
                                                    bar.get_height()),
                        ha="center", va="bottom", fontsize=8)
    ax.axhline(GOAL_P99_MS, color="gray", linestyle="--", linewidth=1, label="goal p99 < 1 ms")
    ax.set_xticks(xs, [g for g, _ in groups])
    ax.set_ylabel("PING round trip, ms")
    ax.set_title(f"PING latency while workers run a ~{TARGET_RUN_MS:.0f} ms model — redis "
                 f"{env['redis_version']}, nproc={env['nproc']}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(common.RESULTS_DIR / f"{NAME}.png", dpi=110)
    plt.close(fig)


def main() -> int:
    quiet = common.wait_for_quiet()
    meter = common.CpuMeter()
    steps = FIRST_GUESS_STEPS
    results: list[ConfigResult] = []
    env: dict[str, str] = {}
    for threads in THREADS:
        result, env = run_config(threads, steps)
        steps = result.steps
        results.append(result)
    big = run_big_stores()
    env.update(common.noise_fields(quiet, meter))
    lines = table(results)
    print()
    print("\n".join(lines))
    print(verdict(results))
    print("\n".join(big_store_lines(big)))
    print(big_store_verdict(big))
    md = [
        "# Main-thread health under saturated model workers",
        "",
        *common.header_lines(env),
        f"- model: TorchScript, steps of y = tanh(y @ w), y {ROWS}x{SIZE}, w {SIZE}x{SIZE}, "
        "calibrated per server (AI.INFO, no load): "
        + "; ".join(f"TPQ {r.threads_per_queue}: {r.steps} steps = {r.run_ms_no_load:.3f} ms"
                    for r in results),
        f"- load: `redis-benchmark -c {LOAD_CLIENTS} -P 1` of `AI.MODELEXECUTE {MODEL_KEY} "
        f"INPUTS 1 {IN_KEY} OUTPUTS 1 {OUT_KEY}`, {RAMP_S:.0f} s ramp, {LOAD_WINDOW_S:.0f} s "
        "window, then stopped",
        f"- PING: one redis-py client, one PING every {PING_INTERVAL_S * 1000:.0f} ms "
        f"({BASELINE_S:.0f} s without load, {LOAD_WINDOW_S:.0f} s with)",
        "- produced by `.venv/bin/python benchmarks/main_thread_health.py`",
        "",
        *lines,
        "",
        "server latency monitor during the load (`LATENCY LATEST`/`HISTORY`, threshold 1 ms; "
        "seconds with a sample and max ms per event): "
        + "; ".join(f"TPQ {r.threads_per_queue}: {r.slow_events or 'no event'}" for r in results),
        "",
        verdict(results),
        "",
        f"## Big stores ({big.megabytes:.0f} MB, medians of {big.rounds} rounds, one PING every "
        f"{BIG_PING_INTERVAL_S * 1000:.1f} ms from another client)",
        "",
        *big_store_lines(big),
        "",
        big_store_verdict(big),
        "",
        "Worst PING of every round (ms): "
        + "; ".join(f"{k}: {', '.join(f'{v:.1f}' for v in vs)}" for k, vs in big.all_worst_ping_ms.items()),
        "",
    ]
    common.write_markdown(NAME, md)
    common.write_json(NAME, {"environment": env, "rows": ROWS, "size": SIZE,
                             "target_run_ms": TARGET_RUN_MS, "load_clients": LOAD_CLIENTS,
                             "ping_interval_s": PING_INTERVAL_S, "goal_p99_ms": GOAL_P99_MS,
                             "results": [asdict(r) for r in results],
                             "big_stores": asdict(big)})
    write_chart(results, env)
    print(f"wrote {common.RESULTS_DIR}/{NAME}.{{md,json,png}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
