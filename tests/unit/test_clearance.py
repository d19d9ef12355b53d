"""The clearance service: intake draft and submission, referral, the information thread, decisions
and how they flow into the enrollment pipeline, safety alerts, expiry and stale forms."""

from datetime import date, timedelta

import pytest
from flask import render_template
from sqlalchemy import select

from retreat.clinical import clearance, clearance_status, expiry, safety
from retreat.clinical.models import AlertStatus, ClearanceRequest, ClearanceStatus, Intake, SafetyAlert
from retreat.cohorts import clearance_gate, enrollment, seats
from retreat.cohorts.models import CohortSession, DepositTiming, SeatState
from retreat.cohorts.models import EnrollmentStatus as S
from retreat.core.errors import Conflict, NotFound, ValidationFailed
from retreat.extensions import db as _db
from retreat.models import AuditEvent, OutboxMessage
from retreat.privacy import deletion
from tests import factories
from tests import factories_clearance as fcl
from tests.factories_clearance import MARKER
from tests.factories_cohorts import NOW


@pytest.fixture()
def s(db):
    return fcl.setup(now=NOW)


def outbox(template=None):
    stmt = select(OutboxMessage).order_by(OutboxMessage.id)
    if template:
        stmt = stmt.where(OutboxMessage.template == template)
    return list(_db.session.scalars(stmt))


def render(msg) -> str:
    ctx = dict(msg.context, practice_name="Practice", subject="s")
    return (render_template(f"emails/{msg.template}.txt", **ctx) + render_template(f"emails/{msg.template}.html", **ctx))


def test_draft_then_submit_refers_to_the_cohorts_partner_organisation(db, s):
    draft = clearance.save_draft(s.enrollment, s.participant, {"medications": MARKER}, now=NOW)
    assert draft.intake.status == "draft" and draft.intake.last_saved_at == NOW and not draft.safety
    assert s.enrollment.status == S.APPLIED and clearance_status.open_request(s.enrollment) is None
    result = clearance.submit(s.enrollment, s.participant, fcl.marked_answers(), now=NOW)
    req = result.request
    assert req.organization_id == s.org.id and req.status == ClearanceStatus.PENDING and req.version == 1
    assert req.due_at == NOW + timedelta(days=5)
    assert s.enrollment.status == S.CLEARANCE_PENDING
    assert result.intake.status == "submitted" and result.intake.screening_level == "none"
    assert result.intake.submissions == 1
    [msg] = outbox("clearance_new_request")
    assert msg.recipient_email == s.provider.email
    body = render(msg)
    assert "please sign in" in body.lower() and MARKER not in body and s.participant.name not in body
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "clearance.referred"))


def test_due_date_is_before_the_retreat_when_it_is_close(db):
    s = fcl.setup(now=NOW, starts_at=NOW + timedelta(days=16))
    req = fcl.submit(s)
    assert req.due_at == NOW + timedelta(days=2)


def test_submitting_with_missing_answers_changes_nothing(db, s):
    clearance.save_draft(s.enrollment, s.participant, {"medications": "ibuprofen"}, now=NOW)
    incomplete = fcl.answers(medications="", phq9_4=None)
    with pytest.raises(ValidationFailed) as exc:
        clearance.submit(s.enrollment, s.participant, incomplete, now=NOW + timedelta(hours=1))
    assert set(exc.value.errors) == {"medications", "phq9_4"}
    intake = clearance_status.get_intake(s.enrollment)
    assert intake.status == "draft" and intake.last_saved_at == NOW and intake.submissions == 0
    assert s.enrollment.status == S.APPLIED and clearance_status.open_request(s.enrollment) is None


def test_out_of_range_draft_changes_nothing(db, s):
    clearance.save_draft(s.enrollment, s.participant, {"allergies": "none"}, now=NOW)
    with pytest.raises(ValidationFailed):
        clearance.save_draft(s.enrollment, s.participant, {"allergies": "x", "phq9_2": 9}, now=NOW + timedelta(1))
    assert clearance_status.get_intake(s.enrollment).last_saved_at == NOW


def test_submitted_once_then_locked(db, s):
    fcl.submit(s)
    with pytest.raises(Conflict, match="already submitted"):
        clearance.submit(s.enrollment, s.participant, fcl.answers(), now=NOW)
    with pytest.raises(Conflict):
        clearance.save_draft(s.enrollment, s.participant, fcl.answers(), now=NOW)
    assert len(db.session.scalars(select(ClearanceRequest)).all()) == 1


def test_only_the_participant_can_write_their_intake(db, s):
    other = fcl.another_applicant(s).participant
    with pytest.raises(NotFound):
        clearance.save_draft(s.enrollment, other, fcl.answers(), now=NOW)
    with pytest.raises(NotFound):
        clearance.submit(s.enrollment, s.provider, fcl.answers(), now=NOW)


def test_closed_application_and_cohort_without_partner_are_refused(db, s):
    enrollment.withdraw(s.enrollment, now=NOW, actor=s.participant)
    with pytest.raises(Conflict, match="closed"):
        clearance.save_draft(s.enrollment, s.participant, {}, now=NOW)
    no_partner = fcl.setup(now=NOW)
    no_partner.cohort.provider_organization_id = None
    with pytest.raises(Conflict, match="partner provider"):
        fcl.submit(no_partner)
    assert no_partner.enrollment.status == S.APPLIED


# --------------------------------------------------------------------------------------------
# Safety
# --------------------------------------------------------------------------------------------


def test_item9_alerts_facilitators_and_provider_org_without_details(db, s):
    lead = factories.user("facilitator", password=None)
    factories.user("facilitator", password=None)  # not on this cohort: not alerted
    db.session.add(CohortSession(cohort_id=s.cohort.id, kind="dosing", title="Dosing", starts_at=s.cohort.starts_at,
                                 ends_at=s.cohort.starts_at + timedelta(hours=3), facilitator_id=lead.id))
    db.session.flush()
    result = clearance.save_draft(s.enrollment, s.participant, {"phq9_9": "2", "medications": MARKER}, now=NOW)
    assert result.safety
    [alert] = safety.open_alerts()
    assert alert.enrollment_id == s.enrollment.id and alert.organization_id == s.org.id
    sent = outbox("safety_alert")
    assert sorted(m.recipient_email for m in sent) == sorted([lead.email, s.provider.email])
    for msg in sent:
        body = render(msg)
        assert "Safety review needed" in body and MARKER not in body and s.participant.name not in body
        assert "phq" not in str(msg.context).lower()
    # Saving again does not alert again; after an acknowledgement, submitting does.
    clearance.save_draft(s.enrollment, s.participant, {"phq9_9": "3"}, now=NOW)
    assert len(db.session.scalars(select(SafetyAlert)).all()) == 1
    safety.acknowledge_alert(alert, lead, now=NOW)
    assert alert.status == AlertStatus.ACKNOWLEDGED and alert.acknowledged_by_id == lead.id
    clearance.save_draft(s.enrollment, s.participant, {"phq9_9": "3"}, now=NOW)
    assert safety.open_alerts() == []
    result = clearance.submit(s.enrollment, s.participant, fcl.answers(phq9_9=1), now=NOW)
    assert result.safety and result.intake.safety_concern and len(safety.open_alerts()) == 1


def test_reported_ideation_alerts_every_facilitator_when_none_is_assigned(db, s):
    f1, f2 = factories.user("facilitator", password=None), factories.user("facilitator", password=None)
    result = clearance.submit(s.enrollment, s.participant, fcl.answers(suicidality=True), now=NOW)
    assert result.safety and result.intake.screening_level == "absolute"
    recipients = {m.recipient_email for m in outbox("safety_alert")}
    assert {f1.email, f2.email, s.provider.email} <= recipients


def test_no_alert_without_a_signal(db, s):
    clearance.save_draft(s.enrollment, s.participant, {"phq9_9": "0", "suicidality": False}, now=NOW)
    assert safety.open_alerts() == [] and outbox("safety_alert") == []


def test_alert_can_only_be_acknowledged_by_the_team_or_that_organisation(db, s):
    clearance.save_draft(s.enrollment, s.participant, {"phq9_9": "1"}, now=NOW)
    [alert] = safety.open_alerts()
    for outsider in (factories.user("provider", password=None), factories.user("finance", password=None)):
        with pytest.raises(NotFound):
            safety.acknowledge_alert(alert, outsider, now=NOW)
    assert safety.acknowledge_alert(alert, s.provider, now=NOW)


# --------------------------------------------------------------------------------------------
# The thread
# --------------------------------------------------------------------------------------------


def test_more_information_then_resubmission(db, s):
    req = fcl.submit(s)
    msg = clearance.request_more_info(req, s.provider, "What dose of lisinopril?", expected_version=1,
                                      now=NOW + timedelta(hours=2))
    assert req.status == ClearanceStatus.INFO_REQUESTED and req.version == 2 and msg.body_enc != "What dose"
    assert s.enrollment.status == S.INTAKE_SUBMITTED and clearance_status.get_intake(s.enrollment).is_editable
    [note] = outbox("clearance_info_requested")
    assert note.recipient_email == s.participant.email and "lisinopril" not in render(note)
    with pytest.raises(Conflict, match="already asked"):
        clearance.request_more_info(req, s.provider, "again?", expected_version=2, now=NOW)
    with pytest.raises(Conflict, match="resubmitted"):
        fcl.decide(s, req, expected_version=2)
    clearance.reply(req, s.participant, "10 mg daily", now=NOW + timedelta(hours=3))
    db.session.commit()  # each step is a request of its own (locks are taken afresh)
    clearance.save_draft(s.enrollment, s.participant, fcl.answers(medications="lisinopril 10 mg"), now=NOW)
    again = clearance.submit(s.enrollment, s.participant, fcl.answers(medications="lisinopril 10 mg"),
                             now=NOW + timedelta(hours=4))
    assert again.request.id == req.id and req.status == ClearanceStatus.PENDING and req.version == 3
    assert s.enrollment.status == S.CLEARANCE_PENDING and again.intake.submissions == 2
    assert len(outbox("clearance_updated")) == 2  # the reply and the resubmission
    assert len(req.messages) == 2


def test_empty_or_long_messages_are_refused(db, s):
    req = fcl.submit(s)
    for body in ("   ", "x" * 4001):
        with pytest.raises(ValidationFailed):
            clearance.request_more_info(req, s.provider, body, expected_version=1, now=NOW)
    assert req.status == ClearanceStatus.PENDING and req.version == 1


# --------------------------------------------------------------------------------------------
# Decisions
# --------------------------------------------------------------------------------------------


def valid_at(enr, when) -> bool:
    """The clearance gate's rule on the cohort's local date of ``when``."""
    return clearance_gate.verdict(enr, clearance_gate.cohort_today(enr.cohort, when)).ok


def test_cleared_moves_on_records_licence_and_invites_the_deposit(db, s):
    req = fcl.submit(s)
    lic = s.provider.licenses[0]
    fcl.decide(s, req, "cleared", now=NOW + timedelta(days=1))
    assert req.status == ClearanceStatus.DECIDED and req.decision == "cleared" and req.version == 2
    assert (req.license_id, req.license_number, req.license_state, req.license_expires_on) == (
        lic.id, lic.number, lic.state, lic.expires_on)
    assert req.attestation_name == s.provider.name and "independent clinical judgement" in req.attestation_text
    # Valid until the end of the cohort's last day, in the cohort's time zone.
    assert req.valid_until.date() == (s.cohort.ends_at + timedelta(days=1)).date()
    assert req.valid_until > s.cohort.ends_at
    assert s.enrollment.status == S.CLEARED
    assert [m.template for m in outbox() if m.template.startswith("clearance_") and m.recipient_email ==
            s.participant.email] == ["clearance_decided", "clearance_pay_deposit"]
    assert valid_at(s.enrollment, NOW + timedelta(days=2))
    assert valid_at(s.enrollment, req.valid_until)  # all of its last day, in the cohort's zone
    assert not valid_at(s.enrollment, req.valid_until + timedelta(seconds=1))
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "clearance.decided"))
    assert event.actor_id == s.provider.id and event.details["decision"] == "cleared"


def test_cleared_after_deposit_confirms_the_seat(db):
    s = fcl.setup(now=NOW, deposit_timing=DepositTiming.BEFORE_CLEARANCE)
    seats.take_hold(s.enrollment, now=NOW, actor=None)
    enrollment.confirm_seat(s.enrollment, now=NOW, actor=None)
    fcl.cleared(s)
    assert s.enrollment.status == S.DEPOSIT_PAID and outbox("clearance_pay_deposit") == []


def test_cleared_with_conditions_needs_conditions(db, s):
    req = fcl.submit(s)
    with pytest.raises(ValidationFailed) as exc:
        fcl.decide(s, req, "cleared_with_conditions")
    assert "conditions" in exc.value.errors
    fcl.decide(s, req, "cleared_with_conditions", conditions="Blood pressure check on arrival",
               conditions_shareable=True)
    assert req.conditions_shareable and "Blood pressure" not in req.conditions_enc
    assert s.enrollment.status == S.CLEARED


def test_not_cleared_closes_kindly_and_calls_the_refund_hook(db):
    s = fcl.setup(now=NOW, deposit_timing=DepositTiming.BEFORE_CLEARANCE)
    seats.take_hold(s.enrollment, now=NOW, actor=None)
    enrollment.confirm_seat(s.enrollment, now=NOW, actor=None)
    req = fcl.submit(s)
    fcl.decide(s, req, "not_cleared", participant_note=MARKER)
    assert s.enrollment.status == S.NOT_CLEARED and s.enrollment.seat == SeatState.NONE
    assert s.cohort.seats_taken == 0 and req.valid_until is None
    [msg] = outbox("clearance_not_cleared")
    body = render(msg)
    assert "consultation" in body and MARKER not in body and "not cleared" not in body.lower()
    assert msg.status == "pending"  # queued after the exit cancelled the enrollment's reminders


def test_clearing_despite_absolute_contraindication_needs_rationale_and_is_highlighted(db, s):
    req = fcl.submit(s, glaucoma=True)
    with pytest.raises(ValidationFailed) as exc:
        fcl.decide(s, req, "cleared", rationale="ok")
    assert "rationale" in exc.value.errors
    assert req.status == ClearanceStatus.PENDING and s.enrollment.status == S.CLEARANCE_PENDING
    fcl.decide(s, req, "cleared", rationale="Ophthalmologist confirms open-angle glaucoma is well controlled.")
    assert req.absolute_override
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "clearance.absolute_override"))
    assert event.details["highlight"] is True and event.actor_id == s.provider.id
    assert "Ophthalmologist" not in str(event.details)


def test_not_cleared_with_absolute_needs_no_rationale(db, s):
    req = fcl.submit(s, pregnant_or_nursing=True)
    fcl.decide(s, req, "not_cleared")
    assert not req.absolute_override and s.enrollment.status == S.NOT_CLEARED


def test_expired_licence_cannot_decide(db):
    s = fcl.setup(now=NOW, provider_kw={"license_expires": NOW.date() - timedelta(days=1)})
    req = fcl.submit(s)
    with pytest.raises(Conflict, match="licence"):
        fcl.decide(s, req)
    assert req.status == ClearanceStatus.PENDING and req.decision is None


def test_attestation_and_validity_are_checked(db, s):
    req = fcl.submit(s)
    with pytest.raises(ValidationFailed) as exc:
        fcl.decide(s, req, attestation_name="Someone Else")
    assert "attestation_name" in exc.value.errors
    for day in (NOW.date() - timedelta(days=1), NOW.date() + timedelta(days=800)):
        with pytest.raises(ValidationFailed) as exc:
            fcl.decide(s, req, valid_until=day)
        assert "valid_until" in exc.value.errors
    with pytest.raises(ValidationFailed) as exc:
        fcl.decide(s, req, "maybe")
    assert "decision" in exc.value.errors
    assert req.status == ClearanceStatus.PENDING and req.version == 1
    fcl.decide(s, req, attestation_name=f"  {s.provider.name.upper()} ")
    assert req.decision == "cleared"


def test_stale_form_and_second_decision_change_nothing(db, s):
    req = fcl.submit(s)
    with pytest.raises(Conflict, match="changed while you were looking"):
        fcl.decide(s, req, expected_version=0)
    colleague = factories.user("provider", org=s.org, password=None)
    clearance.decide(req, colleague, decision="cleared", attestation_name=colleague.name, expected_version=1, now=NOW)
    with pytest.raises(Conflict, match=f"already decided by {colleague.name}"):
        fcl.decide(s, req, "not_cleared", expected_version=1)
    assert req.decision == "cleared" and req.decided_by_id == colleague.id and s.enrollment.status == S.CLEARED


def test_decision_on_a_withdrawn_application_is_refused(db, s):
    req = fcl.submit(s)
    enrollment.withdraw(s.enrollment, now=NOW, actor=s.participant)
    with pytest.raises(Conflict, match="withdrawn"):
        fcl.decide(s, req)
    assert req.decision is None
    assert clearance_status.queue(s.org.id) == []
    expiry.sweep_expired_clearances(NOW)
    assert req.status == ClearanceStatus.WITHDRAWN


def test_provider_of_another_organisation_cannot_act(db, s):
    req = fcl.submit(s)
    outsider = factories.user("provider", password=None)
    with pytest.raises(NotFound):
        clearance.decide(req, outsider, decision="cleared", attestation_name=outsider.name, expected_version=1,
                         now=NOW)
    with pytest.raises(NotFound):
        clearance.request_more_info(req, outsider, "hi", expected_version=1, now=NOW)
    assert clearance_status.queue(outsider.provider_organization_id) == []
    assert clearance_status.queue(s.org.id) == [req]


# --------------------------------------------------------------------------------------------
# Expiry before the retreat
# --------------------------------------------------------------------------------------------


def test_clearance_expiring_before_the_retreat_goes_back_into_review(db, s):
    req = fcl.cleared(s, valid_until=(NOW + timedelta(days=10)).date())
    assert expiry.sweep_expired_clearances(NOW + timedelta(days=5)) == 0
    later = NOW + timedelta(days=12)
    assert not valid_at(s.enrollment, later)
    assert clearance_status.status_of(s.enrollment, later).key == "expired"
    assert expiry.sweep_expired_clearances(later) == 1
    assert req.status == ClearanceStatus.LAPSED and s.enrollment.status == S.CLEARANCE_PENDING
    renewal = clearance_status.open_request(s.enrollment)
    assert renewal.renewal and renewal.organization_id == s.org.id and renewal.intake_id == req.intake_id
    assert clearance_status.status_of(s.enrollment, later).label == "Clearance lapsed — back in review"
    assert outbox("clearance_renewal")[0].recipient_email == s.participant.email
    assert expiry.sweep_expired_clearances(later) == 0  # idempotent
    fcl.decide(s, renewal, now=later)
    assert s.enrollment.status == S.CLEARED and valid_at(s.enrollment, later)


def test_lapse_after_balance_paid_returns_there_when_renewed(db):
    s = fcl.setup(now=NOW)
    req = fcl.cleared(s, valid_until=(NOW + timedelta(days=10)).date())
    seats.take_hold(s.enrollment, now=NOW, actor=None)
    enrollment.confirm_seat(s.enrollment, now=NOW, actor=None)
    enrollment.mark_balance_paid(s.enrollment, now=NOW, actor=None)
    later = NOW + timedelta(days=11)
    assert expiry.sweep_expired_clearances(later) == 1
    assert s.enrollment.status == S.CLEARANCE_PENDING and s.enrollment.seat == SeatState.CONFIRMED
    renewal = clearance_status.open_request(s.enrollment)
    assert renewal.resume_status == S.BALANCE_PAID and req.status == ClearanceStatus.LAPSED
    fcl.decide(s, renewal, now=later)
    assert s.enrollment.status == S.BALANCE_PAID


def test_clearance_valid_through_the_retreat_never_lapses(db, s):
    fcl.cleared(s)
    assert expiry.sweep_expired_clearances(s.cohort.ends_at + timedelta(days=30)) == 0


# --------------------------------------------------------------------------------------------
# Status for the team, deletion requests
# --------------------------------------------------------------------------------------------


def test_status_labels_carry_no_details(db, s):
    assert clearance_status.status_of(s.enrollment, NOW).key == "not_started"
    clearance.save_draft(s.enrollment, s.participant, {}, now=NOW)
    assert clearance_status.status_of(s.enrollment, NOW).label == "Intake in progress"
    req = fcl.submit(s)
    assert clearance_status.status_of(s.enrollment, NOW).label == "In medical review"
    fcl.decide(s, req, "cleared_with_conditions", conditions="wheelchair access")
    view = clearance_status.status_of(s.enrollment, NOW)
    assert (view.key, view.label) == ("cleared_with_conditions", "Cleared with conditions")


def test_deletion_request_erases_unsent_drafts_and_is_logged(db, s):
    clearance.save_draft(s.enrollment, s.participant, {"medications": MARKER}, now=NOW)
    other = fcl.setup(now=NOW)
    fcl.submit(other)
    admin = factories.user("admin", password=None)
    db.session.commit()  # each request is a transaction of its own (its first lock is the participant's row)
    assert deletion.request_deletion(s.participant, reason="please", now=NOW).erased_drafts == 1
    intake = clearance_status.get_intake(s.enrollment)
    assert intake.status == "erased" and intake.answers_enc is None
    assert deletion.deletion_requested_at(s.participant) == NOW
    [msg] = outbox("clearance_deletion_requested")
    assert msg.recipient_email == admin.email
    db.session.commit()
    assert deletion.request_deletion(other.participant, now=NOW).erased_drafts == 0  # submitted: retained
    assert db.session.scalar(select(Intake).where(Intake.participant_id == other.participant.id)).answers_enc
    # An erased draft can be started again (a later request).
    db.session.commit()
    clearance.save_draft(s.enrollment, s.participant, {"allergies": "none"}, now=NOW)
    assert clearance_status.get_intake(s.enrollment).status == "draft"


def test_licence_recorded_is_the_one_valid_that_day(db):
    s = fcl.setup(now=NOW, provider_kw={"license_expires": NOW.date() - timedelta(days=1)})
    from retreat.accounts import users as accounts

    newer = accounts.add_license(s.provider, number="NEW-1", state="CO", expires_on=date(2030, 1, 1))
    req = fcl.submit(s)
    db.session.expire(s.provider, ["licenses"])
    fcl.decide(s, req)
    assert req.license_id == newer.id and req.license_number == "NEW-1"


def test_not_cleared_email_links_to_the_consult_booking_page(db, app):
    from flask import url_for

    s = fcl.setup(now=NOW)
    fcl.decide(s, fcl.submit(s), "not_cleared")
    [msg] = outbox("clearance_not_cleared")
    with app.test_request_context():
        booking_page = url_for("consults.book", _external=True)
    assert msg.context["consult_url"].rstrip("/").endswith("/consult")
    assert msg.context["consult_url"].split("://")[1] == booking_page.split("://")[1]
    assert msg.context["consult_url"] in render(msg)
