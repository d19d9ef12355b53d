"""Data at scale for benchmarks: ``flask --app wsgi seed-scale --cohorts N --participants M``.

Writes realistic volumes in bulk (PostgreSQL ``COPY``; plain executemany elsewhere), never row by
row through the ORM: retreats and cohorts (40 % in the past, completed; the rest open and full,
with applicants, people waiting for clearance and a waitlist), participants with one enrollment
each, succeeded payments and their ledger entries, current installment plans, pending clearance
requests in a partner organisation's queue, facilitators offering consults, and outbox messages
(mostly sent, some due later).

Every seeded account has an ``@seed-scale.example.com`` address and the password ``SEED_PASSWORD``
(bench databases only). The seeder refuses a database holding anything else unless ``force``;
run again with the same figures it changes nothing, with other figures it refuses (recreate the
database to reseed).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select, text

from retreat.accounts.models import ProviderLicense, ProviderOrganization, SiteSetting, User
from retreat.clinical.models import ClearanceRequest, Intake
from retreat.cohorts.models import Cohort, Enrollment, Retreat
from retreat.consults.models import AvailabilityRule, ConsultSettings
from retreat.core.errors import Conflict
from retreat.extensions import db
from retreat.messaging.models import OutboxMessage
from retreat.payments.models import Installment, LedgerEntry, Payment

SEED_DOMAIN = "seed-scale.example.com"
SEED_PASSWORD = "seed-scale-password"  # every seeded account (bench databases only)
SEED_ORG = "Seed Scale Medical Partners"
SETTING_KEY = "seed_scale"
ZONES = ("America/Denver", "America/New_York", "America/Los_Angeles", "Europe/Berlin", "Europe/London",
         "Australia/Adelaide", "Asia/Kolkata", "America/Chicago", "Pacific/Auckland")
PRICE, DEPOSIT = 300000, 60000


@dataclass(frozen=True)
class ScaleSpec:
    cohorts: int = 200
    participants: int = 20000
    ledger: int = 100000
    outbox: int = 200000

    def validate(self) -> None:
        if not 1 <= self.cohorts <= 100000:
            raise Conflict("--cohorts must be between 1 and 100,000.")
        if not self.cohorts <= self.participants <= 5_000_000:
            raise Conflict("--participants must be at least --cohorts (and at most 5,000,000).")
        if not 0 <= self.ledger <= 50_000_000 or not 0 <= self.outbox <= 50_000_000:
            raise Conflict("--ledger and --outbox must be between 0 and 50,000,000.")


@dataclass
class SeedReport:
    created: bool
    spec: ScaleSpec
    counts: dict
    seconds: float


def seed_email(name: str) -> str:
    return f"{name}@{SEED_DOMAIN}"


def staff_emails() -> dict[str, str]:
    return {"facilitator": seed_email("facilitator-0"), "finance": seed_email("finance"),
            "provider": seed_email("provider"), "admin": seed_email("admin")}


def participant_email(i: int) -> str:
    return seed_email(f"p{i}")


# --------------------------------------------------------------------------------------------
# Bulk writing
# --------------------------------------------------------------------------------------------


def _is_pg() -> bool:
    return db.engine.dialect.name == "postgresql"


def _complete(table, rows: list[dict]) -> tuple[list[str], list[tuple]]:
    """Columns and value tuples with every column's Python default filled in (COPY applies none)."""
    cols = [c for c in table.columns]
    defaults = {}
    for c in cols:
        d = c.default
        if d is None:
            continue
        if d.is_scalar:
            defaults[c.name] = d.arg
        elif d.is_callable:
            defaults[c.name] = d.arg(None)
    present = set().union(*(r.keys() for r in rows))
    names = [c.name for c in cols if c.name in present or c.name in defaults]
    json_cols = {c.name for c in cols if c.type.__class__.__name__ == "JSON"}
    out = []
    for r in rows:
        vals = []
        for n in names:
            v = r.get(n, defaults.get(n))
            if n in json_cols and v is not None:
                v = json.dumps(v)
            vals.append(v)
        out.append(tuple(vals))
    return names, out


def bulk_insert(model, rows: list[dict], chunk: int = 20000) -> int:
    """Insert ``rows`` (dicts of column values, explicit ids included) as fast as the backend allows."""
    if not rows:
        return 0
    table = model.__table__
    if _is_pg():
        names, values = _complete(table, rows)
        raw = db.session.connection().connection.driver_connection
        with raw.cursor() as cur, cur.copy(
                f'COPY {table.name} ({", ".join(names)}) FROM STDIN') as copy:
            for v in values:
                copy.write_row(v)
    else:  # executemany needs the same keys in every row
        keys = set().union(*(r.keys() for r in rows))
        rows = [{k: r.get(k) for k in keys} for r in rows]
        for i in range(0, len(rows), chunk):
            db.session.execute(insert(table), rows[i:i + chunk])
    return len(rows)


def _next_id(model) -> int:
    return (db.session.scalar(select(func.max(model.id))) or 0) + 1


def _fix_sequences(models) -> None:
    if not _is_pg():
        return
    for m in models:
        t = m.__table__.name
        db.session.execute(text(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), "
                                f"GREATEST((SELECT COALESCE(MAX(id), 0) FROM {t}), 1))"))


# --------------------------------------------------------------------------------------------
# Guards
# --------------------------------------------------------------------------------------------


def foreign_rows() -> int:
    """Accounts and retreats this seeder did not write (real or demo data)."""
    users = db.session.scalar(select(func.count()).select_from(User).where(
        ~User.email.like(f"%@{SEED_DOMAIN}"))) or 0
    retreats = db.session.scalar(select(func.count()).select_from(Retreat).where(
        ~Retreat.slug.like("seed-scale-%"))) or 0
    return users + retreats


def existing_spec() -> ScaleSpec | None:
    row = db.session.get(SiteSetting, SETTING_KEY)
    return ScaleSpec(**json.loads(row.value)) if row else None


def counts() -> dict:
    out = {}
    for name, model in (("users", User), ("cohorts", Cohort), ("enrollments", Enrollment),
                        ("payments", Payment), ("ledger_entries", LedgerEntry), ("outbox_messages", OutboxMessage),
                        ("clearance_requests", ClearanceRequest)):
        out[name] = db.session.scalar(select(func.count()).select_from(model)) or 0
    return out


# --------------------------------------------------------------------------------------------
# The data set
# --------------------------------------------------------------------------------------------


def seed(spec: ScaleSpec, *, now: datetime, force: bool = False, echo=lambda msg: None) -> SeedReport:
    """Write the data set (the caller commits). Idempotent for the same ``spec``."""
    from retreat.accounts.passwords import hash_password

    spec.validate()
    t0 = time.perf_counter()
    previous = existing_spec()
    if previous is not None:
        if previous == spec:
            return SeedReport(False, spec, counts(), time.perf_counter() - t0)
        raise Conflict(f"This database already holds a seed-scale data set ({previous.cohorts} cohorts, "
                       f"{previous.participants} participants, {previous.ledger} ledger entries, "
                       f"{previous.outbox} outbox messages). Recreate the database to seed other figures.")
    if not force and (n := foreign_rows()):
        raise Conflict(f"This database holds {n} accounts or retreats that seed-scale did not create "
                       "(real or demo data). Use a separate database, or --force to add the data set anyway.")
    if db.session.scalar(select(User.id).where(User.email.like(f"%@{SEED_DOMAIN}")).limit(1)) is not None:
        raise Conflict("A previous seed-scale run did not finish; recreate the database and run it again.")

    pw = hash_password(SEED_PASSWORD)  # one hash for every seeded account
    stamp = dict(created_at=now, updated_at=now)

    # Staff: facilitators (consults and cohorts), finance, admin, a provider in a partner organisation.
    org_id = _next_id(ProviderOrganization)
    bulk_insert(ProviderOrganization, [dict(id=org_id, name=SEED_ORG, contact_email=seed_email("clinic"),
                                            is_active=True, **stamp)])
    n_fac = max(10, min(20, spec.cohorts // 10))
    uid = _next_id(User)
    users = []
    for i in range(n_fac):
        users.append(dict(id=uid + i, email=seed_email(f"facilitator-{i}"), name=f"Facilitator {i}",
                          role="facilitator", tz=ZONES[i % len(ZONES)]))
    staff = {"finance": uid + n_fac, "admin": uid + n_fac + 1, "provider": uid + n_fac + 2}
    users += [dict(id=staff["finance"], email=seed_email("finance"), name="Finance Seed", role="finance",
                   tz="America/Denver"),
              dict(id=staff["admin"], email=seed_email("admin"), name="Admin Seed", role="admin", tz="America/Denver"),
              dict(id=staff["provider"], email=seed_email("provider"), name="Dr Provider Seed", role="provider",
                   tz="America/Denver", provider_organization_id=org_id)]
    p0 = uid + n_fac + 3
    users += [dict(id=p0 + i, email=participant_email(i), name=f"Participant {i}", role="participant",
                   tz=ZONES[i % len(ZONES)]) for i in range(spec.participants)]
    for u in users:
        u.update(password_hash=pw, email_verified_at=now, is_active=True, session_version=1,
                 marketing_opt_out=False, **stamp)
    bulk_insert(User, users)
    echo(f"  users: {len(users)}")
    bulk_insert(ProviderLicense, [dict(id=_next_id(ProviderLicense), user_id=staff["provider"], number="SEED-0001",
                                       state="CO", kind="MD", expires_on=(now + timedelta(days=730)).date(),
                                       **stamp)])

    # Consults: Monday to Friday 09:00-12:00 and 13:00-17:00 in each facilitator's zone.
    sid, rid = _next_id(ConsultSettings), _next_id(AvailabilityRule)
    settings, rules = [], []
    for i in range(n_fac):
        settings.append(dict(id=sid + i, facilitator_id=uid + i, tz=ZONES[i % len(ZONES)], duration_minutes=30,
                             buffer_before_minutes=0, buffer_after_minutes=10, min_notice_minutes=60,
                             horizon_days=60, slot_interval_minutes=30, change_cutoff_hours=24,
                             video_link="https://video.example.com/seed", accepting_bookings=True, **stamp))
        for d in range(5):
            for start, end in ((9 * 60, 12 * 60), (13 * 60, 17 * 60)):
                rules.append(dict(id=rid + len(rules), facilitator_id=uid + i, weekday=d, start_minute=start,
                                  end_minute=end, **stamp))
    bulk_insert(ConsultSettings, settings)
    bulk_insert(AvailabilityRule, rules)

    # Retreats and cohorts: one every 3 days, 40 % in the past.
    ret0 = _next_id(Retreat)
    n_ret = max(1, math.ceil(spec.cohorts / 10))
    bulk_insert(Retreat, [dict(id=ret0 + r, slug=f"seed-scale-{r}", title=f"Seed Retreat {r}",
                               summary="A week in the mountains.", description="Seeded for benchmarks.",
                               location="Colorado", included="Lodging\nMeals", is_published=True, **stamp)
                          for r in range(n_ret)])
    per_cohort = spec.participants / spec.cohorts
    capacity = max(12, min(48, round(per_cohort * 0.5)))
    past = int(spec.cohorts * 0.4)
    c0 = _next_id(Cohort)
    cohorts = []
    for k in range(spec.cohorts):
        starts = now + timedelta(days=3 * (k - past) + 2, hours=16)
        is_past = k < past
        cohorts.append(dict(
            id=c0 + k, retreat_id=ret0 + k // 10, title=f"Seed cohort {k}", starts_at=starts,
            ends_at=starts + timedelta(days=6), timezone=ZONES[k % len(ZONES)], capacity=capacity, seats_taken=0,
            currency="USD", price_minor=PRICE, deposit_minor=DEPOSIT,
            balance_due_on=(starts - timedelta(days=30)).date(), refund_policy="Full refund until 30 days before.",
            deposit_timing="after_clearance", provider_organization_id=org_id,
            status="completed" if is_past else "open", hold_minutes=30, offer_hours=48, **stamp))

    # Enrollments: participant i in cohort i % cohorts; the first `capacity` of each cohort hold a seat.
    e0 = _next_id(Enrollment)
    enrollments, seated, pending = [], [], []
    position: dict[int, int] = {}
    waitpos: dict[int, int] = {}
    for i in range(spec.participants):
        k = i % spec.cohorts
        c = cohorts[k]
        n = position.get(k, 0)
        position[k] = n + 1
        applied = c["starts_at"] - timedelta(days=120 - (n % 90))
        row = dict(id=e0 + i, cohort_id=c["id"], participant_id=p0 + i, seat="none", holds_taken=0, offers_made=0,
                   lodging="", applied_at=min(applied, now), created_at=min(applied, now),
                   updated_at=now)
        if n < capacity:
            row.update(seat="confirmed", seat_confirmed_at=min(applied + timedelta(days=10), now), holds_taken=1,
                       status="completed" if k < past else ("balance_paid" if n % 3 == 0 else "deposit_paid"))
            c["seats_taken"] += 1
            seated.append((row, c))
        elif k < past:
            row["status"] = ("withdrawn", "declined", "not_cleared")[n % 3]
        else:
            phase = (n - capacity) % 6
            if phase == 0:
                row["status"] = "applied"
            elif phase == 1:
                row["status"] = "intake_submitted"
            elif phase == 2:
                row["status"] = "clearance_pending"
                pending.append(row)
            elif phase == 3:
                row["status"] = "cleared"
            else:
                waitpos[k] = waitpos.get(k, 0) + 1
                row.update(status="applied", waitlist_position=waitpos[k], waitlisted_at=row["applied_at"])
        enrollments.append(row)
    bulk_insert(Cohort, cohorts)
    bulk_insert(Enrollment, enrollments)
    echo(f"  cohorts: {len(cohorts)} (capacity {capacity}), enrollments: {len(enrollments)}")

    # The provider's queue: intakes submitted and clearance requests pending.
    i0, q0 = _next_id(Intake), _next_id(ClearanceRequest)
    bulk_insert(Intake, [dict(id=i0 + j, enrollment_id=r["id"], participant_id=r["participant_id"],
                              status="submitted", screening_level="standard", safety_concern=False,
                              submitted_at=now - timedelta(days=2), last_saved_at=now - timedelta(days=2),
                              submissions=1, **stamp) for j, r in enumerate(pending)])
    bulk_insert(ClearanceRequest, [dict(id=q0 + j, enrollment_id=r["id"], intake_id=i0 + j, organization_id=org_id,
                                        status="pending", renewal=False, referred_at=now - timedelta(days=2),
                                        due_at=now + timedelta(days=3 + j % 5), version=1, absolute_override=False,
                                        conditions_shareable=False, **stamp) for j, r in enumerate(pending)])

    # Money: each seated enrollment's history, round-robin until `ledger` entries are written.
    pay0, led0, inst0 = _next_id(Payment), _next_id(LedgerEntry), _next_id(Installment)
    third = (PRICE - DEPOSIT) // 3
    pattern = [("charge", "deposit", DEPOSIT), ("fee", None, -DEPOSIT // 30),
               ("charge", "installment", third), ("fee", None, -third // 30),
               ("charge", "installment", third), ("fee", None, -third // 30),
               ("charge", "installment", PRICE - DEPOSIT - 2 * third), ("fee", None, -third // 30),
               ("discount", None, -5000), ("adjustment", None, 5000)]
    payments, entries = [], []
    attempt: dict[int, int] = {}
    last_payment: dict[int, int] = {}
    j = 0
    while len(entries) < spec.ledger and seated:
        row, c = seated[j % len(seated)]
        entry_type, kind, amount = pattern[(j // len(seated)) % len(pattern)]
        when = min(row["applied_at"] + timedelta(days=5 + 3 * (j // len(seated)), hours=j % 24), now)
        pid = None
        obj = f"seed_{entry_type}_{j}"
        if entry_type == "charge":
            pid = pay0 + len(payments)
            attempt[row["id"]] = attempt.get(row["id"], 0) + 1
            obj = f"pi_seed_{pid}"
            payments.append(dict(id=pid, enrollment_id=row["id"], kind=kind, attempt=attempt[row["id"]],
                                 amount_minor=amount, currency="USD", status="succeeded",
                                 idempotency_key=f"seed-{kind}-{row['id']}-{attempt[row['id']]}",
                                 stripe_payment_intent_id=obj, failure_message="", succeeded_at=when,
                                 created_at=when, updated_at=when))
            last_payment[row["id"]] = pid
        elif entry_type == "fee":
            pid = last_payment.get(row["id"])
        entries.append(dict(id=led0 + len(entries), enrollment_id=row["id"], entry_type=entry_type,
                            amount_minor=amount, currency="USD", stripe_object_id=obj, payment_id=pid,
                            memo=f"{kind or entry_type} (seed)", created_at=when))
        j += 1
    bulk_insert(Payment, payments)
    bulk_insert(LedgerEntry, entries)
    bulk_insert(Installment, [dict(id=inst0 + n, enrollment_id=row["id"], plan_version=1, is_current=True, seq=1,
                                   due_on=c["balance_due_on"], amount_minor=PRICE - DEPOSIT, currency="USD", **stamp)
                              for n, (row, c) in enumerate(seated)])
    echo(f"  payments: {len(payments)}, ledger entries: {len(entries)}, installment plans: {len(seated)}")

    # Outbox: 90 % sent over the last year, the rest due over the next weeks.
    o0 = _next_id(OutboxMessage)
    templates = ("payment_reminder", "checklist_reminder", "consult_reminder", "balance_reminder")
    out = []
    for m in range(spec.outbox):
        p = m % spec.participants
        sent = m % 10 != 0
        due = now - timedelta(minutes=(m * 157) % (365 * 24 * 60) + 1) if sent else \
            now + timedelta(minutes=(m * 37) % (30 * 24 * 60) + 60)
        out.append(dict(id=o0 + m, kind="email", dedupe_key=f"seed-scale:{m}", recipient_user_id=p0 + p,
                        recipient_email=participant_email(p), recipient_name=f"Participant {p}",
                        recipient_tz=ZONES[p % len(ZONES)], template=templates[m % len(templates)],
                        context={"title": "Seeded message", "n": m}, essential=True, due_at=due,
                        next_attempt_at=due, status="sent" if sent else "pending", attempts=1 if sent else 0,
                        sent_at=due + timedelta(seconds=5) if sent else None, created_at=due, updated_at=due))
        if len(out) >= 50000:
            bulk_insert(OutboxMessage, out)
            out = []
    bulk_insert(OutboxMessage, out)
    echo(f"  outbox messages: {spec.outbox}")

    _fix_sequences([ProviderOrganization, User, ProviderLicense, ConsultSettings, AvailabilityRule, Retreat, Cohort,
                    Enrollment, Intake, ClearanceRequest, Payment, LedgerEntry, Installment, OutboxMessage])
    db.session.add(SiteSetting(key=SETTING_KEY, value=json.dumps(asdict(spec))))
    db.session.flush()
    if _is_pg():  # planner statistics for every table (as autovacuum would, later)
        db.session.execute(text("ANALYZE"))
    return SeedReport(True, spec, counts(), time.perf_counter() - t0)


def add_rush_cohort(*, now: datetime, seats: int = 12, applicants: int = 200) -> tuple[int, list[tuple[int, int]]]:
    """A new open cohort of ``seats`` seats whose deposit comes before clearance, with ``applicants``
    seeded participants applied to it: the seat rush. Returns the cohort id and (user id, enrollment id)
    pairs (the caller commits)."""
    retreat_id = db.session.scalar(select(Retreat.id).where(Retreat.slug.like("seed-scale-%")).order_by(Retreat.id)
                                   .limit(1))
    if retreat_id is None:
        raise Conflict("Run seed-scale first.")
    users = list(db.session.scalars(select(User.id).where(User.role == "participant",
                                                          User.email.like(f"%@{SEED_DOMAIN}"))
                                    .order_by(User.id).limit(applicants)))
    if len(users) < applicants:
        raise Conflict(f"Only {len(users)} seeded participants; the rush needs {applicants}.")
    cid = _next_id(Cohort)
    starts = now + timedelta(days=90)
    bulk_insert(Cohort, [dict(id=cid, retreat_id=retreat_id, title=f"Seat rush {cid}", starts_at=starts,
                              ends_at=starts + timedelta(days=6), timezone="America/Denver", capacity=seats,
                              seats_taken=0, currency="USD", price_minor=PRICE, deposit_minor=DEPOSIT,
                              balance_due_on=(starts - timedelta(days=30)).date(), refund_policy="",
                              deposit_timing="before_clearance", status="open", hold_minutes=30, offer_hours=48,
                              created_at=now, updated_at=now)])
    e0 = _next_id(Enrollment)
    bulk_insert(Enrollment, [dict(id=e0 + n, cohort_id=cid, participant_id=u, status="applied", seat="none",
                                  holds_taken=0, offers_made=0, lodging="", applied_at=now,
                                  created_at=now, updated_at=now) for n, u in enumerate(users)])
    _fix_sequences([Cohort, Enrollment])
    return cid, [(u, e0 + n) for n, u in enumerate(users)]
