"""Form helpers every blueprint shares: the one input filter, the validators whose messages name
their field, and how a refusal is shown.

``DataRequired``, ``InputRequired`` and ``Length`` are wtforms' own with one change: without a
message of their own they name the field ("Email is required.", "Full name must be at most 200
characters."), never "This field is required.". Forms import them from here (a test checks it).

A refusal shown on the page (next to the form's fields, or as a flash message on the page a
view redirects to) keeps nothing of the request: both helpers tell the commit point so
(``transaction.discard``), whatever status the page is answered with.
"""

from __future__ import annotations

from collections.abc import Mapping

import wtforms
from flask import flash
from flask_wtf import FlaskForm
from wtforms import validators
from wtforms.validators import StopValidation, ValidationError

from retreat.core.errors import DomainError
from retreat.database import INT_MAX
from retreat.timeutil import (
    EARLIEST_YEAR,
    LATEST_YEAR,
    canonical_zone,
    common_zones,
    in_calendar,
    now_utc,
    zone_label,
)
from retreat.web import transaction

CALENDAR_MESSAGE = f"Enter a date between {EARLIEST_YEAR} and {LATEST_YEAR}."
INT_RANGE_MESSAGE = "That number is too large."


def strip(value):
    """The input filter of every text field: surrounding whitespace never counts."""
    return value.strip() if isinstance(value, str) else value


def check_int_range(value: int) -> int:
    """The shared bound of every number typed into a form or JSON: what an Integer column holds."""
    if not -INT_MAX - 1 <= value <= INT_MAX:
        raise ValidationError(INT_RANGE_MESSAGE)
    return value


def field_name(field) -> str:
    """The field's label as a person reads it, for messages ("Email", "Full name")."""
    text = str(getattr(field.label, "text", "") or field.name.replace("_", " ")).strip().rstrip(":*").strip()
    return text[:1].upper() + text[1:] if text else "This field"


class _NamesItsField:
    """A required-field validator whose default message names the field ("Email is required.")."""

    def __call__(self, form, field):
        if self.message is None:
            try:
                return super().__call__(form, field)
            except StopValidation as exc:
                raise StopValidation(f"{field_name(field)} is required.") from exc
        return super().__call__(form, field)


class DataRequired(_NamesItsField, validators.DataRequired):
    pass


class InputRequired(_NamesItsField, validators.InputRequired):
    pass


class Length(validators.Length):
    def __call__(self, form, field):
        if self.message is None:
            length = len(field.data) if field.data else 0
            if length < self.min:
                raise ValidationError(f"{field_name(field)} must be at least {self.min} characters.")
            if self.max != -1 and length > self.max:
                raise ValidationError(f"{field_name(field)} must be at most {self.max} characters "
                                      f"(it has {length}).")
            return None
        return super().__call__(form, field)


class IntegerField(wtforms.IntegerField):
    """wtforms' IntegerField, refusing (as a field error) a number no Integer column holds."""

    def pre_validate(self, form):
        if isinstance(self.data, int):
            try:
                check_int_range(self.data)
            except ValidationError as exc:
                raise StopValidation(str(exc)) from exc


class _InCalendar:
    def pre_validate(self, form):
        if self.data is not None and not in_calendar(self.data):
            raise StopValidation(CALENDAR_MESSAGE)


class DateField(_InCalendar, wtforms.DateField):
    """wtforms' DateField within the app's one calendar bound (timeutil.EARLIEST_YEAR..LATEST_YEAR)."""


class DateTimeLocalField(_InCalendar, wtforms.DateTimeLocalField):
    """wtforms' DateTimeLocalField within the app's one calendar bound: converting 9999-12-31T23:59
    from a western zone to UTC would overflow."""


def show_domain_error(form: FlaskForm, exc: DomainError, fields: Mapping[str, str] | None = None) -> None:
    """Show a service's refusal on the form that caused it; nothing of the request is kept.

    Each field error goes next to the form field of that name (``fields`` renames: an error's
    name to the field that shows it, or to "" for above the form). Errors of a name the form
    has no field for go above the form; an error naming no field at all shows its message there.
    """
    transaction.discard(f"form refused: {exc.message}")
    for name, messages in exc.errors.items():
        field = _field(form, name, fields)
        if field is not None:
            field.errors = list(field.errors) + list(messages)
        else:
            form.form_errors.extend(messages)
    if not exc.errors:
        form.form_errors.append(exc.message)


def _field(form: FlaskForm, name: str, fields: Mapping[str, str] | None):
    name = (fields or {}).get(name, name)
    return form._fields.get(name) if name else None


def refused(message: str, category: str = "error") -> None:
    """A refused change told as a flash message (usually on the page the view redirects to):
    nothing of the request is kept although the answer is a redirect."""
    transaction.discard(f"refused: {message}")
    flash(message, category)


def status_for(form: FlaskForm) -> int:
    """422 when the form (or the service) refused the input, else 200."""
    return 422 if form.errors or form.form_errors else 200


ZONE_MESSAGE = "Choose a time zone from the list; {value!r} is not one we know."


def zone_options(first: list[str | None] | tuple = (), *, now=None) -> list[tuple[str, str]]:
    """(value, label) for a time-zone picker: the zones in ``first`` (the practice's or cohort's),
    then every canonical zone; each label carries the zone's current UTC offset."""
    at = now or now_utc()
    zones = common_zones()
    preferred = [z for z in dict.fromkeys(canonical_zone(f) for f in first) if z]
    return [(z, zone_label(z, at)) for z in preferred] + [(z, zone_label(z, at)) for z in zones if z not in preferred]


class ZoneField(wtforms.SelectField):
    """A time-zone select: an alias (an old saved Asia/Calcutta, US/Mountain) is read as its canonical
    zone; anything else outside the list is refused with a message naming it."""

    def __init__(self, label=None, validators=None, **kwargs):
        kwargs.setdefault("choices", [])
        kwargs.setdefault("render_kw", {"data-zone-picker": ""})
        super().__init__(label, validators, filters=[lambda v: canonical_zone(v) or v], **kwargs)

    def pre_validate(self, form):
        values = {c.value if hasattr(c, "value") else c[0] for c in self.choices}
        if self.data not in values:
            raise ValidationError(ZONE_MESSAGE.format(value=str(self.data or "")[:64]))
