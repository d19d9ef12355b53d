"""Sign-up does not tell whether an address has an account (issue #16, item 5).

A new address and an existing one get the same redirect, the same "check your email" page, the
same (anonymous) session, and take about as long: a password is hashed on both paths. The new
account is created unverified and signed in by nobody; its owner confirms the address and signs
in with the password. The existing owner is emailed how to sign in or reset instead."""

from __future__ import annotations

import re
import statistics
import time

from retreat.accounts import users as accounts
from tests import factories
from tests.web.account_helpers import queued, signup_form

_VARYING = re.compile(r'(name="csrf_token"[^>]*value=")[^"]*|(nonce=")[^"]*|(nonce-)[A-Za-z0-9+/=_-]+')


def _answer(app, email: str):
    c = app.test_client()
    r = c.post("/account/signup", data=signup_form(email=email))
    with c.session_transaction() as sess:
        keys = sorted(k for k in sess if k not in ("csrf_token", "_fresh"))
    page = c.get("/account/check-email")
    return (r.status_code, r.headers.get("Location"), keys, page.status_code,
            _VARYING.sub(lambda m: m.group(1) or m.group(2) or m.group(3) or "", page.get_data(as_text=True)))


def test_new_and_existing_addresses_get_the_same_answer(app, db):
    factories.user("participant", email="owner@example.com", name="Olive Owner")
    new, existing = _answer(app, "newcomer@example.com"), _answer(app, "owner@example.com")
    assert new == existing
    status, location, session_keys, _page_status, page = new
    assert status == 302 and location.endswith("/account/check-email") and "_user_id" not in session_keys
    assert "Check your email" in page and "how to sign in or reset your password" in page
    # What differs is only what each owner is emailed.
    newcomer = accounts.get_by_email("newcomer@example.com")
    assert newcomer is not None and not newcomer.email_verified
    assert [m.recipient_email for m in queued("verify_email")] == ["newcomer@example.com"]
    assert [m.recipient_email for m in queued("signup_existing_account")] == ["owner@example.com"]


def _timed_ms(client, email) -> float:
    started = time.perf_counter()
    r = client.post("/account/signup", data=signup_form(email=email))
    elapsed = (time.perf_counter() - started) * 1000
    assert r.status_code == 302
    return elapsed


def test_new_and_existing_sign_ups_take_about_as_long(app, db):
    """The real Argon2id hasher on both paths; 20 of each, interleaved (so that the machine's load
    weighs on both alike); the medians are printed (run with -s)."""
    app.config["PASSWORD_HASHER"] = "argon2id"  # not the test suite's cheapest parameters
    owners = [factories.user("participant", email=f"owner{i}@example.com").email for i in range(20)]
    c = app.test_client()
    _timed_ms(c, "warm-up@example.com")
    new, existing = [], []
    for i, owner in enumerate(owners):
        new.append(_timed_ms(c, f"new{i}@example.com"))
        existing.append(_timed_ms(c, owner))
    new_ms, existing_ms = statistics.median(new), statistics.median(existing)
    print(f"\nsign-up median of 20: new address {new_ms:.1f} ms, existing address {existing_ms:.1f} ms")
    assert 0.6 < existing_ms / new_ms < 1.67, (new_ms, existing_ms)
