"""seed-scale: bulk volumes that obey the invariants, refuses real data, idempotent or a clear error."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from retreat.accounts import passwords
from retreat.accounts import users as accounts
from retreat.cli import scale_seed
from retreat.core.errors import Conflict
from retreat.models import Cohort, Enrollment, LedgerEntry, OutboxMessage, Payment, User
from retreat.timeutil import now_utc
from tests import factories

SPEC = scale_seed.ScaleSpec(cohorts=4, participants=120, ledger=500, outbox=300)


def _count(db, model, *where):
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_seeds_the_volumes_asked_for_within_the_invariants(db):
    report = scale_seed.seed(SPEC, now=now_utc())
    assert report.created
    seeded = User.email.like(f"%@{scale_seed.SEED_DOMAIN}")
    assert _count(db, User, seeded, User.role == "participant") == 120
    assert _count(db, Cohort, Cohort.title.like("Seed cohort %")) == 4
    assert _count(db, LedgerEntry, LedgerEntry.stripe_object_id.like("%seed%")) == 500
    assert _count(db, OutboxMessage, OutboxMessage.dedupe_key.like("seed-scale:%")) == 300
    for c in db.session.scalars(select(Cohort).where(Cohort.title.like("Seed cohort %"))):
        seated = _count(db, Enrollment, Enrollment.cohort_id == c.id, Enrollment.seat != "none")
        assert seated == c.seats_taken <= c.capacity  # seats invariant
    # Money: every charge has its succeeded payment of the same amount.
    charges = db.session.execute(select(LedgerEntry.amount_minor, Payment.amount_minor, Payment.status)
                                 .join(Payment, Payment.id == LedgerEntry.payment_id)
                                 .where(LedgerEntry.entry_type == "charge")).all()
    assert charges and all(a == b and s == "succeeded" for a, b, s in charges)
    # Seeded accounts can sign in with the documented password.
    someone = accounts.get_by_email(scale_seed.participant_email(7))
    assert passwords.verify_password(someone, scale_seed.SEED_PASSWORD)
    # New rows after the seed get fresh ids (sequences moved past the explicit ids).
    assert factories.user("participant", password=None).id > someone.id


def test_same_figures_again_change_nothing_other_figures_are_refused(db):
    scale_seed.seed(SPEC, now=now_utc())
    again = scale_seed.seed(SPEC, now=now_utc())
    assert not again.created and again.counts["ledger_entries"] >= 500
    with pytest.raises(Conflict, match="already holds a seed-scale data set"):
        scale_seed.seed(scale_seed.ScaleSpec(cohorts=5, participants=120, ledger=500, outbox=300), now=now_utc())


def test_refuses_a_database_with_real_data_unless_forced(db):
    factories.user("participant", password=None, email="real.person@example.com")
    with pytest.raises(Conflict, match="--force"):
        scale_seed.seed(SPEC, now=now_utc())
    assert _count(db, User, User.email.like(f"%@{scale_seed.SEED_DOMAIN}")) == 0
    assert scale_seed.seed(SPEC, now=now_utc(), force=True).created


def test_bad_figures_are_refused(db):
    with pytest.raises(Conflict):
        scale_seed.seed(scale_seed.ScaleSpec(cohorts=10, participants=5), now=now_utc())


def test_seed_scale_command(app, db):
    result = app.test_cli_runner().invoke(args=["seed-scale", "--cohorts", "2", "--participants", "30", "--ledger",
                                                "40", "--outbox", "10", "--force"])
    assert result.exit_code == 0, result.output
    assert "participants" not in result.output or "users" in result.output
    refused = app.test_cli_runner().invoke(args=["seed-scale", "--cohorts", "3"])
    assert refused.exit_code != 0 and "Recreate the database" in refused.output
