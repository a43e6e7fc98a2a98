"""Memory one loaded model session adds, by backend and blob size, and the budget's estimate fitted to it.

What it measures
    For each backend and each of three blob sizes, a fresh server stores N copies of one model
    under N keys (each key is a model of its own with a session of its own: sessions are per
    stored model, not per blob), and its RSS growth over the stores is read after MEMORY PURGE
    (jemalloc keeps freed pages for a while). Then the same on a fresh server started with
    MODEL_SESSIONS_MAX 1, where every store's session is released after the next load, so only
    blobs and keys stay. Memory per loaded session = (growth with all N sessions kept - growth
    with one kept) / N. (Releasing the sessions of a server and reading the drop does not work:
    the freed memory stays with the allocators for reuse, so RSS barely moves.)

    The models are tests/model_builders.py's fraud MLP (the same weights for every backend) as
    TorchScript, ONNX, a frozen TF GraphDef and TFLite, with a hidden layer of 16, 256 and 2048
    units: blobs of about 18 KiB, 0.3 MiB and 2.3 MiB, nearly all of it weights. The small one
    pins down the fixed cost per session, which a budget over thousands of small tenant models is
    made of; the bigger ones what a session adds per blob byte. Fewer copies of the bigger models suffice (their sessions are
    larger than the allocator's slack by far).

The fit
    Per backend, least squares (numpy) of measured = factor x blob + overhead over the three
    points, which is the form of the budget's estimate (csrc/exec/session_budget.c, ESTIMATES).
    Printed and written with it: the values proposed for ESTIMATES, which lean high rather than
    low, because a budget whose estimate is low lets RSS pass it: the factor rounded up to a
    tenth, then the overhead raised until the line is at or above every measured point, plus
    5 % of the small model's session, rounded up to 4 KiB. Set against the points: the estimate
    the server counts now (AI.INFO key SESSION, `session_bytes`).

Limits
    RSS differences carry allocator slack (a few hundred KiB over the whole set), hence N copies;
    a backend's first session also loads the framework itself, which the figure leaves out (the
    first copy is stored before the baseline). One run per point; three points per backend, so
    the fit's residuals are shown rather than trusted. Other processes on the machine only
    slow it down: RSS of a private server is not theirs.

How to run
    .venv/bin/python benchmarks/session_memory.py [--quick]

    It starts its own redis-servers on free loopback ports and stops them by PID. Results go to
    benchmarks/results/session_memory.{md,json,png}. About 2.5 minutes on 2 shared cores (--quick:
    a tenth of the copies, about 2 minutes: 24 server starts take most of it).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import redis

import _bench_common as bench

mb = bench.model_builders

# backend -> (AI.MODELSTORE options, builder of the MLP with a given hidden width)
MODELS: dict[str, tuple[list[str], Callable[[int], bytes]]] = {
    "TORCH": ([], lambda hidden: mb.torch_mlp(hidden=hidden)),
    "ONNX": ([], lambda hidden: mb.onnx_mlp(hidden=hidden)),
    "TF": (["INPUTS", "2", "transaction", "reference", "OUTPUTS", "1", "output"],
           lambda hidden: mb.tf_graph_def_mlp(hidden=hidden)),
    "TFLITE": ([], lambda hidden: mb.tflite_mlp(hidden=hidden)),
}

# hidden width -> copies stored per server (full run); --quick stores a tenth.
SIZES: dict[int, int] = {16: 300, 256: 100, 2048: 30}

KIB = 1024
ROUND_TO = 4 * KIB  # the proposed overhead is a multiple of this
MARGIN = 0.05  # of the smallest model's measured session, added to the proposed overhead


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


def store_copies(backend: str, blob: bytes, copies: int, module_args: list[str]) -> dict[str, Any]:
    """A fresh server with module_args stores `copies` copies of blob; RSS growth and what it loaded."""
    options = MODELS[backend][0]
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
        return {"growth": after - before, "loaded": loaded_sessions(client),
                "estimate": session_field(client, f"m{copies - 1}", "session_bytes"),
                "environment": bench.environment(client)}


def measure(backend: str, hidden: int, copies: int) -> dict[str, Any]:
    """Memory per loaded session = (growth with every session kept - growth with one kept) / copies."""
    blob = MODELS[backend][1](hidden)
    kept = store_copies(backend, blob, copies, [])
    one = store_copies(backend, blob, copies, ["MODEL_SESSIONS_MAX", "1"])
    return {
        "backend": backend, "hidden": hidden, "copies": copies, "blob_bytes": len(blob),
        "loaded_all_kept": kept["loaded"], "loaded_one_kept": one["loaded"],
        "growth_all_kept": kept["growth"], "growth_one_kept": one["growth"],
        "per_session": (kept["growth"] - one["growth"]) / copies,
        "per_stored_model": kept["growth"] / copies,
        "estimate": kept["estimate"], "environment": kept["environment"],
    }


def fit(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Least squares of per_session = factor x blob + overhead, and the values proposed for
    ESTIMATES: factor rounded up to a tenth, overhead raised to cover every point plus a margin."""
    blob = np.array([p["blob_bytes"] for p in points], dtype=np.float64)
    measured = np.array([p["per_session"] for p in points], dtype=np.float64)
    (factor, overhead), *_ = np.linalg.lstsq(np.column_stack([blob, np.ones_like(blob)]), measured, rcond=None)
    factor_x10 = max(0, math.ceil(round(factor * 10, 6)))
    smallest = measured[np.argmin(blob)]
    cover = float(np.max(measured - blob / 10 * factor_x10)) + MARGIN * max(smallest, 0.0)
    proposed_overhead = max(ROUND_TO, math.ceil(cover / ROUND_TO) * ROUND_TO)
    residuals = measured - (factor * blob + overhead)
    return {"factor": float(factor), "overhead": float(overhead),
            "residuals": [float(r) for r in residuals],
            "proposed_factor_x10": factor_x10, "proposed_overhead": proposed_overhead}


def proposed(blob_bytes: int, f: dict[str, Any]) -> int:
    """The proposed estimate, computed as RAI_SessionEstimate does."""
    return blob_bytes // 10 * f["proposed_factor_x10"] + f["proposed_overhead"]


def report_lines(results: list[dict[str, Any]], fits: dict[str, dict[str, Any]]) -> list[str]:
    body = ["| backend | blob | copies | memory per loaded session (measured) | estimate now | "
            "now / measured | fitted line | proposed estimate | proposed / measured | "
            "per stored model, session included |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        f = fits[r["backend"]]
        line = f["factor"] * r["blob_bytes"] + f["overhead"]
        new = proposed(r["blob_bytes"], f)

        def ratio(x: float) -> str:
            return f"{x / r['per_session']:.2f}" if r["per_session"] > 0 else "-"

        body.append(f"| {r['backend']} | {r['blob_bytes'] / KIB:,.1f} KiB | {r['copies']} | "
                    f"{r['per_session'] / KIB:,.0f} KiB | {r['estimate'] / KIB:,.0f} KiB | {ratio(r['estimate'])} | "
                    f"{line / KIB:,.0f} KiB | {new / KIB:,.0f} KiB | {ratio(new)} | "
                    f"{r['per_stored_model'] / KIB:,.0f} KiB |")
    body += ["", "The fit, per backend (measured = factor x blob + overhead, least squares over the points "
             "above), and the values proposed for csrc/exec/session_budget.c's ESTIMATES:", "",
             "| backend | fitted factor | fitted overhead | residuals | proposed factor | proposed overhead |",
             "| --- | ---: | ---: | --- | ---: | ---: |"]
    for backend, f in fits.items():
        residuals = ", ".join(f"{x / KIB:+,.0f}" for x in f["residuals"])
        body.append(f"| {backend} | {f['factor']:.2f} | {f['overhead'] / KIB:,.0f} KiB | {residuals} KiB | "
                    f"{f['proposed_factor_x10'] / 10:.1f} | {f['proposed_overhead'] / KIB:,.0f} KiB |")
    body += ["", "measured = (RSS growth over N stores with every session kept - the same with "
             "MODEL_SESSIONS_MAX 1) / N, RSS read after MEMORY PURGE; per stored model = the growth "
             "with every session kept / N: blob, key and session together. Proposed: the fitted factor "
             f"rounded up to a tenth, the overhead raised until the line is at or above every point, plus "
             f"{MARGIN:.0%} of the smallest model's session, rounded up to {ROUND_TO // KIB} KiB.", "",
             "```c", *[f"    [RAI_BACKEND_{backend}] = {{{f['proposed_factor_x10']}, "
                       f"{f['proposed_overhead'] // KIB} * 1024}},"
                       for backend, f in fits.items()], "```"]
    return body


def main() -> None:
    args = bench.parse_args(__doc__, quick="a tenth of the copies per size")
    sizes = {hidden: max(3, copies // 10) if args.quick else copies for hidden, copies in SIZES.items()}
    started = time.monotonic()
    results = []
    for backend in MODELS:
        for hidden, copies in sizes.items():
            print(f"{backend}, hidden {hidden}: {copies} copies ...", flush=True)
            results.append(measure(backend, hidden, copies))
    env = results[0].pop("environment")
    for r in results[1:]:
        r.pop("environment")
    fits = {backend: fit([r for r in results if r["backend"] == backend]) for backend in MODELS}
    elapsed = time.monotonic() - started
    print(f"measured in {elapsed / 60:.1f} minutes", flush=True)

    body = report_lines(results, fits)
    bench.show(body)

    def draw(plt: Any) -> Any:
        fig, axes = plt.subplots(1, len(MODELS), figsize=(4 * len(MODELS), 3.6))
        for ax, backend in zip(axes, MODELS):
            points = [r for r in results if r["backend"] == backend]
            f = fits[backend]
            xs = np.array([p["blob_bytes"] for p in points]) / KIB
            ax.plot(xs, [p["per_session"] / KIB for p in points], "o", label="measured")
            ax.plot(xs, [p["estimate"] / KIB for p in points], "x", label="estimate now")
            grid = np.linspace(0, xs.max() * 1.05, 50)
            ax.plot(grid, f["factor"] * grid + f["overhead"] / KIB, "-", label="fitted line")
            ax.plot(grid, f["proposed_factor_x10"] / 10 * grid + f["proposed_overhead"] / KIB, "--",
                    label="proposed")
            ax.set_title(backend)
            ax.set_xlabel("blob (KiB)")
        axes[0].set_ylabel("KiB per loaded session")
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        return fig

    bench.write_report(
        "session_memory", title="Memory per loaded model session, by backend and blob size", env=env,
        about=[f"- the fraud MLP with a hidden layer of {', '.join(map(str, sizes))} units per backend; "
               f"{', '.join(map(str, sizes.values()))} copies of each on a fresh server with every session "
               "kept and on one with MODEL_SESSIONS_MAX 1; RSS after MEMORY PURGE",
               f"- measured in {elapsed / 60:.1f} minutes; RSS figures: other processes on the machine slow "
               "the run down but do not enter the private servers' RSS"],
        body=body, data={"sizes": sizes, "results": results, "fits": fits, "seconds": round(elapsed)},
        charts={"": draw})


if __name__ == "__main__":
    main()
