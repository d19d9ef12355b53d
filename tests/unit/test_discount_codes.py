"""Discount codes as finance manages them: validation naming each field, case-insensitive codes,
dates in the setter's zone, cohorts, total and per-person limits (also under concurrency), audit."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from retreat.audit.models import AuditEvent
from retreat.core.errors import ValidationFailed
from retreat.extensions import db as _db
from retreat.payments import discounts, pricing
from retreat.payments.models import DiscountCode, DiscountRedemption, RedemptionStatus
from tests import factories
from tests import factories_cohorts as fc
from tests.conftest import is_postgres

NOW = fc.NOW


def _make(db, actor=None, **kw):
    kw.setdefault("code", "Nurse20")
    kw.setdefault("kind", "percent")
    kw.setdefault("percent", 20)
    actor = actor or factories.user("finance", password=None)
    return discounts.save_code(None, discounts.CodeInput(**kw), now=NOW, actor=actor)


def test_create_stores_upper_case_and_audits(db):
    code = _make(db, description="Spring")
    assert code.code == "NURSE20" and code.is_active
    ev = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "payments.discount_code_created"))
    assert ev is not None and ev.details["after"]["percent"] == 20


def test_codes_are_unique_whatever_their_case(db):
    _make(db)
    with pytest.raises(ValidationFailed) as exc:
        _make(db, code="nurse20")
    assert "already exists" in exc.value.errors["code"][0]


@pytest.mark.parametrize("kw,field", [
    ({"percent": 0}, "percent"), ({"percent": 101}, "percent"), ({"percent": None}, "percent"),
    ({"kind": "fixed", "amount": "", "currency": "USD"}, "amount"),
    ({"kind": "fixed", "amount": "-5", "currency": "USD"}, "amount"),
    ({"kind": "fixed", "amount": "10", "currency": ""}, "currency"),
    ({"kind": "bogus"}, "kind"), ({"code": "x"}, "code"), ({"code": "NO SPACES"}, "code"),
    ({"max_uses": 0}, "max_uses"), ({"per_person_limit": 0}, "per_person_limit"),
    ({"max_uses": 2, "per_person_limit": 3}, "per_person_limit"),
    ({"valid_from": date(2026, 5, 2), "valid_until": date(2026, 5, 1)}, "valid_until"),
])
def test_bad_input_names_the_field_and_saves_nothing(db, kw, field):
    with pytest.raises(ValidationFailed) as exc:
        _make(db, **kw)
    assert field in exc.value.errors
    assert db.session.scalar(select(func.count()).select_from(DiscountCode)) == 0


def test_a_fixed_code_applies_only_to_cohorts_of_its_currency(db):
    usd, eur = fc.cohort(currency="USD"), fc.cohort(currency="EUR")
    with pytest.raises(ValidationFailed) as exc:
        _make(db, kind="fixed", amount="150", currency="usd", cohort_ids=[usd.id, eur.id])
    assert "EUR" in exc.value.errors["cohorts"][0]
    code = _make(db, kind="fixed", amount="150", currency="usd", cohort_ids=[usd.id])
    assert (code.amount_minor, code.currency, [c.id for c in code.cohorts]) == (15000, "USD", [usd.id])


def test_selected_cohorts_only(db):
    a, b = fc.cohort(), fc.cohort()
    _make(db, cohort_ids=[a.id])
    with pytest.raises(ValidationFailed, match="not valid for this cohort"):
        pricing.redeem_code(fc.applicant(b), "nurse20", now=NOW, actor=None)
    red = pricing.redeem_code(fc.applicant(a), "nurse20", now=NOW, actor=None)
    assert red.status == RedemptionStatus.APPLIED


def test_dates_are_whole_days_in_the_setters_zone(db):
    c = fc.cohort()
    # Denver is UTC-7 in winter: until 2026-12-07 means until 2026-12-08 07:00 UTC.
    code = _make(db, valid_from=date(2026, 12, 1), valid_until=date(2026, 12, 7), tz="America/Denver")
    assert code.valid_until.isoformat() == "2026-12-08T07:00:00+00:00"
    assert discounts.local_bounds(code, "America/Denver") == (date(2026, 12, 1), date(2026, 12, 7))
    with pytest.raises(ValidationFailed, match="expired"):
        pricing.redeem_code(fc.applicant(c), "NURSE20", now=code.valid_until, actor=None)
    with pytest.raises(ValidationFailed, match="not valid yet"):
        pricing.redeem_code(fc.applicant(c), "NURSE20", now=code.valid_from - timedelta(seconds=1), actor=None)
    assert pricing.redeem_code(fc.applicant(c), "NURSE20", now=code.valid_until - timedelta(seconds=1),
                               actor=None).amount_minor > 0


def test_per_person_limit_counts_the_persons_other_enrollments(db):
    a, b = fc.cohort(), fc.cohort()
    _make(db, per_person_limit=1)
    first = fc.applicant(a)
    pricing.redeem_code(first, "NURSE20", now=NOW, actor=None)
    fc.new_request()
    from retreat.cohorts import enrollment as enrollment_rules

    second = enrollment_rules.apply(b, first.participant, now=NOW)
    with pytest.raises(ValidationFailed, match="already used this discount code"):
        pricing.redeem_code(second, "NURSE20", now=NOW, actor=None)
    # someone else may still use it
    assert pricing.redeem_code(fc.applicant(b), "NURSE20", now=NOW, actor=None).status == "applied"


def test_editing_keeps_uses_and_refuses_a_limit_below_them(db):
    c = fc.cohort()
    code = _make(db)
    pricing.redeem_code(fc.applicant(c), "NURSE20", now=NOW, actor=None)
    pricing.redeem_code(fc.applicant(c), "NURSE20", now=NOW, actor=None)
    actor = factories.user("admin", password=None)
    with pytest.raises(ValidationFailed) as exc:
        discounts.save_code(code, discounts.CodeInput(code="NURSE20", kind="percent", percent=20, max_uses=1),
                            now=NOW, actor=actor)
    assert "2 uses" in exc.value.errors["max_uses"][0]
    discounts.save_code(code, discounts.CodeInput(code="NURSE20", kind="percent", percent=25, max_uses=2),
                        now=NOW, actor=actor)
    rows = discounts.listing()
    assert [(r.code.percent, r.uses) for r in rows] == [(25, 2)]
    with pytest.raises(ValidationFailed, match="used up"):
        pricing.redeem_code(fc.applicant(c), "NURSE20", now=NOW, actor=None)


def test_a_deactivated_code_cannot_be_redeemed_and_its_redemptions_stay(db):
    c = fc.cohort()
    code = _make(db)
    enr = fc.applicant(c)
    pricing.redeem_code(enr, "NURSE20", now=NOW, actor=None)
    discounts.deactivate(code, now=NOW, actor=factories.user("finance", password=None))
    with pytest.raises(ValidationFailed, match="not valid"):
        pricing.redeem_code(fc.applicant(c), "NURSE20", now=NOW, actor=None)
    assert pricing.quote(enr).discount > 0 and db.session.get(DiscountCode, code.id) is not None


def test_healthcare_code_waits_for_approval(db):
    c = fc.cohort()
    _make(db, healthcare=True)
    with pytest.raises(ValidationFailed) as exc:
        pricing.redeem_code(fc.applicant(c), "NURSE20", now=NOW, actor=None)
    assert "evidence" in exc.value.errors
    enr = fc.applicant(c)
    red = pricing.redeem_code(enr, "NURSE20", now=NOW, actor=None, evidence="RN-12345")
    assert red.status == RedemptionStatus.PENDING_APPROVAL and pricing.quote(enr).discount == 0


@pytest.mark.skipif(not is_postgres(), reason="real concurrency needs PostgreSQL")
def test_two_people_redeeming_the_last_use_at_once_one_succeeds(committing_app):
    app = committing_app
    with app.app_context():
        c = fc.cohort()
        _make(_db, max_uses=1)
        ids = [fc.applicant(c).id, fc.applicant(c).id]
        _db.session.commit()
    from retreat.cohorts.models import Enrollment

    barrier = threading.Barrier(2)
    results: list = []

    def worker(enr_id):
        with app.app_context():
            try:
                enr = _db.session.get(Enrollment, enr_id)
                barrier.wait()
                pricing.redeem_code(enr, "NURSE20", now=NOW, actor=None)
                _db.session.commit()
                results.append("ok")
            except ValidationFailed as exc:
                _db.session.rollback()
                results.append(exc.message)
            finally:
                _db.session.remove()

    threads = [threading.Thread(target=worker, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == ["This discount code has been used up.", "ok"]
    with app.app_context():
        assert _db.session.scalar(select(func.count()).select_from(DiscountRedemption)) == 1
