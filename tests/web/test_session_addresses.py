"""Sessions are not bound to the client's address (issue #22 item 8).

Flask-Login's "strong" protection hashed the leftmost ``X-Forwarded-For`` as the client sent it and
dropped the sign-in whenever it changed: a phone moving from Wi-Fi to mobile data was signed out,
and a client could choose the value. A sign-in is now its server session (revocable: see
test_session_security.py for the stolen cookie replayed after sign-out); the address the proxy
saw is only recorded as the session's last address.
"""

from __future__ import annotations

from sqlalchemy import select

from retreat import create_app
from retreat.accounts.sessions import UserSession
from retreat.audit.models import AuditEvent
from retreat.core.crypto import hash_token
from tests import factories
from tests.conftest import base_config

NGINX = {"REMOTE_ADDR": "127.0.0.1"}  # gunicorn sees every request come from the local nginx


def _row(db, client) -> UserSession:
    with client.session_transaction() as sess:
        raw = sess["_user_id"]
    return db.session.scalar(select(UserSession).where(UserSession.token_hash == hash_token(raw)))


def _sign_in(client, user, **kw):
    r = client.post("/account/login", data={"email": user.email, "password": factories.PASSWORD}, **kw)
    assert r.status_code == 302, r.get_data(as_text=True)[:300]


def test_a_phone_changing_address_behind_the_proxy_stays_signed_in(db):
    app = create_app(base_config(TRUSTED_PROXY_HOPS=1))
    user = factories.user("participant")
    db.session.commit()
    phone = app.test_client()
    phone.environ_base.update(NGINX)
    _sign_in(phone, user, headers={"X-Forwarded-For": "203.0.113.7"})
    assert _row(db, phone).ip == "203.0.113.7"
    r = phone.get("/account/settings", headers={"X-Forwarded-For": "198.51.100.23"})  # now on mobile data
    assert r.status_code == 200 and user.email.encode() in r.data
    row = _row(db, phone)
    db.session.refresh(row)
    assert row.ip == "198.51.100.23" and row.revoked_at is None  # the list of sessions shows where it is now
    assert b"198.51.100.23" in phone.get("/account/settings", headers={"X-Forwarded-For": "198.51.100.23"}).data


def test_a_changed_address_without_a_proxy_stays_signed_in(app, db):
    user = factories.user("facilitator")
    db.session.commit()
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = "192.0.2.10"
    _sign_in(c, user)
    c.environ_base["REMOTE_ADDR"] = "192.0.2.99"
    assert c.get("/facilitator/").status_code == 200


def test_the_cookie_carries_no_hash_of_address_and_browser(app, db):
    user = factories.user("participant")
    db.session.commit()
    c = app.test_client()
    _sign_in(c, user)
    with c.session_transaction() as sess:
        assert "_id" not in sess and sess["_fresh"] is True


def _signed_in_address(db, *, hops: int, peer: str, forwarded: str, **config) -> str:
    """The client address the app recorded for a sign-in (its audit event and its session)."""
    app = create_app(base_config(TRUSTED_PROXY_HOPS=hops, **config))
    user = factories.user("participant")
    db.session.commit()
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = peer
    _sign_in(c, user, headers={"X-Forwarded-For": forwarded, "X-Forwarded-Proto": "https"})
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "auth.login",
                                                       AuditEvent.object_id == str(user.id)))
    assert event.ip == _row(db, c).ip
    return event.ip


def test_forged_forwarded_for_does_not_change_the_client_address(db):
    # no trusted proxy: the header is ignored
    assert _signed_in_address(db, hops=0, peer="192.0.2.5", forwarded="203.0.113.66") == "192.0.2.5"
    # behind nginx: only the address nginx appended counts, whatever the client put before it
    assert _signed_in_address(db, hops=1, peer="127.0.0.1", forwarded="203.0.113.66, 198.51.100.8") == "198.51.100.8"
    # a client reaching gunicorn past the proxy (not from a proxy's address) forges nothing
    assert _signed_in_address(db, hops=1, peer="192.0.2.5", forwarded="203.0.113.66") == "192.0.2.5"
    # proxies on other machines are named by address or network
    assert _signed_in_address(db, hops=1, peer="10.0.3.4", forwarded="203.0.113.9",
                              TRUSTED_PROXY_ADDRESSES="10.0.3.0/24, 10.0.4.4") == "203.0.113.9"
    assert _signed_in_address(db, hops=1, peer="10.0.5.4", forwarded="203.0.113.9",
                              TRUSTED_PROXY_ADDRESSES="10.0.3.0/24, 10.0.4.4") == "10.0.5.4"


def test_https_is_believed_only_from_a_proxy(db):
    app = create_app(base_config(TRUSTED_PROXY_HOPS=1, BASE_URL="http://localhost"))
    c = app.test_client()
    direct = c.get("/", headers={"X-Forwarded-Proto": "https"}, environ_base={"REMOTE_ADDR": "192.0.2.5"})
    assert "Strict-Transport-Security" not in direct.headers
    proxied = c.get("/", headers={"X-Forwarded-Proto": "https"}, environ_base=NGINX)
    assert "max-age" in proxied.headers.get("Strict-Transport-Security", "")


def test_a_bad_trusted_proxy_address_refuses_to_start():
    for bad, named in (("10.0.0.300", "'10.0.0.300'"), ("nginx.internal", "'nginx.internal'"), (" , ", "empty")):
        try:
            create_app(base_config(TRUSTED_PROXY_HOPS=1, TRUSTED_PROXY_ADDRESSES=bad))
        except RuntimeError as err:
            assert "TRUSTED_PROXY_ADDRESSES" in str(err) and named in str(err)
        else:
            raise AssertionError(f"{bad!r} was accepted")
