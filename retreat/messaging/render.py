"""Render an email (subject, text, HTML) from ``templates/emails/<name>.{txt,html}``.

Times are shown in the recipient's time zone: the ``local`` filter of the email environment is
bound to the ``recipient_tz`` of the message (``{{ start_at|local }}``), unlike the web
``local`` filter, which uses the signed-in viewer's zone. Every email gets the practice's
branding (``practice_name``, ``base_url``) and ``unsubscribe_url`` (None for essential mail).

Crisis resources (the practice's setting, ``retreat.accounts.crisis``, reached through the
``crisis_resources`` Jinja global the web layer registers) are in every email to a participant or a
guest, and in none written for the team: ``STAFF_TEMPLATES`` lists those, and a message queued
for a staff account (``audience: "staff"`` in its context, set by ``outbox.enqueue``) is a staff
email too, whatever its template (a password reset for a facilitator).
The subject is the ``{% block subject %}`` of the ``.txt`` template, rendered on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app
from jinja2 import Environment, TemplateNotFound, Undefined, pass_context

from retreat.core import urls
from retreat.messaging.links import rebase
from retreat.timeutil import email_time, format_local

_ENV_KEY = "retreat.email_jinja_env"

# Emails written for the team (facilitators, providers and their organisations, admins): no crisis block.
STAFF_TEMPLATES = frozenset({
    "clearance_deletion_requested", "clearance_new_request", "clearance_updated", "consult_facilitator_notice",
    "integration_alert", "safety_alert", "test_notice",
})
STAFF_AUDIENCE = "staff"


def shows_crisis(template: str, context: dict | None) -> bool:
    """Whether this email carries the crisis resources: participant and guest emails do."""
    return template not in STAFF_TEMPLATES and (context or {}).get("audience") != STAFF_AUDIENCE


class UnknownTemplate(LookupError):
    """No ``templates/emails/<name>.txt``: the message can never be sent as it is."""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str | None


@pass_context
def _local(ctx, value, tz: str | None = None, fmt: str | None = None):
    """``value|local``: an aware datetime (or ISO string) in the recipient's zone, written as
    "Tuesday 12 January 2027, 17:00 (Europe/Berlin)" (or with ``fmt``, a strftime pattern)."""
    if isinstance(value, str) and value:
        from datetime import datetime

        value = datetime.fromisoformat(value)
    if not value:
        return ""
    zone_name = tz or ctx.get("recipient_tz") or "UTC"
    return format_local(value, zone_name, fmt) if fmt else email_time(value, zone_name)


def email_env(app: Flask | None = None) -> Environment:
    """The app's Jinja environment with its own cache and a recipient-bound ``local`` filter."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    env = app.extensions.get(_ENV_KEY)
    if env is None:
        base = app.jinja_env
        env = base.overlay(cache_size=400)
        env.filters = dict(base.filters)
        env.filters["local"] = _local
        env.globals = dict(base.globals)
        app.extensions[_ENV_KEY] = env
    return env


def branding(app: Flask | None = None) -> dict:
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    return {"practice_name": app.config["PRACTICE_NAME"], "base_url": urls.base_url(app)}


def render_email(template: str, context: dict | None = None, *, recipient_tz: str = "UTC",
                 recipient_name: str | None = None, unsubscribe_url: str | None = None,
                 app: Flask | None = None, undefined: type[Undefined] | None = None) -> RenderedEmail:
    """Render ``emails/<template>.txt`` (required) and ``.html`` (optional)."""
    env = email_env(app)
    if undefined is not None:
        env = env.overlay(undefined=undefined)
    if not template or "/" in template or template.startswith(("_", ".")):
        raise UnknownTemplate(f"unknown email template {template!r}")
    values = dict(context or {})
    values.update(branding(app))
    values.update(recipient_tz=recipient_tz, recipient_name=recipient_name,
                  unsubscribe_url=unsubscribe_url, show_crisis=shows_crisis(template, context))
    try:
        txt = env.get_template(f"emails/{template}.txt")
    except TemplateNotFound as exc:
        raise UnknownTemplate(f"unknown email template {template!r}") from exc
    if "subject" not in txt.blocks:
        raise UnknownTemplate(f"email template {template!r} has no subject block")
    subject = " ".join("".join(txt.blocks["subject"](txt.new_context(values))).split())
    if not subject:
        raise UnknownTemplate(f"email template {template!r} renders an empty subject")
    text = txt.render(values).strip() + "\n"
    try:
        html_tmpl = env.get_template(f"emails/{template}.html")
    except TemplateNotFound:
        html = None
    else:
        html = html_tmpl.render({**values, "subject": subject})
    return RenderedEmail(subject=subject, text=text, html=html)


WITHHELD = "[sealed link: not shown]"


class _Withheld(Undefined):
    """What a preview shows where the email had a sealed entry (a capability link)."""

    def __str__(self) -> str:
        return WITHHELD

    def __html__(self) -> str:
        return WITHHELD


def preview(msg) -> RenderedEmail:
    """An outbox message as an operator may read it: rendered from its plain context only. The
    sealed entries (``messaging.sealed``: reset, verification, manage and answer links) are never
    opened; where the email uses one the preview says so. The context holds no clinical data
    (``outbox._check_context``), and neither does the preview. No unsubscribe link either."""
    context = rebase(msg.context, getattr(msg, "link_origin", None), urls.base_url())
    return render_email(msg.template, context, recipient_tz=msg.recipient_tz, recipient_name=msg.recipient_name,
                        undefined=_Withheld)
