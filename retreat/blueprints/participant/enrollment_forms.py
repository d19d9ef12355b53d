from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, StringField, TelField, TextAreaField
from wtforms.validators import Email, Optional

from retreat.cohorts.preparation import ANSWER_MAX, DRIVER_NAME_MAX
from retreat.web.forms import DataRequired, Length, strip


class ApplyForm(FlaskForm):
    motivation = TextAreaField("What draws you to this retreat?", validators=[Optional(), Length(max=2000)],
                               filters=[strip])
    partner_email = EmailField("Applying with someone? Their email (optional)",
                               validators=[Optional(), Email(), Length(max=254)], filters=[strip])
    agree = BooleanField("I understand that a licensed partner provider must medically clear me before "
                         "the retreat, and that my health details are seen only by them.",
                         validators=[DataRequired(message="Please confirm that you understand this.")])


class WithdrawForm(FlaskForm):
    reason = TextAreaField("Why are you withdrawing? (optional)", validators=[Optional(), Length(max=500)],
                           filters=[strip])


class ChecklistAnswerForm(FlaskForm):
    # One limit, the rule's (preparation.ANSWER_MAX): the form, its maxlength and the hint read it.
    answer = TextAreaField("Your answer", validators=[Length(
        max=ANSWER_MAX, message=f"Please keep your answer under {ANSWER_MAX} characters.")], filters=[strip])


class ChecklistDriverForm(FlaskForm):
    # The rule (preparation.parse_driver) says what is missing or wrong; the lengths here only stop floods.
    driver_name = StringField("Driver's name", validators=[Length(
        max=DRIVER_NAME_MAX, message=f"Keep the driver's name to {DRIVER_NAME_MAX} characters.")],
        filters=[strip], render_kw={"autocomplete": "off"})
    driver_phone = TelField("Driver's phone number", validators=[Length(
        max=40, message="That phone number is too long.")], filters=[strip], render_kw={"autocomplete": "off"})


class ChecklistAckForm(FlaskForm):
    acknowledged = BooleanField("I have read these instructions and will follow them.")


class SignForm(FlaskForm):
    typed_name = StringField("Type your full name to sign", validators=[Length(max=400)], filters=[strip])
