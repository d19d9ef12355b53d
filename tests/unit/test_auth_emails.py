"""The account emails render (text and HTML) with the context the services queue."""

from __future__ import annotations

import pytest

from retreat.accounts import users as accounts
from retreat.messaging import sealed
from tests import factories
from tests.web.account_helpers import queued

SUBJECTS = {
    "verify_email": "Please confirm your email address",
    "signup_existing_account": "Someone tried to create an account with your address",
    "password_reset": "Reset your password",
    "password_changed": "Your password was changed",
}


def _queue_all(user) -> dict:
    accounts.send_verification(user)
    accounts.sign_up(name="X", email=user.email, password="a-long-password-1", tz="UTC")
    accounts.request_password_reset(user.email)
    accounts.change_password(user, factories.PASSWORD, "a-new-long-password")
    return {t: sealed.context_of(queued(t, user.email)[0]) for t in SUBJECTS}


def _render(app, name: str, ctx: dict) -> tuple[str, str, str]:
    # show_crisis as ``messaging.render.render_email`` sets it for a participant's email
    full = dict(ctx, practice_name="Open Meadow Retreats", unsubscribe_url=None, show_crisis=True)
    txt = app.jinja_env.get_template(f"emails/{name}.txt")
    subject = "".join(txt.blocks["subject"](txt.new_context(full))).strip()
    return subject, txt.render(full), app.jinja_env.get_template(f"emails/{name}.html").render(full)


@pytest.mark.parametrize("name", sorted(SUBJECTS))
def test_account_emails_render_with_name_and_links(app, db, name):
    user = factories.user(verified=False, name="Robin Rivers")
    ctx = _queue_all(user)[name]
    assert ctx["name"] == "Robin Rivers"
    subject, text, html = _render(app, name, ctx)
    assert subject == SUBJECTS[name]
    assert "Hello Robin Rivers" in text and "Hello Robin Rivers" in html
    urls = [v for k, v in ctx.items() if k.endswith("_url")]
    assert urls
    for url in urls:
        assert url.startswith("http://localhost/account/")
        assert url in text and url in html
    assert "988" in text  # the base template's crisis line
