"""Demo data for `make run`. Idempotent: running it twice changes nothing."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from retreat.extensions import db
from retreat.models import ProviderOrganization, Role
from retreat.services import accounts

DEMO_PASSWORD = "retreat-demo-2026"

DEMO_USERS = [
    ("admin", "admin@demo.retreat", "Avery Admin", "America/Denver"),
    ("facilitator", "facilitator@demo.retreat", "Fern Facilitator", "America/Denver"),
    ("provider", "provider@demo.retreat", "Dr. Priya Provider", "America/Denver"),
    ("finance", "finance@demo.retreat", "Finn Finance", "America/New_York"),
    ("participant", "participant@demo.retreat", "Pat Participant", "Europe/Berlin"),
]
DEMO_ORG = "Front Range Medical Partners"


def seed() -> list[tuple[str, str]]:
    org = db.session.scalar(select(ProviderOrganization).where(ProviderOrganization.name == DEMO_ORG))
    if org is None:
        org = accounts.create_provider_organization(DEMO_ORG, contact_email="clinic@demo.retreat")
    logins = []
    for role, email, name, tz in DEMO_USERS:
        user = accounts.get_by_email(email)
        if user is None:
            user = accounts.create_user(email=email, name=name, role=role, password=DEMO_PASSWORD, tz=tz,
                                        verified=True, provider_organization=org if role == Role.PROVIDER else None)
            if role == Role.PROVIDER:
                accounts.add_license(user, number="DR.0061234", state="CO",
                                     expires_on=date.today() + timedelta(days=365 * 2))
        logins.append((role, email))
    seed_consult_availability()
    seed_cohorts(org)
    return logins


# --------------------------------------------------------------------------------------------
# Cohorts: a retreat with an open cohort of 12 seats, a nearly full one with a waitlist, and a
# completed one; consent documents; a handful of demo participants (who cannot sign in).
# --------------------------------------------------------------------------------------------

DEMO_RETREAT_SLUG = "colorado-mountain-retreat"
_DEMO_PEOPLE = ["Alex Rivera", "Blair Chen", "Casey Morgan", "Devon Patel", "Emery Brooks", "Finley Okafor",
                "Gray Nakamura", "Harper Silva", "Indy Larsen", "Jordan Haddad", "Kai Moreau", "Logan Fischer",
                "Morgan Adeyemi", "Noor Rahman", "Oakley Byrne", "Parker Novak", "Quinn Avery", "Rowan Ellis"]


def seed_cohorts(org: ProviderOrganization | None, now=None) -> None:
    from datetime import UTC, datetime, time

    from retreat.models.cohorts import (
        Cohort,
        CohortSession,
        CohortStatus,
        DepositTiming,
        Enrollment,
        EnrollmentStatus,
        EnrollmentTransition,
        Retreat,
        SeatState,
    )
    from retreat.services import consents, enrollment, preparation, seats
    from retreat.timeutil import now_utc, zone

    if db.session.scalar(select(Retreat).where(Retreat.slug == DEMO_RETREAT_SLUG)) is not None:
        return
    now = now or now_utc()
    tz = "America/Denver"
    facilitator = accounts.get_by_email("facilitator@demo.retreat")

    def local(day: date, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(day, time(hour, minute), tzinfo=zone(tz)).astimezone(UTC)

    retreat = Retreat(
        slug=DEMO_RETREAT_SLUG, title="Colorado Mountain Retreat", location="Crestone, Colorado",
        summary="Six days of IFS-informed group work with ketamine-assisted sessions at 8,000 feet.",
        description=("A small group, a quiet mountain lodge, and a careful rhythm: arrival and orientation, "
                     "two dosing sessions run by our licensed partner medical provider, daily Internal Family "
                     "Systems group work, and time outdoors.\n\nEvery participant is screened and medically "
                     "cleared by the partner provider before the retreat. Integration circles continue online for "
                     "eight weeks afterwards."),
        included="Lodging in a shared or private room\nAll meals (vegetarian, allergies catered for)\n"
                 "Two medically supervised dosing sessions\nDaily IFS group sessions\n"
                 "Eight weekly online integration circles",
        is_published=True, created_at=now, updated_at=now)
    db.session.add(retreat)
    db.session.flush()

    def make_cohort(title, start_day, days, capacity, status, timing=DepositTiming.BEFORE_CLEARANCE):
        c = Cohort(retreat_id=retreat.id, title=title, starts_at=local(start_day, 15),
                   ends_at=local(start_day + timedelta(days=days), 11), timezone=tz, capacity=capacity,
                   seats_taken=0, currency="USD", price_minor=480000, deposit_minor=75000,
                   balance_due_on=start_day - timedelta(days=30),
                   refund_policy="Full refund of the deposit if you are not medically cleared or we cancel. "
                                 "Otherwise: full refund until 60 days before the start, 50% until 30 days, "
                                 "none after.",
                   deposit_timing=timing.value, provider_organization_id=org.id if org else None,
                   status=CohortStatus.OPEN.value, hold_minutes=30, offer_hours=48, created_at=now, updated_at=now)
        db.session.add(c)
        db.session.flush()
        c.status = status.value
        return c

    today = now.astimezone(zone(tz)).date()
    open_c = make_cohort("Spring cohort", today + timedelta(days=75), 6, 12, CohortStatus.OPEN)
    full_c = make_cohort("Early spring cohort", today + timedelta(days=45), 6, 8, CohortStatus.OPEN)
    past_c = make_cohort("Autumn cohort", today - timedelta(days=60), 6, 8, CohortStatus.COMPLETED)
    for c in (open_c, full_c, past_c):
        day = c.starts_at.astimezone(zone(tz)).date()
        for offset, kind, title, hour, place, video in [
            (-7, "orientation", "Online orientation", 17, "", "https://meet.example.com/orientation"),
            (0, "ifs", "Opening circle", 17, "Main hall", ""),
            (1, "dosing", "First dosing session", 9, "Ceremony room", ""),
            (2, "ifs", "IFS group session", 10, "Main hall", ""),
            (3, "dosing", "Second dosing session", 9, "Ceremony room", ""),
            (5, "integration_circle", "Closing integration circle", 10, "Main hall", ""),
        ]:
            db.session.add(CohortSession(
                cohort_id=c.id, kind=kind, title=title, starts_at=local(day + timedelta(days=offset), hour),
                ends_at=local(day + timedelta(days=offset), hour + 2), location=place, video_url=video,
                facilitator_id=facilitator.id if facilitator else None, created_at=now, updated_at=now))

    for kind, title, body in [
        ("participation", "Consent to participate",
         "I understand that this retreat includes ketamine-assisted sessions administered and supervised by a "
         "licensed partner medical provider, not by the retreat facilitators.\n\nI agree to follow the "
         "preparation, fasting and safety instructions, to arrange a ride home or companion after dosing days, "
         "and to tell the team if I feel unsafe at any time."),
        ("group-agreements", "Group agreements",
         "What is shared in the group stays in the group. I will speak for myself, listen without fixing, and "
         "respect everyone's pace and boundaries."),
    ]:
        consents.publish(kind=kind, title=title, body=body, actor=None, now=now)

    people = []
    for i, name in enumerate(_DEMO_PEOPLE, start=1):
        email = f"guest{i}@demo.retreat"
        person = accounts.get_by_email(email) or accounts.create_user(
            email=email, name=name, role=Role.PARTICIPANT, password=None, tz=tz, verified=True)
        people.append(person)

    # Open cohort: three confirmed, two in screening, one paying right now.
    for i, person in enumerate(people[:6]):
        e = enrollment.apply(open_c, person, now=now, motivation="Looking forward to it.")
        if i < 4:
            enrollment.submit_intake(e, now=now, actor=person)
        if i < 3:
            seats.take_hold(e, now=now, actor=person)
            enrollment.confirm_seat(e, now=now, actor=None, reason="Deposit paid (demo)")
            preparation.complete(e, "intention", answer="To meet my parts with curiosity.", now=now)
            e.lodging = f"Cabin {i + 1}"
        if i == 5:
            seats.take_hold(e, now=now, actor=person)

    # Nearly full cohort: seven confirmed, one seat offered to the first person waiting, two more waiting.
    for i, person in enumerate(people[6:18]):
        e = enrollment.apply(full_c, person, now=now, motivation="")
        enrollment.submit_intake(e, now=now, actor=person)
        enrollment.request_clearance(e, now=now, actor=None)
        enrollment.mark_cleared(e, now=now, actor=None, reason="Cleared by the partner provider (demo)")
        if i < 8:
            seats.take_hold(e, now=now, actor=person)
            enrollment.confirm_seat(e, now=now, actor=None, reason="Deposit paid (demo)")
    confirmed = [e for e in full_c.enrollments if e.seat == SeatState.CONFIRMED.value]
    db.session.flush()
    enrollment.withdraw(confirmed[-1], now=now, actor=None, reason="Had to withdraw for work (demo)")

    # Completed cohort: rows written directly (applications to a past cohort are refused by design).
    start = past_c.starts_at
    for person in people[:6]:
        e = Enrollment(cohort_id=past_c.id, participant_id=person.id, status=EnrollmentStatus.COMPLETED.value,
                       seat=SeatState.CONFIRMED.value, seat_confirmed_at=start - timedelta(days=50),
                       applied_at=start - timedelta(days=80), holds_taken=1, offers_made=0, motivation="",
                       lodging="", created_at=start - timedelta(days=80), updated_at=past_c.ends_at)
        db.session.add(e)
        db.session.flush()
        db.session.add(EnrollmentTransition(enrollment_id=e.id, at=past_c.ends_at, event="completed",
                                            from_status="attended", to_status="completed",
                                            reason="Completed the retreat (demo)"))
    past_c.seats_taken = 6
    db.session.flush()


DEMO_CONSULT_HOURS = "09:00-12:00, 13:00-17:00"  # Monday to Friday, America/Denver


def seed_consult_availability() -> None:
    """The demo facilitator takes free consults on weekdays, so the booking page has times."""
    from retreat.services import consults

    facilitator = accounts.get_by_email("facilitator@demo.retreat")
    if facilitator is None or consults.get_settings(facilitator) is not None:
        return
    consults.update_settings(
        facilitator, tz="America/Denver", duration_minutes=30, buffer_before_minutes=0, buffer_after_minutes=10,
        min_notice_minutes=12 * 60, horizon_days=60, daily_cap=8, slot_interval_minutes=30, change_cutoff_hours=24,
        video_link="https://meet.example.com/open-meadow-fern", accepting_bookings=True)
    consults.set_weekly_rules(facilitator, {weekday: DEMO_CONSULT_HOURS for weekday in range(5)})
