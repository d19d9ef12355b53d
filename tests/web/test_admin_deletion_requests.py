"""Deletion requests: the participant's reason is kept (encrypted), admins read it on the request's
page (audited each time) and carry the request out or decline it (audited); nobody else sees it.
Carrying it out itself is tested in tests/web/test_deletion_workflow.py."""

from __future__ import annotations

from flask import render_template, url_for
from sqlalchemy import func, select, text

from retreat.models import AuditEvent, OutboxMessage
from retreat.privacy import deletion, erasure
from retreat.privacy.models import DeletionRequest
from retreat.timeutil import now_utc
from tests import factories
from tests.factories_clearance import MARKER
from tests.web.test_finance_query_counts import counting

REASON = f"{MARKER}: my therapist says the intake upsets me"


def _count(db, model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _events(db, action: str) -> int:
    return _count(db, AuditEvent, AuditEvent.action == action)


def _ask(client, reason=REASON, **extra):
    return client.post("/me/data/delete", data={"reason": reason, "confirm": "y", **extra})


def _requests(db) -> list[DeletionRequest]:
    db.session.expire_all()
    return list(db.session.scalars(select(DeletionRequest).order_by(DeletionRequest.id)))


def test_the_reason_is_kept_encrypted_and_only_in_its_column(make_client, db):
    factories.user("admin", password=None)
    participant = make_client("participant", password=None)
    r = _ask(participant)
    assert r.status_code == 302
    [req] = _requests(db)
    assert req.participant_id == participant.user.id and req.status == "open" and req.times_requested == 1
    raw = db.session.execute(text("SELECT reason_enc FROM deletion_requests")).scalar()
    assert raw.startswith("gAAAAA") and MARKER not in raw
    assert [x["text"] for x in deletion.reasons_of(req)] == [REASON]
    ev = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "privacy.deletion_requested"))
    assert ev.details["request_id"] == req.id and ev.details["reason_given"] is True
    assert MARKER not in str(ev.details)
    for msg in db.session.scalars(select(OutboxMessage)):
        assert MARKER not in str(msg.context)
    page = participant.get("/me/data").get_data(as_text=True)
    assert "You asked for deletion on" in page


def test_admin_reads_the_reason_on_its_page_and_each_reading_is_audited(make_client, db):
    admin = make_client("admin", password=None)
    participant = make_client("participant", password=None, name="Pat Quinn")
    _ask(participant)
    [req] = _requests(db)
    listing = admin.get("/admin/deletion-requests")
    assert listing.status_code == 200
    body = listing.get_data(as_text=True)
    assert "Pat Quinn" in body and "open" in body and MARKER not in body  # the list shows no reason
    assert _events(db, "privacy.deletion_reason_read") == 0
    for n in (1, 2):
        r = admin.get(f"/admin/deletion-requests/{req.id}")
        assert r.status_code == 200 and REASON in r.get_data(as_text=True)
        assert r.headers["Cache-Control"] == "no-store"
        assert _events(db, "privacy.deletion_reason_read") == n
    ev = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "privacy.deletion_reason_read"))
    assert ev.actor_id == admin.user.id and ev.object_type == "deletion_request" and ev.object_id == str(req.id)
    assert b"Deletion requests" in admin.get("/admin/").data  # in the admin navigation and dashboard
    assert admin.get("/admin/deletion-requests/999999").status_code == 404
    assert admin.get(f"/admin/deletion-requests/{2**40}").status_code == 404
    assert admin.get("/admin/deletion-requests?status=wizard").status_code == 400


def test_facilitators_finance_providers_and_participants_get_403(make_client, db):
    owner = make_client("participant", password=None)
    _ask(owner)
    [req] = _requests(db)
    for role in ("facilitator", "finance", "provider", "participant"):
        c = make_client(role, password=None)
        for path in ("/admin/deletion-requests", f"/admin/deletion-requests/{req.id}"):
            r = c.get(path)
            assert r.status_code == 403, (role, path)
            assert MARKER.encode() not in r.data
        assert c.post(f"/admin/deletion-requests/{req.id}/done", data={"note": "x"}).status_code == 403
    assert owner.get(f"/admin/deletion-requests/{req.id}").status_code == 403
    assert _events(db, "privacy.deletion_reason_read") == 0
    assert _requests(db)[0].status == "open"


def test_a_second_request_while_one_is_open_adds_to_it(make_client, db):
    factories.user("admin", password=None)
    admin = make_client("admin", password=None)
    participant = make_client("participant", password=None)
    _ask(participant)
    r = _ask(participant, reason="Also my journal, please.")
    assert r.status_code == 302
    r = _ask(participant, reason="")  # a bare repeat: kept, admins not emailed again
    [req] = _requests(db)
    assert req.times_requested == 3 and req.last_requested_at >= req.requested_at
    assert [x["text"] for x in deletion.reasons_of(req)] == [REASON, "Also my journal, please."]
    # Two admins, told when the request opened and when a repeat added a reason: 2 x 2 emails.
    assert _count(db, OutboxMessage, OutboxMessage.template == "clearance_deletion_requested") == 4
    assert "added to the request you already made" in participant.get("/me/data").get_data(as_text=True)
    page = admin.get(f"/admin/deletion-requests/{req.id}").get_data(as_text=True)
    assert "Also my journal, please." in page and "2 more times" in page
    # Once it is closed (declined), a new request opens a new one.
    assert admin.post(f"/admin/deletion-requests/{req.id}/decline", data={"note": "Not now."}).status_code == 302
    _ask(participant, reason="")
    first, second = _requests(db)
    assert (first.status, second.status) == ("declined", "open") and second.reason_enc is None


def test_status_changes_are_audited_and_move_only_forward(make_client, db):
    admin = make_client("admin", password=None)
    participant = make_client("participant", password=None)
    _ask(participant)
    [req] = _requests(db)
    r = admin.post(f"/admin/deletion-requests/{req.id}/done", data={"note": "Journal and check-ins erased."})
    assert r.status_code == 302
    [req] = _requests(db)
    assert (req.status, req.handled_by_id, req.note) == ("done", admin.user.id, "Journal and check-ins erased.")
    ev = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "privacy.deletion_done"))
    assert ev.actor_id == admin.user.id and ev.object_id == str(req.id) and "erased" not in str(ev.details)
    handled_at = req.handled_at
    # Repeating is a no-op; declining a request already done is refused.
    assert admin.post(f"/admin/deletion-requests/{req.id}/done", data={"note": "again"}).status_code == 302
    r = admin.post(f"/admin/deletion-requests/{req.id}/decline", data={"note": "No."})
    assert r.status_code == 409 and b"already marked done" in r.data
    [req] = _requests(db)
    assert (req.status, req.handled_at, req.note) == ("done", handled_at, "Journal and check-ins erased.")
    assert _events(db, "privacy.deletion_done") == 1 and _events(db, "privacy.deletion_declined") == 0
    # The participant's account is closed: their cookie no longer opens their page.
    r = participant.get("/me/data")
    assert r.status_code == 302 and "/account/login" in r.headers["Location"]
    # Declining another one needs a note, and is audited.
    other = make_client("participant", password=None)
    _ask(other, reason="")
    second = _requests(db)[1]
    r = admin.post(f"/admin/deletion-requests/{second.id}/decline", data={"note": "  "})
    assert r.status_code == 422 and b"Say why the request is declined" in r.data
    assert _requests(db)[1].status == "open"
    r = admin.post(f"/admin/deletion-requests/{second.id}/decline", data={"note": "Records we must keep by law."})
    assert r.status_code == 302 and _requests(db)[1].status == "declined"
    assert _events(db, "privacy.deletion_declined") == 1
    assert "was declined on" in other.get("/me/data").get_data(as_text=True)


def test_bad_input_is_refused_and_changes_nothing(make_client, db):
    admin = make_client("admin", password=None)
    participant = make_client("participant", password=None)
    for reason, status, message in (("x" * (deletion.REASON_MAX + 1), 422, b"Please keep this under 1000 characters"),
                                    ("before\x00after", 400, b"control characters")):  # refused app-wide (web.inputs)
        r = _ask(participant, reason=reason)
        assert r.status_code == status and message in r.data
        assert _requests(db) == [] and _events(db, "privacy.deletion_requested") == 0
        assert _count(db, OutboxMessage) == 0
    _ask(participant)
    [req] = _requests(db)
    reads = _events(db, "privacy.deletion_reason_read")
    for action in ("done", "decline"):  # a NUL is refused app-wide before the page (web.inputs): nothing read
        r = admin.post(f"/admin/deletion-requests/{req.id}/{action}", data={"note": "a\x00b"})
        assert r.status_code == 400 and _events(db, "privacy.deletion_reason_read") == reads
    for note, message in (("y" * 1001, b"Please keep this under 1000 characters"),):
        for action in ("done", "decline"):
            r = admin.post(f"/admin/deletion-requests/{req.id}/{action}", data={"note": note})
            assert r.status_code == 422 and message in r.data
            assert REASON.encode() in r.data  # the page still shows the reason ...
            reads += 1
            assert _events(db, "privacy.deletion_reason_read") == reads  # ... and that reading is audited
            [req] = _requests(db)
            assert req.status == "open" and req.handled_at is None and req.note is None
    assert _events(db, "privacy.deletion_done") == _events(db, "privacy.deletion_declined") == 0
    # A POST without the CSRF token changes nothing either.
    app_client = admin
    app_client.application.config["WTF_CSRF_ENABLED"] = True
    try:
        assert app_client.post(f"/admin/deletion-requests/{req.id}/done", data={"note": "x"}).status_code == 400
    finally:
        app_client.application.config["WTF_CSRF_ENABLED"] = False
    assert _requests(db)[0].status == "open"


def test_the_list_costs_the_same_statements_for_1_and_20_requests(make_client, db):
    admin = make_client("admin", password=None)
    handler = factories.user("admin", password=None)

    def _add(n):
        for _ in range(n):
            p = factories.user("participant", password=None)
            req = deletion.request_deletion(p, reason=REASON, now=now_utc()).request
            if req.id % 2:  # done ones, with their handler, on the list too
                erasure.carry_out(req, actor=handler, note="ok", now=now_utc())
            db.session.commit()  # one request per transaction, as in the app

    def _measure() -> int:
        admin.get("/admin/deletion-requests")  # warm-up
        with counting() as statements:
            r = admin.get("/admin/deletion-requests")
        assert r.status_code == 200
        return len(statements)

    _add(1)
    one = _measure()
    _add(19)
    twenty = _measure()
    assert _count(db, DeletionRequest) == 20
    assert twenty == one, (one, twenty)


def test_the_admins_email_links_to_the_request_page_and_holds_no_reason(app, make_client, db):
    admin = make_client("admin", password=None)
    participant = make_client("participant", password=None)
    _ask(participant)
    [req] = _requests(db)
    [msg] = db.session.scalars(select(OutboxMessage).where(OutboxMessage.template == "clearance_deletion_requested"))
    assert msg.recipient_email == admin.user.email
    with app.test_request_context():
        page = url_for("admin.deletion_request", request_id=req.id, _external=True)
        ctx = dict(msg.context, practice_name="Practice", subject="s")
        rendered = (render_template(f"emails/{msg.template}.txt", **ctx)
                    + render_template(f"emails/{msg.template}.html", **ctx))
    assert msg.context["url"].split("://")[1] == page.split("://")[1]
    assert msg.context["url"] in rendered and MARKER not in rendered and "therapist" not in rendered
    path = "/" + msg.context["url"].split("://")[1].split("/", 1)[1]
    assert REASON.encode() in admin.get(path).data


def test_the_participants_export_holds_their_requests_with_the_reason(make_client, db):
    admin = make_client("admin", password=None)
    participant = make_client("participant", password=None)
    _ask(participant)
    [req] = _requests(db)
    admin.post(f"/admin/deletion-requests/{req.id}/decline", data={"note": "Your seat is still booked."})
    data = participant.get("/me/data/export.json").get_json()
    [row] = data["deletion_requests"]
    assert row["status"] == "declined" and row["note"] == "Your seat is still booked."
    assert [x["text"] for x in row["reasons"]] == [REASON]
    assert REASON.encode() in participant.get("/me/data/export.html").data
    other = make_client("participant", password=None)
    assert other.get("/me/data/export.json").get_json()["deletion_requests"] == []


def test_key_rotation_re_encrypts_the_reason(app, make_client, db, monkeypatch):
    from cryptography.fernet import Fernet

    from retreat.privacy import key_rotation

    assert (DeletionRequest, "reason_enc") in key_rotation.ENCRYPTED_COLUMNS
    _ask(make_client("participant", password=None))
    before = db.session.execute(text("SELECT reason_enc FROM deletion_requests")).scalar()
    new_key = Fernet.generate_key().decode()
    monkeypatch.setitem(app.config, "CLINICAL_DATA_KEYS", f"{new_key},{app.config['CLINICAL_DATA_KEYS']}")
    assert key_rotation.rotate_keys()["deletion_requests.reason_enc"] == 1
    after = db.session.execute(text("SELECT reason_enc FROM deletion_requests")).scalar()
    assert after != before
    monkeypatch.setitem(app.config, "CLINICAL_DATA_KEYS", new_key)  # the old key retired
    db.session.expire_all()
    assert [x["text"] for x in deletion.reasons_of(_requests(db)[0])] == [REASON]
