"""Throughput of AI.MODELEXECUTE of a small model next to a plain 1 KB GET, at 16 clients.

What it measures
    Requests per second that ``redis-benchmark -c 16 -P 1`` (bounded by ``-n``) gets from one
    redis-server with the redisai_py module, for

    * ``GET s`` of a 1 KB string (the plain-Redis yardstick)
    * ``AI.MODELEXECUTE fraud INPUTS 2 tx ref OUTPUTS 1 score`` (the fraud MLP of
      tests/model_builders.py as TorchScript; tx 1x30, ref 1x256; every client writes the
      same output key, redis-benchmark cannot vary it per client)
    * the same with the ONNX build of the model (key ``fraud_onnx``), for comparison

    Each server configuration runs the three commands back to back, in an order that rotates
    between repeats, REPEATS times; medians are reported (the ratio is the median of the
    per-repeat ratios). After each run the server must show
    exactly the requests sent, none failed (commandstats), and for models AI.INFO must count
    every run with no errors. This is done for the module arguments ``THREADS_PER_QUEUE 1``
    (the default) and ``THREADS_PER_QUEUE 2``, each on a fresh server.

    The project's goal is MODELEXECUTE(fraud) / GET >= 0.45 (RedisAI 1.2.7: 0.43).

How to run
    .venv/bin/python benchmarks/model_throughput.py [--quick]

    It starts its own redis-servers on free loopback ports and stops them by PID. Results go to
    benchmarks/results/model_throughput.{md,json,png}. It takes about 1-2 minutes.
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import redis

import _bench_common as common

NAME = "model_throughput"
CLIENTS = 16
REPEATS = 3
THREADS = (1, 2)
GOAL_RATIO = 0.45
REDISAI_127_RATIO = 0.43
MODEL_KEYS = {"TORCH": "fraud", "ONNX": "fraud_onnx"}
PLAIN_KEY = "s"
PAYLOAD = b"A" * 1024
# Requests per run: about 2-3 s each on this 2-core machine.
REQUESTS = {"GET": 200_000, "TORCH": 80_000, "ONNX": 80_000}
WARMUP_REQUESTS = 10_000
COMMANDS: dict[str, tuple[str, ...]] = {
    "GET": ("GET", PLAIN_KEY),
    "TORCH": common.execute_args(MODEL_KEYS["TORCH"]),
    "ONNX": common.execute_args(MODEL_KEYS["ONNX"]),
}


@dataclass
class ConfigResult:
    """Medians over the repeats for one THREADS_PER_QUEUE setting."""

    threads_per_queue: int
    rps: dict[str, float]                    # median req/s by command label
    p50_ms: dict[str, float]
    p99_ms: dict[str, float]
    ratio: dict[str, float]                  # median over repeats of model req/s / GET req/s
    worker_us_per_call: dict[str, float]     # AI.INFO duration / calls over all timed runs
    samples: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    ratio_per_repeat: dict[str, list[float]] = field(default_factory=dict)


def checked_run(client: redis.Redis, port: int, label: str, requests: int) -> common.BenchSample:
    """One redis-benchmark run of COMMANDS[label]; the server must have served all of it."""
    model_key = MODEL_KEYS.get(label)
    before = common.run_info(client, model_key) if model_key else None
    sample = common.checked_benchmark(client, port, CLIENTS, requests, COMMANDS[label])
    if model_key and before is not None:
        after = common.run_info(client, model_key)
        if after.calls - before.calls != requests or after.errors != before.errors:
            raise RuntimeError(f"{label}: AI.INFO went from {before} to {after} "
                               f"for {requests} requests")
    return sample


def run_config(threads: int) -> tuple[ConfigResult, dict[str, str]]:
    with common.running_server(("THREADS_PER_QUEUE", str(threads))) as server:
        client = server.client()
        common.store_fraud_models(client, MODEL_KEYS)
        assert client.set(PLAIN_KEY, PAYLOAD)
        env = common.environment(client)
        print(f"THREADS_PER_QUEUE {threads}: redis-server {env['redis_version']} on "
              f"127.0.0.1:{server.port}", flush=True)
        for label in COMMANDS:
            checked_run(client, server.port, label, WARMUP_REQUESTS)
        for key in MODEL_KEYS.values():
            common.reset_run_info(client, key)
        labels = list(COMMANDS)
        runs: dict[str, list[common.BenchSample]] = {k: [] for k in labels}
        for repeat in range(REPEATS):
            order = labels[repeat % len(labels):] + labels[:repeat % len(labels)]
            for label in order:
                runs[label].append(checked_run(client, server.port, label, REQUESTS[label]))
            print(f"  repeat {repeat + 1}/{REPEATS}  " + "  ".join(
                f"{k} {runs[k][-1].rps:>9,.0f}" for k in labels), flush=True)
        infos = {b: common.run_info(client, k) for b, k in MODEL_KEYS.items()}
        client.close()
    rps = {k: statistics.median(s.rps for s in v) for k, v in runs.items()}
    return ConfigResult(
        threads_per_queue=threads, rps=rps,
        p50_ms={k: statistics.median(s.p50_ms for s in v) for k, v in runs.items()},
        p99_ms={k: statistics.median(s.p99_ms for s in v) for k, v in runs.items()},
        ratio={b: statistics.median(m.rps / g.rps for m, g in zip(runs[b], runs["GET"]))
               for b in MODEL_KEYS},
        worker_us_per_call={b: i.duration_us / i.calls for b, i in infos.items() if i.calls},
        samples={k: [asdict(s) for s in v] for k, v in runs.items()},
        ratio_per_repeat={b: [round(m.rps / g.rps, 4) for m, g in zip(runs[b], runs["GET"])]
                          for b in MODEL_KEYS},
    ), env


# --------------------------------------------------------------------------- reports


def table(results: list[ConfigResult]) -> list[str]:
    lines = ["| THREADS_PER_QUEUE | GET req/s | MODELEXECUTE TORCH req/s | TORCH/GET | "
             "MODELEXECUTE ONNX req/s | ONNX/GET | p50 ms GET / TORCH / ONNX | "
             "worker us/call TORCH / ONNX |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(
            f"| {r.threads_per_queue} | {r.rps['GET']:,.0f} | {r.rps['TORCH']:,.0f} | "
            f"**{r.ratio['TORCH']:.3f}** | {r.rps['ONNX']:,.0f} | {r.ratio['ONNX']:.3f} | "
            f"{r.p50_ms['GET']:.3f} / {r.p50_ms['TORCH']:.3f} / {r.p50_ms['ONNX']:.3f} | "
            f"{r.worker_us_per_call.get('TORCH', float('nan')):.1f} / "
            f"{r.worker_us_per_call.get('ONNX', float('nan')):.1f} |")
    return lines


def verdict(results: list[ConfigResult]) -> str:
    parts = []
    for r in results:
        ratio = r.ratio["TORCH"]
        parts.append(f"THREADS_PER_QUEUE {r.threads_per_queue}: {ratio:.3f} "
                     f"({'met' if ratio >= GOAL_RATIO else 'NOT met'})")
    return (f"goal MODELEXECUTE(fraud, TORCH)/GET >= {GOAL_RATIO} (RedisAI 1.2.7: "
            f"{REDISAI_127_RATIO}): " + "; ".join(parts))


def draw_chart(plt: Any, results: list[ConfigResult], env: dict[str, str]) -> Any:
    labels = list(COMMANDS)
    names = {"GET": "GET 1 KB", "TORCH": "MODELEXECUTE\nTORCH", "ONNX": "MODELEXECUTE\nONNX"}
    fig, ax = plt.subplots(figsize=(9, 5))
    xs = np.arange(len(labels))
    width = 0.8 / len(results)
    for i, r in enumerate(results):
        offset = (i - (len(results) - 1) / 2) * width
        bars = ax.bar(xs + offset, [r.rps[k] for k in labels], width,
                      label=f"THREADS_PER_QUEUE {r.threads_per_queue}")
        common.annotate_bars(ax, bars, [f"{r.rps[k] / 1000:.1f}k"
                                        + ("" if k == "GET" else f"\n{r.ratio[k]:.2f}x")
                                        for k in labels], fontsize=8)
    get_rps = statistics.mean(r.rps["GET"] for r in results)
    ax.axhline(GOAL_RATIO * get_rps, color="gray", linestyle="--", linewidth=1,
               label=f"goal {GOAL_RATIO}x GET")
    ax.set_xticks(xs, [names[k] for k in labels])
    ax.set_ylabel("requests / second (median of %d)" % REPEATS)
    ax.set_title(f"fraud MLP vs GET, {CLIENTS} clients, -P 1 — redis {env['redis_version']}, "
                 f"nproc={env['nproc']}", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def main() -> int:
    global REPEATS, REQUESTS
    args = common.parse_args(__doc__, quick="1 repeat, a tenth of the requests")
    if args.quick:
        REPEATS, REQUESTS = 1, {k: v // 10 for k, v in REQUESTS.items()}
    watch = common.Watch()
    results: list[ConfigResult] = []
    env: dict[str, str] = {}
    for threads in THREADS:
        result, env = run_config(threads)
        results.append(result)
    env.update(watch.fields())
    lines = table(results)
    common.show(lines, verdict(results))
    common.write_report(
        NAME, title="AI.MODELEXECUTE throughput vs GET (fraud MLP, 16 clients)", env=env,
        about=[
            f"- `redis-benchmark -c {CLIENTS} -P 1`; requests per run: "
            + ", ".join(f"{k} {v:,}" for k, v in REQUESTS.items())
            + f"; {REPEATS} interleaved repeats per server, medians shown; one fresh server per "
            "THREADS_PER_QUEUE value",
            "- MODELEXECUTE: `AI.MODELEXECUTE fraud INPUTS 2 tx ref OUTPUTS 1 score` (shared output "
            "key); ONNX: the same model as `fraud_onnx`",
        ],
        body=[
            *lines,
            "",
            "ratio = median over the repeats of (model req/s / GET req/s of the same repeat), which "
            "cancels slow drifts of the machine better than a ratio of medians; per-repeat ratios: "
            + "; ".join(f"TPQ {r.threads_per_queue} {b}: {r.ratio_per_repeat[b]}"
                        for r in results for b in MODEL_KEYS),
            "",
            "worker us/call = AI.INFO duration / calls over the timed runs (the worker's Python call).",
            "",
            verdict(results),
            "",
        ],
        data={"clients": CLIENTS, "repeats": REPEATS, "requests": REQUESTS,
              "goal_ratio": GOAL_RATIO, "redisai_1_2_7_ratio": REDISAI_127_RATIO,
              "results": [asdict(r) for r in results]},
        charts={"": lambda plt: draw_chart(plt, results, env)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
