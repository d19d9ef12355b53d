from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    FieldList,
    FormField,
    HiddenField,
    SelectField,
    SelectMultipleField,
    StringField,
    TelField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Email, NumberRange, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from retreat.accounts import practice
from retreat.accounts.admin import LICENSE_KINDS
from retreat.accounts.models import STAFF_ROLES, Role
from retreat.accounts.regions import REGION_CHOICES
from retreat.integration.escalation import MAX_AFTER_HOURS, MIN_AFTER_HOURS
from retreat.messaging.webhooks import EVENT_TYPES
from retreat.payments import legal
from retreat.web.forms import (
    DataRequired,
    DateField,
    InputRequired,
    IntegerField,
    Length,
    ZoneField,
    strip,
    zone_options,
)


def choices(pairs) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]


STAFF_ROLE_CHOICES = choices((r.value, r.value.title()) for r in Role if r in STAFF_ROLES)
ALL_ROLE_CHOICES = choices((r.value, r.value.title()) for r in Role)
DATE_FORMAT_MESSAGE = "Enter the date as YYYY-MM-DD."


def org_choices(orgs) -> list[tuple[str, str]]:
    return choices([("", "— none —")] + [(str(o.id), o.name) for o in orgs])


class UserSearchForm(FlaskForm):
    class Meta:
        csrf = False  # a GET filter changes nothing

    q = StringField("Name or email", validators=[Optional(), Length(max=200)], filters=[strip])
    role = SelectField("Role", choices=choices([("", "All roles")]) + ALL_ROLE_CHOICES, validators=[Optional()])
    status = SelectField("Status", choices=choices([("", "Active and inactive"), ("active", "Active"),
                                                    ("inactive", "Deactivated")]), validators=[Optional()])


class StaffUserForm(FlaskForm):
    name = StringField("Full name", validators=[DataRequired(), Length(max=200)], filters=[strip])
    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=254)], filters=[strip])
    role = SelectField("Role", choices=STAFF_ROLE_CHOICES, validators=[DataRequired()])
    tz = ZoneField("Time zone", validators=[DataRequired()], default=lambda: practice.timezone())
    provider_organization = SelectField("Provider organisation", validators=[Optional()],
                                        description="Required for providers.")

    def __init__(self, *args, orgs=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.tz.choices = choices(zone_options([practice.timezone()]))
        self.provider_organization.choices = org_choices(orgs)


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=ALL_ROLE_CHOICES, validators=[DataRequired()])
    provider_organization = SelectField("Provider organisation (for providers)", validators=[Optional()])

    def __init__(self, *args, orgs=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.provider_organization.choices = org_choices(orgs)


class ActionForm(FlaskForm):
    """A button that only carries the CSRF token (and, for toggles, the wanted state)."""

    value = HiddenField()


class LicenseForm(FlaskForm):
    number = StringField("Licence number", validators=[DataRequired(), Length(max=64)], filters=[strip])
    state = SelectField("State or region", choices=choices(REGION_CHOICES), validators=[DataRequired()],
                        description="Where the licence is valid: a US state, or another region.")
    kind = SelectField("Kind", choices=choices((k, k) for k in LICENSE_KINDS), validators=[DataRequired()])
    expires_on = DateField("Expires on", validators=[InputRequired(message=DATE_FORMAT_MESSAGE)],
                           format="%Y-%m-%d", description="YYYY-MM-DD")

    def validate_expires_on(self, field):
        if field.data is None:
            raise ValidationError(DATE_FORMAT_MESSAGE)


class OrganizationForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)], filters=[strip])
    contact_email = EmailField("Contact email", validators=[Optional(), Email(), Length(max=254)], filters=[strip])
    phone = TelField("Phone", validators=[Optional(), Length(max=40)], filters=[strip])


class SettingsForm(FlaskForm):
    require_staff_totp = BooleanField("Require two-factor authentication for staff roles")
    # Not sent at all (an API client setting only the two-factor box): the zone in force is kept.
    practice_timezone = ZoneField("Practice time zone", validators=[DataRequired()],
                                  default=lambda: practice.timezone())

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.practice_timezone.choices = choices(zone_options([practice.timezone()]))


class SafetySettingsForm(FlaskForm):
    escalate_after_hours = IntegerField(
        "Escalate an unacknowledged alert after (hours)",
        validators=[InputRequired(message="Enter how many hours an alert may wait before it is escalated."),
                    NumberRange(min=MIN_AFTER_HOURS, max=MAX_AFTER_HOURS,
                                message=f"Enter a whole number of hours from {MIN_AFTER_HOURS} to {MAX_AFTER_HOURS}.")])
    practice_contact_email = EmailField("Practice safety contact (email)",
                                        validators=[Optional(), Email(message="Enter an email address, like safety@example.org."),
                                                    Length(max=254)], filters=[strip])


class LegalDetailsForm(FlaskForm):
    """The practice's legal details on receipts, credit notes and statements (``payments.legal``)."""

    legal_name = StringField("Legal name", validators=[DataRequired(), Length(max=legal.MAX_NAME)], filters=[strip])
    address = TextAreaField("Address", validators=[DataRequired(), Length(max=legal.MAX_ADDRESS)], filters=[strip],
                            render_kw={"rows": 4})
    tax_id = StringField("Tax id", validators=[Optional(), Length(max=legal.MAX_TAX_ID)], filters=[strip])
    footer = TextAreaField("Invoice footer", validators=[Optional(), Length(max=legal.MAX_FOOTER)], filters=[strip],
                           render_kw={"rows": 3})


class AuditFilterForm(FlaskForm):
    class Meta:
        csrf = False

    action = StringField("Action starts with", render_kw={"placeholder": "e.g. user. or auth.login"}, validators=[Optional(), Length(max=64)], filters=[strip])
    actor = StringField("Actor email", validators=[Optional(), Length(max=254)], filters=[strip])
    object_type = StringField("Object type", validators=[Optional(), Length(max=64)], filters=[strip])
    object_id = StringField("Object id", validators=[Optional(), Length(max=64)], filters=[strip])
    date_from = DateField("From (your time zone)", validators=[Optional()], format="%Y-%m-%d")
    date_to = DateField("To (inclusive)", validators=[Optional()], format="%Y-%m-%d")


class CrisisResourceRow(FlaskForm):
    class Meta:
        csrf = False

    # The lengths and the number's shape are checked by ``accounts.crisis.validate`` (one definition).
    name = StringField("Name", filters=[strip])
    number = StringField("Number", filters=[strip])
    description = StringField("Description", filters=[strip])


class CrisisResourcesForm(FlaskForm):
    country = StringField("Country", validators=[DataRequired(), Length(max=60)], filters=[strip])
    resources = FieldList(FormField(CrisisResourceRow), min_entries=6, max_entries=6)


class _Checkboxes(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class WebhookEndpointForm(FlaskForm):
    url = StringField("URL", validators=[DataRequired(), Length(max=500)], filters=[strip],
                      description="Where to POST the events, e.g. https://hooks.zapier.com/hooks/catch/…")
    description = StringField("Description", validators=[Optional(), Length(max=200)], filters=[strip],
                              description="For you: what receives it (\u201cZapier: new consults to the CRM\u201d).")
    events = _Checkboxes("Events", validate_choice=False,
                         choices=choices((k, f"{k}: {v}") for k, v in EVENT_TYPES.items() if k != "webhook.test"))
