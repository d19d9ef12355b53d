"""Nothing secret at rest in clear: after the demo seed, a password reset request, a consult booking
and a follow-up email, no column of any table holds a raw capability token or a checklist answer,
application motivation or discount evidence; the emails sent still carry links that work."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import JSON, String, Text, cast, select

from retreat.cli import demo
from retreat.cohorts import enrollment, preparation
from retreat.consults import booking as bookings
from retreat.consults import slots as free_times
from retreat.extensions import db as _db
from retreat.messaging import dispatcher, sealed
from retreat.messaging.transport import transport_from_config
from retreat.models import OutboxMessage
from retreat.payments import pricing
from retreat.privacy import export
from retreat.timeutil import now_utc
from tests import factories
from tests import factories_cohorts as fc
from tests import followup_helpers as fh
from tests.factories_cohorts import new_request
from tests.links import follow_link
from tests.unit.test_consult_support import BASE_URL, around_the_clock_facilitator, guest
from tests.unit.test_pricing_refund_policy import _code

DIET = "DIET-MARKER no gluten, peanut allergy"
EMERGENCY = "EMERGENCY-MARKER Sam Sister +1 303 555 0199"
MOTIVE = "MOTIVE-MARKER I want to meet my grief"
EVIDENCE = "EVIDENCE-MARKER RN 98765 CO"
CAPABILITY_LINK = re.compile(r"http://localhost(/(?:account/reset-password|consult/manage|follow-up)/[^\s\"<]+)")


@pytest.fixture()
def smtp(app, smtp_server):
    smtp_server.transport = transport_from_config({**app.config, **smtp_server.config()})
    return smtp_server


def stored_text() -> str:
    """Every text and JSON value of every table, as the database holds it."""
    values = []
    for table in _db.metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, String | Text | JSON):
                values += _db.session.scalars(select(cast(column, Text)).where(column.is_not(None))).all()
    return "\n".join(values)


def sealed_links() -> set[str]:
    """The raw capability tokens the flows produced (each link's last path segment)."""
    tokens = set()
    for msg in _db.session.scalars(select(OutboxMessage).where(OutboxMessage.private_enc.is_not(None))):
        private, private_ics = sealed.unseal(msg.private_enc)
        for value in [*private.values(), *private_ics.values()]:
            tokens |= {m.group(1).rsplit("/", 1)[1] for m in CAPABILITY_LINK.finditer(str(value))}
    return tokens


def _dispatch_time(now: datetime) -> datetime:
    """18:00 UTC at least 14 hours on: daytime for every recipient here, after the check-in is due."""
    at = (now + timedelta(hours=14)).replace(hour=18, minute=0, second=0, microsecond=0)
    return at if at >= now + timedelta(hours=14) else at + timedelta(days=1)


def test_no_capability_token_or_personal_field_is_stored_in_clear(app, client, db, smtp):
    demo.seed(online=False)  # deterministic: never a localstripe someone runs on the default port
    now = now_utc().replace(microsecond=0)
    factories.user(email="rae@example.com", name="Rae")
    db.session.commit()
    assert client.post("/account/forgot-password", data={"email": "rae@example.com"}).status_code == 200
    around_the_clock_facilitator(name="Fern")
    start = free_times.next_free_slots(now + timedelta(days=3), now, limit=1)[0].start
    booked = bookings.book(start=start, base_url=BASE_URL, now=now, **guest())
    s = fh.setup(dosing_end=now - timedelta(hours=26))
    enr = fh.confirmed(s, name="Robin Example")
    preparation.complete(enr, "dietary", answer=DIET, now=now)
    preparation.complete(enr, "emergency_contact", answer=EMERGENCY, now=now)
    new_request()
    applicant = enrollment.apply(fc.cohort(starts_at=now + timedelta(days=60)), factories.user(password=None),
                                 now=now, motivation=MOTIVE)
    _code(db, "HCP", percent=20, requires_approval=True)
    pricing.redeem_code(applicant, "HCP", now=now, actor=None, evidence=EVIDENCE)
    db.session.commit()

    tokens = sealed_links()
    assert booked.manage_token in tokens and len(tokens) >= 3  # reset, manage and follow-up links
    fields = (DIET, EMERGENCY, MOTIVE, EVIDENCE, "Looking forward to it.", "To meet my parts with curiosity.")
    at_rest = stored_text()
    assert not [t for t in tokens if t in at_rest]
    assert not [f for f in fields if f in at_rest]
    # read through the owning rule, and in the participant's own export
    assert {i.key: i.answer for i in enr.checklist}["dietary"] == DIET and applicant.motivation == MOTIVE
    for person, value in ((enr.participant, DIET), (applicant.participant, MOTIVE), (applicant.participant, EVIDENCE)):
        assert value in str(export.export_participant_data(person, person, ctx=None, now=now))
    new_request()

    dispatcher.dispatch_due(_dispatch_time(now), transport=smtp.transport)
    bodies = [m.get_body(("plain",)).get_content() for m in smtp.messages]
    paths = {m.group(1) for body in bodies for m in CAPABILITY_LINK.finditer(body)}
    kinds = {p.split("/")[1] if not p.startswith("/account") else "reset" for p in paths}
    assert {"reset", "consult", "follow-up"} <= kinds, paths
    _db.session.expire_all()
    at_rest = stored_text()
    assert not [p for p in paths if urlsplit(p).path.rsplit("/", 1)[1] in at_rest]  # sent: links cleared
    for path in paths:  # through a token-free page the link's token is handed to (issue #22)
        assert follow_link(client, path)[1].status_code == 200, path
    assert datetime.now(UTC) < booked.consult.end_at + timedelta(days=7)
