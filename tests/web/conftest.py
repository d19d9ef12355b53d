"""Web-test fixtures that correct two traps of the shared harness (fold into tests/conftest.py on merge).

1. ``tests.conftest.login_as`` builds the Flask-Login identifier without the client's User-Agent, so
   with ``session_protection = "strong"`` the session is dropped at once (see ``signin.py``).
2. The ``db`` fixture keeps one app context pushed for the whole test, so every request of the
   test shares one ``flask.g``: Flask-Login's cached ``g._login_user``, ``g.api_user`` and
   ``g.no_store`` would leak from one request (and one client) into the next. Each request here
   starts with an empty ``g``, as it does in production.
"""

import pytest
from flask import g, request_started

from tests import factories
from tests.web.signin import login_as


def _fresh_g(sender, **_extra):
    g.__dict__.clear()


@pytest.fixture(autouse=True)
def fresh_g_per_request(app):
    request_started.connect(_fresh_g, app)
    yield
    request_started.disconnect(_fresh_g, app)


@pytest.fixture()
def make_client(app, db):
    """make_client(role or user) -> a test client signed in as a new user of that role."""

    def _make(who="participant", **kw):
        user = who if not isinstance(who, str) else factories.user(role=who, **kw)
        db.session.commit()  # a savepoint in tests: survives a view's rollback after a refused change
        c = app.test_client()
        login_as(app, c, user)
        c.user = user
        return c

    return _make
