"""Command line: `python -m redisai_py module-path | serve [--server redis|valkey] [--port N]
[--dir D] [-- args]`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from redisai_py import module_path
from redisai_py.servers import SERVERS, ServerKind, server_binary


def _server(kind: ServerKind) -> str:
    try:
        return str(server_binary(kind))
    except FileNotFoundError as exc:
        raise SystemExit(str(exc)) from None


def serve_argv(port: int, data_dir: Path, extra: list[str],
               server: ServerKind = "redis") -> list[str]:
    """The server command line that `serve` execs (redis-server or
    valkey-server, which take the same options): loopback, the given data
    folder, the module loaded, then whatever the caller adds (module
    arguments first, since they must follow the module path)."""
    return [
        _server(server),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data_dir),
        "--save", "3600 1 300 100 60 10000",
        "--loadmodule", str(module_path()),
        *extra,
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m redisai_py")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("module-path", help="print the absolute path of the built module")
    serve = sub.add_parser("serve", help="run redis-server (or valkey-server) in the foreground "
                                          "with the module")
    serve.add_argument("--server", choices=SERVERS, default="redis",
                       help="which server loads the module (default: redis-server on PATH; "
                            "valkey: $REDISAI_VALKEY_SERVER or the pinned one in the venv)")
    serve.add_argument("--port", type=int, default=6379)
    serve.add_argument("--dir", type=Path, default=Path(".data"))
    serve.add_argument(
        "extra", nargs=argparse.REMAINDER,
        help="after --, appended right after `--loadmodule <path>`: leading KEY VALUE pairs are "
             "module arguments (THREADS_PER_QUEUE 4), --options are redis-server's "
             "(--appendonly yes)")
    args = parser.parse_args(argv)

    if args.command == "module-path":
        print(module_path())
        return 0
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
    args.dir.mkdir(parents=True, exist_ok=True)
    cmd = serve_argv(args.port, args.dir.resolve(), extra, args.server)
    print(" ".join(cmd), file=sys.stderr, flush=True)
    os.execv(cmd[0], cmd)
    return 1  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
