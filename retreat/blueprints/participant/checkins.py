"""The participant's own follow-ups ("Your check-ins"): what they were sent, what they answered,
and their answers to one of them. Clinical: never cached; every view is audited by the service."""

from __future__ import annotations

from flask import abort, current_app, render_template, url_for

from retreat.blueprints.participant import bp
from retreat.clinical import screening
from retreat.core.errors import NotFound
from retreat.integration import checkins, links
from retreat.timeutil import now_utc
from retreat.web.hooks import no_store
from retreat.web.security import acting_user, request_context


@bp.get("/check-ins")
@no_store
def checkins_index():
    items = checkins.own_checkins(acting_user(), now=now_utc(), ctx=request_context())
    # The same signed link as in the email (no query): only for their own follow-ups still open.
    answer_links = {i.follow_up.id: url_for("public.follow_up_link", token=links.token_for(i.follow_up))
                    for i in items if i.state == checkins.PENDING}
    page = render_template("participant/checkins.html", items=items, links=answer_links, states=checkins)
    return page


@bp.get("/check-ins/<int:follow_up_id>")
@no_store
def checkin_detail(follow_up_id: int):
    try:
        answers = checkins.own_answers(acting_user(), follow_up_id, now=now_utc(), ctx=request_context())
    except NotFound:
        abort(404)
    page = render_template("participant/checkin_detail.html", a=answers, item=answers.item,
                           stem=screening.QUESTIONNAIRE_STEM,
                           contact_phone=current_app.config.get("PRACTICE_CONTACT_PHONE"),
                           contact_email=current_app.config.get("PRACTICE_CONTACT_EMAIL"))
    return page
