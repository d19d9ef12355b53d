"""The one commit point of a request (retreat.web.transaction): what a view's answer keeps.

A small app of its own carries views that write a row and then answer in each way; each test
asks, from another session on the same test connection, whether the row was kept.
"""

from __future__ import annotations

import pytest
from flask import abort, redirect, render_template_string
from sqlalchemy import select

from retreat import create_app
from retreat.accounts.models import SiteSetting
from retreat.core.errors import ValidationFailed
from retreat.extensions import db as _db
from retreat.web import transaction
from retreat.web.forms import refused
from tests.conftest import base_config


def _write(key: str) -> None:
    _db.session.add(SiteSetting(key=key, value="written"))
    _db.session.flush()


@pytest.fixture(scope="module")
def tx_app():
    app = create_app(base_config())

    @app.post("/t/redirect")
    def after_post():
        _write("redirect")
        return redirect("/")

    @app.post("/t/raise")
    def raises():
        _write("raise")
        raise RuntimeError("boom")

    @app.post("/t/form")
    def refused_form():
        _write("form")
        try:
            raise ValidationFailed("Check this.", field="name")
        except ValidationFailed as exc:
            return render_template_string("{{ m }}", m=exc.message), 422

    @app.get("/t/denied")
    def denied():
        _write("denied")  # stands for the clinical.denied audit event
        transaction.keep("the audit event of a refused read")
        abort(404)

    @app.post("/t/flash")
    def refused_then_redirect():
        _write("flash")
        refused("Not now.")
        return redirect("/")

    @app.post("/t/commit-now")
    def commit_now_then_fail():
        _write("commit-now")
        transaction.commit_now("before an outside call")
        _write("after")
        abort(502)

    return app


def _kept(db, key: str) -> bool:
    return db.session.scalar(select(SiteSetting.key).where(SiteSetting.key == key)) is not None


def test_a_redirect_after_a_post_commits(tx_app, db):
    assert tx_app.test_client().post("/t/redirect").status_code == 302
    assert _kept(db, "redirect")


def test_a_view_that_raises_rolls_back(tx_app, db):
    tx_app.config["PROPAGATE_EXCEPTIONS"] = False
    try:
        assert tx_app.test_client().post("/t/raise").status_code == 500
    finally:
        tx_app.config["PROPAGATE_EXCEPTIONS"] = None
    assert not _kept(db, "raise")


def test_a_form_re_rendered_with_422_keeps_nothing(tx_app, db):
    assert tx_app.test_client().post("/t/form").status_code == 422
    assert not _kept(db, "form")


def test_keep_keeps_the_audit_event_of_a_404(tx_app, db):
    assert tx_app.test_client().get("/t/denied").status_code == 404
    assert _kept(db, "denied")


def test_a_refusal_told_by_flash_keeps_nothing_although_it_redirects(tx_app, db):
    assert tx_app.test_client().post("/t/flash").status_code == 302
    assert not _kept(db, "flash")


def test_commit_now_keeps_what_came_before_an_error(tx_app, db):
    assert tx_app.test_client().post("/t/commit-now").status_code == 502
    assert _kept(db, "commit-now") and not _kept(db, "after")


def test_the_rule_of_statuses():
    from flask import Flask

    with Flask(__name__).test_request_context():
        assert transaction.should_commit(200) and transaction.should_commit(302)
        assert not transaction.should_commit(404) and not transaction.should_commit(500)
        transaction.discard("refused")
        assert not transaction.should_commit(200)
        transaction.keep("audit")
        assert transaction.should_commit(404) and not transaction.should_commit(503)
