"""A real HTTP server on loopback that receives webhook deliveries (tests and bench).

``Receiver().start()`` listens on 127.0.0.1 (a free port) in a thread and records every POST
(headers, raw body). ``fail_next`` answers that many requests with ``fail_status`` first;
``status`` is the answer after that; ``stall_seconds`` delays each answer (a slow receiver);
``redirect_to`` answers 302 with that Location; ``body`` / ``fail_body`` are the answers' bodies.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    status: int = 200
    fail_next: int = 0
    fail_status: int = 500
    stall_seconds: float = 0.0
    redirect_to: str | None = None
    body: bytes = b"ok"  # the answer's body (an SMS provider answers JSON)
    fail_body: bytes | None = None  # the body of the ``fail_next`` answers (default: ``body``)
    received: list[Received] = field(default_factory=list)
    quiet: bool = True

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.received.append(Received(self.path, {k: v for k, v in self.headers.items()}, body))
                    failing = receiver.fail_next > 0
                    if failing:
                        receiver.fail_next -= 1
                if receiver.stall_seconds:
                    time.sleep(receiver.stall_seconds)
                if receiver.redirect_to and not failing:
                    self.send_response(302)
                    self.send_header("Location", receiver.redirect_to)
                else:
                    self.send_response(receiver.fail_status if failing else receiver.status)
                answer = receiver.fail_body if failing and receiver.fail_body is not None else receiver.body
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                if not receiver.quiet:
                    super().log_message(*args)

        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/retreat"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
