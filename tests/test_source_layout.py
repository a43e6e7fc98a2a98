"""The shim's sources stay in layers: a reader can find a part by its folder, and
no file reaches up into a layer that depends on it.

csrc/ holds the API declaration (rm_api.h) and the start-up (module.c); below
module.c the folders, top to bottom: commands/ (handlers, parsers, replies),
python/ (the interpreter, the GIL, the bridge, the job kinds that run in
Python), exec/ (jobs, queues, DAG scheduling, waiting, Redis calls from
workers), types/ (tensor, model and script objects, their Redis types and
codecs, settings), base/ (argument readers, logging, the reaper).
"""

from __future__ import annotations

import re
from pathlib import Path

CSRC = Path(__file__).resolve().parent.parent / "csrc"
LAYERS = ["base", "types", "exec", "python", "commands"]  # bottom to top
INCLUDE = re.compile(r'^#include "([^"]+)"', re.MULTILINE)


def rank(path: str) -> int:
    """base 1 ... commands 5; rm_api.h 0; module.c (the top) 6."""
    folder = path.split("/")[0]
    if folder in LAYERS:
        return LAYERS.index(folder) + 1
    return 0 if path.startswith("rm_api") else len(LAYERS) + 1


def sources() -> dict[str, list[str]]:
    """Each source file (relative to csrc/) and the project headers it includes."""
    return {str(p.relative_to(CSRC)): INCLUDE.findall(p.read_text())
            for p in sorted(CSRC.rglob("*")) if p.suffix in (".c", ".h")}


def test_every_source_lives_in_a_layer_folder() -> None:
    files = sources()
    assert {f for f in files if "/" not in f} == {"rm_api.c", "rm_api.h", "module.c"}
    assert {f.split("/")[0] for f in files if "/" in f} == set(LAYERS)


def test_includes_name_their_layer_and_point_down() -> None:
    files = sources()
    wrong = []
    for source, includes in files.items():
        for header in includes:
            assert header in files, f"{source} includes {header}, which is not a csrc path"
            if rank(header) > rank(source):
                wrong.append(f"{source} -> {header}")
    assert wrong == []


def test_no_include_circle() -> None:
    """Within a layer too: a file's .c and .h count as one part."""
    part = lambda f: f.rsplit(".", 1)[0]  # noqa: E731
    graph: dict[str, set[str]] = {}
    for source, includes in sources().items():
        graph.setdefault(part(source), set()).update(part(h) for h in includes if part(h) != part(source))
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        assert node not in path, "include circle: " + " -> ".join(path + [node])
        if node in done:
            return
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, path + [node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])


def test_every_c_file_is_built() -> None:
    cmake = (CSRC.parent / "CMakeLists.txt").read_text()
    listed = set(re.findall(r"^\s+csrc/(\S+\.c)$", cmake, re.MULTILINE))
    assert listed == {f for f in sources() if f.endswith(".c")}
