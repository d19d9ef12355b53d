"""The demo retreat's texts say what its plan does: as many weekly integration circles as the
integration plan holds for a new cohort (six today), never a number written by hand."""

from __future__ import annotations

from sqlalchemy import select

from retreat.cli import demo
from retreat.cohorts.models import Retreat
from retreat.integration.plan import TEMPLATE


def test_the_demo_retreat_names_the_plans_number_of_circles(app, db):
    demo.seed()
    retreat = db.session.scalar(select(Retreat).where(Retreat.slug == demo.DEMO_RETREAT_SLUG))
    words = demo.circles_in_plan()
    assert TEMPLATE["circle_weeks"] == 6 and words == "six"
    assert f"{words} weeks afterwards" in retreat.description
    assert f"{words.capitalize()} weekly online integration circles" in retreat.included
    for other in ("eight", "Eight", "8 weekly"):
        assert other not in retreat.description and other not in retreat.included


def test_the_words_follow_the_plan(monkeypatch):
    monkeypatch.setitem(TEMPLATE, "circle_weeks", 8)
    assert demo.circles_in_plan() == "eight"
    monkeypatch.setitem(TEMPLATE, "circle_weeks", 20)
    assert demo.circles_in_plan() == "20"
