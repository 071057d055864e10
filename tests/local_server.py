"""A real HTTP server on 127.0.0.1 for tests: FHIR servers that misbehave on purpose, JWKS endpoints.

Routes map a path (without query) to a function that writes the whole answer through the
handler, so a test can refuse, stall, trickle or lie exactly as a broken server would.
"""
from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Route = Callable[[BaseHTTPRequestHandler], None]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, routes: dict[str, Route]):
        self.routes = routes
        self.stopping = threading.Event()
        self.hits: list[str] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        self.server.hits.append(self.path)
        route = self.server.routes.get(path) or self.server.routes.get("*")
        if route is None:
            send_json(self, {"resourceType": "OperationOutcome", "issue": []}, status=404)
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up on a slow server
            route(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def send_json(handler: BaseHTTPRequestHandler, body: Any, status: int = 200,
              content_type: str = "application/fhir+json") -> None:
    """Answer with a JSON body."""
    send_bytes(handler, json.dumps(body).encode(), status, content_type)


def send_bytes(handler: BaseHTTPRequestHandler, data: bytes, status: int = 200,
               content_type: str = "application/octet-stream") -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def stopping(handler: BaseHTTPRequestHandler) -> threading.Event:
    """Set when the test ends, so a handler that stalls on purpose can stop stalling."""
    return handler.server.stopping  # type: ignore[attr-defined]


@contextmanager
def serve(routes: dict[str, Route]) -> Iterator[_Server]:
    """Run the routes on an ephemeral loopback port; yields the server (its `url` and `hits`)."""
    server = _Server(routes)
    server.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()


def refused_url() -> str:
    """A loopback URL where nothing listens: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
