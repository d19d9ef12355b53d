"""``/account/calendar``: copy, reset or turn off your private calendar subscription link."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_login import current_user

from retreat.accounts import calendar_feeds
from retreat.blueprints.account import bp
from retreat.blueprints.account.forms import ConfirmForm
from retreat.core import urls
from retreat.timeutil import now_utc
from retreat.web.hooks import no_store
from retreat.web.security import request_context, roles_required


def _user():
    return current_user._get_current_object()


def feed_url(feed) -> str:
    return f"{urls.base_url()}{url_for('public.calendar_feed_ics', token=feed.token)}"


@bp.get("/calendar")
@roles_required(*calendar_feeds.FEED_ROLES)
@no_store  # the page shows a credential
def calendar():
    user = _user()
    feed = calendar_feeds.active_feed(user)
    url = feed_url(feed) if feed else None
    return render_template("account/calendar.html", feed=feed, url=url,
                           webcal=url.replace("https://", "webcal://", 1).replace("http://", "webcal://", 1)
                           if url else None,
                           reset_form=ConfirmForm(prefix="reset"), off_form=ConfirmForm(prefix="off"))


@bp.post("/calendar/reset")
@roles_required(*calendar_feeds.FEED_ROLES)
def calendar_reset():
    user = _user()
    form = ConfirmForm(prefix="reset")
    if not form.validate_on_submit():
        flash("Your form expired. Please try again.", "error")
        return redirect(url_for("account.calendar")), 303
    had = calendar_feeds.active_feed(user) is not None
    calendar_feeds.issue(user, now=now_utc(), ctx=request_context())
    flash("A new subscription link is ready. The old link no longer works: update your calendar app."
          if had else "Your subscription link is ready. Add it to your calendar app.", "success")
    return redirect(url_for("account.calendar")), 303


@bp.post("/calendar/off")
@roles_required(*calendar_feeds.FEED_ROLES)
def calendar_off():
    user = _user()
    form = ConfirmForm(prefix="off")
    if not form.validate_on_submit():
        flash("Your form expired. Please try again.", "error")
        return redirect(url_for("account.calendar")), 303
    if calendar_feeds.revoke(user, now=now_utc(), ctx=request_context()):
        flash("Your subscription link is turned off. Calendars using it stop updating.", "success")
    else:
        flash("There was no subscription link to turn off.", "info")
    return redirect(url_for("account.calendar")), 303
