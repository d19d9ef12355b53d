"""A loopback HTTP proxy in front of ``localstripe`` that adds what localstripe lacks.

localstripe (1.15) records a balance transaction for every charge and refund, but with ``fee = 0``,
has no disputes, and its payouts (EUR only) are not linked to any balance transaction. This proxy
is a real HTTP server (``ThreadingHTTPServer`` on a free port) that forwards every request to
localstripe and:

* gives charge balance transactions a Stripe-shaped fee (``fee``, ``fee_details``, ``net``):
  2.9 % + 30 in two-decimal currencies, 3.6 % in zero-decimal ones (deterministic per amount);
* serves disputes it creates (``GET /v1/disputes/<id>``, ``GET /v1/disputes``) with their
  balance transactions (funds withdrawn: ``adjustment`` / ``dispute``, amount -disputed, fee 1500;
  funds reinstated: ``adjustment`` / ``dispute_reversal``, amount +disputed, fee -1500);
* serves payouts it creates (``GET /v1/payouts[/<id>]``, newest first, ``limit``,
  ``starting_after``, ``created[gte]``/``created[lte]``) and ``GET /v1/balance_transactions?payout=``
  (the settled transactions plus the payout's own ``payout`` transaction, as Stripe lists them);
* lists all balance transactions (localstripe's and its own) newest first with the same paging.

Use the ``stripe_proxy`` fixture (session scope; registered in ``tests/conftest.py``) and
``proxy_app`` (the session app pointed at it). Tests drive Stripe-side events with the proxy's
Python methods: ``create_dispute``, ``withdraw_dispute_funds``, ``reinstate_dispute_funds``,
``create_payout``. Any client may also call them over HTTP: ``POST /_proxy/<method>`` with a JSON
body of keyword arguments (for benchmarks running in another process).
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

ZERO_DECIMAL = {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF",
                "XOF", "XPF"}
DISPUTE_FEE = 1500
_seq = itertools.count(1)


def stripe_fee(amount: int, currency: str) -> int:
    """The fee this proxy charges on a charge of ``amount`` minor units."""
    if currency.upper() in ZERO_DECIMAL:
        return (abs(amount) * 36 + 500) // 1000
    return (abs(amount) * 29 + 500) // 1000 + 30


def _rid(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(7)}{next(_seq):06d}"


class StripeProxy:
    """State and behaviour of the proxy; ``url`` is what ``STRIPE_API_BASE`` should be."""

    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.lock = threading.RLock()
        self.extra_txns: dict[str, dict] = {}  # our own balance transactions (disputes, payouts)
        self.disputes: dict[str, dict] = {}
        self.payouts: dict[str, dict] = {}
        self.payout_txns: dict[str, list[str]] = {}
        self.order: dict[str, int] = {}  # creation order, to sort objects created in the same second
        self.payout_lists = 0  # GET /v1/payouts requests served
        self.on_payout_list = None  # called (in the proxy's thread) before a payout list is served
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="stripe-proxy", daemon=True)

    def start(self) -> StripeProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- upstream ------------------------------------------------------------------------

    def upstream_get(self, path: str, params: dict | None = None, auth: str = "Bearer sk_test_proxy") -> dict:
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        req = urllib.request.Request(self.upstream + path + query, headers={"Authorization": auth})
        with urllib.request.urlopen(req, timeout=20) as resp:  # noqa: S310 - loopback
            return json.loads(resp.read())

    def _remember(self, obj_id: str) -> None:
        self.order[obj_id] = next(_seq)

    # ---- balance transactions --------------------------------------------------------------

    @staticmethod
    def with_fee(txn: dict) -> dict:
        """A localstripe balance transaction with the fee Stripe would have taken."""
        txn = dict(txn)
        if txn.get("type") == "charge" and not txn.get("fee"):
            fee = stripe_fee(int(txn["amount"]), txn["currency"])
            txn["fee"] = fee
            txn["fee_details"] = [{"amount": fee, "currency": txn["currency"], "type": "stripe_fee",
                                   "description": "Stripe processing fees", "application": None}]
        txn["net"] = int(txn["amount"]) - int(txn.get("fee") or 0)
        return txn

    def balance_transaction(self, txn_id: str, auth: str = "Bearer sk_test_proxy") -> dict:
        with self.lock:
            if txn_id in self.extra_txns:
                return dict(self.extra_txns[txn_id])
        return self.with_fee(self.upstream_get(f"/v1/balance_transactions/{txn_id}", auth=auth))

    def _new_txn(self, *, amount: int, fee: int, currency: str, type_: str, category: str, source: str,
                 description: str) -> dict:
        now = int(time.time())
        txn = {"id": _rid("txn_"), "object": "balance_transaction", "amount": amount, "available_on": now,
               "created": now, "currency": currency.lower(), "description": description, "exchange_rate": None,
               "fee": fee, "fee_details": ([{"amount": fee, "currency": currency.lower(), "type": "stripe_fee",
                                             "description": "Dispute fee", "application": None}] if fee else []),
               "net": amount - fee, "reporting_category": category, "source": source, "status": "available",
               "type": type_}
        self.extra_txns[txn["id"]] = txn
        self._remember(txn["id"])
        return txn

    def all_balance_transactions(self, auth: str) -> list[dict]:
        """Every balance transaction, newest first."""
        upstream, after = [], None
        while True:
            params = {"limit": 100, **({"starting_after": after} if after else {})}
            page = self.upstream_get("/v1/balance_transactions", params, auth=auth)
            upstream += [self.with_fee(t) for t in page.get("data", [])]
            if not page.get("has_more") or not page.get("data"):
                break
            after = page["data"][-1]["id"]
        for i, t in enumerate(upstream):
            self.order.setdefault(t["id"], -len(upstream) + i)  # localstripe lists oldest first
        with self.lock:
            rows = upstream + [dict(t) for t in self.extra_txns.values()]
        return sorted(rows, key=lambda t: (t["created"], self.order.get(t["id"], 0)), reverse=True)

    # ---- disputes --------------------------------------------------------------------------

    def create_dispute(self, payment_intent: str, amount: int | None = None, reason: str = "fraudulent") -> dict:
        """A dispute on the PaymentIntent's charge (no money moves until funds are withdrawn)."""
        pi = self.upstream_get(f"/v1/payment_intents/{payment_intent}")
        charge = pi.get("latest_charge")
        charge_id = charge.get("id") if isinstance(charge, dict) else charge
        with self.lock:
            dp = {"id": _rid("dp_"), "object": "dispute", "amount": int(amount or pi["amount"]),
                  "currency": pi["currency"], "charge": charge_id, "payment_intent": payment_intent,
                  "balance_transactions": [], "created": int(time.time()), "is_charge_refundable": False,
                  "livemode": False, "metadata": {}, "reason": reason, "status": "needs_response"}
            self.disputes[dp["id"]] = dp
            self._remember(dp["id"])
            return json.loads(json.dumps(dp))

    def withdraw_dispute_funds(self, dispute: str, fee: int = DISPUTE_FEE) -> dict:
        with self.lock:
            dp = self.disputes[dispute]
            txn = self._new_txn(amount=-dp["amount"], fee=fee, currency=dp["currency"], type_="adjustment",
                                category="dispute", source=dp["id"], description="Chargeback withdrawal")
            dp["balance_transactions"].append(txn)
            dp["status"] = "under_review"
            return json.loads(json.dumps(dp))

    def reinstate_dispute_funds(self, dispute: str, fee: int = -DISPUTE_FEE) -> dict:
        with self.lock:
            dp = self.disputes[dispute]
            txn = self._new_txn(amount=dp["amount"], fee=fee, currency=dp["currency"], type_="adjustment",
                                category="dispute_reversal", source=dp["id"], description="Chargeback reversal")
            dp["balance_transactions"].append(txn)
            dp["status"] = "won"
            return json.loads(json.dumps(dp))

    # ---- payouts ---------------------------------------------------------------------------

    def create_payout(self, balance_transactions: list[str], *, status: str = "paid", amount: int | None = None,
                      arrival_date: int | None = None, created: int | None = None) -> dict:
        """A payout settling these balance transactions. Its amount is the sum of their nets
        unless ``amount`` says otherwise (to test a payout that does not add up)."""
        txns = [self.balance_transaction(t) for t in balance_transactions]
        total = sum(t["net"] for t in txns)
        currency = txns[0]["currency"] if txns else "usd"
        with self.lock:
            po_id = _rid("po_")
            value = total if amount is None else int(amount)
            own = self._new_txn(amount=-value, fee=0, currency=currency, type_="payout", category="payout",
                                source=po_id, description="STRIPE PAYOUT")
            now = int(created or time.time())
            po = {"id": po_id, "object": "payout", "amount": value, "currency": currency,
                  "arrival_date": int(arrival_date or now + 2 * 86400), "automatic": True,
                  "balance_transaction": own["id"], "created": now, "description": "STRIPE PAYOUT",
                  "destination": "ba_test", "livemode": False, "metadata": {}, "method": "standard",
                  "source_type": "card", "statement_descriptor": None, "status": status, "type": "bank_account"}
            self.payouts[po_id] = po
            self.payout_txns[po_id] = [t["id"] for t in txns] + [own["id"]]
            self._remember(po_id)
            return dict(po)

    def set_payout_status(self, payout: str, status: str) -> dict:
        with self.lock:
            self.payouts[payout]["status"] = status
            return dict(self.payouts[payout])

    def payout_balance_transactions(self, payout: str, auth: str) -> list[dict]:
        with self.lock:
            ids = list(self.payout_txns[payout])
        return [self.balance_transaction(t, auth=auth) for t in ids]


def _page(rows: list[dict], query: dict[str, str], url: str) -> dict:
    """Stripe list paging over ``rows`` (already newest first)."""
    gte, lte = query.get("created[gte]"), query.get("created[lte]")
    if gte:
        rows = [r for r in rows if r["created"] >= int(gte)]
    if lte:
        rows = [r for r in rows if r["created"] <= int(lte)]
    after = query.get("starting_after")
    if after:
        ids = [r["id"] for r in rows]
        rows = rows[ids.index(after) + 1:] if after in ids else []
    limit = max(1, min(100, int(query.get("limit") or 10)))
    return {"object": "list", "url": url, "data": rows[:limit], "has_more": len(rows) > limit}


def _handler(proxy: StripeProxy):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, obj, status: int = 200) -> None:
            self._send(status, json.dumps(obj).encode())

        def _missing(self, what: str) -> None:
            self._json({"error": {"type": "invalid_request_error", "message": f"No such {what}"}}, 404)

        def _forward(self, method: str, body: bytes | None) -> None:
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() in ("authorization", "content-type", "idempotency-key", "stripe-version")}
            req = urllib.request.Request(proxy.upstream + self.path, data=body, method=method, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback
                    self._send(resp.status, resp.read(), resp.headers.get("Content-Type", "application/json"))
            except urllib.error.HTTPError as exc:
                self._send(exc.code, exc.read(), exc.headers.get("Content-Type", "application/json"))

        def do_GET(self):  # noqa: N802
            parsed = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parsed.query))
            parts = [p for p in parsed.path.split("/") if p]
            auth = self.headers.get("Authorization", "Bearer sk_test_proxy")
            try:
                if parts[:2] == ["v1", "balance_transactions"]:
                    if len(parts) == 3:
                        return self._json(proxy.balance_transaction(parts[2], auth=auth))
                    if "payout" in query:
                        if query["payout"] not in proxy.payouts:
                            return self._missing("payout")
                        rows = proxy.payout_balance_transactions(query["payout"], auth)
                        return self._json(_page(rows, {k: v for k, v in query.items() if k != "payout"},
                                                parsed.path))
                    return self._json(_page(proxy.all_balance_transactions(auth), query, parsed.path))
                if parts[:2] == ["v1", "disputes"]:
                    with proxy.lock:
                        if len(parts) == 3:
                            dp = proxy.disputes.get(parts[2])
                            return self._json(dp) if dp else self._missing("dispute")
                        rows = sorted(proxy.disputes.values(), key=lambda d: proxy.order[d["id"]], reverse=True)
                        return self._json(_page(json.loads(json.dumps(rows)), query, parsed.path))
                if parts[:2] == ["v1", "payouts"]:
                    if len(parts) == 2:
                        proxy.payout_lists += 1
                        if proxy.on_payout_list is not None:
                            proxy.on_payout_list()
                    with proxy.lock:
                        if len(parts) == 3:
                            po = proxy.payouts.get(parts[2])
                            return self._json(po) if po else self._missing("payout")
                        rows = sorted(proxy.payouts.values(), key=lambda p: (p["created"], proxy.order[p["id"]]),
                                      reverse=True)
                        return self._json(_page([dict(r) for r in rows], query, parsed.path))
            except urllib.error.HTTPError as exc:
                return self._send(exc.code, exc.read())
            return self._forward("GET", None)

        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.startswith("/_proxy/"):
                name = self.path.split("/")[2]
                if name not in ("create_dispute", "withdraw_dispute_funds", "reinstate_dispute_funds",
                                "create_payout", "set_payout_status"):
                    return self._missing("proxy method")
                try:
                    return self._json(getattr(proxy, name)(**json.loads(body or b"{}")))
                except (KeyError, TypeError, ValueError) as exc:
                    return self._json({"error": {"message": str(exc)}}, 400)
            return self._forward("POST", body)

        def do_DELETE(self):  # noqa: N802
            return self._forward("DELETE", None)

    return Handler


@pytest.fixture(scope="session")
def stripe_proxy(localstripe):
    proxy = StripeProxy(localstripe).start()
    yield proxy
    proxy.stop()


@pytest.fixture()
def proxy_app(app, stripe_proxy):
    """The session app pointed at the proxy (for tests using ``db``/``client``)."""
    old = app.config["STRIPE_API_BASE"]
    app.config["STRIPE_API_BASE"] = stripe_proxy.url
    yield app
    app.config["STRIPE_API_BASE"] = old
