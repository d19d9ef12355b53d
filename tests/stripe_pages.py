"""Recorded Stripe: a loopback HTTP server answering Stripe's API from pages recorded on disk.

For what localstripe cannot produce (disputes, Stripe fees, 100,000 balance transactions for a
benchmark): ``record(directory, resource, objects)`` writes Stripe-format list pages
(``{"object": "list", "data": [...], "has_more": ..., "url": ...}``, newest first, as Stripe
orders them) and ``record_objects(directory, objects)`` single objects; ``RecordedStripe``
serves them:

* ``GET /v1/<resource>?limit=&starting_after=&created[gte]=&created[lte]=`` a page, found from
  ``starting_after`` through a small index of each page's last id (the limit must be the one the
  pages were recorded with); ``created`` bounds are honoured like Stripe does;
* ``GET /v1/<resource>/<id>`` a recorded object, or Stripe's 404 error body.

Objects are expected already expanded where the caller asks for expansion (charges carry their
PaymentIntent). Pages are read from disk per request, so the server's memory does not grow with
the number of objects. Run it in a thread (tests) or in its own process (the benchmark).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

RESOURCES = ("balance_transactions", "charges", "refunds", "payouts", "payment_intents", "disputes")


class PageWriter:
    """Write one resource's pages as objects arrive (newest first), without holding them all."""

    def __init__(self, directory: Path, resource: str, page_size: int = 100):
        self.dir = Path(directory) / resource
        self.dir.mkdir(parents=True, exist_ok=True)
        self.resource = resource
        self.page_size = page_size
        self.buffer: list[dict] = []
        self.pages = 0
        self.index: dict[str, int] = {}

    def add(self, obj: dict) -> None:
        self.buffer.append(obj)
        if len(self.buffer) == self.page_size:
            self._flush(has_more=True)

    def _flush(self, *, has_more: bool) -> None:
        body = {"object": "list", "url": f"/v1/{self.resource}", "has_more": has_more, "data": self.buffer}
        (self.dir / f"page-{self.pages}.json").write_text(json.dumps(body, separators=(",", ":")))
        if self.buffer:
            self.index[self.buffer[-1]["id"]] = self.pages + 1
        self.pages += 1
        self.buffer = []

    def close(self) -> None:
        # the rest, or (after a full page written with has_more) an empty page that ends the list
        self._flush(has_more=False)
        (self.dir / "index.json").write_text(json.dumps({"page_size": self.page_size, "next": self.index}))


def record(directory: Path, resource: str, objects, page_size: int = 100) -> None:
    """Record ``objects`` (newest first) as list pages of ``resource``."""
    writer = PageWriter(directory, resource, page_size)
    for obj in objects:
        writer.add(obj)
    writer.close()


def record_objects(directory: Path, objects) -> None:
    """Record single objects for retrieval by id (``GET /v1/<resource>/<id>``)."""
    folder = Path(directory) / "objects"
    folder.mkdir(parents=True, exist_ok=True)
    for obj in objects:
        (folder / f"{obj['id']}.json").write_text(json.dumps(obj))


def _not_found(object_id: str) -> dict:
    return {"error": {"type": "invalid_request_error", "code": "resource_missing",
                      "message": f"No such object: '{object_id}'", "param": "id"}}


class _Handler(BaseHTTPRequestHandler):
    directory: Path
    index_cache: dict

    def log_message(self, *args):  # quiet
        return

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Request-Id", "req_recorded")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: dict) -> None:
        self._send(status, json.dumps(obj).encode())

    def _index(self, resource: str) -> dict | None:
        if resource not in self.index_cache:
            path = self.directory / resource / "index.json"
            self.index_cache[resource] = json.loads(path.read_text()) if path.exists() else None
        return self.index_cache[resource]

    def do_GET(self):  # noqa: N802 - http.server's name
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        query = dict(parse_qsl(url.query))
        if len(parts) == 2 and parts[0] == "v1" and parts[1] == "balance":
            return self._json(200, {"object": "balance", "available": [], "pending": []})
        if len(parts) == 3 and parts[0] == "v1":
            path = self.directory / "objects" / f"{parts[2]}.json"
            if path.exists():
                return self._send(200, path.read_bytes())
            return self._json(404, _not_found(parts[2]))
        if len(parts) != 2 or parts[0] != "v1":
            return self._json(404, _not_found(url.path))
        resource = parts[1]
        index = self._index(resource)
        if index is None:
            return self._json(200, {"object": "list", "url": f"/v1/{resource}", "has_more": False, "data": []})
        limit = int(query.get("limit", 10))
        if limit != index["page_size"]:
            return self._json(400, {"error": {"type": "invalid_request_error",
                                              "message": f"recorded with limit={index['page_size']}"}})
        after = query.get("starting_after")
        page_no = 0 if not after else index["next"].get(after)
        if page_no is None:
            return self._json(400, {"error": {"type": "invalid_request_error",
                                              "message": f"unknown starting_after {after}"}})
        gte, lte = query.get("created[gte]"), query.get("created[lte]")
        if gte is None and lte is None:
            return self._send(200, (self.directory / resource / f"page-{page_no}.json").read_bytes())
        page = json.loads((self.directory / resource / f"page-{page_no}.json").read_text())
        data = page["data"]
        if gte is not None:
            if any(o["created"] < int(gte) for o in data):
                page["has_more"] = False  # newest first: everything after is older still
            data = [o for o in data if o["created"] >= int(gte)]
        if lte is not None:
            data = [o for o in data if o["created"] <= int(lte)]
        page["data"] = data
        return self._json(200, page)


def make_server(directory: Path, port: int = 0) -> ThreadingHTTPServer:
    handler = type("RecordedStripeHandler", (_Handler,), {"directory": Path(directory), "index_cache": {}})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    return server


class RecordedStripe:
    """``with RecordedStripe(directory) as base_url:`` a server in a thread of this process."""

    def __init__(self, directory: Path):
        self.server = make_server(directory)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _serve(directory: str, ready) -> None:
    server = make_server(Path(directory))
    ready.send(server.server_address[1])
    ready.close()
    server.serve_forever()


class RecordedStripeProcess:
    """The same server in its own process (so its work and memory are not the measured process')."""

    def __init__(self, directory: Path):
        self.directory = str(directory)
        self.process = None
        self.url = ""

    def __enter__(self) -> str:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(self.directory, child), daemon=True)
        self.process.start()
        if not parent.poll(30):
            self.process.kill()
            raise RuntimeError("the recorded Stripe server did not start")
        self.url = f"http://127.0.0.1:{parent.recv()}"
        return self.url

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
