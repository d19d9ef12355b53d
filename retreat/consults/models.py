"""Free 1:1 consultations: facilitator availability and the consults booked against it.

Availability is wall-clock time in the facilitator's own IANA zone (``ConsultSettings.tz``):
weekly windows (``AvailabilityRule``) and date overrides (``AvailabilityOverride``), stored as
minutes after local midnight (0..1440, so a window may end at 24:00).

A ``Consultation`` stores its UTC start and end and, separately, the *blocked* range: start
minus the before-buffer to end plus the after-buffer. On PostgreSQL an exclusion constraint
makes two active consults of one facilitator with overlapping blocked ranges impossible,
whatever the concurrency. The constraint is created by migration 0003 and, for ``create_all``,
by the DDL event below; it is kept out of the SQLAlchemy metadata because Alembic does not
compare exclusion constraints.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import DDL, Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, event
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from retreat.accounts.models import User
from retreat.consults.settings import ACCEPTING_BOOKINGS_DEFAULT, MAX_LEN, SETTINGS, default
from retreat.database import TimestampMixin, enum_column
from retreat.extensions import db


class ConsultStatus(StrEnum):
    BOOKED = "booked"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    NO_SHOW = "no_show"


# Every status except CANCELLED holds the facilitator's time.
ACTIVE_CONSULT_STATUSES = frozenset({ConsultStatus.BOOKED, ConsultStatus.COMPLETED, ConsultStatus.NO_SHOW})


class OverrideKind(StrEnum):
    OFF = "off"  # the whole day off (holiday, leave)
    BLOCKED = "blocked"  # some hours of the day unavailable
    EXTRA = "extra"  # extra hours on that day


class ConsultSettings(TimestampMixin, db.Model):
    """One row per facilitator who offers consults; a booking bumps its ``slots_version``."""

    __tablename__ = "consult_settings"
    # The limits and defaults are written once, in retreat.consults.settings.
    __table_args__ = tuple(CheckConstraint(limit.check_sql(), name=limit.constraint) for limit in SETTINGS.values())

    id: Mapped[int] = mapped_column(primary_key=True)
    facilitator_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    tz: Mapped[str] = mapped_column(String(64), default="UTC")
    duration_minutes: Mapped[int] = mapped_column(Integer, default=default("duration_minutes"))
    buffer_before_minutes: Mapped[int] = mapped_column(Integer, default=default("buffer_before_minutes"))
    buffer_after_minutes: Mapped[int] = mapped_column(Integer, default=default("buffer_after_minutes"))
    min_notice_minutes: Mapped[int] = mapped_column(Integer, default=default("min_notice_minutes"))
    horizon_days: Mapped[int] = mapped_column(Integer, default=default("horizon_days"))
    daily_cap: Mapped[int | None] = mapped_column(Integer)  # None: no cap
    slot_interval_minutes: Mapped[int] = mapped_column(Integer, default=default("slot_interval_minutes"))
    # Guests may reschedule or cancel online until this many hours before the call.
    change_cutoff_hours: Mapped[int] = mapped_column(Integer, default=default("change_cutoff_hours"))
    video_link: Mapped[str | None] = mapped_column(String(MAX_LEN["video_link"]))
    accepting_bookings: Mapped[bool] = mapped_column(Boolean, default=ACCEPTING_BOOKINGS_DEFAULT)
    # Bumped whenever anything that changes this facilitator's free times is written (rules,
    # overrides, these settings, a consult booked, moved or cancelled): the slot cache's key.
    slots_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    facilitator: Mapped[User] = relationship()


class AvailabilityRule(TimestampMixin, db.Model):
    """A weekly window: on ``weekday`` (0 = Monday) from ``start_minute`` to ``end_minute``, local time."""

    __tablename__ = "availability_rules"
    __table_args__ = (
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_range"),
        CheckConstraint("start_minute >= 0 AND end_minute <= 1440 AND start_minute < end_minute",
                        name="window_order"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    facilitator_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    weekday: Mapped[int] = mapped_column(Integer)
    start_minute: Mapped[int] = mapped_column(Integer)
    end_minute: Mapped[int] = mapped_column(Integer)


class AvailabilityOverride(TimestampMixin, db.Model):
    """A change to one local date: the day off, some hours blocked, or extra hours."""

    __tablename__ = "availability_overrides"
    __table_args__ = (
        CheckConstraint(
            "kind = 'off' OR (start_minute IS NOT NULL AND end_minute IS NOT NULL "
            "AND start_minute >= 0 AND end_minute <= 1440 AND start_minute < end_minute)",
            name="window_order",
        ),
        Index("ix_availability_overrides_facilitator_day", "facilitator_id", "day"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    facilitator_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = enum_column(OverrideKind, nullable=False)
    start_minute: Mapped[int | None] = mapped_column(Integer)
    end_minute: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(String(200))


class Consultation(TimestampMixin, db.Model):
    __tablename__ = "consultations"
    __table_args__ = (
        CheckConstraint("end_at > start_at", name="ends_after_start"),
        CheckConstraint("blocked_start <= start_at AND blocked_end >= end_at", name="blocked_covers_call"),
        Index("ix_consultations_facilitator_blocked", "facilitator_id", "blocked_start"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Calendar UID, stable across reschedules and cancellation.
    calendar_uid: Mapped[str] = mapped_column(String(120), unique=True)
    facilitator_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    # The account whose history this consult is part of: set only once the email's owner confirmed
    # it (retreat.consults.claims); a booking by anyone else is a guest record (None).
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    start_at: Mapped[datetime] = mapped_column()
    end_at: Mapped[datetime] = mapped_column()
    # start - buffer before .. end + buffer after: what the exclusion constraint compares.
    blocked_start: Mapped[datetime] = mapped_column()
    blocked_end: Mapped[datetime] = mapped_column()
    status: Mapped[str] = enum_column(ConsultStatus, default=ConsultStatus.BOOKED, nullable=False, index=True)
    sequence: Mapped[int] = mapped_column(Integer, default=0)  # iCalendar SEQUENCE
    booked_via: Mapped[str] = mapped_column(String(16), default="web")  # web | api
    guest_name: Mapped[str] = mapped_column(String(200))
    guest_email: Mapped[str] = mapped_column(String(254), index=True)
    guest_phone: Mapped[str | None] = mapped_column(String(40))
    guest_tz: Mapped[str] = mapped_column(String(64), default="UTC")
    heard_from: Mapped[str | None] = mapped_column(String(200))
    # Free text and pre-screen answers may be health information: encrypted at rest.
    reason_encrypted: Mapped[str | None] = mapped_column(Text)
    answers_encrypted: Mapped[str | None] = mapped_column(Text)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    # SHA-256 of the current signed manage token; replaced when the token is reissued.
    manage_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    manage_token_expires_at: Mapped[datetime | None] = mapped_column()
    # SHA-256 of the emailed "this was me" link, and when the owner confirmed (or booked signed in).
    claim_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    owner_confirmed_at: Mapped[datetime | None] = mapped_column()
    cancelled_at: Mapped[datetime | None] = mapped_column()
    cancelled_by: Mapped[str | None] = mapped_column(String(16))  # guest | facilitator
    outcome_recorded_at: Mapped[datetime | None] = mapped_column()
    outcome_recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    recommended_cohort: Mapped[str | None] = mapped_column(String(200))
    outcome_notes_encrypted: Mapped[str | None] = mapped_column(Text)

    facilitator: Mapped[User] = relationship(foreign_keys=[facilitator_id])
    participant: Mapped[User | None] = relationship(foreign_keys=[participant_id])
    # The facilitator's consult settings (video link, cutoff, zone), loaded once per consult.
    settings: Mapped[ConsultSettings | None] = relationship(
        primaryjoin="Consultation.facilitator_id == foreign(ConsultSettings.facilitator_id)",
        viewonly=True, uselist=False)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_CONSULT_STATUSES

    def __repr__(self) -> str:
        return f"<Consultation {self.id} f{self.facilitator_id} {self.start_at:%Y-%m-%dT%H:%MZ} {self.status}>"


NO_OVERLAP_CONSTRAINT = "ex_consultations_no_overlap"
# The statement migration 0003 also runs (kept in sync by tests/unit/test_consult_constraint.py).
NO_OVERLAP_DDL = (
    f"ALTER TABLE consultations ADD CONSTRAINT {NO_OVERLAP_CONSTRAINT} "
    "EXCLUDE USING gist (facilitator_id WITH =, tstzrange(blocked_start, blocked_end, '[)') WITH &&) "
    "WHERE (status <> 'cancelled')"
)

event.listen(Consultation.__table__, "after_create", DDL(NO_OVERLAP_DDL).execute_if(dialect="postgresql"))

# PostgreSQL tells every process when free times may have changed (``retreat.consults.slot_changes``
# listens): one notification per committed transaction that writes consult settings (every change to
# free times bumps ``slots_version`` there, see below) or changes who is an active facilitator.
# NOTIFY is transactional: sent at commit, never for a rolled-back transaction or savepoint.
# The statements migration 0023 also runs (kept in sync by tests/unit/test_slot_changes_ddl.py).
SLOTS_CHANNEL = "retreat_slots"
SLOTS_NOTIFY_DDL = (
    "CREATE OR REPLACE FUNCTION retreat_notify_slots() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN PERFORM pg_notify('retreat_slots', TG_TABLE_NAME); RETURN NULL; END $$",
    "CREATE OR REPLACE TRIGGER consult_settings_notify_slots "
    "AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON consult_settings "
    "FOR EACH STATEMENT EXECUTE FUNCTION retreat_notify_slots()",
    "CREATE OR REPLACE TRIGGER users_notify_slots AFTER UPDATE OF role, is_active ON users "
    "FOR EACH STATEMENT EXECUTE FUNCTION retreat_notify_slots()",
)
for _statement in SLOTS_NOTIFY_DDL:  # users exists by now (consult_settings refers to it)
    event.listen(ConsultSettings.__table__, "after_create", DDL(_statement).execute_if(dialect="postgresql"))


# --------------------------------------------------------------------------------------------
# Slot cache invalidation: one place, for every ORM write that can change free times.
# --------------------------------------------------------------------------------------------

_SETTINGS_TIME_FIELDS = ("tz", "duration_minutes", "buffer_before_minutes", "buffer_after_minutes",
                         "min_notice_minutes", "horizon_days", "daily_cap", "slot_interval_minutes",
                         "accepting_bookings", "facilitator_id")
_CONSULT_TIME_FIELDS = ("status", "start_at", "end_at", "blocked_start", "blocked_end", "facilitator_id")


def _touched_facilitators(session) -> set[int]:
    from sqlalchemy import inspect

    ids: set[int] = set()
    for obj in (*session.new, *session.deleted):
        if isinstance(obj, AvailabilityRule | AvailabilityOverride | Consultation | ConsultSettings):
            ids.add(obj.facilitator_id)
    for obj in session.dirty:
        if isinstance(obj, AvailabilityRule | AvailabilityOverride):
            ids.add(obj.facilitator_id)
        elif isinstance(obj, Consultation):
            state = inspect(obj)
            if any(state.attrs[f].history.has_changes() for f in _CONSULT_TIME_FIELDS):
                ids.update(v for f in ("facilitator_id",) for v in (state.attrs[f].history.deleted or ()))
                ids.add(obj.facilitator_id)
        elif isinstance(obj, ConsultSettings):
            state = inspect(obj)
            if any(state.attrs[f].history.has_changes() for f in _SETTINGS_TIME_FIELDS):
                ids.add(obj.facilitator_id)
    return {i for i in ids if i is not None}


_BUMPED = "consult_slots_bumped"


def note_slots_bumped(session, facilitator_id: int) -> None:
    """The caller has just bumped this facilitator's ``slots_version`` itself, in the session's current
    transaction (the booking does it with the UPDATE that locks the settings row): the hook below does
    not bump it again while that transaction or savepoint is open. Once it ends (committed, released
    or rolled back) the hook bumps as usual, so a rolled-back bump is never relied on."""
    txn = session.get_nested_transaction() or session.get_transaction()
    noted = session.info.setdefault(_BUMPED, {})
    for fid in [f for f, t in noted.items() if not t.is_active]:
        del noted[fid]
    noted[facilitator_id] = txn
    mark_slots_changed(session)


SLOTS_CHANGED = "consult_slots_changed"


def mark_slots_changed(session) -> None:
    """This session's transaction changed free times: ``retreat.consults.slot_changes`` moves this
    process's slot cache on at once (at the flush and again when the transaction ends)."""
    session.info[SLOTS_CHANGED] = True


@event.listens_for(Session, "after_flush")
def _bump_slots_version(session, flush_context):
    ids = _touched_facilitators(session)
    noted = session.info.get(_BUMPED)
    if ids and noted:
        ids = {i for i in ids if i not in noted or not noted[i].is_active}
    if ids:
        from sqlalchemy import update

        table = ConsultSettings.__table__
        session.connection().execute(update(table).where(table.c.facilitator_id.in_(sorted(ids)))
                                     .values(slots_version=table.c.slots_version + 1))
        mark_slots_changed(session)
