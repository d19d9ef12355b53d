"""Paging through Stripe lists: balance transactions, charges, refunds and payouts.

Each ``*_pages`` function is a generator of pages (lists of plain, normalised dicts): it asks
Stripe for ``page_size`` objects at a time (at most 100, Stripe's limit), follows ``has_more``
with ``starting_after`` and never holds more than one page, so memory stays flat however many
objects there are. Objects are filtered to ``created`` in ``[since, until]``: Stripe filters on
its side with ``created[gte]``/``created[lte]`` and the same test is applied here too, because
the ``localstripe`` test server refuses (or ignores) those parameters. Whether to send them is
``STRIPE_LIST_CREATED_FILTER`` (unset: yes for api.stripe.com, no for localstripe).

Like the gateway (whose client this module uses) it returns dicts and raises
``gateway.GatewayError``; nothing else imports ``stripe``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from retreat.payments import gateway

MAX_PAGE = 100
Page = list[dict]


def _ts(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


def created_at(obj: dict) -> datetime | None:
    """A normalised object's ``created`` as an aware UTC datetime."""
    ts = obj.get("created")
    return None if ts is None else datetime.fromtimestamp(int(ts), UTC)


_id = gateway._id


def _cur(value: Any) -> str:
    return str(value or "").upper()


def _balance_transaction(raw: dict) -> dict:
    return {"id": raw["id"], "object": "balance_transaction", "type": raw.get("type") or "",
            "reporting_category": raw.get("reporting_category") or "", "amount": int(raw.get("amount") or 0),
            "fee": int(raw.get("fee") or 0), "net": int(raw.get("net") or 0), "currency": _cur(raw.get("currency")),
            "source": _id(raw.get("source")), "status": raw.get("status") or "", "created": raw.get("created"),
            "description": (raw.get("description") or "")[:200]}


def _charge(raw: dict) -> dict:
    pi = raw.get("payment_intent")
    pi_meta = pi.get("metadata") if isinstance(pi, dict) else None
    return {"id": raw["id"], "object": "charge", "amount": int(raw.get("amount") or 0),
            "amount_captured": int(raw.get("amount_captured") if raw.get("amount_captured") is not None
                                   else (raw.get("amount") or 0)),
            "currency": _cur(raw.get("currency")), "status": raw.get("status") or "",
            "paid": bool(raw.get("paid", raw.get("status") == "succeeded")),
            "captured": bool(raw.get("captured", True)), "refunded": bool(raw.get("refunded")),
            "disputed": bool(raw.get("disputed")), "payment_intent": _id(pi),
            "payment_intent_status": pi.get("status") if isinstance(pi, dict) else None,
            "metadata": dict(pi_meta or raw.get("metadata") or {}),
            "balance_transaction": _id(raw.get("balance_transaction")), "created": raw.get("created")}


def _refund(raw: dict) -> dict:
    return {"id": raw["id"], "object": "refund", "amount": int(raw.get("amount") or 0),
            "currency": _cur(raw.get("currency")), "status": raw.get("status") or "",
            "payment_intent": _id(raw.get("payment_intent")), "charge": _id(raw.get("charge")),
            "metadata": dict(raw.get("metadata") or {}), "created": raw.get("created")}


def _payout(raw: dict) -> dict:
    return {"id": raw["id"], "object": "payout", "amount": int(raw.get("amount") or 0),
            "currency": _cur(raw.get("currency")), "status": raw.get("status") or "",
            "arrival_date": raw.get("arrival_date"), "balance_transaction": _id(raw.get("balance_transaction")),
            "created": raw.get("created")}


def _dispute(raw: dict) -> dict:
    return {"id": raw["id"], "object": "dispute", "amount": int(raw.get("amount") or 0),
            "currency": _cur(raw.get("currency")), "status": raw.get("status") or "",
            "reason": raw.get("reason") or "", "charge": _id(raw.get("charge")),
            "payment_intent": _id(raw.get("payment_intent")), "created": raw.get("created")}


def _service(name: str):
    return getattr(gateway._client().v1, name)


def _pages(service: str, normalise: Callable[[dict], dict], *, since: datetime | None, until: datetime | None,
           page_size: int, extra: dict | None = None) -> Iterator[Page]:
    size = max(1, min(MAX_PAGE, int(page_size)))
    lo, hi = _ts(since), _ts(until)
    params: dict[str, Any] = {"limit": size, **(extra or {})}
    if gateway.server_side_filter() and (lo is not None or hi is not None):
        params["created"] = {k: v for k, v in (("gte", lo), ("lte", hi)) if v is not None}
    fetch = _service(service).list
    starting_after = None
    while True:
        page_params = dict(params, starting_after=starting_after) if starting_after else params
        raw = gateway._call(fetch, params=page_params)
        data = raw.get("data") or []
        out = []
        for obj in data:
            created = obj.get("created")
            if created is not None and ((lo is not None and created < lo) or (hi is not None and created > hi)):
                continue
            out.append(normalise(obj))
        if out:
            yield out
        if not raw.get("has_more") or not data:
            return
        starting_after = data[-1]["id"]


def balance_transaction_pages(*, since: datetime | None = None, until: datetime | None = None,
                              page_size: int = MAX_PAGE) -> Iterator[Page]:
    return _pages("balance_transactions", _balance_transaction, since=since, until=until, page_size=page_size)


def charge_pages(*, since: datetime | None = None, until: datetime | None = None,
                 page_size: int = MAX_PAGE) -> Iterator[Page]:
    """Charges with their PaymentIntent expanded, so its metadata (enrollment, cohort) is at hand."""
    return _pages("charges", _charge, since=since, until=until, page_size=page_size,
                  extra={"expand": ["data.payment_intent"]})


def refund_pages(*, since: datetime | None = None, until: datetime | None = None,
                 page_size: int = MAX_PAGE) -> Iterator[Page]:
    return _pages("refunds", _refund, since=since, until=until, page_size=page_size)


def payout_pages(*, since: datetime | None = None, until: datetime | None = None,
                 page_size: int = MAX_PAGE) -> Iterator[Page]:
    return _pages("payouts", _payout, since=since, until=until, page_size=page_size)


def iter_objects(pages: Iterator[Page]) -> Iterator[dict]:
    for page in pages:
        yield from page


# --------------------------------------------------------------------------------------------
# One object, for the few a reconciliation must look at individually
# --------------------------------------------------------------------------------------------


def _retrieve(service: str, object_id: str, normalise: Callable[[dict], dict]) -> dict | None:
    """The object, or None when Stripe does not know it (404)."""
    try:
        return normalise(gateway._call(_service(service).retrieve, object_id))
    except gateway.GatewayError as exc:
        status = getattr(exc.__cause__, "http_status", None)
        if status == 404:
            return None
        raise


def retrieve_dispute(dispute_id: str) -> dict | None:
    return _retrieve("disputes", dispute_id, _dispute)


def retrieve_balance_transaction(txn_id: str) -> dict | None:
    return _retrieve("balance_transactions", txn_id, _balance_transaction)


def retrieve_charge(charge_id: str) -> dict | None:
    return _retrieve("charges", charge_id, _charge)


def retrieve_refund(refund_id: str) -> dict | None:
    return _retrieve("refunds", refund_id, _refund)


def retrieve_payment_intent(pi_id: str) -> dict | None:
    """The PaymentIntent as the gateway normalises it (with ``created``), or None if unknown."""

    def norm(raw: dict) -> dict:
        return dict(gateway._payment_intent(raw), created=raw.get("created"))

    return _retrieve("payment_intents", pi_id, norm)
