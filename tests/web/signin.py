"""Signing a test client in.

``tests.conftest.login_as`` computes Flask-Login's session identifier without the test client's
User-Agent, so with ``session_protection = "strong"`` the session is dropped on the first request.
This version computes it from the client's own environ. (Fold into tests/conftest.py when merged.)
"""

from __future__ import annotations


def login_as(app, client, user) -> None:
    from flask_login.utils import _create_identifier

    with app.test_request_context(environ_base=dict(client.environ_base)):
        ident = _create_identifier()
    with client.session_transaction() as sess:
        sess.clear()
        sess["_user_id"] = user.get_id()
        sess["_fresh"] = True
        sess["_id"] = ident
