"""Who staffs a dosing session: the provider organisation a cohort is referred to assigns its own
clinicians, each under a licence valid on the session's date (the cohort's local date), in the
retreat's region, of a kind the organisation accepts. The licence is copied onto the assignment
(kind, region, expiry) so that what the clinician was assigned under stays readable.

``coverage`` answers "is this session covered by a validly licensed clinician" for many sessions in
one query; ``uncovered_soon`` lists dosing sessions in the next days that are not (the warnings on
the cohort overview and the facilitator's home).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from retreat import audit
from retreat.accounts.models import ProviderLicense, ProviderOrganization, Role, User
from retreat.clinical.dosing_models import LICENSE_KINDS, DosingAssignment, DosingSettings
from retreat.cohorts.models import Cohort, CohortSession, SessionKind
from retreat.core.context import RequestContext
from retreat.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from retreat.extensions import db
from retreat.timeutil import local_date

WARNING_DAYS = 14


def settings_for(org: ProviderOrganization) -> DosingSettings:
    """The organisation's dosing settings (an unsaved row with the defaults when it has none)."""
    row = db.session.scalar(select(DosingSettings).where(DosingSettings.organization_id == org.id))
    if row is None:
        row = DosingSettings(organization_id=org.id)
        for column in DosingSettings.__table__.columns:  # the column defaults, without a flush
            if column.default is not None and getattr(row, column.key) is None and not callable(column.default.arg):
                setattr(row, column.key, column.default.arg)
    return row


def session_day(session: CohortSession) -> date:
    return local_date(session.starts_at, session.cohort.timezone)


def dosing_session_for(session_id: int, org: ProviderOrganization) -> CohortSession:
    """The dosing session of a cohort referred to ``org``; anything else is not found (404, not 403:
    another organisation does not learn that it exists)."""
    session = db.session.get(CohortSession, session_id)
    if (session is None or session.kind != SessionKind.DOSING
            or session.cohort.provider_organization_id != org.id):
        raise NotFound("No such dosing session.")
    return session


def licence_problem(lic: ProviderLicense, session: CohortSession, accepted: list[str]) -> str | None:
    """Why ``lic`` does not cover ``session`` (None when it does)."""
    day = session_day(session)
    region = session.cohort.retreat.region
    if lic.kind not in accepted:
        return f"a {lic.kind} licence is not a kind the organisation accepts ({', '.join(accepted)})"
    if not region:
        return "the retreat has no state or region set, so no licence can be checked against it"
    if lic.state != region:
        return f"the licence is for {lic.state}, the retreat is in {region}"
    if not lic.is_valid_on(day):
        return f"the licence expires on {lic.expires_on:%d %b %Y}, before the session ({day:%d %b %Y})"
    return None


def covering_licence(clinician: User, session: CohortSession, accepted: list[str]) -> ProviderLicense | None:
    for lic in sorted(clinician.licenses, key=lambda x: (x.expires_on, x.id), reverse=True):
        if licence_problem(lic, session, accepted) is None:
            return lic
    return None


def assign(session: CohortSession, clinician: User, *, actor: User,
           ctx: RequestContext | None = None) -> DosingAssignment:
    """Assign ``clinician`` to ``session``. Repeating it is a no-op; an unlicensed clinician is refused
    with the reason of each licence they hold."""
    org = actor.provider_organization
    if org is None or session.cohort.provider_organization_id != org.id:
        raise PermissionDenied("Only the organisation the cohort is referred to staffs its dosing sessions.")
    if clinician.role != Role.PROVIDER or clinician.provider_organization_id != org.id or not clinician.is_active:
        raise ValidationFailed("Choose a clinician of your organisation.", field="clinician_id")
    if session.kind != SessionKind.DOSING:
        raise ValidationFailed("Only dosing sessions are staffed here.", field="session")
    existing = db.session.scalar(select(DosingAssignment).where(
        DosingAssignment.session_id == session.id, DosingAssignment.clinician_id == clinician.id))
    if existing is not None:
        return existing
    accepted = settings_for(org).accepted_kinds
    lic = covering_licence(clinician, session, accepted)
    if lic is None:
        reasons = [licence_problem(x, session, accepted) for x in clinician.licenses]
        detail = "; ".join(r for r in reasons if r) or "they hold no licence"
        raise ValidationFailed(f"{clinician.name} cannot be assigned: {detail}.", field="clinician_id")
    row = DosingAssignment(session_id=session.id, clinician_id=clinician.id, license_id=lic.id,
                           license_kind=lic.kind, license_state=lic.state,
                           license_expires_on=lic.expires_on, assigned_by_id=actor.id)
    db.session.add(row)
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError as exc:  # the unique constraint: someone assigned them at the same moment
        existing = db.session.scalar(select(DosingAssignment).where(
            DosingAssignment.session_id == session.id, DosingAssignment.clinician_id == clinician.id))
        if existing is None:
            raise Conflict("The assignment changed meanwhile; try again.") from exc
        return existing
    audit.record("dosing.clinician_assigned", actor=actor, object_type="cohort_session", object_id=session.id,
                 details={"clinician_id": clinician.id, "license_id": lic.id}, ctx=ctx)
    return row


def unassign(session: CohortSession, clinician_id: int, *, actor: User, ctx: RequestContext | None = None) -> bool:
    org = actor.provider_organization
    if org is None or session.cohort.provider_organization_id != org.id:
        raise PermissionDenied("Only the organisation the cohort is referred to staffs its dosing sessions.")
    row = db.session.scalar(select(DosingAssignment).where(
        DosingAssignment.session_id == session.id, DosingAssignment.clinician_id == clinician_id))
    if row is None:
        return False
    db.session.delete(row)
    db.session.flush()
    audit.record("dosing.clinician_unassigned", actor=actor, object_type="cohort_session", object_id=session.id,
                 details={"clinician_id": clinician_id}, ctx=ctx)
    return True


@dataclass(frozen=True)
class Cover:
    session_id: int
    clinicians: list[tuple[str, str]]  # (name, "MD · CO") of every assignment
    covered: bool  # at least one assignment whose licence is still valid on the day, in the region


def coverage(sessions: list[CohortSession]) -> dict[int, Cover]:
    """For each dosing session: who is assigned, and whether one of them is validly licensed on the
    day (an assignment whose licence lapsed since, or whose region no longer matches, does not count)."""
    ids = [s.id for s in sessions]
    rows: dict[int, list[tuple[DosingAssignment, str]]] = {i: [] for i in ids}
    if ids:
        for a, name in db.session.execute(
                select(DosingAssignment, User.name).join(User, User.id == DosingAssignment.clinician_id)
                .where(DosingAssignment.session_id.in_(ids)).order_by(DosingAssignment.session_id, User.name)):
            rows[a.session_id].append((a, name))
    out = {}
    for s in sessions:
        day, region = session_day(s), s.cohort.retreat.region
        assigned = rows[s.id]
        covered = any(a.license_id is not None and a.license_state == region and day <= a.license_expires_on
                      for a, _ in assigned)
        out[s.id] = Cover(s.id, [(name, f"{a.license_kind} · {a.license_state}") for a, name in assigned], covered)
    return out


def uncovered_soon(now: datetime, *, cohort_ids: list[int] | None = None,
                   days: int = WARNING_DAYS) -> list[CohortSession]:
    """Dosing sessions starting between now and ``days`` ahead with no validly licensed clinician."""
    stmt = (select(CohortSession).join(Cohort, Cohort.id == CohortSession.cohort_id)
            .where(CohortSession.kind == SessionKind.DOSING, CohortSession.starts_at >= now,
                   CohortSession.starts_at <= now + timedelta(days=days))
            .order_by(CohortSession.starts_at, CohortSession.id))
    if cohort_ids is not None:
        stmt = stmt.where(CohortSession.cohort_id.in_(cohort_ids))
    sessions = list(db.session.scalars(stmt))
    cover = coverage(sessions)
    return [s for s in sessions if not cover[s.id].covered]


def accepted_kind_choices() -> tuple[str, ...]:
    return LICENSE_KINDS


def save_settings(org: ProviderOrganization, *, accepted_kinds: list[str], hold_systolic: int, hold_diastolic: int,
                  hr_high: int, hr_low: int, spo2_low: int, check_interval_minutes: int, actor: User,
                  ctx: RequestContext | None = None) -> DosingSettings:
    """The organisation's accepted licence kinds, vital-sign thresholds and check interval."""
    errors: dict[str, list[str]] = {}
    kinds = [k for k in dict.fromkeys(accepted_kinds or []) if k in LICENSE_KINDS]
    if not kinds or len(kinds) != len(set(accepted_kinds or [])):
        errors["accepted_kinds"] = ["Choose at least one licence kind from the list."]
    if hr_low >= hr_high:
        errors["hr_low"] = ["The low heart-rate limit must be below the high one."]
    if not (5 <= check_interval_minutes <= 120):
        errors["check_interval_minutes"] = ["Choose an interval between 5 and 120 minutes."]
    if errors:
        raise ValidationFailed("Check the settings.", errors=errors)
    row = db.session.scalar(select(DosingSettings).where(DosingSettings.organization_id == org.id))
    if row is None:
        row = DosingSettings(organization_id=org.id, version=0)
        db.session.add(row)
    row.accepted_license_kinds = ",".join(k for k in LICENSE_KINDS if k in kinds)
    row.hold_systolic, row.hold_diastolic = hold_systolic, hold_diastolic
    row.hr_high, row.hr_low, row.spo2_low = hr_high, hr_low, spo2_low
    row.check_interval_minutes = check_interval_minutes
    row.version = (row.version or 0) + 1
    db.session.flush()
    audit.record("dosing.settings_saved", actor=actor, object_type="provider_organization", object_id=org.id,
                 details={"accepted_kinds": kinds, "hold": [hold_systolic, hold_diastolic], "hr": [hr_low, hr_high],
                          "spo2_low": spo2_low, "interval": check_interval_minutes}, ctx=ctx)
    return row


def assignments_of(session_ids: list[int]) -> dict[int, list[DosingAssignment]]:
    """The assignments of each session (clinicians loaded), by clinician name."""
    out: dict[int, list[DosingAssignment]] = {i: [] for i in session_ids}
    if session_ids:
        for a in db.session.scalars(select(DosingAssignment).join(User, User.id == DosingAssignment.clinician_id)
                                    .where(DosingAssignment.session_id.in_(session_ids))
                                    .options(selectinload(DosingAssignment.clinician)).order_by(User.name)):
            out[a.session_id].append(a)
    return out
