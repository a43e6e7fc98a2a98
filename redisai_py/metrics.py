"""The /metrics endpoint that a Prometheus server scrapes (module argument METRICS_PORT).

The contract, in plain words:

- The shim calls `serve(port, bind, render)` once, while the module loads, on
  the Redis main thread before the server serves (csrc/python/py_metrics.c).
  It binds or raises (the port is taken, the address is not this host's), and
  a raise fails the module load with its message. It returns the URL served.
- `render()` is the shim's C renderer. It reads only the counters the C side
  keeps (never a key), takes no Redis lock, drops the GIL while it works, and
  returns the exposition as bytes: the Prometheus text format 0.0.4, the same
  text AI.METRICS replies.
- The HTTP is prometheus_client's threaded WSGI server (one daemon thread per
  request), itself run on a daemon thread. Nothing is formatted in Python:
  prometheus_client's own registry would re-format every sample with the GIL
  held (about a second per scrape at a thousand keys on a small box), time the
  workers need for inference. So the app serves the C text as it is, gzipped
  when the scraper accepts it (zlib drops the GIL as it compresses).
- A scraper that stalls holds its own request thread only, for at most
  REQUEST_TIMEOUT seconds per read; nothing else waits for it. At most
  MAX_CONCURRENT_REQUESTS requests are served at once: a connection past
  that is answered 503 at once and closed, so a flood of connections cannot
  make threads (and their stacks) without bound.
"""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client.exposition import ThreadingWSGIServer, gzip_accepted

__all__ = ["CONTENT_TYPE", "MAX_CONCURRENT_REQUESTS", "REQUEST_TIMEOUT", "make_app", "serve"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_TIMEOUT = 10.0
MAX_CONCURRENT_REQUESTS = 8
PATH = "/metrics"

Render = Callable[[], bytes]
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def make_app(render: Render) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI app: GET or HEAD /metrics answers the exposition; anything else is refused."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        if method not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
            return [b""]
        if environ.get("PATH_INFO", "").rstrip("/") != PATH:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [f"the metrics are at {PATH}\n".encode()]
        body = render()
        headers = [("Content-Type", CONTENT_TYPE)]
        if gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING", "")):
            body = gzip.compress(body, compresslevel=1)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        start_response("200 OK", headers)
        return [b"" if method == "HEAD" else body]

    return app


class _QuietHandler(WSGIRequestHandler):
    """Logs nothing (a scrape every few seconds would flood the server's output)
    and gives up on a client that stops sending or reading."""

    timeout = REQUEST_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the stdlib's name)
        pass


class _BoundedServer(ThreadingWSGIServer):
    """prometheus_client's thread-per-request server, with a bound on the threads."""

    _BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
             b"Content-Length: 27\r\nConnection: close\r\n\r\ntoo many concurrent scrapes")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT_REQUESTS)
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()  # no thread started to release it
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request: socket.socket) -> None:
        # Answered from the accepting thread, so it must not block: a client
        # that does not read gets its connection closed without the text.
        try:
            request.setblocking(False)
            request.send(self._BUSY)
        except OSError:
            pass
        self.shutdown_request(request)


def _address(bind: str, port: int) -> tuple[socket.AddressFamily, str]:
    """The family and numeric address to listen on (IPv4 or IPv6, as `bind` says)."""
    family, _, _, _, sockaddr = socket.getaddrinfo(bind, port, type=socket.SOCK_STREAM,
                                                   flags=socket.AI_PASSIVE)[0]
    return family, str(sockaddr[0])


def serve(port: int, bind: str, render: Render) -> str:
    """Serve `render()` at http://bind:port/metrics from a daemon thread; returns that URL."""
    family, address = _address(bind, port)

    class Server(_BoundedServer):
        address_family = family

    httpd = make_server(address, port, make_app(render), Server, handler_class=_QuietHandler)
    threading.Thread(target=httpd.serve_forever, name="redisai-metrics", daemon=True).start()
    host = f"[{address}]" if family == socket.AF_INET6 else address
    return f"http://{host}:{httpd.server_port}{PATH}"
