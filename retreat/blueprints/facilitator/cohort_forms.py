"""Forms for managing retreats, cohorts, sessions and the roster."""

from __future__ import annotations

from datetime import datetime

import wtforms
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    FieldList,
    FormField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import URL, NumberRange, Optional, ValidationError

from retreat.accounts import practice
from retreat.cohorts.catalog import SESSION_KIND_LABELS
from retreat.cohorts.models import DepositTiming, SessionKind
from retreat.money import SUPPORTED_CURRENCIES, MoneyError, to_minor
from retreat.payments import refund_policy
from retreat.payments.balances import DUE_BEFORE_START
from retreat.timeutil import zone
from retreat.web.forms import (
    DataRequired,
    DateField,
    DateTimeLocalField,
    IntegerField,
    Length,
    ZoneField,
    check_int_range,
    strip,
    zone_options,
)


def local_to_utc(value: datetime, tz_name: str) -> datetime:
    """A wall-clock time in ``tz_name`` (from a datetime-local input) as an aware UTC instant."""
    from datetime import UTC

    return value.replace(tzinfo=zone(tz_name)).astimezone(UTC)


class RetreatForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=200)], filters=[strip])
    slug = StringField("Web address (slug)", validators=[Optional(), Length(max=120)], filters=[strip])
    summary = StringField("One-line summary", validators=[Optional(), Length(max=400)], filters=[strip])
    description = TextAreaField("Description", validators=[Optional(), Length(max=20000)], filters=[strip])
    location = StringField("Location", validators=[Optional(), Length(max=200)], filters=[strip])
    included = TextAreaField("What is included (one item a line)", validators=[Optional(), Length(max=5000)],
                             filters=[strip])
    is_published = BooleanField("Published (visible on the public site)", default=True)
    guide = FileField("Program guide (PDF, up to 10 MB)")


class MoneyField(StringField):
    """An amount typed by a person; converted to minor units by the view with the chosen currency."""


TIER_ROWS = 5
PERCENT_IN_NOTES = refund_policy.PERCENT_IN_NOTES


class RefundTierForm(wtforms.Form):
    """One refund tier: ``percent`` of what was paid back when withdrawing ``days`` or more before the start."""

    days = IntegerField("Days before the start", validators=[Optional()])
    percent = IntegerField("Percent refunded", validators=[Optional()])


class CohortForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=200)], filters=[strip])
    timezone = ZoneField("Time zone", validators=[DataRequired()])
    starts_at = DateTimeLocalField("Starts (local time)", format="%Y-%m-%dT%H:%M", validators=[DataRequired()])
    ends_at = DateTimeLocalField("Ends (local time)", format="%Y-%m-%dT%H:%M", validators=[DataRequired()])
    capacity = IntegerField("Capacity (seats)", validators=[DataRequired(), NumberRange(min=1, max=500)])
    currency = SelectField("Currency", choices=[(c, c) for c in SUPPORTED_CURRENCIES], default="USD")
    price = MoneyField("Price", validators=[DataRequired(), Length(max=20)], filters=[strip])
    deposit = MoneyField("Deposit", validators=[DataRequired(), Length(max=20)], filters=[strip])
    screening_fee = MoneyField("Screening fee (optional)", validators=[Optional(), Length(max=20)], filters=[strip],
                               description="Charged with the application and credited against the price (it "
                                           "is the first part of the deposit). Refunded in full if the medical "
                                           "provider does not clear the person; kept if they withdraw. Leave "
                                           "empty or 0 for no fee.")
    balance_due_on = DateField("Balance due on", validators=[Optional()], description=(
        f"Leave empty to have the balance due {DUE_BEFORE_START.days} days before the start: it then moves "
        "with the cohort's dates. A date you enter stays as it is when the dates move."))
    refund_policy = TextAreaField("Additional refund notes (the percentages come from the tiers)",
                                  validators=[Optional(), Length(max=5000)], filters=[strip])
    tiers = FieldList(FormField(RefundTierForm), "Refund tiers", min_entries=TIER_ROWS, max_entries=TIER_ROWS)
    deposit_timing = SelectField("Deposit is taken", choices=[
        (DepositTiming.AFTER_CLEARANCE.value, "After medical clearance"),
        (DepositTiming.BEFORE_CLEARANCE.value, "Before clearance (refunded if not cleared)")])
    provider_organization_id = SelectField("Partner provider organisation", coerce=int, choices=[])
    hold_minutes = IntegerField("Seat hold while paying (minutes)", default=30,
                                validators=[DataRequired(), NumberRange(min=5, max=1440)])
    offer_hours = IntegerField("Waitlist offers last (hours)", default=48,
                               validators=[DataRequired(), NumberRange(min=1, max=336)])

    def __init__(self, *args, orgs=(), **kw):
        super().__init__(*args, **kw)
        # The cohort's own zone (when editing) and the practice's home zone first.
        self.timezone.choices = zone_options([self.timezone.data, practice.timezone()])
        self.provider_organization_id.choices = [(0, "— none yet —")] + [(o.id, o.name) for o in orgs]

    def _minor(self, f) -> int:
        try:
            return check_int_range(to_minor(f.data or "", self.currency.data or "USD"))
        except MoneyError as exc:
            raise ValidationError(str(exc)) from exc

    def validate_refund_policy(self, f):
        if f.data and PERCENT_IN_NOTES.search(f.data):
            raise ValidationError("Leave percentages out of the notes: the refund tiers set them, and the policy "
                                  "text shown to participants is written from the tiers.")

    def tier_rows(self) -> list[tuple[int | None, int | None]]:
        return [(row.form.days.data, row.form.percent.data) for row in self.tiers]

    def set_tiers(self, steps) -> None:
        steps = list(steps)[:TIER_ROWS]
        for i, row in enumerate(self.tiers):
            days, pct = steps[i] if i < len(steps) else (None, None)
            row.form.days.data, row.form.percent.data = days, pct

    def validate_price(self, f):
        self._minor(f)

    def validate_deposit(self, f):
        self._minor(f)

    def validate_screening_fee(self, f):
        if (f.data or "").startswith("-"):
            raise ValidationError("The screening fee cannot be negative; leave it empty for no fee.")
        if f.data:
            self._minor(f)

    @property
    def screening_fee_minor(self) -> int:
        return self._minor(self.screening_fee) if self.screening_fee.data else 0

    @property
    def price_minor(self) -> int:
        return self._minor(self.price)

    @property
    def deposit_minor(self) -> int:
        return self._minor(self.deposit)


class SessionForm(FlaskForm):
    kind = SelectField("Kind", choices=[(k.value, SESSION_KIND_LABELS[k]) for k in SessionKind])
    title = StringField("Title", validators=[Optional(), Length(max=200)], filters=[strip])
    starts_at = DateTimeLocalField("Starts (cohort's local time)", format="%Y-%m-%dT%H:%M",
                                   validators=[DataRequired()])
    ends_at = DateTimeLocalField("Ends (cohort's local time)", format="%Y-%m-%dT%H:%M", validators=[DataRequired()])
    location = StringField("Place", validators=[Optional(), Length(max=200)], filters=[strip])
    video_url = StringField("Video link", validators=[Optional(), URL(), Length(max=500)], filters=[strip])
    facilitator_id = SelectField("Facilitator", coerce=int, choices=[])

    def __init__(self, *args, facilitators=(), **kw):
        super().__init__(*args, **kw)
        self.facilitator_id.choices = [(0, "—")] + [(u.id, u.name) for u in facilitators]


class StatusForm(FlaskForm):
    status = SelectField("Status", choices=[(s, s.title()) for s in
                                            ("draft", "open", "closed", "completed", "cancelled")])


class ReasonForm(FlaskForm):
    reason = TextAreaField("Reason", validators=[DataRequired(), Length(max=1000)], filters=[strip])


class NoteForm(FlaskForm):
    body = TextAreaField("Add a note (operational only, never clinical)",
                         validators=[DataRequired(), Length(max=2000)], filters=[strip])


class LodgingForm(FlaskForm):
    lodging = StringField("Room or lodging", validators=[Optional(), Length(max=120)], filters=[strip])


class ConsentForm(FlaskForm):
    kind = StringField("Kind (e.g. participation)", validators=[DataRequired(), Length(max=60)], filters=[strip])
    title = StringField("Title", validators=[DataRequired(), Length(max=200)], filters=[strip])
    body = TextAreaField("Text", validators=[DataRequired(), Length(max=100000)])
