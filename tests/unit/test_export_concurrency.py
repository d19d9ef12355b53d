"""Two asks for one person's export at the same moment (a double click, two tabs) build it once:
the other ask is told it is being prepared, and writes nothing. Two admins carrying out one deletion
at once do it once. Real threads against PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from retreat.core import personal_data
from retreat.core.errors import Conflict
from retreat.extensions import db
from retreat.models import AuditEvent, User
from retreat.privacy import export
from retreat.privacy.models import DataExport
from retreat.timeutil import now_utc
from tests import factories
from tests.conftest import is_postgres

pytestmark = pytest.mark.skipif(not is_postgres(), reason="row locks need PostgreSQL")


@pytest.fixture()
def slow_section():
    """A section that takes a while, so that two builds overlap; ``builds`` counts them."""
    builds = []

    def slow(person, **_):
        builds.append(person.id)
        time.sleep(0.6)
        return {"slow_marker": True}

    personal_data.register_section("zz_slow", slow, title="Slow", order=10_000)
    yield builds
    personal_data.unregister_section("zz_slow")


def _person(app) -> int:
    with app.app_context():
        user = factories.user("participant", password=None)
        db.session.commit()
        return user.id


def _ask_twice_at_once(app, user_id: int) -> list:
    results: list = []
    start = threading.Barrier(2)

    def ask(delay: float):
        with app.app_context():
            start.wait()
            time.sleep(delay)
            person = db.session.get(User, user_id)
            try:
                data = export.prepare(person, person, ctx=None, now=now_utc())
                db.session.commit()
                results.append(("built", data["slow_marker"]))
            except Conflict as exc:
                db.session.rollback()
                results.append(("busy", exc.message))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=ask, args=(d,)) for d in (0, 0.15)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def _state(app, user_id: int):
    with app.app_context():
        row = db.session.scalar(select(DataExport).where(DataExport.participant_id == user_id))
        audits = db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == export.ACTION, AuditEvent.object_id == str(user_id)))
        db.session.remove()
        return (row.times_built if row else 0), audits


@pytest.mark.parametrize("earlier_export", [False, True], ids=["first-export", "with-an-earlier-export"])
def test_two_asks_at_once_build_the_export_once(committing_app, slow_section, earlier_export):
    app = committing_app
    user_id = _person(app)
    if earlier_export:
        with app.app_context():
            person = db.session.get(User, user_id)
            export.prepare(person, person, ctx=None, now=now_utc())
            db.session.commit()
            db.session.remove()
        slow_section.clear()
    before = _state(app, user_id)
    results = _ask_twice_at_once(app, user_id)
    assert sorted(r[0] for r in results) == ["built", "busy"], results
    [(_, message)] = [r for r in results if r[0] == "busy"]
    assert message == export.BUSY and "already being prepared" in message
    assert slow_section == [user_id]  # built once
    times, audits = _state(app, user_id)
    assert (times, audits) == (before[0] + 1, before[1] + 1)
    # Asked again afterwards, it is built again (a new ask, not a duplicate).
    with app.app_context():
        person = db.session.get(User, user_id)
        assert export.prepare(person, person, ctx=None, now=now_utc())["slow_marker"] is True
        db.session.commit()
        db.session.remove()
    assert _state(app, user_id)[0] == before[0] + 2


def test_two_admins_carrying_out_one_deletion_at_once_do_it_once(committing_app):
    from retreat.models import OutboxMessage
    from retreat.privacy import deletion, erasure
    from retreat.privacy.models import DeletionRequest

    app = committing_app
    with app.app_context():
        person = factories.user("participant", password=None)
        admins = [factories.user("admin", password=None) for _ in range(2)]
        db.session.commit()
        req_id = deletion.request_deletion(person, reason="", now=now_utc()).request.id
        db.session.commit()
        admin_ids = [a.id for a in admins]
        db.session.remove()
    start = threading.Barrier(2)
    errors: list = []

    def carry_out(admin_id: int):
        with app.app_context():
            try:
                start.wait()
                req = db.session.get(DeletionRequest, req_id)
                erasure.carry_out(req, actor=db.session.get(User, admin_id), note="", now=now_utc())
                db.session.commit()
            except Exception as exc:  # noqa: BLE001 — reported below
                db.session.rollback()
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=carry_out, args=(i,)) for i in admin_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "privacy.deletion_done")) == 1
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.template == erasure.DONE_TEMPLATE)) == 1
        assert db.session.get(DeletionRequest, req_id).handled_by_id in admin_ids
        db.session.remove()
