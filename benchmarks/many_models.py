"""Many small models on one server under a loaded-session budget (docs/model_sessions.md).

N distinct ONNX models (a [1, 160] x [160, 160] MatMul each, ~100 KB blobs, every one with its
own random weights, made on the spot) are stored on one server whose MODEL_SESSIONS_MEMORY fits
about 10 % of them loaded. Then 16 client processes (each its own interpreter, its own redis-py
connection and its own Zipf stream over the tenants, s = 1.1, seeded per process) send
AI.MODELEXECUTE in two phases:

(a) saturation, closed loop: every client sends its next request as soon as the last one is
    answered, for a fixed time. Gives the throughput and the loaded-hit ratio at full load.
    Its latencies are printed too, but they are mostly queueing: by Little's law, 16 clients at
    X runs/s wait 16 / X seconds per request on average, whatever the server's own cost.
(b) latency at a stated offered load, open loop: each client sends on a fixed schedule of
    evenly spaced arrivals (its own random phase, seeded per process), the 16 together offering
    OFFERED_SHARE (50 %) of phase (a)'s measured throughput. A request's latency runs from its
    *scheduled* send time to its reply, so a client that falls behind its schedule counts the
    delay (no coordinated omission); how late sends went out is reported. The warm and cold
    run latencies of the report come from this phase. Evenly spaced rather than Poisson: a
    client has one connection and sends one request at a time, so Poisson gaps shorter than a
    run (a few % of them at these rates) would queue behind the client's own previous request
    and measure the client, not the server; 16 clients with random phases still overlap.

Warm or cold. Before each request, untimed, the client sets the input tensor and asks
AI.INFO <key> SESSION (one pipelined round trip, done before the scheduled send time in phase
(b) while the client keeps to its schedule); after the reply, untimed, it asks AI.INFO again
(pipelined with the next request's set-up). A run is warm if its model's session was loaded before the run (`session_loaded` 1)
and no load of it happened between the two reads (`session_loads` unchanged); otherwise cold
(it was not loaded, or it was evicted and loaded again around it, possibly by another client's
run it waited on). The timed window holds only AI.MODELEXECUTE. A run that was warm may be
counted cold if another client evicts and reloads its model between the two reads (rare for
the hot tenants: it errs towards cold).

Also reported: the server's cold-load p50/p99 and eviction count (INFO ai_sessions), and
memory: the server's RSS against 1.3 x (blob bytes) + budget + the idle server's RSS (the
issue's bound), plus the memory one loaded session adds, measured by releasing all sessions
(AI.CONFIG MODEL_SESSIONS_MEMORY 1) and comparing RSS, against the budget's per-session
estimate.

Under steady eviction RSS sits a few MiB above its figure after the stores, also after MEMORY
PURGE: jemalloc (which serves every malloc in Debian's redis-server) fragments under 16 clients'
churn. It is not a leak: 3,600 load/release cycles from one client leave RSS and used_memory flat
(checked while writing this script).

Limits: everything shares this machine's cores (2 here): the 16 client processes, the server's
main thread, its 2 workers (THREADS_PER_QUEUE 2) and its loader thread. Phase (a)'s throughput
is therefore the whole machine's, clients included, and phase (b)'s latencies include the
clients' own scheduling delays; a client's untimed AI.TENSORSET and AI.INFO calls also take
server time. "Memory per loaded session" is RSS after MEMORY PURGE with the sessions loaded
minus the same with all released, divided by their count, so allocator slack makes it noisy.
The cluster run (3 primaries, no replicas, 3 x the models, the same budget per node) starts its
nodes with tests/cluster.py; its client processes hold RedisCluster objects, it runs the same
two phases, and the per-node bound uses the single server's idle RSS.

How to run
    .venv/bin/python benchmarks/many_models.py [--quick] [--no-cluster]

    Phases of 30 s and 60 s over 10,000 models (30,000 on the cluster); --quick: 3 s and 5 s
    over 200 (600), under a minute in all. Results go to benchmarks/results/many_models.*.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import redis

import _bench_common as bench

DIM = 160  # 160 x 160 float32 weights: 102,400 bytes
ZIPF_S = 1.1
CLIENTS = 16
BUDGET_SHARE = 0.10
OFFERED_SHARE = 0.5  # phase (b)'s offered rate, as a share of phase (a)'s throughput
OVERRUN_S = 10.0  # phase (b): scheduled requests still unsent this long after the end are dropped


def model_blobs(n: int, seed: int = 11) -> list[bytes]:
    """n distinct ONNX MatMul models: one graph, each with its own random weights."""
    rng = np.random.default_rng(seed)
    return [bench.model_builders.onnx_matmul(rng.standard_normal((DIM, DIM), dtype=np.float32), "tenant")
            for _ in range(n)]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def sessions(client: redis.Redis) -> dict[str, int]:
    return {k.removeprefix("ai_"): v for k, v in client.info("ai_sessions").items()}


def estimate(blob_len: int) -> int:
    """session_budget.c's estimate for an ONNX session (its ESTIMATES: x 2.1 + 108 KiB)."""
    return blob_len // 10 * 21 + 108 * 1024


def store_all(client: redis.Redis, blobs: list[bytes]) -> float:
    start = time.monotonic()
    pipe = client.pipeline(transaction=False)
    for i, blob in enumerate(blobs):
        pipe.execute_command("AI.MODELSTORE", f"m{{t{i}}}", "ONNX", "CPU", "BLOB", blob)
        if i % 16 == 15:  # a few stores in flight, as a deploying client would have
            pipe.execute()
    pipe.execute()
    return time.monotonic() - start


# ---------------------------------------------------------------- the client processes


@dataclass(frozen=True)
class Target:
    """Where a client process connects: one server, or a cluster through one of its nodes."""

    port: int
    cluster: bool = False

    def connect(self) -> Any:
        if self.cluster:
            from redis.cluster import RedisCluster

            return RedisCluster(host="127.0.0.1", port=self.port, socket_timeout=30)
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=30)


@dataclass(frozen=True)
class Phase:
    """What every client does: closed loop (rate_per_client 0) or evenly spaced arrivals at
    rate_per_client, from start_at (time.monotonic(), one clock for all processes on Linux)
    for `seconds`."""

    start_at: float
    seconds: float
    rate_per_client: float = 0.0


class Tenant:
    """One client's request stream: Zipf-drawn tenants, their keys, the untimed reads around a run."""

    def __init__(self, client: Any, n_models: int, rng: np.random.Generator) -> None:
        self.client, self.n_models, self.rng = client, n_models, rng
        self.x = rng.standard_normal((1, DIM), dtype=np.float32).tobytes()

    def draw(self) -> int:
        while True:
            tenant = int(self.rng.zipf(ZIPF_S)) - 1
            if tenant < self.n_models:
                return tenant

    @staticmethod
    def session(reply: list[Any]) -> tuple[int, int]:
        """(session_loaded, session_loads) from AI.INFO key SESSION."""
        fields = dict(zip(reply[::2], reply[1::2]))
        return int(fields[b"session_loaded"]), int(fields[b"session_loads"])

    def prepare(self, tenant: int, finish: int | None) -> tuple[tuple[int, int], tuple[int, int] | None]:
        """Set tenant's input and read its session before its run, with the read after the
        previous run (`finish`) in the same round trip. (RedisCluster pipelines split by slot.)"""
        pipe = self.client.pipeline(transaction=False)
        if finish is not None:
            pipe.execute_command("AI.INFO", f"m{{t{finish}}}", "SESSION")
        pipe.execute_command("AI.TENSORSET", f"x{{t{tenant}}}", "FLOAT", 1, DIM, "BLOB", self.x)
        pipe.execute_command("AI.INFO", f"m{{t{tenant}}}", "SESSION")
        replies = pipe.execute()
        after = self.session(replies[0]) if finish is not None else None
        return self.session(replies[-1]), after

    def run(self, tenant: int) -> None:
        self.client.execute_command("AI.MODELEXECUTE", f"m{{t{tenant}}}", "INPUTS", 1, f"x{{t{tenant}}}",
                                    "OUTPUTS", 1, f"y{{t{tenant}}}")

    def after(self, tenant: int) -> tuple[int, int]:
        return self.session(self.client.execute_command("AI.INFO", f"m{{t{tenant}}}", "SESSION"))


def client_phase(stream: Tenant, phase: Phase, rng: np.random.Generator) -> dict[str, Any]:
    """One phase of one client. Latency: from the scheduled send time (open loop) or the send
    (closed loop) to the reply. Returns the latencies (ns) of warm and cold runs, and for the
    open loop how late sends went out and how many scheduled requests were dropped."""
    warm: list[int] = []
    cold: list[int] = []
    late: list[int] = []
    open_loop = phase.rate_per_client > 0
    end = phase.start_at + phase.seconds
    interval = 1.0 / phase.rate_per_client if open_loop else 0.0
    scheduled_at = phase.start_at + rng.uniform(0.0, interval) - interval  # this client's phase
    pending: tuple[int, tuple[int, int], int] | None = None  # (tenant, before, latency) of the last run
    dropped = 0

    def settle(after: tuple[int, int] | None) -> None:
        if pending is None or after is None:
            return
        _, (was_loaded, loads_before), latency = pending
        (warm if was_loaded and after[1] == loads_before else cold).append(latency)

    time.sleep(max(0.0, phase.start_at - time.monotonic()))
    while True:
        if open_loop:
            scheduled_at += interval
            if scheduled_at >= end:
                break
        elif time.monotonic() >= end:
            break
        if open_loop and time.monotonic() > end + OVERRUN_S:  # hopelessly behind: the rest is dropped
            dropped += 1
            continue
        tenant = stream.draw()
        before, after = stream.prepare(tenant, pending[0] if pending else None)
        settle(after)
        if open_loop:
            now = time.monotonic()
            if now < scheduled_at:
                time.sleep(scheduled_at - now)
            sent_ns = time.monotonic_ns()
            late.append(max(0, sent_ns - int(scheduled_at * 1e9)))
            start_ns = int(scheduled_at * 1e9)
        else:
            start_ns = time.monotonic_ns()
        stream.run(tenant)
        pending = (tenant, before, time.monotonic_ns() - start_ns)
    if pending is not None:
        settle(stream.after(pending[0]))
    return {"warm": np.array(warm, dtype=np.int64).tobytes(), "cold": np.array(cold, dtype=np.int64).tobytes(),
            "late": np.array(late, dtype=np.int64).tobytes(), "dropped": dropped,
            "done_at": time.monotonic()}


def client_main(conn: Connection, target: Target, n_models: int, seed: int) -> None:
    """A client process: connects, says ready, then runs each Phase it is sent until it gets None."""
    rng = np.random.default_rng(seed)
    stream = Tenant(target.connect(), n_models, rng)
    conn.send("ready")
    while (phase := conn.recv()) is not None:
        conn.send(client_phase(stream, phase, rng))


class Clients:
    """CLIENTS client processes (spawned: each its own interpreter) for the life of a `with`."""

    def __init__(self, target: Target, n_models: int, seed: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for i in range(CLIENTS):
            parent, child = ctx.Pipe()
            self.procs.append(ctx.Process(target=client_main, args=(child, target, n_models, seed * 1000 + i)))
            self.conns.append(parent)

    def __enter__(self) -> "Clients":
        for p in self.procs:
            p.start()
        for c in self.conns:
            if not c.poll(120) or c.recv() != "ready":
                raise RuntimeError("a client process did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        for c in self.conns:
            try:
                c.send(None)
            except OSError:
                pass
        for p in self.procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()  # by its own handle, never by name
                p.join(timeout=10)

    def phase(self, seconds: float, total_rate: float = 0.0) -> dict[str, Any]:
        """Runs one phase on every client; closed loop when total_rate is 0."""
        phase = Phase(start_at=time.monotonic() + 0.5, seconds=seconds, rate_per_client=total_rate / CLIENTS)
        for c in self.conns:
            c.send(phase)
        parts = [c.recv() for c in self.conns]
        warm = np.concatenate([np.frombuffer(p["warm"], dtype=np.int64) for p in parts])
        cold = np.concatenate([np.frombuffer(p["cold"], dtype=np.int64) for p in parts])
        late = np.concatenate([np.frombuffer(p["late"], dtype=np.int64) for p in parts])
        elapsed = max(p["done_at"] for p in parts) - phase.start_at
        runs = int(warm.size + cold.size)
        return {
            "loop": "open" if total_rate else "closed",
            "offered_runs_per_s": round(total_rate, 1) if total_rate else None,
            "seconds": round(elapsed, 2), "runs": runs, "runs_per_s": round(runs / elapsed, 1),
            "hit_ratio": round(warm.size / runs, 4) if runs else 0.0,
            "warm_us": bench.percentiles_us(warm) if warm.size else {},
            "cold_us": bench.percentiles_us(cold) if cold.size else {},
            "late_send_us": bench.percentiles_us(late) if late.size else {},
            "dropped": sum(p["dropped"] for p in parts),
        }


def two_phases(target: Target, n_models: int, seconds: tuple[float, float], seed: int) -> dict[str, Any]:
    """Phase (a), closed loop at saturation, then (b), open loop at OFFERED_SHARE of (a)'s throughput."""
    with Clients(target, n_models, seed) as clients:
        saturation = clients.phase(seconds[0])
        print(f"  (a) closed loop: {saturation['runs_per_s']:,} runs/s, hit {saturation['hit_ratio']:.1%}", flush=True)
        offered = OFFERED_SHARE * saturation["runs_per_s"]
        latency = clients.phase(seconds[1], offered)
        print(f"  (b) open loop: offered {offered:,.0f} runs/s, achieved {latency['runs_per_s']:,}", flush=True)
    return {"saturation": saturation, "latency": latency}


def run_cluster(n_per_node: int, seconds: tuple[float, float], idle_rss: int) -> dict[str, Any]:
    """The same on a 3-primary cluster (no replicas): 3 x the models, the same budget per node,
    tenants' keys hash-tagged so each model lives on one shard."""
    import tempfile

    from redis.cluster import RedisCluster

    from cluster import Cluster  # tests/cluster.py

    n_models = 3 * n_per_node
    blobs = model_blobs(n_models, seed=12)
    budget = int(BUDGET_SHARE * n_per_node * estimate(len(blobs[0])))
    with tempfile.TemporaryDirectory(prefix="redisai_py_bench_cluster_") as tmp:
        cluster = Cluster(Path(tmp), module_args=["MODEL_SESSIONS_MEMORY", str(budget), "THREADS_PER_QUEUE", "2"],
                          replicas=0).start()
        try:
            rc = RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port, socket_timeout=30)
            for i, blob in enumerate(blobs):
                rc.execute_command("AI.MODELSTORE", f"m{{t{i}}}", "ONNX", "CPU", "BLOB", blob)
            phases = two_phases(Target(cluster.nodes[0].port, cluster=True), n_models, seconds, seed=2)
            nodes = []
            for node in cluster.nodes:
                c = node.client()
                info = sessions(c)
                models = len(c.execute_command("AI._MODELSCAN"))
                nodes.append({"port": node.port, "models": models, "loaded": info["loaded"],
                              "loaded_bytes": info["loaded_bytes"], "evictions": info["evictions"],
                              "rss": rss_bytes(node.proc.pid),
                              "bound": int(1.3 * models * len(blobs[0]) + budget + idle_rss)})
            # Pins may hold a node over its budget while runs are in flight; settled now.
            over = [n["port"] for n in nodes if n["loaded_bytes"] > budget]
        finally:
            cluster.stop()
    return {"models": n_models, "budget_bytes_per_node": budget, **phases, "nodes": nodes, "nodes_over_budget": over}


def run(n_models: int, seconds: tuple[float, float]) -> dict[str, Any]:
    print(f"making {n_models} models ...", flush=True)
    blobs = model_blobs(n_models)
    blob_bytes = sum(map(len, blobs))
    budget = int(BUDGET_SHARE * n_models * estimate(len(blobs[0])))
    with bench.running_server(["MODEL_SESSIONS_MEMORY", str(budget), "THREADS_PER_QUEUE", "2"]) as server:
        client = server.client()
        env = bench.environment(client)
        # The idle server: the ONNX backend imported, no model stored.
        client.execute_command("AI.MODELSTORE", "probe", "ONNX", "CPU", "BLOB", blobs[0])
        client.delete("probe")
        time.sleep(0.5)
        idle_rss = rss_bytes(server.proc.pid)
        watch = bench.Watch()
        store_s = store_all(client, blobs)
        print(f"stored {n_models} models in {store_s:.1f} s", flush=True)
        after_store = sessions(client)
        time.sleep(0.5)
        rss_stored = rss_bytes(server.proc.pid)

        phases = two_phases(Target(server.port), n_models, seconds, seed=1)
        after_run = sessions(client)
        rss_loaded = rss_bytes(server.proc.pid)
        memory = client.info("memory")
        # jemalloc (Redis's allocator, and here every library's malloc) keeps freed pages
        # for ~10 s: RSS once they are handed back is the steady figure.
        client.execute_command("MEMORY", "PURGE")
        time.sleep(0.5)
        rss_purged = rss_bytes(server.proc.pid)

        # Memory one loaded session adds: release them all and compare.
        client.execute_command("AI.CONFIG", "MODEL_SESSIONS_MEMORY", 1)
        deadline = time.monotonic() + 30
        while sessions(client)["loaded"] > 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        client.execute_command("MEMORY", "PURGE")
        time.sleep(0.5)
        rss_released = rss_bytes(server.proc.pid)
        env.update(watch.fields())

    loaded = after_run["loaded"]
    per_session = (rss_purged - rss_released) / loaded if loaded else 0.0
    bound = 1.3 * blob_bytes + budget + idle_rss
    return {
        "environment": env,
        "models": n_models, "blob_bytes_each": len(blobs[0]), "blob_bytes": blob_bytes,
        "budget_bytes": budget, "clients": CLIENTS, "zipf_s": ZIPF_S, "offered_share": OFFERED_SHARE,
        "store_seconds": round(store_s, 2),
        **phases,
        "sessions_after_store": after_store, "sessions_after_run": after_run,
        "redis_allocator": {"used_memory": memory["used_memory"],
                            "allocator_resident": memory.get("allocator_resident", 0)},
        "rss": {"idle": idle_rss, "stored": rss_stored, "loaded": rss_loaded, "purged": rss_purged, "released": rss_released, "bound": int(bound),
                "within_bound": rss_loaded <= bound, "purged_within_bound": rss_purged <= bound},
        "memory_per_loaded_session": {"measured_rss": int(per_session), "estimate": estimate(len(blobs[0]))},
    }


def ms(d: dict[str, float], k: str) -> str:
    return f"{d[k] / 1000:.2f} ms" if d else "-"


def phase_rows(result: dict[str, Any]) -> list[str]:
    """The two phases side by side: rates, hit ratio, latencies."""
    a, b = result["saturation"], result["latency"]
    return [
        "| figure | (a) saturation, closed loop | (b) open loop, evenly spaced arrivals |", "| --- | --- | --- |",
        f"| offered rate | as fast as {CLIENTS} clients go | {b['offered_runs_per_s']:,} runs/s "
        f"({OFFERED_SHARE:.0%} of (a)) |",
        f"| runs, achieved rate | {a['runs']:,} in {a['seconds']} s, {a['runs_per_s']:,} runs/s | "
        f"{b['runs']:,} in {b['seconds']} s, {b['runs_per_s']:,} runs/s |",
        f"| loaded-hit ratio | {a['hit_ratio']:.1%} | {b['hit_ratio']:.1%} |",
        f"| warm run p50 / p99 | {ms(a['warm_us'], 'p50')} / {ms(a['warm_us'], 'p99')} (queueing included) | "
        f"**{ms(b['warm_us'], 'p50')} / {ms(b['warm_us'], 'p99')}** |",
        f"| cold run p50 / p99 | {ms(a['cold_us'], 'p50')} / {ms(a['cold_us'], 'p99')} | "
        f"**{ms(b['cold_us'], 'p50')} / {ms(b['cold_us'], 'p99')}** |",
        f"| sends behind schedule p50 / p99 / max, dropped | - | {ms(b['late_send_us'], 'p50')} / "
        f"{ms(b['late_send_us'], 'p99')} / {ms(b['late_send_us'], 'max')}, {b['dropped']} |",
    ]


def report(result: dict[str, Any]) -> None:
    mib = 1024 * 1024
    rss, s = result["rss"], result["sessions_after_run"]
    warm, cold = result["latency"]["warm_us"], result["latency"]["cold_us"]

    body = [
        "| figure | value |", "| --- | --- |",
        f"| models (blob each) | {result['models']} ({result['blob_bytes_each']:,} B) |",
        f"| budget | {result['budget_bytes'] / mib:.1f} MiB (~{BUDGET_SHARE:.0%} of the models) |",
        f"| server cold load p50 / p99 | {s['cold_load_p50_us'] / 1000:.2f} ms / {s['cold_load_p99_us'] / 1000:.2f} ms |",
        f"| loaded at the end, evictions | {s['loaded']}, {s['evictions']:,} |",
        f"| RSS idle / after the stores / after the run / after MEMORY PURGE / after releasing all (purged) | "
        f"{rss['idle'] / mib:.0f} / {rss['stored'] / mib:.0f} / {rss['loaded'] / mib:.0f} / "
        f"{rss['purged'] / mib:.0f} / {rss['released'] / mib:.0f} MiB |",
        f"| Redis's allocator after the run: used / resident | "
        f"{result['redis_allocator']['used_memory'] / mib:.0f} / "
        f"{result['redis_allocator']['allocator_resident'] / mib:.0f} MiB |",
        f"| bound 1.3 x blobs + budget + idle | {rss['bound'] / mib:.0f} MiB: "
        f"right after the run {'within' if rss['within_bound'] else 'OVER'}, after MEMORY PURGE "
        f"{'within' if rss['purged_within_bound'] else 'OVER'} |",
        f"| memory per loaded ONNX session | {result['memory_per_loaded_session']['measured_rss'] / 1024:.0f} KiB "
        f"returned to the OS when all are released (purged RSS drop / sessions: a lower bound, the "
        f"allocators keep freed pages; benchmarks/session_memory.py measures the growth), "
        f"{result['memory_per_loaded_session']['estimate'] / 1024:.0f} KiB estimated |",
        "", *phase_rows(result), "",
        f"Warm and cold latencies in bold are phase (b)'s, from the scheduled send time. What limits them: "
        f"{os.cpu_count()} cores shared by the {CLIENTS} client processes, the server's main thread, "
        "its 2 workers and its loader; phase (a)'s latencies are mostly queueing in front of a saturated "
        "machine (Little's law), not the server's cost per run.",
    ]
    if "cluster" in result:
        cl = result["cluster"]
        body += ["", f"3-primary cluster, {cl['models']} models, the same budget per node "
                     f"({cl['budget_bytes_per_node'] / mib:.1f} MiB):", "", *phase_rows(cl), "",
                 "| node | models, loaded (bytes), evictions, RSS / bound |", "| --- | --- |",
                 *[f"| {n['port']} | {n['models']}, {n['loaded']} ({n['loaded_bytes'] / mib:.1f} MiB), "
                   f"{n['evictions']:,}, {n['rss'] / mib:.0f} / {n['bound'] / mib:.0f} MiB |" for n in cl["nodes"]],
                 "", f"Nodes over their budget after the run: {len(cl['nodes_over_budget'])}."]
    bench.show(body)

    def draw(plt: Any) -> Any:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        names = ["warm p50", "warm p99", "cold p50", "cold p99"]
        values = [(warm or {}).get("p50", 0), (warm or {}).get("p99", 0),
                  (cold or {}).get("p50", 0), (cold or {}).get("p99", 0)]
        bars = ax1.bar(names, [v / 1000 for v in values], color=["#4c72b0", "#4c72b0", "#dd8452", "#dd8452"])
        bench.annotate_bars(ax1, bars, [f"{v / 1000:.2f}" for v in values])
        ax1.set_ylabel("ms")
        b = result["latency"]
        ax1.set_title(f"AI.MODELEXECUTE at {b['offered_runs_per_s']:,.0f} runs/s offered, "
                      f"{result['models']} models, hit {b['hit_ratio']:.0%}", fontsize=9)
        mem = [rss["idle"], rss["loaded"], rss["bound"]]
        bars = ax2.bar(["idle RSS", "RSS under load", "bound"], [m / mib for m in mem],
                       color=["#999999", "#4c72b0", "#55a868"])
        bench.annotate_bars(ax2, bars, [f"{m / mib:.0f}" for m in mem])
        ax2.set_ylabel("MiB")
        ax2.set_title("memory")
        return fig

    bench.write_report(
        "many_models", title="Many models under a loaded-session budget", env=result["environment"],
        about=[f"- {result['models']} ONNX models, {CLIENTS} client processes (one connection and one Zipf "
               f"stream each, s={ZIPF_S}), budget {BUDGET_SHARE:.0%} of the models' session estimates, "
               "THREADS_PER_QUEUE 2",
               f"- (a) closed loop for {result['saturation']['seconds']} s; (b) open loop, evenly spaced arrivals per client at "
               f"{OFFERED_SHARE:.0%} of (a)'s throughput, latency from the scheduled send time",
               "- warm/cold: AI.INFO key SESSION before and after each run (not timed): warm if loaded "
               "before and session_loads unchanged"],
        body=body, data={k: v for k, v in result.items() if k != "environment"}, charts={"": draw})


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-cluster", action="store_true", help="skip the 3-primary cluster run")
    args = bench.parse_args(__doc__, quick="200 models (600 on the cluster), 3 + 5 seconds of load", parser=parser)
    n_models, seconds = (200, (3.0, 5.0)) if args.quick else (10_000, (30.0, 60.0))
    result = run(n_models, seconds)
    if not args.no_cluster:
        print(f"cluster: {3 * n_models} models on 3 primaries ...", flush=True)
        result["cluster"] = run_cluster(n_models, seconds, result["rss"]["idle"])
    report(result)


if __name__ == "__main__":
    main()
