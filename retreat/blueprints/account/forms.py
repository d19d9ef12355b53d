from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, HiddenField, PasswordField, StringField
from wtforms.validators import Email, EqualTo, Optional

from retreat.accounts.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from retreat.web.forms import DataRequired, Length, ZoneField, strip, zone_options


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=254)], filters=[strip])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    remember = BooleanField("Keep me signed in on this device")


# Sign-up, verification, password reset, two-factor, settings -----------------------------------

PASSWORD_HINT = f"At least {MIN_PASSWORD_LENGTH} characters. A few unrelated words make a strong one."
_TOO_SHORT = f"Use at least {MIN_PASSWORD_LENGTH} characters for your password."
_MISMATCH = "The two passwords do not match."


def zone_choices() -> list[tuple[str, str]]:
    return zone_options()


def new_password_fields(label: str = "Password"):
    """A new password and its confirmation (min length, must match)."""
    password = PasswordField(label, validators=[DataRequired(message="Choose a password."),
                                                Length(min=MIN_PASSWORD_LENGTH, max=MAX_PASSWORD_LENGTH, message=_TOO_SHORT)])
    confirm = PasswordField("Confirm password", validators=[DataRequired(message="Type the password again."),
                                                            EqualTo("password", message=_MISMATCH)])
    return password, confirm


class SignupForm(FlaskForm):
    name = StringField("Your name", validators=[DataRequired(message="Enter your name."), Length(max=200)],
                       filters=[strip])
    email = EmailField("Email", validators=[DataRequired(message="Enter your email address."),
                                            Email(message="Enter a valid email address."), Length(max=254)],
                       filters=[strip])
    password, confirm = new_password_fields()
    tz = ZoneField("Your time zone", default="UTC")
    agree = BooleanField("I have read and agree to the privacy notice",
                         validators=[DataRequired(message="Please agree to the privacy notice to continue.")])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tz.choices = zone_choices()


class EmailOnlyForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(message="Enter your email address."),
                                            Email(message="Enter a valid email address."), Length(max=254)],
                       filters=[strip])


class ResetPasswordForm(FlaskForm):
    password, confirm = new_password_fields("New password")


class ResendVerificationForm(FlaskForm):
    token = HiddenField()


class TotpCodeForm(FlaskForm):
    code = StringField("Code", validators=[DataRequired(message="Enter the code from your app."), Length(max=20)],
                       filters=[strip], render_kw={"autocomplete": "one-time-code", "inputmode": "text",
                                                   "autocapitalize": "off", "spellcheck": "false"})


class TotpDisableForm(FlaskForm):
    password = PasswordField("Your password", validators=[DataRequired(message="Enter your password.")])
    code = StringField("Current code from your app (or a recovery code)",
                       validators=[DataRequired(message="Enter a code."), Length(max=20)], filters=[strip],
                       render_kw={"autocomplete": "one-time-code"})


class ProfileForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(message="Enter your name."), Length(max=200)],
                       filters=[strip])
    tz = ZoneField("Time zone")
    phone = StringField("Phone (optional)", validators=[Optional(), Length(max=40)], filters=[strip])
    marketing_opt_out = BooleanField("Only send me essential messages (bookings, payments, safety)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tz.choices = zone_choices()


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField("Current password",
                                     validators=[DataRequired(message="Enter your current password.")])
    password, confirm = new_password_fields("New password")


class ConfirmForm(FlaskForm):
    """A button that only needs CSRF protection (sign out everywhere)."""


class PhoneNumberForm(FlaskForm):
    phone = StringField("Mobile number", validators=[DataRequired(message="Enter your mobile number."),
                                                     Length(max=40, message="That is not a phone number.")],
                        filters=[strip], render_kw={"autocomplete": "tel", "inputmode": "tel"})


class PhoneCodeForm(FlaskForm):
    code = StringField("Code from the text message",
                       validators=[DataRequired(message="Enter the 6-digit code from the text message."),
                                   Length(max=12, message="Enter the 6-digit code from the text message.")],
                       filters=[strip], render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"})
