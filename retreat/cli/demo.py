"""Demo data for `make run`. Idempotent: running it twice changes nothing."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from retreat.accounts import users as accounts
from retreat.accounts.models import ProviderOrganization, Role
from retreat.extensions import db

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
    seed_dosing_demo(org)
    seed_followups_demo()
    return logins


# --------------------------------------------------------------------------------------------
# Cohorts: a retreat with an open cohort of 12 seats, a nearly full one with a waitlist, and a
# completed one; consent documents; a handful of demo participants (who cannot sign in).
# --------------------------------------------------------------------------------------------

DEMO_RETREAT_SLUG = "colorado-mountain-retreat"
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                 "twelve")


def circles_in_plan() -> str:
    """How many weekly integration circles a new cohort's plan holds, in words (the demo's texts
    say what the plan does: ``integration.plan.TEMPLATE``)."""
    from retreat.integration.plan import TEMPLATE

    weeks = TEMPLATE["circle_weeks"]
    return _NUMBER_WORDS[weeks] if weeks < len(_NUMBER_WORDS) else str(weeks)
_DEMO_PEOPLE = ["Alex Rivera", "Blair Chen", "Casey Morgan", "Devon Patel", "Emery Brooks", "Finley Okafor",
                "Gray Nakamura", "Harper Silva", "Indy Larsen", "Jordan Haddad", "Kai Moreau", "Logan Fischer",
                "Morgan Adeyemi", "Noor Rahman", "Oakley Byrne", "Parker Novak", "Quinn Avery", "Rowan Ellis"]


def seed_cohorts(org: ProviderOrganization | None, now=None) -> None:
    from datetime import UTC, datetime, time

    from retreat.cohorts import enrollment, preparation, seats
    from retreat.cohorts.models import (
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
    from retreat.core import locking
    from retreat.timeutil import now_utc, zone

    if db.session.scalar(select(Retreat).where(Retreat.slug == DEMO_RETREAT_SLUG)) is not None:
        return
    circles = circles_in_plan()
    now = now or now_utc()
    tz = "America/Denver"
    facilitator = accounts.get_by_email("facilitator@demo.retreat")

    def local(day: date, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(day, time(hour, minute), tzinfo=zone(tz)).astimezone(UTC)

    retreat = Retreat(
        slug=DEMO_RETREAT_SLUG, title="Colorado Mountain Retreat", location="Crestone, Colorado", region="CO", country="US",
        summary="Six days of IFS-informed group work with ketamine-assisted sessions at 8,000 feet.",
        description=("A small group, a quiet mountain lodge, and a careful rhythm: arrival and orientation, "
                     "two dosing sessions run by our licensed partner medical provider, daily Internal Family "
                     "Systems group work, and time outdoors.\n\nEvery participant is screened and medically "
                     "cleared by the partner provider before the retreat. Integration circles continue online for "
                     f"{circles} weeks afterwards."),
        included="Lodging in a shared or private room\nAll meals (vegetarian, allergies catered for)\n"
                 "Two medically supervised dosing sessions\nDaily IFS group sessions\n"
                 f"{circles.capitalize()} weekly online integration circles",
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
        preparation.publish_consent(kind=kind, title=title, body=body, actor=None, now=now)

    people = []
    for i, name in enumerate(_DEMO_PEOPLE, start=1):
        email = f"guest{i}@demo.retreat"
        person = accounts.get_by_email(email) or accounts.create_user(
            email=email, name=name, role=Role.PARTICIPANT, password=None, tz=tz, verified=True)
        people.append(person)

    locking.lock_many(Cohort, [open_c.id, full_c.id])  # both cohorts before their enrollments (LOCK_ORDER)
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


def seed_dosing_demo(org: ProviderOrganization, now=None) -> None:
    """The demo provider staffs the open Spring cohort's dosing sessions; of its confirmed
    participants the first is ready for dosing (cleared under the provider's licence, consents
    signed, fasting acknowledged, ride home and emergency contact given), the second is not (no ride
    home). Idempotent: nothing is added once the first session is staffed."""
    from retreat.clinical import staffing
    from retreat.clinical.dosing_models import DosingAssignment
    from retreat.clinical.models import ClearanceRequest, Intake
    from retreat.cohorts import preparation
    from retreat.cohorts.models import Cohort, CohortSession, Enrollment, Retreat, SeatState, SessionKind
    from retreat.timeutil import now_utc

    now = now or now_utc()
    provider = accounts.get_by_email("provider@demo.retreat")
    cohort = db.session.scalar(select(Cohort).join(Retreat).where(Retreat.slug == DEMO_RETREAT_SLUG,
                                                                  Cohort.title == "Spring cohort"))
    if provider is None or cohort is None:
        return
    sessions = list(db.session.scalars(select(CohortSession).where(
        CohortSession.cohort_id == cohort.id, CohortSession.kind == SessionKind.DOSING).order_by(CohortSession.starts_at)))
    if not sessions or db.session.scalar(select(DosingAssignment.id).where(
            DosingAssignment.session_id == sessions[0].id)):
        return
    for s in sessions:
        staffing.assign(s, provider, actor=provider)
    lic = provider.licenses[0]
    confirmed = list(db.session.scalars(select(Enrollment).where(
        Enrollment.cohort_id == cohort.id, Enrollment.seat == SeatState.CONFIRMED.value).order_by(Enrollment.id)))
    for i, enr in enumerate(confirmed[:2]):
        intake = db.session.scalar(select(Intake).where(Intake.enrollment_id == enr.id))
        if intake is None:
            intake = Intake(enrollment_id=enr.id, participant_id=enr.participant_id, status="submitted",
                            submissions=1, safety_concern=False, submitted_at=now, created_at=now, updated_at=now)
            db.session.add(intake)
            db.session.flush()
        db.session.add(ClearanceRequest(
            enrollment_id=enr.id, intake_id=intake.id, organization_id=org.id, status="decided", decision="cleared",
            renewal=False, referred_at=now, due_at=now, decided_at=now, decided_by_id=provider.id, license_id=lic.id,
            license_kind=lic.kind, license_number=lic.number, license_state=lic.state,
            license_expires_on=lic.expires_on, attestation_name=provider.name, valid_until=cohort.ends_at + timedelta(days=30),
            version=2, closed_at=now, conditions_shareable=False, absolute_override=False, created_at=now, updated_at=now))
        for doc in preparation.current_consent_documents():
            preparation.sign_consent(enr, doc, signer=enr.participant, typed_name=enr.participant.name, now=now)
        preparation.complete(enr, "fasting", acknowledged=True, now=now)
        preparation.complete(enr, "emergency_contact", answer="Jordan (partner), +1 303 555 0142", now=now)
        if i == 0:
            preparation.complete(enr, "ride_home", answer="Sam Rivera drives me home, +1 303 555 0199", now=now)
    db.session.flush()


DEMO_CONSULT_HOURS = "09:00-12:00, 13:00-17:00"  # Monday to Friday, America/Denver


def seed_consult_availability() -> None:
    """The demo facilitator takes free consults on weekdays, so the booking page has times."""
    from retreat.consults import publishing

    facilitator = accounts.get_by_email("facilitator@demo.retreat")
    if facilitator is None or publishing.get_settings(facilitator) is not None:
        return
    publishing.update_settings(
        facilitator, tz="America/Denver", duration_minutes=30, buffer_before_minutes=0, buffer_after_minutes=10,
        min_notice_minutes=12 * 60, horizon_days=60, daily_cap=8, slot_interval_minutes=30, change_cutoff_hours=24,
        video_link="https://meet.example.com/open-meadow-fern", accepting_bookings=True)
    publishing.set_weekly_rules(facilitator, {weekday: DEMO_CONSULT_HOURS for weekday in range(5)})


# --------------------------------------------------------------------------------------------
# Follow-ups: a completed "Summer cohort" with answered check-ins and PHQ-9 / GAD-7 at baseline,
# right after, 1 and 3 months, so the outcome charts, response rates and alerts panel show
# something. The demo participant (Pat) is one of them. Idempotent.
# --------------------------------------------------------------------------------------------

SUMMER_COHORT = "Summer cohort"
_SUMMER_PEOPLE = ["Sasha Lind", "Theo Marsh", "Uma Castillo", "Vic Osei", "Wren Holloway", "Xavi Duarte",
                  "Yara Keane", "Zane Whitfield", "Ana Lucero"]
# PHQ-9 and GAD-7 totals per person at baseline, post, 1 month, 3 months (None: not answered).
_SUMMER_SCORES = [
    ((16, 9, 8, 6), (14, 8, 7, 6)), ((12, 8, 9, 7), (11, 7, 7, 5)), ((19, 11, 10, 9), (16, 10, 9, 8)),
    ((10, 6, 5, None), (9, 5, 5, None)), ((14, 10, 7, 6), (15, 9, 8, 7)), ((8, 6, 6, 5), (10, 7, 6, 6)),
    ((17, 12, None, 10), (13, 9, None, 8)), ((11, 5, 4, 4), (12, 6, 5, 4)), ((15, 9, 8, None), (12, 8, 6, None)),
    ((13, 7, 6, 5), (11, 6, 5, 4)),
]


def _items(total: int, count: int, *, item9_zero: bool = False) -> list[int]:
    """Spread ``total`` over ``count`` items of 0-3 (the PHQ-9's item 9 kept at 0)."""
    slots = count - 1 if item9_zero else count
    values = [0] * count
    for i in range(min(total, slots * 3)):
        values[i % slots] += 1
    return values


def seed_followups_demo(now=None) -> None:
    import secrets
    from datetime import UTC, datetime, time

    from retreat.clinical import outcomes
    from retreat.clinical.access import seal_json
    from retreat.clinical.outcome_models import OutcomeSource
    from retreat.cohorts.models import (
        Cohort,
        CohortSession,
        CohortStatus,
        Enrollment,
        EnrollmentStatus,
        Retreat,
        SeatState,
    )
    from retreat.integration import plan as integration_plan
    from retreat.integration.followup_models import (
        CheckInResponse,
        FollowUp,
        FollowUpStatus,
        IntegrationAlert,
    )
    from retreat.timeutil import now_utc, zone

    retreat = db.session.scalar(select(Retreat).where(Retreat.slug == DEMO_RETREAT_SLUG))
    if retreat is None or db.session.scalar(select(Cohort.id).where(
            Cohort.retreat_id == retreat.id, Cohort.title == SUMMER_COHORT)) is not None:
        return
    now = now or now_utc()
    tz = "America/Denver"
    facilitator = accounts.get_by_email("facilitator@demo.retreat")

    def local(day: date, hour: int) -> datetime:
        return datetime.combine(day, time(hour), tzinfo=zone(tz)).astimezone(UTC)

    first_day = now.astimezone(zone(tz)).date() - timedelta(days=125)
    cohort = Cohort(retreat_id=retreat.id, title=SUMMER_COHORT, starts_at=local(first_day, 15),
                    ends_at=local(first_day + timedelta(days=6), 11), timezone=tz, capacity=10, seats_taken=10,
                    currency="USD", price_minor=480000, deposit_minor=75000, refund_policy="",
                    status=CohortStatus.COMPLETED.value, hold_minutes=30, offer_hours=48,
                    created_at=now, updated_at=now)
    db.session.add(cohort)
    db.session.flush()
    for offset, kind, title, hour in [(1, "dosing", "First dosing session", 9), (3, "dosing", "Second dosing session", 9),
                                      (5, "integration_circle", "Closing integration circle", 10)]:
        day = first_day + timedelta(days=offset)
        db.session.add(CohortSession(cohort_id=cohort.id, kind=kind, title=title, starts_at=local(day, hour),
                                     ends_at=local(day, hour + 3), location="Main hall", video_url="",
                                     facilitator_id=facilitator.id if facilitator else None,
                                     created_at=now, updated_at=now))
    db.session.flush()
    due = {tp.kind: tp.due_at_utc for tp in integration_plan.touchpoints(cohort)}

    people = [accounts.get_by_email("participant@demo.retreat")]
    for i, name in enumerate(_SUMMER_PEOPLE, start=1):
        email = f"summer{i}@demo.retreat"
        people.append(accounts.get_by_email(email) or accounts.create_user(
            email=email, name=name, role=Role.PARTICIPANT, password=None, tz=tz, verified=True))
    checkin_scores = [(7, 8), (6, 7), (4, 6), (8, 9), (5, 3), (7, 8), (6, None), (9, 9), (6, 7), (8, 8)]
    for idx, (person, (phq, gad), (c24, c72)) in enumerate(zip(people, _SUMMER_SCORES, checkin_scores,
                                                               strict=True)):
        if person is None:
            continue
        e = Enrollment(cohort_id=cohort.id, participant_id=person.id, status=EnrollmentStatus.COMPLETED.value,
                       seat=SeatState.CONFIRMED.value, seat_confirmed_at=cohort.starts_at - timedelta(days=40),
                       applied_at=cohort.starts_at - timedelta(days=70), holds_taken=1, offers_made=0,
                       motivation="", lodging="", created_at=cohort.starts_at - timedelta(days=70), updated_at=now)
        db.session.add(e)
        db.session.flush()
        rows = {}
        for kind, at in due.items():
            nonce = secrets.token_urlsafe(24)
            rows[kind] = FollowUp(enrollment_id=e.id, kind=kind, due_at=at, status=FollowUpStatus.EXPIRED.value,
                                  outbox_dedupe_key=f"followup-{e.id}-{kind}-{nonce[:10]}", token_nonce=nonce,
                                  expires_at=at + timedelta(days=7), sent_at=at, created_at=at, updated_at=at)
            db.session.add(rows[kind])
        db.session.flush()
        for kind, score in (("checkin_24h", c24), ("checkin_72h", c72)):
            if score is None:
                continue
            answered = rows[kind].due_at + timedelta(hours=2 + idx)
            answers = {"score": score, "sleep": "well" if score >= 7 else "some_trouble", "difficult": score < 6,
                       "reach_out": score <= 3, "text": ""}
            db.session.add(CheckInResponse(follow_up_id=rows[kind].id, enrollment_id=e.id,
                                           answers_enc=seal_json(answers), submitted_at=answered,
                                           created_at=answered, updated_at=answered))
            rows[kind].status, rows[kind].answered_at = FollowUpStatus.ANSWERED.value, answered
            for reason in ("reach_out", "low_score") if score <= 3 else ():
                db.session.add(IntegrationAlert(enrollment_id=e.id, cohort_id=cohort.id, follow_up_id=rows[kind].id,
                                                reason=reason, created_at=answered, updated_at=answered,
                                                acknowledged_at=answered + timedelta(minutes=40),
                                                acknowledged_by_id=facilitator.id if facilitator else None))
        if c72 is None:
            at = rows["checkin_72h"].sent_at + timedelta(hours=24)
            db.session.add(IntegrationAlert(enrollment_id=e.id, cohort_id=cohort.id,
                                            follow_up_id=rows["checkin_72h"].id, reason="no_response_72h",
                                            created_at=at, updated_at=at))
        for t_index, timepoint in enumerate(("baseline", "post", "month_1", "month_3")):
            if phq[t_index] is None:
                continue
            kind = {"post": "survey_post", "month_1": "survey_month_1", "month_3": "survey_month_3"}.get(timepoint)
            at = cohort.starts_at - timedelta(days=45) if kind is None else rows[kind].due_at + timedelta(hours=5)
            source = OutcomeSource.INTAKE.value if kind is None else OutcomeSource.SURVEY.value
            outcomes.record(e, "phq9", timepoint, _items(phq[t_index], 9, item9_zero=True), now=at, source=source)
            outcomes.record(e, "gad7", timepoint, _items(gad[t_index], 7), now=at, source=source)
            if kind is not None:
                rows[kind].status, rows[kind].answered_at = FollowUpStatus.ANSWERED.value, at
    db.session.flush()
