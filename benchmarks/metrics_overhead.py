"""What metrics cost: model throughput with and without a Prometheus-like scraper on /metrics.

What it measures
    Requests per second that ``redis-benchmark -c 16 -P 1`` (bounded by ``-n``) gets for
    ``AI.MODELEXECUTE fraud INPUTS 2 tx ref OUTPUTS 1 score`` (the fraud MLP of
    tests/model_builders.py as TorchScript) from a server started with ``METRICS_PORT``, in
    two conditions run back to back, alternating, REPEATS times:

    * ``off``: nobody reads the metrics (every run still counts to its key's series and
      histograms in C: that cost is in both conditions, and in every other benchmark);
    * ``on``: a scraper GETs /metrics once a second, gzip accepted, as a Prometheus server
      with ``scrape_interval: 1s`` would.

    This is done with two registry sizes on fresh servers: the fraud model alone, and the
    fraud model plus EXTRA_KEYS more stored models (each a series of its own, so a scrape
    renders and ships EXTRA_KEYS times more text). Reported: median req/s per condition, the
    median over repeats of on/off, the scrapes' latency and size. After each run the server
    must show every request served (commandstats) and AI.INFO must count every run, and at the
    end AI.METRICS must count the same runs as AI.INFO.

How to run
    .venv/bin/python benchmarks/metrics_overhead.py [--quick]

    It starts its own redis-servers on free loopback ports and stops them by PID. Results go
    to benchmarks/results/metrics_overhead.{md,json,png}. It takes about 5-6 minutes (storing
    the extra models is most of a minute). --quick runs a few seconds to check the script and
    writes no results.
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field

import redis

import _bench_common as common

NAME = "metrics_overhead"
CLIENTS = 16
REPEATS = 5
REQUESTS = 200_000
WARMUP_REQUESTS = 10_000
EXTRA_KEYS = 1000
SCRAPE_INTERVAL_S = 1.0
MODEL_KEY = "fraud"
COMMAND = common.execute_args(MODEL_KEY)


@dataclass
class Scrapes:
    """What the scraper saw during one `on` run."""

    latencies_ms: list[float] = field(default_factory=list)
    bytes_plain: int = 0
    bytes_gzip: int = 0
    errors: list[str] = field(default_factory=list)


class Scraper:
    """GETs /metrics every SCRAPE_INTERVAL_S on a thread of its own until stopped."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.scrapes = Scrapes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _once(self) -> None:
        request = urllib.request.Request(self.url, headers={"Accept-Encoding": "gzip"})
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        self.scrapes.latencies_ms.append((time.perf_counter() - started) * 1000)
        self.scrapes.bytes_gzip = len(body)
        self.scrapes.bytes_plain = len(gzip.decompress(body))

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._once()
            except Exception as exc:  # counted and reported, never silent
                self.scrapes.errors.append(repr(exc))
            self._stop.wait(SCRAPE_INTERVAL_S)

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


@dataclass
class SizeResult:
    """Medians over the repeats for one registry size."""

    keys: int
    rps: dict[str, float]
    p50_ms: dict[str, float]
    p99_ms: dict[str, float]
    on_off_ratio: float
    ratio_per_repeat: list[float]
    scrape_ms_p50: float
    scrape_ms_max: float
    scrapes: int
    scrape_bytes: int
    scrape_bytes_gzip: int
    samples: dict[str, list[dict[str, float]]]
    server_cpu_us_per_request: dict[str, float]  # all the server's threads, median per condition
    scrape_cpu_share: float  # the extra server CPU with the scraper, as a share of all cores


def checked_run(client: redis.Redis, server: common.Server, requests: int,
                cpu_us: list[float] | None = None) -> common.BenchSample:
    """One redis-benchmark run; the server must have served and counted all of it.
    Appends the server's CPU microseconds per request (all its threads) to cpu_us."""
    client.config_resetstat()
    before = common.run_info(client, MODEL_KEY)
    cpu_before = common.process_cpu_s(server.proc.pid)
    sample = common.run_benchmark(server.port, CLIENTS, requests, COMMAND)
    if cpu_us is not None:
        cpu_us.append((common.process_cpu_s(server.proc.pid) - cpu_before) * 1e6 / requests)
    stats = common.command_stats(client, COMMAND[0])
    after = common.run_info(client, MODEL_KEY)
    if stats["calls"] != requests or stats["failed_calls"] or stats["rejected_calls"]:
        raise RuntimeError(f"expected {requests} clean calls, commandstats {stats}")
    if after.calls - before.calls != requests or after.errors != before.errors:
        raise RuntimeError(f"AI.INFO went from {before} to {after} for {requests} requests")
    return sample


def store_extra_models(client: redis.Redis, n: int) -> None:
    blob = common.model_builders.torch_add()
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        pipe.execute_command("AI.MODELSTORE", f"tenant:{i}", "TORCH", "CPU", "BLOB", blob)
    replies = pipe.execute()
    if not all(common.ok(r) for r in replies):
        raise RuntimeError(f"storing {n} extra models: {[r for r in replies if not common.ok(r)][:3]}")


def metrics_runs(client: redis.Redis, key: str) -> int:
    """redisai_model_runs_total of `key`, read from AI.METRICS."""
    prefix = f'redisai_model_runs_total{{key="{key}",'
    for line in client.execute_command("AI.METRICS").decode().splitlines():
        if line.startswith(prefix):
            return int(line.rsplit(" ", 1)[1])
    raise RuntimeError(f"AI.METRICS has no runs_total for {key}")


def run_size(extra_keys: int, repeats: int, requests: int) -> tuple[SizeResult, dict[str, str]]:
    metrics_port = common.free_port()
    module_args = ("METRICS_PORT", str(metrics_port), "METRICS_MAX_KEYS", str(extra_keys + 10))
    with common.running_server(module_args) as server:
        client = server.client(timeout_s=120)
        common.store_fraud_models(client, {"TORCH": MODEL_KEY})
        store_extra_models(client, extra_keys)
        env = common.environment(client)
        print(f"{extra_keys + 1} keys: redis-server {env['redis_version']} on 127.0.0.1:{server.port}, "
              f"/metrics on {metrics_port}", flush=True)
        checked_run(client, server, min(WARMUP_REQUESTS, requests))
        runs: dict[str, list[common.BenchSample]] = {"off": [], "on": []}
        cpu: dict[str, list[float]] = {"off": [], "on": []}
        scrapes = Scrapes()
        for repeat in range(repeats):
            order = ["off", "on"] if repeat % 2 == 0 else ["on", "off"]
            for condition in order:
                if condition == "off":
                    runs["off"].append(checked_run(client, server, requests, cpu["off"]))
                    continue
                with Scraper(metrics_port) as scraper:
                    time.sleep(0.1)  # the first scrape lands inside the run
                    runs["on"].append(checked_run(client, server, requests, cpu["on"]))
                if scraper.scrapes.errors:
                    raise RuntimeError(f"scrapes failed: {scraper.scrapes.errors[:3]}")
                scrapes.latencies_ms += scraper.scrapes.latencies_ms
                scrapes.bytes_plain = scraper.scrapes.bytes_plain
                scrapes.bytes_gzip = scraper.scrapes.bytes_gzip
            print(f"  repeat {repeat + 1}/{repeats}  off {runs['off'][-1].rps:>9,.0f}  "
                  f"on {runs['on'][-1].rps:>9,.0f}", flush=True)
        if metrics_runs(client, MODEL_KEY) != common.run_info(client, MODEL_KEY).calls:
            raise RuntimeError("AI.METRICS and AI.INFO disagree on the runs")
        client.close()
    ratios = [on.rps / off.rps for on, off in zip(runs["on"], runs["off"])]
    cpu_median = {k: statistics.median(v) for k, v in cpu.items()}
    return SizeResult(
        keys=extra_keys + 1,
        rps={k: statistics.median(s.rps for s in v) for k, v in runs.items()},
        p50_ms={k: statistics.median(s.p50_ms for s in v) for k, v in runs.items()},
        p99_ms={k: statistics.median(s.p99_ms for s in v) for k, v in runs.items()},
        on_off_ratio=statistics.median(ratios),
        ratio_per_repeat=[round(r, 4) for r in ratios],
        scrape_ms_p50=statistics.median(scrapes.latencies_ms) if scrapes.latencies_ms else float("nan"),
        scrape_ms_max=max(scrapes.latencies_ms, default=float("nan")),
        scrapes=len(scrapes.latencies_ms),
        scrape_bytes=scrapes.bytes_plain,
        scrape_bytes_gzip=scrapes.bytes_gzip,
        samples={k: [asdict(s) for s in v] for k, v in runs.items()},
        server_cpu_us_per_request=cpu_median,
        scrape_cpu_share=(cpu_median["on"] - cpu_median["off"]) * statistics.median(
            s.rps for s in runs["on"]) / 1e6 / (os.cpu_count() or 1),
    ), env


# --------------------------------------------------------------------------- reports


def table(results: list[SizeResult]) -> list[str]:
    lines = ["| keys | req/s, no scraper | req/s, scraped every 1 s | on/off | p99 ms off / on | "
             "server CPU us/request off / on | extra CPU, share of the cores | "
             "scrapes | scrape ms p50 / max | scrape size (gzip) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(
            f"| {r.keys:,} | {r.rps['off']:,.0f} | {r.rps['on']:,.0f} | **{r.on_off_ratio:.3f}** | "
            f"{r.p99_ms['off']:.3f} / {r.p99_ms['on']:.3f} | "
            f"{r.server_cpu_us_per_request['off']:.1f} / {r.server_cpu_us_per_request['on']:.1f} | "
            f"{r.scrape_cpu_share:.1%} | {r.scrapes} | "
            f"{r.scrape_ms_p50:.1f} / {r.scrape_ms_max:.1f} | "
            f"{r.scrape_bytes / 1024:,.0f} KB ({r.scrape_bytes_gzip / 1024:,.0f} KB) |")
    return lines


def write_chart(results: list[SizeResult], env: dict[str, str]) -> None:
    plt = common.pyplot()
    if plt is None:
        return
    import numpy as np

    fig, ax = plt.subplots(figsize=(8, 4.5))
    xs = np.arange(len(results))
    for i, (condition, label) in enumerate((("off", "no scraper"), ("on", "/metrics every 1 s"))):
        bars = ax.bar(xs + (i - 0.5) * 0.38, [r.rps[condition] for r in results], 0.38, label=label)
        for bar, r in zip(bars, results):
            ax.annotate(f"{r.rps[condition] / 1000:.1f}k", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8)
    ax.set_xticks(xs, [f"{r.keys:,} keys\non/off {r.on_off_ratio:.3f}" for r in results])
    ax.set_ylabel("MODELEXECUTE req/s (median of %d)" % REPEATS)
    ax.set_title(f"fraud MLP, {CLIENTS} clients, with and without a scraper — redis "
                 f"{env['redis_version']}, nproc={env['nproc']}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(common.RESULTS_DIR / f"{NAME}.png", dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a few seconds with tiny counts, to check the script; writes no results")
    args = parser.parse_args()
    repeats, requests, extra = (1, 2_000, 20) if args.quick else (REPEATS, REQUESTS, EXTRA_KEYS)
    quiet = 0.0 if args.quick else common.wait_for_quiet()
    meter = common.CpuMeter()
    results: list[SizeResult] = []
    env: dict[str, str] = {}
    for extra_keys in (0, extra):
        result, env = run_size(extra_keys, repeats, requests)
        results.append(result)
    env.update(common.noise_fields(quiet, meter))
    lines = table(results)
    print()
    print("\n".join(lines))
    if args.quick:
        return 0
    md = [
        "# What metrics cost: MODELEXECUTE throughput with and without a scraper on /metrics",
        "",
        *common.header_lines(env),
        f"- `redis-benchmark -c {CLIENTS} -P 1 -n {REQUESTS:,}` of `{' '.join(COMMAND)}`; "
        f"{REPEATS} repeats alternating off/on on one server per registry size, medians shown",
        f"- on: a scraper GETs /metrics every {SCRAPE_INTERVAL_S:g} s (gzip accepted) during the "
        "run; off: nobody reads the metrics (runs are counted in C either way)",
        f"- the bigger registry adds {EXTRA_KEYS:,} stored models, each a series of its own",
        "- produced by `.venv/bin/python benchmarks/metrics_overhead.py`",
        "",
        *lines,
        "",
        "on/off = median over the repeats of (req/s scraped / req/s not scraped of the same "
        "repeat); per-repeat: " + "; ".join(f"{r.keys:,} keys: {r.ratio_per_repeat}" for r in results),
        "",
        "Server CPU per request counts every thread of redis-server (main, worker, the metrics "
        "thread that renders and gzips a scrape); the extra CPU is (on - off) x the scraped runs' "
        "req/s, as a share of the machine's cores. That share, not req/s, is the stable figure: "
        "back-to-back runs of a few seconds on this 2-core VM differ by up to 20 % in req/s "
        "whether or not anything scrapes (see the per-repeat ratios).",
        "",
    ]
    common.write_markdown(NAME, md)
    common.write_json(NAME, {"environment": env, "clients": CLIENTS, "repeats": REPEATS,
                             "requests": REQUESTS, "scrape_interval_s": SCRAPE_INTERVAL_S,
                             "results": [asdict(r) for r in results]})
    write_chart(results, env)
    print(f"wrote {common.RESULTS_DIR}/{NAME}.{{md,json,png}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
