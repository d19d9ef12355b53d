"""The demo retreat's texts say what its plan does: as many weekly integration circles as the
integration plan holds for a new cohort (six today), the refund tiers of the refund schedule."""

from __future__ import annotations

from retreat.cli import demo, demo_texts
from retreat.cli.demo_catalog import demo_retreat
from retreat.integration.plan import TEMPLATE


def test_the_demo_retreat_names_the_plans_number_of_circles(app, db):
    demo.seed(online=False)
    retreat = demo_retreat()
    words = demo.circles_in_plan()
    assert TEMPLATE["circle_weeks"] == 6 and words == "six"
    assert f"{words} weeks afterwards" in retreat.description
    assert f"{words.capitalize()} weekly online integration circles" in retreat.included
    for other in ("eight", "Eight", "8 weekly"):
        assert other not in retreat.description and other not in retreat.included


def test_the_words_follow_the_plan(monkeypatch):
    monkeypatch.setitem(TEMPLATE, "circle_weeks", 8)
    assert demo.circles_in_plan() == "eight"
    assert "Eight weekly online integration circles" in demo_texts.retreat_included()
    monkeypatch.setitem(TEMPLATE, "circle_weeks", 20)
    assert demo.circles_in_plan() == "20"
    monkeypatch.setitem(TEMPLATE, "checkin_72h", False)
    assert demo_texts.followup_schedule()[0] == "A short check-in 24 hours after the last dosing session"


def test_the_refund_policy_text_follows_the_schedule():
    text = demo_texts.refund_policy([(30, 50), (90, 100)])
    assert "a full refund until 90 days before the start, 50% back until 30 days before the start" in text
