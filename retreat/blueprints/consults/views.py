"""Public booking pages and the guest's manage pages. Everything works without JavaScript."""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta

from flask import Response, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from retreat.accounts import phone
from retreat.blueprints.consults import bp
from retreat.blueprints.consults.forms import (
    BookingForm,
    ConfirmForm,
    PhoneCodeForm,
    PhoneNumberForm,
    zone_choices,
)
from retreat.consults import booking as bookings
from retreat.consults import claims, guest_phone, notices, prescreen, publishing
from retreat.consults import manage as manage_links
from retreat.consults import slots as free_times
from retreat.core import urls
from retreat.core.errors import DomainError, ValidationFailed
from retreat.extensions import limiter
from retreat.messaging.ics import build_calendar
from retreat.timeutil import human_time, is_valid_zone, now_utc, zone
from retreat.web import capability_links, rate_keys
from retreat.web.capability_links import private_page
from retreat.web.forms import refused, show_domain_error
from retreat.web.hooks import no_store
from retreat.web.security import request_context

PICKER_DAYS = 7
LOOKAHEAD_DAYS = 62


def _book_limit() -> str:
    return current_app.config.get("CONSULT_BOOK_RATE_LIMIT", "20 per minute")


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------


def parse_start(text: str | None) -> datetime | None:
    """An ISO 8601 instant with an offset (``Z`` allowed) -> aware UTC, else None."""
    if not text or len(text) > 40:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace(" ", "+"))
    except ValueError:
        return None
    return value.astimezone(UTC) if value.tzinfo else None


def iso_z(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _default_tz(settings: dict | None = None) -> str:
    """The first bookable facilitator's zone (``settings``: ``publishing.settings_of`` them, else loaded)."""
    if settings is None:
        settings = publishing.settings_of(free_times.bookable_facilitators())
    return next((s.tz for s in settings.values() if is_valid_zone(s.tz)), "UTC")


def _visitor_tz(raw: str | None, settings: dict | None = None) -> tuple[str, bool]:
    """(zone to show times in, whether the visitor chose it) - JavaScript detects it when not chosen."""
    if raw and is_valid_zone(raw):
        return raw, True
    return _default_tz(settings), False


def _facilitator_param(raw: str | None, facilitators) -> int | None:
    if raw and raw.isdigit():
        fid = int(raw)
        if any(f.id == fid for f in facilitators):
            return fid
    return None


def _picker(*, tz: str, now: datetime, facilitator_id: int | None, time_url, week_url,
            exclude_consult_id: int | None = None, after: datetime | None = None) -> dict:
    """Seven days of free times in the visitor's zone, grouped by their local date (only those later
    than ``after`` when given)."""
    z = zone(tz)
    today = now.astimezone(z).date()
    week_from = publishing.parse_local_date(request.args.get("from")) or today
    week_from = min(max(week_from, today), today + timedelta(days=LOOKAHEAD_DAYS * 2))
    week_to = week_from + timedelta(days=PICKER_DAYS - 1)
    lo, hi = free_times.date_range_bounds(week_from, week_to, tz)
    ids = None if facilitator_id is None else [facilitator_id]
    slots = free_times.free_slots(lo, hi, now, facilitator_ids=ids, exclude_consult_id=exclude_consult_id)
    if after is not None:
        slots = [s for s in slots if s.start > after]
    by_day: dict[date, dict[datetime, list[int]]] = {}
    for s in slots:
        by_day.setdefault(s.start.astimezone(z).date(), {}).setdefault(s.start, []).append(s.facilitator_id)
    wanted = publishing.parse_local_date(request.args.get("day"))
    selected = wanted if wanted in by_day else next(iter(sorted(by_day)), None)
    days = []
    for i in range(PICKER_DAYS):
        d = week_from + timedelta(days=i)
        days.append({"date": d, "count": len(by_day.get(d, {})), "selected": d == selected,
                     "url": week_url(week_from, d) if d in by_day else None})
    times = []
    if selected is not None:
        starts = sorted(by_day[selected])
        offsets = {t.astimezone(z).utcoffset() for t in starts}
        for t in starts:
            local = t.astimezone(z)
            label = publishing.time_label(t, tz) + (f" {local.tzname()}" if len(offsets) > 1 else "")
            times.append({"label": label, "url": time_url(t), "start": iso_z(t),
                          "period": "morning" if local.hour < 12 else ("afternoon" if local.hour < 17 else "evening")})
    next_available = None
    if not slots:
        upcoming = free_times.next_free_slots(max(hi, after or hi), now, limit=1, facilitator_id=facilitator_id,
                                              days=LOOKAHEAD_DAYS)
        if upcoming:
            d = upcoming[0].start.astimezone(z).date()
            next_available = {"date": d, "url": week_url(d, d)}
    return {
        "tz": tz, "tz_abbr": now.astimezone(z).tzname(), "week_from": week_from, "week_to": week_to,
        "days": days, "selected": selected, "times": times, "next_available": next_available,
        "prev_url": week_url(max(today, week_from - timedelta(days=PICKER_DAYS)), None) if week_from > today else None,
        "next_url": week_url(week_from + timedelta(days=PICKER_DAYS), None)
        if week_to < today + timedelta(days=LOOKAHEAD_DAYS * 2) else None,
    }


BOOKING_ERROR_FIELDS = {"start": "", "facilitator": ""}
"""Booking errors about the chosen time or facilitator (hidden fields) show above the form."""


def _alternatives(after: datetime, now: datetime, facilitator_id: int | None, tz: str,
                  exclude_consult_id: int | None = None, later_than: datetime | None = None) -> list[dict]:
    ids = None if facilitator_id is None else [facilitator_id]
    later_than = later_than or now
    start = max(after, now)
    slots = free_times.free_slots(start, start + timedelta(days=21), now, facilitator_ids=ids,
                           exclude_consult_id=exclude_consult_id)
    out, seen = [], set()
    for s in slots:
        if s.start <= later_than:
            continue
        if s.start not in seen:
            seen.add(s.start)
            out.append({"start": iso_z(s.start), "label": human_time(s.start, tz)})
        if len(out) >= 6:
            break
    return out


def _link_error(exc: DomainError):
    return render_template("consults/link_error.html", message=exc.message, status=exc.status), exc.status


MANAGE_LINK, CLAIM_LINK = "consult", "claim"  # capability_links kinds, keyed by the consult's id
LINK_NOT_HELD = ("This page opens from the link in your confirmation email. Open that link again in this "
                 "browser.")


def _not_held():
    return render_template("consults/link_error.html", message=LINK_NOT_HELD, status=400), 400


def manage_link(view):
    """Load the consult whose manage link this browser opened (``manage_link_open`` keeps its token in
    the session; row-locked for POSTs) or answer with a clear page; never cached, never a referrer."""

    @functools.wraps(view)
    def wrapped(consult_id, **kwargs):
        now = now_utc()
        token = capability_links.held(MANAGE_LINK, consult_id)
        if token is None:
            return _not_held()
        try:
            consult = manage_links.consult_for_token(token, now, lock=request.method == "POST")
        except (manage_links.ManageLinkInvalid, manage_links.ManageLinkExpired) as exc:
            capability_links.drop(MANAGE_LINK, consult_id)
            return _link_error(exc)
        if consult.id != consult_id:
            return _not_held()
        return view(token, consult, now, **kwargs)

    return private_page(no_store(wrapped))


def _manage_page(consult, token: str, page: str = "consults.manage"):
    """Where the emailed link (or a booking, a reschedule) leads: ``page`` of the consult, token-free."""
    return capability_links.hand_over(MANAGE_LINK, consult.id, token, url_for(page, consult_id=consult.id))


# ------------------------------------------------------------------------------------------
# Booking
# ------------------------------------------------------------------------------------------


@bp.get("/")
def book():
    now = now_utc()
    facilitators = free_times.bookable_facilitators()
    settings = publishing.settings_of(facilitators)  # one query for all of them
    tz, tz_chosen = _visitor_tz(request.args.get("tz"), settings)
    fid = _facilitator_param(request.args.get("facilitator"), facilitators)
    fac_arg = str(fid) if fid else "any"

    def week_url(week_from, day):
        return url_for("consults.book", tz=tz, facilitator=fac_arg, **{"from": week_from.isoformat()},
                       **({"day": day.isoformat()} if day else {}))

    def time_url(t):
        return url_for("consults.details", start=iso_z(t), tz=tz, facilitator=fac_arg)

    picker = _picker(tz=tz, now=now, facilitator_id=fid, time_url=time_url, week_url=week_url)
    durations = {s.duration_minutes for s in settings.values()}
    return render_template("consults/book.html", picker=picker, tz_chosen=tz_chosen, facilitators=facilitators,
                           facilitator_id=fid, zones=_zone_choices(), duration=min(durations) if durations else 30)


def _zone_choices():
    return [(c.value, c.label) if hasattr(c, "value") else c for c in zone_choices()]


@bp.route("/details", methods=["GET", "POST"])
@limiter.limit(_book_limit, methods=["POST"], key_func=rate_keys.client("consult-book"))
def details():
    now = now_utc()
    form = BookingForm()
    source = request.form if request.method == "POST" else request.args
    start = parse_start(source.get("start"))
    facilitators = free_times.bookable_facilitators()
    fid = _facilitator_param(source.get("facilitator"), facilitators)
    unknown_facilitator = fid is None and (source.get("facilitator") or "any") != "any"
    tz = request.args.get("tz") if is_valid_zone(request.args.get("tz")) else None
    if request.method == "GET":
        if start is None or unknown_facilitator:
            flash("That facilitator is not taking bookings. Choose a time with whoever is free, or another "
                  "facilitator." if unknown_facilitator else "Choose a day and time for your call first.", "info")
            return redirect(url_for("consults.book"))
        form.start.data = iso_z(start)
        form.facilitator.data = str(fid) if fid else "any"
        form.timezone.data = tz or _default_tz()
    tz = form.timezone.data if is_valid_zone(form.timezone.data) else (tz or _default_tz())
    status, conflict, alternatives = 200, None, []
    if request.method == "POST":
        status = 422
        if form.validate_on_submit():
            if start is None:
                form.form_errors.append("Choose a time for your call.")
            elif unknown_facilitator:
                form.form_errors.append("That facilitator is not taking bookings. Choose a time with whoever is free.")
            else:
                try:
                    booking = bookings.book(
                        start=start, facilitator_id=fid, name=form.name.data, email=form.email.data,
                        phone=form.phone.data, tz=form.timezone.data, reason=form.reason.data,
                        heard_from=form.heard_from.data, answers=form.answers(),
                        base_url=urls.base_url(), now=now, ctx=request_context(), via="web",
                        signed_in=current_user._get_current_object() if current_user.is_authenticated else None)
                    flash("You are booked. We have emailed you a confirmation with a calendar invite.", "success")
                    return _manage_page(booking.consult, booking.manage_token)
                except free_times.SlotUnavailable as exc:
                    status, conflict = 409, exc.message
                    alternatives = _alternatives(start, now, fid, tz)
                except ValidationFailed as exc:
                    show_domain_error(form, exc, BOOKING_ERROR_FIELDS)
    facilitator = next((f for f in facilitators if f.id == fid), None)
    settings = publishing.get_settings(facilitator) if facilitator else None
    return render_template(
        "consults/details.html", form=form, start=start, tz=tz, facilitator=facilitator, conflict=conflict,
        alternatives=alternatives, when=human_time(start, tz) if start else None,
        duration=settings.duration_minutes if settings else 30,
        change_url=url_for("consults.book", tz=tz, facilitator=str(fid) if fid else "any",
                           **({"from": start.astimezone(zone(tz)).date().isoformat(),
                               "day": start.astimezone(zone(tz)).date().isoformat()} if start else {})),
    ), status


# ------------------------------------------------------------------------------------------
# Manage (signed link)
# ------------------------------------------------------------------------------------------


def _manage_context(consult, now):
    settings = consult.settings
    answers = prescreen.consult_answers(consult)
    return {
        "consult": consult, "settings": settings, "can_change": manage_links.can_change(consult, now),
        "change_until": human_time(manage_links.change_deadline(consult, settings), consult.guest_tz),
        "when": human_time(consult.start_at, consult.guest_tz),
        "is_past": consult.end_at <= now,
        "show_crisis": answers.get(prescreen.SAFETY_KEY) in prescreen.FLAGGING_ANSWERS and consult.status == "booked",
    }


_LINK_PAGES = {"reschedule": "consults.reschedule", "cancel": "consults.cancel", "invite.ics": "consults.invite"}


@bp.get("/manage/<token>")
@bp.get("/manage/<token>/<any(reschedule, cancel, 'invite.ics'):page>")
@private_page
@no_store
def manage_link_open(token, page=None):
    """The emailed manage link: checked, then held in this browser's session (303 to a token-free page)."""
    try:
        consult = manage_links.consult_for_token(token, now_utc())
    except (manage_links.ManageLinkInvalid, manage_links.ManageLinkExpired) as exc:
        return _link_error(exc)
    return _manage_page(consult, token, _LINK_PAGES.get(page or "", "consults.manage"))


def _manage_view(consult, now, status: int = 200, **forms):
    """The manage page, with the text-reminder card of a guest record (``consults.guest_phone``)."""
    row = guest_phone.number_of(consult) if consult.participant_id is None else None
    forms.setdefault("number_form", PhoneNumberForm(prefix="number"))
    forms.setdefault("code_form", PhoneCodeForm(prefix="code"))
    forms.setdefault("remove_form", ConfirmForm(prefix="remove"))
    sms = {"offered": guest_phone.offered(consult, now), "row": row,
           "number": phone.display(row.number) if row else "",
           "pending": phone.display(row.pending) if row and row.code_hash else ""}
    return render_template("consults/manage.html", sms=sms, **forms, **_manage_context(consult, now)), status


@bp.get("/booking/<int:consult_id>")
@manage_link
def manage(token, consult, now):
    return _manage_view(consult, now)


@bp.route("/booking/<int:consult_id>/reschedule", methods=["GET", "POST"])
@manage_link
def reschedule(token, consult, now):
    here = {"consult_id": consult.id}
    if not manage_links.can_change(consult, now):
        flash("This call can no longer be changed online. Please reply to your confirmation email.", "warning")
        return redirect(url_for("consults.manage", **here))
    tz, _ = _visitor_tz(request.args.get("tz"))
    if not request.args.get("tz"):
        tz = consult.guest_tz
    form = ConfirmForm()
    start = parse_start(request.form.get("start") if request.method == "POST" else request.args.get("start"))
    status, conflict, alternatives = 200, None, []
    earliest = manage_links.changeable_after(consult.settings, now)
    cutoff = manage_links.cutoff_words(consult.settings)
    if request.method == "POST":
        status = 422
        if form.validate_on_submit() and start is not None:
            try:
                booking = bookings.reschedule(consult, start, base_url=urls.base_url(), now=now,
                                         ctx=request_context())
                flash("Your call has been moved. We have emailed you an updated invite.", "success")
                return _manage_page(booking.consult, booking.manage_token)  # the new link replaces the old
            except free_times.SlotUnavailable as exc:
                status, conflict = 409, exc.message
                alternatives = _alternatives(start, now, consult.facilitator_id, tz, exclude_consult_id=consult.id,
                                             later_than=earliest)
            except DomainError as exc:
                status, conflict = exc.status, exc.message
        elif start is None:
            conflict = "Choose a new time for your call."
    if start is not None or conflict:
        return render_template("consults/reschedule_confirm.html", consult=consult, form=form,
                               start=start, tz=tz, conflict=conflict, alternatives=alternatives,
                               when=human_time(start, tz) if start else None,
                               current=human_time(consult.start_at, tz)), status

    def week_url(week_from, day):
        return url_for("consults.reschedule", **here, tz=tz, **{"from": week_from.isoformat()},
                       **({"day": day.isoformat()} if day else {}))

    def time_url(t):
        return url_for("consults.reschedule", **here, tz=tz, start=iso_z(t))

    picker = _picker(tz=tz, now=now, facilitator_id=consult.facilitator_id, time_url=time_url, week_url=week_url,
                     exclude_consult_id=consult.id, after=earliest)
    return render_template("consults/reschedule.html", consult=consult, picker=picker,
                           zones=_zone_choices(), current=human_time(consult.start_at, tz), cutoff=cutoff)


@bp.route("/booking/<int:consult_id>/cancel", methods=["GET", "POST"])
@manage_link
def cancel(token, consult, now):
    form = ConfirmForm()
    back = url_for("consults.manage", consult_id=consult.id)
    if request.method == "GET":
        if not manage_links.can_change(consult, now):
            return redirect(back)
        return render_template("consults/cancel_confirm.html", form=form, consult=consult,
                               when=human_time(consult.start_at, consult.guest_tz))
    if not form.validate_on_submit():
        flash("Your form expired. Please try again.", "warning")
        return redirect(back)
    try:
        bookings.cancel(consult, by="guest", base_url=urls.base_url(), now=now, ctx=request_context())
        flash("Your consultation is cancelled. We have emailed you a confirmation.", "success")
    except DomainError as exc:
        refused(exc.message, "warning")
    return redirect(back)


@bp.get("/booking/<int:consult_id>/invite.ics")
@manage_link
def invite(token, consult, now):
    method = "CANCEL" if consult.status == "cancelled" else "PUBLISH"
    link = manage_links.manage_url(urls.base_url(), token)  # in the file, like the email's: not in an address
    body = build_calendar(notices.ics_for(consult, method=method, manage_link=link), stamp=now)
    return Response(body, mimetype="text/calendar",
                    headers={"Content-Disposition": 'attachment; filename="consultation.ics"'})


# ------------------------------------------------------------------------------------------
# "This was me" (emailed link): a guest booking joins its email's account history
# ------------------------------------------------------------------------------------------


@bp.get("/claim/<token>")
@private_page
@no_store
def claim_link_open(token):
    """The emailed "this was me" link: checked, then held in this browser's session."""
    try:
        consult = claims.consult_for_claim(token)
    except claims.ClaimLinkInvalid as exc:
        return _link_error(exc)
    return capability_links.hand_over(CLAIM_LINK, consult.id, token, url_for("consults.claim", consult_id=consult.id))


@bp.route("/booking/<int:consult_id>/claim", methods=["GET", "POST"])
@private_page
@no_store
def claim(consult_id):
    token = capability_links.held(CLAIM_LINK, consult_id)
    if token is None:
        return _not_held()
    form = ConfirmForm()
    try:
        if form.validate_on_submit():
            consult, already = claims.confirm_owner(token, now=now_utc(), ctx=request_context())
            if consult.id != consult_id:
                return _not_held()
            capability_links.drop(CLAIM_LINK, consult_id)
            return render_template("consults/claim.html", state="already" if already else "done", consult=consult)
        consult = claims.consult_for_claim(token)
    except claims.ClaimLinkInvalid as exc:
        capability_links.drop(CLAIM_LINK, consult_id)
        return _link_error(exc)
    if consult.id != consult_id:
        return _not_held()
    state = "already" if consult.owner_confirmed_at else "ask"
    return render_template("consults/claim.html", state=state, consult=consult, form=form,
                           when=human_time(consult.start_at, consult.guest_tz)), (400 if form.errors else 200)
