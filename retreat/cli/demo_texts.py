"""The demo's words, written from the configuration they describe, never by hand: the number of
integration circles and the follow-ups from the integration plan a new cohort gets
(``integration.plan.TEMPLATE``), the refund tiers from the refund schedule
(``payments.refund_policy.DEFAULT_SCHEDULE``)."""

from __future__ import annotations

from retreat.integration.plan import TEMPLATE
from retreat.payments.refund_policy import DEFAULT_SCHEDULE

_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                 "twelve")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
DOSING_SESSIONS = 2  # the demo cohorts' plan: two dosing sessions (``demo_catalog.SCHEDULE``)


def number_word(n: int) -> str:
    return _NUMBER_WORDS[n] if 0 <= n < len(_NUMBER_WORDS) else str(n)


def circles_in_plan() -> str:
    """How many weekly integration circles a new cohort's plan holds, in words."""
    return number_word(TEMPLATE["circle_weeks"])


def circle_rhythm() -> str:
    t = TEMPLATE["circle_local_time"]
    return (f"{WEEKDAYS[TEMPLATE['circle_weekday']]}s at {t.strftime('%H:%M')} (retreat time), "
            f"{TEMPLATE['circle_duration_minutes']} minutes each")


def followup_schedule() -> list[str]:
    """The follow-ups the plan switches on, in order, as a participant would read them."""
    items = []
    if TEMPLATE["checkin_24h"] or TEMPLATE["checkin_72h"]:
        hours = [h for h, on in ((24, TEMPLATE["checkin_24h"]), (72, TEMPLATE["checkin_72h"])) if on]
        items.append("A short check-in " + " and ".join(f"{h} hours" for h in hours)
                     + " after the last dosing session")
    surveys = [label for key, label in (("survey_post", "the day after the retreat"),
                                        ("survey_month_1", "one month later"),
                                        ("survey_month_3", "three months later")) if TEMPLATE[key]]
    if surveys:
        items.append("A two-minute questionnaire (PHQ-9 and GAD-7) " + ", ".join(surveys[:-1])
                     + (" and " if len(surveys) > 1 else "") + surveys[-1])
    return items


def _days(n: int) -> str:
    return f"{n} days before the start"


def refund_policy(schedule=DEFAULT_SCHEDULE) -> str:
    """The refund policy text of a cohort whose schedule is ``schedule`` ((days before, percent), ...)."""
    steps = sorted(schedule, reverse=True)
    parts = []
    for days, pct in steps:
        parts.append(("a full refund" if pct == 100 else f"{pct}% back") + f" until {_days(days)}")
    return ("Full refund of everything paid if you are not medically cleared or we cancel the cohort. If you "
            "withdraw: " + ", ".join(parts) + ", and nothing after that.")


def retreat_description() -> str:
    circles = circles_in_plan()
    return ("A small group, a quiet mountain lodge, and a careful rhythm: arrival and orientation, "
            f"{number_word(DOSING_SESSIONS)} dosing sessions run by our licensed partner medical provider, daily "
            "Internal Family Systems group work, and time outdoors.\n\nEvery participant is screened and medically "
            "cleared by the partner provider before the retreat. Integration circles continue online for "
            f"{circles} weeks afterwards ({circle_rhythm()}). " + ". ".join(followup_schedule()) + ".")


def retreat_included() -> str:
    circles = circles_in_plan()
    return ("Lodging in a shared or private room\nAll meals (vegetarian, allergies catered for)\n"
            f"{number_word(DOSING_SESSIONS).capitalize()} medically supervised dosing sessions\n"
            "Daily IFS group sessions\n"
            f"{circles.capitalize()} weekly online integration circles\n"
            "Check-ins and questionnaires after the retreat")


SUMMARY = "Six days of IFS-informed group work with ketamine-assisted sessions at 8,000 feet."
