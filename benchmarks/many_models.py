"""Many small models on one server under a loaded-session budget (docs/model_sessions.md).

N distinct ONNX models (a [1, 160] x [160, 160] MatMul each, ~100 KB blobs, every one with its
own random weights, made on the spot) are stored on one server whose MODEL_SESSIONS_MEMORY fits
about 10 % of them loaded. Then 16 clients send AI.MODELEXECUTE for tenants drawn from a Zipf
distribution (s = 1.1) for a fixed time. Each request asks AI.INFO <key> SESSION just before its
run (not timed) to tell a warm run (session loaded) from a cold one.

Reported: throughput, the loaded-hit ratio, warm and cold run latency (p50/p99, client side),
the server's cold-load p50/p99 and eviction count (INFO ai_sessions), and memory: the server's
RSS against 1.3 x (blob bytes) + budget + the idle server's RSS (the issue's bound), plus the
memory one loaded session adds, measured by releasing all sessions (AI.CONFIG
MODEL_SESSIONS_MEMORY 1) and comparing RSS, against the budget's per-session estimate.

Under steady eviction RSS sits a few MiB above its figure after the stores, also after MEMORY
PURGE: jemalloc (which serves every malloc in Debian's redis-server) fragments under 16 clients'
churn. It is not a leak: 3,600 load/release cycles from one client leave RSS and used_memory flat
(checked while writing this script).

Limits: the clients are Python threads on the same machine (2 cores here), so throughput and
latency include the client's own cost and the server's share of 2 cores; "memory per loaded
session" is RSS after MEMORY PURGE with the sessions loaded minus the same with all released,
divided by their count, so allocator slack makes it noisy. The cluster run (3 primaries, no replicas, 3 x the models, the same budget per node)
starts its nodes with tests/cluster.py; its clients are RedisCluster objects, and the per-node
bound uses the single server's idle RSS.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import redis

import _bench_common as bench

DIM = 160  # 160 x 160 float32 weights: 102,400 bytes
ZIPF_S = 1.1
CLIENTS = 16
BUDGET_SHARE = 0.10


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


def client_loop(make_client: Any, n_models: int, seed: int, stop_at: float,
                out: dict[str, list[int]]) -> None:
    c = make_client()
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, DIM), dtype=np.float32).tobytes()
    warm, cold = out["warm"], out["cold"]
    while time.monotonic() < stop_at:
        tenant = int(rng.zipf(ZIPF_S)) - 1
        if tenant >= n_models:
            continue
        key, inp, outp = f"m{{t{tenant}}}", f"x{{t{tenant}}}", f"y{{t{tenant}}}"
        c.execute_command("AI.TENSORSET", inp, "FLOAT", 1, DIM, "BLOB", x)
        loaded = c.execute_command("AI.INFO", key, "SESSION")[21] == 1
        t0 = time.perf_counter_ns()
        c.execute_command("AI.MODELEXECUTE", key, "INPUTS", 1, inp, "OUTPUTS", 1, outp)
        (warm if loaded else cold).append(time.perf_counter_ns() - t0)


def zipf_load(make_client: Any, n_models: int, seconds: float, samples: dict[str, list[int]]) -> float:
    """CLIENTS threads for `seconds`; fills samples["warm"/"cold"]; returns the elapsed time."""
    per_client: list[dict[str, list[int]]] = [{"warm": [], "cold": []} for _ in range(CLIENTS)]
    stop_at = time.monotonic() + seconds
    threads = [threading.Thread(target=client_loop, args=(make_client, n_models, seed, stop_at, per_client[seed]))
               for seed in range(CLIENTS)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for part in per_client:
        samples["warm"] += part["warm"]
        samples["cold"] += part["cold"]
    return time.monotonic() - start


def run_cluster(n_per_node: int, seconds: float, idle_rss: int) -> dict[str, Any]:
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
            def make_client() -> RedisCluster:
                return RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port, socket_timeout=30)

            rc = make_client()
            for i, blob in enumerate(blobs):
                rc.execute_command("AI.MODELSTORE", f"m{{t{i}}}", "ONNX", "CPU", "BLOB", blob)
            samples: dict[str, list[int]] = {"warm": [], "cold": []}
            elapsed = zipf_load(make_client, n_models, seconds, samples)
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
    runs = len(samples["warm"]) + len(samples["cold"])
    return {"models": n_models, "budget_bytes_per_node": budget, "seconds": round(elapsed, 2),
            "runs": runs, "runs_per_s": round(runs / elapsed, 1),
            "hit_ratio": round(len(samples["warm"]) / runs, 4) if runs else 0.0,
            "warm_us": bench.percentiles_us(samples["warm"]) if samples["warm"] else {},
            "cold_us": bench.percentiles_us(samples["cold"]) if samples["cold"] else {},
            "nodes": nodes, "nodes_over_budget": over}


def run(n_models: int, seconds: float) -> dict[str, Any]:
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

        samples: dict[str, list[int]] = {"warm": [], "cold": []}
        elapsed = zipf_load(server.client, n_models, seconds, samples)
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

    runs = len(samples["warm"]) + len(samples["cold"])
    loaded = after_run["loaded"]
    per_session = (rss_purged - rss_released) / loaded if loaded else 0.0
    bound = 1.3 * blob_bytes + budget + idle_rss
    return {
        "environment": env,
        "models": n_models, "blob_bytes_each": len(blobs[0]), "blob_bytes": blob_bytes,
        "budget_bytes": budget, "clients": CLIENTS, "seconds": round(elapsed, 2), "zipf_s": ZIPF_S,
        "store_seconds": round(store_s, 2),
        "runs": runs, "runs_per_s": round(runs / elapsed, 1),
        "hit_ratio": round(len(samples["warm"]) / runs, 4) if runs else 0.0,
        "warm_us": bench.percentiles_us(samples["warm"]) if samples["warm"] else {},
        "cold_us": bench.percentiles_us(samples["cold"]) if samples["cold"] else {},
        "sessions_after_store": after_store, "sessions_after_run": after_run,
        "redis_allocator": {"used_memory": memory["used_memory"],
                            "allocator_resident": memory.get("allocator_resident", 0)},
        "rss": {"idle": idle_rss, "stored": rss_stored, "loaded": rss_loaded, "purged": rss_purged, "released": rss_released, "bound": int(bound),
                "within_bound": rss_loaded <= bound, "purged_within_bound": rss_purged <= bound},
        "memory_per_loaded_session": {"measured_rss": int(per_session), "estimate": estimate(len(blobs[0]))},
    }


def report(result: dict[str, Any]) -> None:
    mib = 1024 * 1024
    rss, warm, cold, s = result["rss"], result["warm_us"], result["cold_us"], result["sessions_after_run"]

    def pct(d: dict[str, float], k: str) -> str:
        return f"{d[k] / 1000:.2f} ms" if d else "-"

    body = [
        "| figure | value |", "| --- | --- |",
        f"| models (blob each) | {result['models']} ({result['blob_bytes_each']:,} B) |",
        f"| budget | {result['budget_bytes'] / mib:.1f} MiB (~{BUDGET_SHARE:.0%} of the models) |",
        f"| runs, throughput | {result['runs']:,} in {result['seconds']} s, {result['runs_per_s']:,} runs/s |",
        f"| loaded-hit ratio | {result['hit_ratio']:.1%} |",
        f"| warm run p50 / p99 | {pct(warm, 'p50')} / {pct(warm, 'p99')} |",
        f"| cold run p50 / p99 | {pct(cold, 'p50')} / {pct(cold, 'p99')} |",
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
        f"measured (purged RSS drop when all are released / sessions), {result['memory_per_loaded_session']['estimate'] / 1024:.0f} "
        "KiB estimated |",
    ]
    if "cluster" in result:
        cl = result["cluster"]
        body += ["", f"3-primary cluster, {cl['models']} models, the same budget per node "
                     f"({cl['budget_bytes_per_node'] / mib:.1f} MiB):", "",
                 "| figure | value |", "| --- | --- |",
                 f"| runs, throughput | {cl['runs']:,} in {cl['seconds']} s, {cl['runs_per_s']:,} runs/s |",
                 f"| loaded-hit ratio | {cl['hit_ratio']:.1%} |",
                 f"| warm run p50 / p99 | {pct(cl['warm_us'], 'p50')} / {pct(cl['warm_us'], 'p99')} |",
                 f"| cold run p50 / p99 | {pct(cl['cold_us'], 'p50')} / {pct(cl['cold_us'], 'p99')} |",
                 f"| nodes over their budget after the run | {len(cl['nodes_over_budget'])} |"]
        body += [f"| node {n['port']}: models, loaded (bytes), evictions, RSS / bound | {n['models']}, "
                 f"{n['loaded']} ({n['loaded_bytes'] / mib:.1f} MiB), {n['evictions']:,}, "
                 f"{n['rss'] / mib:.0f} / {n['bound'] / mib:.0f} MiB |" for n in cl["nodes"]]
    bench.show(body)

    def draw(plt: Any) -> Any:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        names = ["warm p50", "warm p99", "cold p50", "cold p99"]
        values = [(warm or {}).get("p50", 0), (warm or {}).get("p99", 0),
                  (cold or {}).get("p50", 0), (cold or {}).get("p99", 0)]
        bars = ax1.bar(names, [v / 1000 for v in values], color=["#4c72b0", "#4c72b0", "#dd8452", "#dd8452"])
        bench.annotate_bars(ax1, bars, [f"{v / 1000:.2f}" for v in values])
        ax1.set_ylabel("ms")
        ax1.set_title(f"AI.MODELEXECUTE, {result['models']} models, hit {result['hit_ratio']:.0%}")
        mem = [rss["idle"], rss["loaded"], rss["bound"]]
        bars = ax2.bar(["idle RSS", "RSS under load", "bound"], [m / mib for m in mem],
                       color=["#999999", "#4c72b0", "#55a868"])
        bench.annotate_bars(ax2, bars, [f"{m / mib:.0f}" for m in mem])
        ax2.set_ylabel("MiB")
        ax2.set_title("memory")
        return fig

    bench.write_report(
        "many_models", title="Many models under a loaded-session budget", env=result["environment"],
        about=[f"- {result['models']} ONNX models, {CLIENTS} clients, Zipf s={ZIPF_S}, "
               f"budget {BUDGET_SHARE:.0%} of the models' session estimates, THREADS_PER_QUEUE 2",
               "- warm/cold told apart by AI.INFO key SESSION just before each run (not timed)"],
        body=body, data={k: v for k, v in result.items() if k != "environment"}, charts={"": draw})


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-cluster", action="store_true", help="skip the 3-primary cluster run")
    args = bench.parse_args(__doc__, quick="200 models (600 on the cluster), 3 seconds of load", parser=parser)
    n_models, seconds = (200, 3.0) if args.quick else (10_000, 60.0)
    result = run(n_models, seconds)
    if not args.no_cluster:
        print(f"cluster: {3 * n_models} models on 3 primaries ...", flush=True)
        result["cluster"] = run_cluster(n_models, seconds, result["rss"]["idle"])
    report(result)


if __name__ == "__main__":
    main()
