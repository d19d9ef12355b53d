"""Answering a check-in or survey from the link in its email: ``/follow-up/<token>``.

The emailed link is a capability link (``web.capability_links``): its GET checks the token, keeps
it in the browser's session and answers 303 to ``/follow-up/answer/<id>``, whose address holds no
token; the form posts there. A POST to the token address (a page rendered before this change)
is still answered, so no answers are lost during an upgrade.

No login: the signed, expiring token is the key. CSRF on the form, ``Cache-Control: no-store``
(clinical answers), POSTs rate limited per address. A bad, expired or already answered link gets
a clear page with the right status; invalid answers come back with a message per field (400) and
nothing stored.
"""

from __future__ import annotations

from flask import current_app, render_template, request, url_for
from flask_wtf import FlaskForm

from retreat.blueprints.public import bp
from retreat.clinical import screening
from retreat.core.errors import DomainError, ValidationFailed
from retreat.extensions import limiter
from retreat.integration import checkins, links
from retreat.timeutil import now_utc
from retreat.web import capability_links, rate_keys
from retreat.web.hooks import no_store


class FollowUpForm(FlaskForm):
    """Only the CSRF token: the answers are validated by ``checkins``."""


def _limit() -> str:
    return current_app.config.get("FOLLOWUP_RATE_LIMIT", "20 per minute")


_key = rate_keys.client("follow-up")


FOLLOWUP_LINK = "follow-up"
LINK_NOT_HELD = ("This page opens from the link in your email. Please open that link again "
                 "(it works until the check-in closes).")


def _page(f, info: dict, *, values=None, errors=None, status: int = 200):
    sections = {"stem": screening.QUESTIONNAIRE_STEM, "choices": screening.FREQUENCY_CHOICES,
                "phq9": list(zip(screening.PHQ9_KEYS, screening.PHQ9_ITEMS, strict=True)),
                "gad7": list(zip(screening.GAD7_KEYS, screening.GAD7_ITEMS, strict=True))}
    return render_template("public/followup_form.html", info=info,
                           action=url_for("public.follow_up_page", followup_id=f.id), form=FollowUpForm(),
                           values=values or {}, errors=errors or {}, sections=sections,
                           scores=range(checkins.SCORE_MIN, checkins.SCORE_MAX + 1),
                           sleep_choices=checkins.SLEEP_CHOICES, yes_no=checkins.YES_NO,
                           text_max=checkins.FREE_TEXT_MAX), status


def _closed(exc: DomainError):
    return render_template("public/followup_closed.html", message=exc.message,
                           answered=isinstance(exc, links.AlreadyAnswered)), exc.status


@bp.get("/follow-up/<token>")
@capability_links.private_page
@no_store
def follow_up_link(token: str):
    """The emailed link: checked, then held in this browser's session; the form's address has no token."""
    try:
        f = links.open_followup(token, now=now_utc())
    except DomainError as exc:
        return _closed(exc)
    return capability_links.hand_over(FOLLOWUP_LINK, f.id, token,
                                      url_for("public.follow_up_page", followup_id=f.id))


@bp.post("/follow-up/<token>")
@limiter.limit(_limit, key_func=_key)
@capability_links.private_page
@no_store
def follow_up(token: str):
    """Answers posted to the token address (pages rendered before the hand-over existed)."""
    return _answer(token)


@bp.route("/follow-up/answer/<int:followup_id>", methods=["GET", "POST"])
@limiter.limit(_limit, methods=["POST"], key_func=_key)
@capability_links.private_page
@no_store
def follow_up_page(followup_id: int):
    token = capability_links.held(FOLLOWUP_LINK, followup_id)
    if token is None:
        return render_template("public/followup_closed.html", message=LINK_NOT_HELD, answered=False), 400
    return _answer(token)


def _answer(token: str):
    now = now_utc()
    try:
        f = links.open_followup(token, now=now)
    except DomainError as exc:
        return _closed(exc)
    capability_links.keep(FOLLOWUP_LINK, f.id, token)  # a POST to the token address: the form posts token-free next
    info = checkins.describe(f)
    if request.method == "GET":
        return _page(f, info)
    values = request.form.to_dict()
    if not FollowUpForm().validate_on_submit():
        return _page(f, info, values=values, status=400,
                     errors={"_form": ["This form expired. Your answers are below: please send them again."]})
    try:
        done = checkins.answer(token, request.form, now=now)
    except ValidationFailed as exc:
        return _page(f, info, values=values, errors=exc.errors, status=400)
    except DomainError as exc:
        return _closed(exc)
    return render_template("public/followup_thanks.html", info=info, needs_support=done.needs_support,
                           contact_phone=current_app.config.get("PRACTICE_CONTACT_PHONE"),
                           contact_email=current_app.config.get("PRACTICE_CONTACT_EMAIL"))
