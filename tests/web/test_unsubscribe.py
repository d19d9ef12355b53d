"""One-click unsubscribe: the link in a real email, RFC 8058 POST, and the confirmation page."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from retreat.messaging import dispatcher, outbox
from retreat.messaging import unsubscribe as links
from retreat.messaging.transport import transport_from_config
from retreat.models import AuditEvent, OutboxMessage
from tests import factories
from tests.links import follow_link
from tests.links import token_of as links_token

NOW = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)  # 11:00 in Denver


def _path(app, email):
    return links.unsubscribe_url(email, secret=app.config["SECRET_KEY"], base_url="")


def test_link_from_a_real_email_unsubscribes_with_one_click(app, db, client, smtp_server, monkeypatch):
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    user = factories.user(tz="America/Denver")
    transport = transport_from_config({**app.config, **smtp_server.config()})
    outbox.enqueue(template="test_notice", dedupe_key="tip-1", to_user=user, essential=False, now=NOW)
    dispatcher.dispatch_due(NOW, transport=transport)
    url = smtp_server.messages[0]["List-Unsubscribe"].strip("<>")
    assert url.startswith("http://localhost/unsubscribe/")

    # What a mail client does (RFC 8058): POST the fixed body, no cookies, no CSRF token.
    resp = client.post(url.removeprefix("http://localhost"), data={"List-Unsubscribe": "One-Click"})
    assert resp.status_code == 200 and resp.get_json() == {"unsubscribed": True}
    db.session.refresh(user)
    assert user.marketing_opt_out is True
    assert db.session.query(AuditEvent).filter_by(action="messages.unsubscribe", object_id=str(user.id)).count() == 1
    # Repeating it is harmless.
    assert client.post(url.removeprefix("http://localhost"), data={"List-Unsubscribe": "One-Click"}).status_code == 200

    outbox.enqueue(template="test_notice", dedupe_key="tip-2", to_user=user, essential=False, now=NOW)
    outbox.enqueue(template="test_notice", dedupe_key="booking-2", to_user=user, essential=True, now=NOW)
    result = dispatcher.dispatch_due(NOW, transport=transport)
    assert result.cancelled == 1 and result.sent == 1
    assert db.session.query(OutboxMessage).filter_by(dedupe_key="tip-2").one().status == "cancelled"


def test_get_only_confirms_and_the_form_post_needs_csrf(app, db, client, monkeypatch):
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    user = factories.user()
    path = _path(app, user.email)
    page_url, page = follow_link(client, path)  # 303 to /unsubscribe: the token leaves the address
    assert page_url == "/unsubscribe" and links_token(path) not in page.text
    assert page.status_code == 200 and user.email in page.text and "Essential messages" in page.text
    db.session.refresh(user)
    assert user.marketing_opt_out is False  # link scanners fetching the URL change nothing

    assert client.post(page_url, data={}).status_code == 400  # no CSRF token
    assert client.post(path, data={}).status_code == 400  # the token address: not the one-click body
    db.session.refresh(user)
    assert user.marketing_opt_out is False

    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    assert 'action="/unsubscribe"' in page.text
    done = client.post(page_url, data={"csrf_token": token})
    assert done.status_code == 200 and "will no longer receive non-essential messages" in done.text
    db.session.refresh(user)
    assert user.marketing_opt_out is True


def test_the_confirmation_page_needs_the_link_opened_in_this_browser(app, db, client):
    factories.user(email="fresh-browser@example.com")
    r = client.get("/unsubscribe")
    assert r.status_code == 400 and "open that link again" in r.text
    assert client.post("/unsubscribe", data={}).status_code == 400


def test_tampered_or_unknown_links_get_a_clear_message(app, db, client):
    bad = client.get("/unsubscribe/not-a-real-token")
    assert bad.status_code == 400 and "not valid" in bad.text
    assert client.post("/unsubscribe/not-a-real-token", data={"List-Unsubscribe": "One-Click"}).status_code == 422
    gone = client.post(_path(app, "nobody@example.com"), data={"List-Unsubscribe": "One-Click"})
    assert gone.status_code == 404
