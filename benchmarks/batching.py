"""Auto-batching: samples/s of a ~5M-parameter MLP with BATCHSIZE 0 and BATCHSIZE 32, 32 clients.

What it measures
    One TorchScript MLP, 512 -> 2048 -> 1536 -> 512 -> 16 with ReLUs (4,993,040 parameters,
    20 MB of float32 weights), stored on one server with the default THREADS_PER_QUEUE 1 as
    ``mlp`` (no BATCHSIZE: every request is a run of its own) and as ``mlp_b32`` (BATCHSIZE 32:
    the worker joins the queued requests, up to 32 rows, into one run), plus, for information,
    ``mlp_b32_min24`` (BATCHSIZE 32, MINBATCHSIZE 24, MINBATCHTIMEOUT 5).
    ``redis-benchmark -c 32 -P 1 -r 32`` sends
    ``AI.MODELEXECUTE <model> INPUTS 1 x:__rand_int__ OUTPUTS 1 y:__rand_int__``: each request
    reads one of 32 different 1x512 inputs and writes one of 32 output keys, so one request is
    one sample. The variants run back to back, the order rotating, REPEATS times; each run
    is sized to about RUN_SECONDS. Medians are reported; a ratio is the median of the
    per-repeat ratios to BATCHSIZE 0.

    Before the load, every key's answers are checked against the same TorchScript run in this
    process. After each run the server must show exactly the requests sent and none failed
    (commandstats), and AI.INFO must count every request with no errors. AI.INFO's duration is
    charged per request with the whole batch's time (as in RedisAI), so its sum over the
    wall-clock time of the run is about mean batch size x worker utilisation; for the
    unbatched key it can be at most 1.

    Goal: BATCHSIZE 32 / BATCHSIZE 0 samples/s >= 3.

How to run
    .venv/bin/python benchmarks/batching.py [--quick]

    It starts its own redis-server on a free loopback port and stops it by PID. Results go to
    benchmarks/results/batching.{md,json,png}. It takes about 1 minute.
"""

from __future__ import annotations

import io
import statistics
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import redis

import _bench_common as common

NAME = "batching"
CLIENTS = 32
KEYSPACE = 32
REPEATS = 3
RUN_SECONDS = 4.0
MAX_REQUESTS = 200_000
GOAL_RATIO = 3.0
QUIET = common.QuietRetry(max_tries=3, budget=6)
LAYERS = (512, 2048, 1536, 512, 16)
VARIANTS = {
    "BATCHSIZE 0": ("mlp", ()),
    "BATCHSIZE 32": ("mlp_b32", ("BATCHSIZE", "32")),
    # Informational: with closed-loop clients a batch's own clients cannot be in the next one,
    # so plain BATCHSIZE 32 settles near 32 / 2 rows; MINBATCHSIZE makes fuller batches.
    "BATCHSIZE 32, MINBATCHSIZE 24, MINBATCHTIMEOUT 5": (
        "mlp_b32_min24", ("BATCHSIZE", "32", "MINBATCHSIZE", "24", "MINBATCHTIMEOUT", "5")),
}
GOAL_VARIANT = "BATCHSIZE 32"


def mlp_blob() -> tuple[bytes, int]:
    """The TorchScript MLP (fixed seed) and its parameter count."""
    import torch

    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(LAYERS, LAYERS[1:])):
        layers.append(torch.nn.Linear(n_in, n_out))
        if i < len(LAYERS) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(model), buffer)
    return buffer.getvalue(), sum(p.numel() for p in model.parameters())


def input_key(i: int) -> str:
    return f"x:{i:012d}"  # what redis-benchmark puts for __rand_int__


def command(model_key: str) -> tuple[str, ...]:
    return ("AI.MODELEXECUTE", model_key, "INPUTS", "1", "x:__rand_int__",
            "OUTPUTS", "1", "y:__rand_int__")


@dataclass
class Variant:
    label: str
    model_key: str
    samples_per_s: float
    p50_ms: float
    p99_ms: float
    duration_over_wall: float        # AI.INFO duration sum / wall time, median over runs
    worker_ms_per_call: float        # AI.INFO duration / calls
    runs: list[dict[str, Any]] = field(default_factory=list)


def setup(client: redis.Redis, blob: bytes) -> None:
    import torch

    rng = np.random.default_rng(3)
    inputs = [rng.standard_normal((1, LAYERS[0])).astype(np.float32) for _ in range(KEYSPACE)]
    for i, x in enumerate(inputs):
        assert common.ok(client.execute_command("AI.TENSORSET", input_key(i), "FLOAT", 1,
                                                LAYERS[0], "BLOB", x.tobytes()))
    for key, options in VARIANTS.values():
        assert common.ok(client.execute_command("AI.MODELSTORE", key, "TORCH", "CPU", *options,
                                                "BLOB", blob))
    local = torch.jit.load(io.BytesIO(blob))
    for i in (0, KEYSPACE - 1):
        with torch.inference_mode():
            expect = local(torch.from_numpy(inputs[i])).numpy()
        for key, _ in VARIANTS.values():
            reply = client.execute_command("AI.MODELEXECUTE", key, "INPUTS", 1, input_key(i),
                                           "OUTPUTS", 1, "check")
            assert common.ok(reply), reply
            got = np.frombuffer(client.execute_command("AI.TENSORGET", "check", "BLOB"),
                                dtype=np.float32).reshape(expect.shape)
            assert np.allclose(got, expect, rtol=1e-4, atol=1e-5), (key, got, expect)


def checked_run(client: redis.Redis, port: int, model_key: str, requests: int) -> dict[str, Any]:
    before = common.run_info(client, model_key)
    start = time.monotonic()
    sample = common.checked_benchmark(client, port, CLIENTS, requests, command(model_key),
                                      timeout_s=300, keyspace=KEYSPACE)
    wall = time.monotonic() - start
    after = common.run_info(client, model_key)
    if after.calls - before.calls != requests or after.errors != before.errors:
        raise RuntimeError(f"{model_key}: AI.INFO went from {before} to {after}")
    if after.samples - before.samples != requests:
        raise RuntimeError(f"{model_key}: {after.samples - before.samples} samples counted "
                           f"for {requests} one-row requests")
    duration_s = (after.duration_us - before.duration_us) / 1e6
    return {**asdict(sample), "requests": requests, "wall_s": wall,
            "duration_over_wall": duration_s / wall,
            "worker_ms_per_call": duration_s * 1e3 / requests}


def measure() -> tuple[list[Variant], dict[str, list[float]], dict[str, str], int]:
    blob, n_params = mlp_blob()
    with common.running_server() as server:
        client = server.client(timeout_s=120)
        setup(client, blob)
        env = common.environment(client)
        print(f"redis-server {env['redis_version']} on 127.0.0.1:{server.port}; MLP "
              f"{n_params:,} parameters", flush=True)
        counts = {}
        for label, (key, _) in VARIANTS.items():  # warm-up and calibration
            probe = checked_run(client, server.port, key, 1000)
            counts[label] = int(min(MAX_REQUESTS, max(1000, probe["rps"] * RUN_SECONDS)))
        runs: dict[str, list[dict[str, Any]]] = {label: [] for label in VARIANTS}
        labels = list(VARIANTS)
        for repeat in range(REPEATS):
            for label in labels[repeat % len(labels):] + labels[:repeat % len(labels)]:
                runs[label].append(QUIET.run(label, lambda: checked_run(
                    client, server.port, VARIANTS[label][0], counts[label])))
            print(f"  repeat {repeat + 1}/{REPEATS}  " + "  ".join(
                f"{label}: {runs[label][-1]['rps']:>8,.0f} samples/s "
                f"(duration/wall {runs[label][-1]['duration_over_wall']:.1f})"
                for label in labels), flush=True)
        client.close()
    variants = [Variant(label=label, model_key=VARIANTS[label][0],
                        samples_per_s=statistics.median(r["rps"] for r in rs),
                        p50_ms=statistics.median(r["p50_ms"] for r in rs),
                        p99_ms=statistics.median(r["p99_ms"] for r in rs),
                        duration_over_wall=statistics.median(r["duration_over_wall"] for r in rs),
                        worker_ms_per_call=statistics.median(r["worker_ms_per_call"] for r in rs),
                        runs=rs)
                for label, rs in runs.items()]
    ratios = {label: [b["rps"] / a["rps"] for a, b in zip(runs[labels[0]], runs[label])]
              for label in labels[1:]}
    return variants, ratios, env, n_params


def table(variants: list[Variant], ratios: dict[str, float]) -> list[str]:
    lines = ["| variant | samples/s | p50 ms | p99 ms | AI.INFO duration / wall | "
             "worker ms per request | ratio to BATCHSIZE 0 |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for v in variants:
        ratio = ratios.get(v.label, 1.0)
        shown = f"**{ratio:.2f}x**" if v.label == GOAL_VARIANT else f"{ratio:.2f}x"
        lines.append(f"| {v.label} (`{v.model_key}`) | {v.samples_per_s:,.0f} | {v.p50_ms:.2f} | "
                     f"{v.p99_ms:.2f} | {v.duration_over_wall:.1f} | {v.worker_ms_per_call:.2f} | "
                     f"{shown} |")
    return lines


def draw_chart(plt: Any, variants: list[Variant], ratios: dict[str, float],
               env: dict[str, str]) -> Any:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 5))
    labels = [v.label.replace(", ", "\n") for v in variants]
    bars = ax1.bar(labels, [v.samples_per_s for v in variants],
                   color=["#999999", "#d62728", "#ff9896"][:len(variants)])
    common.annotate_bars(ax1, bars, [f"{ratios.get(v.label, 1.0):.2f}x" for v in variants],
                         fontsize=10)
    ax1.tick_params(axis="x", labelsize=8)
    ax1.set_ylabel("samples / second (median)")
    ax1.set_title(f"5M-parameter MLP, {CLIENTS} clients, 1 worker", fontsize=10)
    xs = np.arange(len(variants))
    ax2.bar(xs - 0.2, [v.p50_ms for v in variants], 0.4, label="p50")
    ax2.bar(xs + 0.2, [v.p99_ms for v in variants], 0.4, label="p99")
    ax2.set_xticks(xs, labels, fontsize=8)
    ax2.set_ylabel("latency ms")
    ax2.set_title("latency percentiles", fontsize=10)
    ax2.legend()
    fig.suptitle(f"Auto-batching — redis {env['redis_version']}, nproc={env['nproc']}",
                 fontsize=11)
    return fig


def main() -> int:
    global REPEATS, RUN_SECONDS
    args = common.parse_args(__doc__, quick="1 repeat of 1 s runs")
    if args.quick:
        REPEATS, RUN_SECONDS = 1, 1.0
    watch = common.Watch()
    variants, per_repeat, env, n_params = measure()
    env.update(watch.fields())
    env["runs_kept_although_disturbed"] = ", ".join(
        f"{v.label} #{i + 1} ({r['foreign_cpu']:.0%})" for v in variants
        for i, r in enumerate(v.runs) if r["foreign_cpu"] >= common.QUIET_FRACTION) or "none"
    ratios = {label: statistics.median(rs) for label, rs in per_repeat.items()}
    ratio = ratios[GOAL_VARIANT]
    met = ratio >= GOAL_RATIO
    verdict = (f"goal BATCHSIZE 32 / BATCHSIZE 0 samples/s >= {GOAL_RATIO:g}: "
               f"{'met' if met else 'NOT met'} ({ratio:.2f}x; per repeat "
               f"{', '.join(f'{r:.2f}' for r in per_repeat[GOAL_VARIANT])})")
    lines = table(variants, ratios)
    common.show(lines, verdict)
    common.write_report(
        NAME, title="Auto-batching: BATCHSIZE 0 vs BATCHSIZE 32", env=env,
        about=[
            QUIET.note() + f"; runs kept although disturbed: "
            f"{env['runs_kept_although_disturbed']}",
            f"- model: TorchScript MLP {' -> '.join(map(str, LAYERS))} with ReLUs, {n_params:,} "
            "parameters; one server, THREADS_PER_QUEUE 1 (default), stored as `mlp` (no "
            "BATCHSIZE), `mlp_b32` (BATCHSIZE 32, the goal's variant) and, for information, "
            "`mlp_b32_min24` (BATCHSIZE 32 MINBATCHSIZE 24 MINBATCHTIMEOUT 5)",
            f"- load: `redis-benchmark -c {CLIENTS} -P 1 -r {KEYSPACE}` of "
            "`AI.MODELEXECUTE <key> INPUTS 1 x:__rand_int__ OUTPUTS 1 y:__rand_int__` (32 different "
            f"1x512 inputs; one request = one sample); ~{RUN_SECONDS:g} s per run, {REPEATS} "
            "repeats in rotating order, medians; ratio = median of per-repeat ratios",
            "- AI.INFO duration / wall: RedisAI charges every request of a batch the whole batch's "
            "time, so this is about mean batch size x worker utilisation (at most 1 without "
            "batching)",
        ],
        body=[*lines, "", verdict, ""],
        data={"clients": CLIENTS, "repeats": REPEATS, "parameters": n_params,
              "layers": list(LAYERS), "goal_ratio": GOAL_RATIO, "ratio": ratio, "ratios": ratios,
              "ratio_per_repeat": per_repeat, "variants": [asdict(v) for v in variants]},
        charts={"": lambda plt: draw_chart(plt, variants, ratios, env)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
