"""The demo retreat's program guide: a PDF rendered with WeasyPrint (``web.pdf``) from
``templates/documents/program_guide.html``, written from the plan it describes (the cohorts, the
preparation checklist, the day-by-day schedule, the integration plan, the refund schedule) and
stored through ``cohorts.catalog.store_guide``, as a facilitator's upload would be, so the public
retreat and cohort pages and the participants' pages link to it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from flask import current_app, render_template
from sqlalchemy import select

from retreat.accounts.models import User
from retreat.cli import demo_texts
from retreat.cli.demo_catalog import SCHEDULE
from retreat.cohorts import catalog, preparation
from retreat.cohorts.models import Cohort, CohortStatus, Retreat
from retreat.extensions import db
from retreat.money import format_money
from retreat.payments import refund_policy
from retreat.timeutil import human_date, zone
from retreat.web.pdf import html_to_pdf

GUIDE_FILENAME = "colorado-mountain-retreat-program-guide.pdf"


def upload_dir() -> Path:
    """Where uploads are kept: ``UPLOAD_DIR``, else ``<instance>/uploads`` (as the upload views use)."""
    return Path(current_app.config.get("UPLOAD_DIR") or (current_app.instance_path + "/uploads"))


def _day_label(offset: int) -> str:
    return "A week before" if offset < 0 else f"Day {offset + 1}"


def guide_html(retreat: Retreat) -> str:
    cohorts = list(db.session.scalars(select(Cohort).where(
        Cohort.retreat_id == retreat.id, Cohort.status == CohortStatus.OPEN.value).order_by(Cohort.starts_at)))
    rows = []
    for c in cohorts:
        first = c.starts_at.astimezone(zone(c.timezone)).date()
        last = c.ends_at.astimezone(zone(c.timezone)).date()
        rows.append({"title": c.title, "dates": f"{human_date(first)} – {human_date(last)}",
                     "price": format_money(c.price_minor, c.currency),
                     "deposit": format_money(c.deposit_minor, c.currency),
                     "balance_due": human_date(c.balance_due_on) if c.balance_due_on else "—"})
    policy = demo_texts.refund_policy(refund_policy.schedule(cohorts[0]) if cohorts else refund_policy.DEFAULT_SCHEDULE)
    fasting = preparation.TASKS_BY_KEY["fasting"].help.split(" Tick ")[0]
    return render_template(
        "documents/program_guide.html", retreat=retreat, cohorts=rows,
        tasks=sorted(preparation.TASKS, key=lambda t: -t.days_before),
        schedule=[{"day": _day_label(offset), "title": title, "place": place}
                  for offset, _kind, title, _hour, place, _video in SCHEDULE],
        dosing_word=demo_texts.number_word(sum(1 for s in SCHEDULE if s[1] == "dosing")), fasting=fasting,
        circles_word=demo_texts.circles_in_plan(), circle_rhythm=demo_texts.circle_rhythm(),
        followups=demo_texts.followup_schedule(), refund_policy=policy)


def attach_program_guide(retreat: Retreat, *, actor: User, now: datetime) -> Retreat:
    if retreat.guide_stored_name and catalog.guide_path(retreat, upload_dir()) is not None:
        return retreat
    pdf = html_to_pdf(guide_html(retreat))
    return catalog.store_guide(retreat, filename=GUIDE_FILENAME, data=pdf, upload_dir=upload_dir(), actor=actor,
                               now=now)
