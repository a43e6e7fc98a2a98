"""Memory one loaded model session adds, by backend, against the session budget's estimate.

What it measures
    For each backend, a fresh server stores N copies of one small model under N keys (each key
    is a model of its own with a session of its own: sessions are per stored model, not per
    blob), and its RSS growth over the stores is read after MEMORY PURGE (jemalloc keeps freed
    pages for a while). Then the same on a fresh server started with MODEL_SESSIONS_MAX 1, where
    every store's session is released after the next load, so only blobs and keys stay.
    Memory per loaded session = (growth with all N sessions kept - growth with one kept) / N.
    (Releasing the sessions of a server and reading the drop does not work: the freed memory
    stays with the allocators for reuse, so RSS barely moves.)
    Set against it: the estimate the budget counts for that model (AI.INFO key SESSION,
    `session_bytes`; csrc/exec/session_budget.c's per-backend blob multiple plus fixed part).

    The models are tests/model_builders.py's: the fraud MLP as TorchScript and as ONNX, the TF
    graph `mul`, and the TFLite add/mul model. Their blobs are small (tens of KB), so the figure is
    mostly each backend's fixed cost per session, which is what a budget over thousands of small
    tenant models is made of.

Limits
    RSS differences carry allocator slack (a few hundred KiB over the whole set), hence N copies;
    a backend's first session also loads the framework itself, which the figure leaves out (the
    first copy is stored before the baseline). One run.

How to run
    .venv/bin/python benchmarks/session_memory.py [--quick]

    It starts its own redis-servers on free loopback ports and stops them by PID. Results go to
    benchmarks/results/session_memory.{md,json,png}. About 3 minutes (--quick: 20 copies).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import redis

import _bench_common as bench

MODELS: dict[str, tuple[list[str], Any]] = {
    "TORCH": ([], bench.model_builders.torch_mlp),
    "ONNX": ([], bench.model_builders.onnx_mlp),
    "TF": (["INPUTS", "2", "a", "b", "OUTPUTS", "1", "mul"], bench.model_builders.tf_graph_def_mul),
    "TFLITE": ([], bench.model_builders.tflite_add_mul),
}


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def purged_rss(client: redis.Redis, pid: int) -> int:
    client.execute_command("MEMORY", "PURGE")
    time.sleep(0.5)
    return rss_bytes(pid)


def loaded_sessions(client: redis.Redis) -> int:
    return int(client.info("ai_sessions")["ai_loaded"])


def session_field(client: redis.Redis, key: str, name: str) -> int:
    reply = client.execute_command("AI.INFO", key, "SESSION")
    fields = dict(zip(reply[::2], reply[1::2]))
    return int(fields[name.encode()])


def store_copies(backend: str, copies: int, module_args: list[str]) -> dict[str, Any]:
    """A fresh server with module_args stores `copies` copies; RSS growth and what it loaded."""
    options, build = MODELS[backend]
    blob = build()
    with bench.running_server(module_args) as server:
        client = server.client(timeout_s=120)
        store = ["AI.MODELSTORE", "first", backend, "CPU", *options, "BLOB", blob]
        assert bench.ok(client.execute_command(*store)), backend  # the framework itself, left out
        before = purged_rss(client, server.proc.pid)
        for start in range(0, copies, 16):  # a few stores in flight, as a deploying client has
            pipe = client.pipeline(transaction=False)
            for i in range(start, min(start + 16, copies)):
                pipe.execute_command("AI.MODELSTORE", f"m{i}", backend, "CPU", *options, "BLOB", blob)
            assert all(bench.ok(r) for r in pipe.execute()), backend
        time.sleep(1.0)  # evictions after the last loads
        after = purged_rss(client, server.proc.pid)
        return {"blob_bytes": len(blob), "growth": after - before, "loaded": loaded_sessions(client),
                "estimate": session_field(client, f"m{copies - 1}", "session_bytes"),
                "environment": bench.environment(client)}


def measure(backend: str, copies: int) -> dict[str, Any]:
    """Memory per loaded session = (growth with every session kept - growth with one kept) / copies."""
    kept = store_copies(backend, copies, [])
    one = store_copies(backend, copies, ["MODEL_SESSIONS_MAX", "1"])
    return {
        "backend": backend, "copies": copies, "blob_bytes": kept["blob_bytes"],
        "loaded_all_kept": kept["loaded"], "loaded_one_kept": one["loaded"],
        "growth_all_kept": kept["growth"], "growth_one_kept": one["growth"],
        "per_session": (kept["growth"] - one["growth"]) / copies,
        "per_stored_model": kept["growth"] / copies,
        "estimate": kept["estimate"], "environment": kept["environment"],
    }


def main() -> None:
    args = bench.parse_args(__doc__, quick="20 copies per backend")
    copies = 20 if args.quick else 300
    results = []
    for backend in MODELS:
        print(f"{backend}: {copies} copies ...", flush=True)
        results.append(measure(backend, copies))
    env = results[0].pop("environment")
    for r in results[1:]:
        r.pop("environment")

    kib = 1024
    body = ["| backend | blob | memory per loaded session (measured) | budget's estimate | "
            "estimate / measured | per stored model, session included |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        ratio = r["estimate"] / r["per_session"] if r["per_session"] > 0 else float("nan")
        body.append(f"| {r['backend']} | {r['blob_bytes'] / kib:.1f} KiB | {r['per_session'] / kib:,.0f} KiB | "
                    f"{r['estimate'] / kib:,.0f} KiB | {ratio:.2f} | {r['per_stored_model'] / kib:,.0f} KiB |")
    body += ["", "measured = (RSS growth over N stores with every session kept - the same with "
             "MODEL_SESSIONS_MAX 1) / N, RSS read after MEMORY PURGE; per stored model = the growth "
             "with every session kept / N: blob, key and session together."]
    bench.show(body)

    def draw(plt: Any) -> Any:
        fig, ax = plt.subplots(figsize=(7, 4))
        xs = range(len(results))
        measured = ax.bar([x - 0.2 for x in xs], [r["per_session"] / kib for r in results], 0.4, label="measured")
        estimated = ax.bar([x + 0.2 for x in xs], [r["estimate"] / kib for r in results], 0.4, label="estimate")
        bench.annotate_bars(ax, measured, [f"{r['per_session'] / kib:.0f}" for r in results])
        bench.annotate_bars(ax, estimated, [f"{r['estimate'] / kib:.0f}" for r in results])
        ax.set_xticks(list(xs), [r["backend"] for r in results])
        ax.set_ylabel("KiB per loaded session")
        ax.set_title(f"memory per loaded session ({copies} copies per backend)")
        ax.legend()
        return fig

    bench.write_report(
        "session_memory", title="Memory per loaded model session, by backend", env=env,
        about=[f"- {copies} copies of one small model per backend, on a fresh server with every "
               "session kept and on one with MODEL_SESSIONS_MAX 1; RSS after MEMORY PURGE"],
        body=body, data={"copies": copies, "results": results}, charts={"": draw})


if __name__ == "__main__":
    main()
