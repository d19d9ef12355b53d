from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, RadioField, SelectField, StringField, TelField, TextAreaField
from wtforms.validators import Email, Optional

from retreat.blueprints.account.forms import PhoneCodeForm, PhoneNumberForm  # noqa: F401  (the same fields as /account/sms)
from retreat.consults.prescreen import ANSWER_CHOICES, HEARD_FROM_CHOICES, PRESCREEN_QUESTIONS
from retreat.consults.settings import MAX_LEN
from retreat.web.forms import DataRequired, Length, ZoneField, strip, zone_options

try:  # WTForms >= 3.3 prefers SelectChoice objects to (value, label) tuples
    from wtforms.fields.choices import SelectChoice

    def choices(pairs) -> list:
        return [SelectChoice(value, label) for value, label in pairs]
except ImportError:  # pragma: no cover - older WTForms
    def choices(pairs) -> list:
        return list(pairs)


def zone_choices() -> list:
    return choices(zone_options())


class BookingForm(FlaskForm):
    start = HiddenField()
    facilitator = HiddenField(default="any")
    name = StringField("Your name", filters=[strip], validators=[
        DataRequired("Enter your name."), Length(max=MAX_LEN["name"], message="Keep your name under 200 characters.")])
    email = EmailField("Email", filters=[strip], validators=[
        DataRequired("Enter your email address."), Email("Enter a valid email address, like name@example.com."),
        Length(max=MAX_LEN["email"])])
    phone = TelField("Phone (optional)", filters=[strip], validators=[
        Optional(), Length(max=MAX_LEN["phone"], message="Keep the phone number under 40 characters.")])
    timezone = ZoneField("Your time zone")
    reason = TextAreaField("What brings you to us?", filters=[strip], validators=[
        Optional(), Length(max=MAX_LEN["reason"], message="Keep this under 2000 characters.")])
    heard_from = SelectField("How did you hear about us?", validators=[Optional()],
                             choices=choices([("", "Choose one (optional)")] + [(c, c) for c in HEARD_FROM_CHOICES]))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.timezone.choices = zone_choices()

    def prescreen_fields(self):
        return [getattr(self, f"q_{key}") for key, _ in PRESCREEN_QUESTIONS]

    def answers(self) -> dict:
        return {key: getattr(self, f"q_{key}").data for key, _ in PRESCREEN_QUESTIONS
                if getattr(self, f"q_{key}").data}


for _key, _question in PRESCREEN_QUESTIONS:
    setattr(BookingForm, f"q_{_key}", RadioField(_question, choices=choices(ANSWER_CHOICES), validators=[Optional()]))


class ConfirmForm(FlaskForm):
    """A bare POST with CSRF (cancel, confirm a new time)."""

    start = HiddenField()
