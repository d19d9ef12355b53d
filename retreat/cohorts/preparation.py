"""Preparation checklist: one item per task per enrollment, due relative to the cohort's start,
with a reminder queued in the outbox three days before each due date.

Answers here are practical, not clinical (intention, travel, ride home, dietary and
accessibility needs); facilitators see completion per person, and dietary/accessibility needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select

from retreat.accounts.models import User
from retreat.cohorts.models import ChecklistItem, Cohort, Enrollment
from retreat.core import urls
from retreat.core.errors import Conflict, NotFound, ValidationFailed
from retreat.extensions import db
from retreat.messaging import outbox
from retreat.timeutil import format_local

ANSWER_MAX = 2000
REMINDER_DAYS_BEFORE = 3


@dataclass(frozen=True)
class Task:
    key: str
    title: str
    days_before: int  # due this many days before the cohort starts
    kind: str  # text | ack | consents
    help: str
    prompts: tuple[str, ...] = field(default_factory=tuple)
    shared_with_team: bool = False


TASKS: tuple[Task, ...] = (
    Task("intention", "Set your intention", 21, "text",
         "Write a few sentences about what you hope to explore. Only you can read it: your facilitators "
         "see only that this step is done.",
         ("What brings you to this retreat now?", "Which parts of you would you like to get to know?",
          "How would you like to feel when you return home?")),
    Task("consents", "Sign your consents", 14, "consents",
         "Read and sign the current consent documents. A new version needs signing again."),
    Task("emergency_contact", "Emergency contact", 14, "text",
         "Name, relationship and phone number of someone we can call in an emergency.", shared_with_team=True),
    Task("travel", "Travel and arrival", 10, "text",
         "How and when you will arrive, and when you plan to leave.", shared_with_team=True),
    Task("ride_home", "Ride home or companion after dosing days", 7, "text",
         "Who will drive you or stay with you after each dosing day. You may not drive that day.",
         shared_with_team=True),
    Task("fasting", "Fasting and hydration instructions", 3, "ack",
         "No food for 4 hours and no liquids for 2 hours before each dosing session; drink plenty of water "
         "the day before. Tick to confirm you have read and will follow these instructions."),
    Task("dietary", "Dietary and accessibility needs", 14, "text",
         "Allergies to food, dietary preferences, mobility or access needs (write “none” if none).",
         shared_with_team=True),
)
TASKS_BY_KEY = {t.key: t for t in TASKS}


def create_checklist(enr: Enrollment, cohort: Cohort, *, now: datetime) -> list[ChecklistItem]:
    items = []
    for task in TASKS:
        due = cohort.starts_at - timedelta(days=task.days_before)
        item = ChecklistItem(enrollment_id=enr.id, key=task.key, due_at=max(due, now), answer="",
                             created_at=now, updated_at=now)
        db.session.add(item)
        items.append(item)
    db.session.flush()
    for item in items:
        _queue_reminder(enr, cohort, item, now=now)
    return items


def _queue_reminder(enr: Enrollment, cohort: Cohort, item: ChecklistItem, *, now: datetime) -> None:
    remind_at = item.due_at - timedelta(days=REMINDER_DAYS_BEFORE)
    if remind_at <= now:
        return
    person = enr.participant or db.session.get(User, enr.participant_id)
    outbox.enqueue(template="checklist_reminder", dedupe_key=f"prep-{item.id}-reminder", to_user=person,
                   due_at=remind_at, group_key=f"enrollment:{enr.id}", essential=True, now=now,
                   context={"participant_name": person.name, "task_title": TASKS_BY_KEY[item.key].title,
                            "cohort_title": cohort.title,
                            "due_local": format_local(item.due_at, person.tz, "%a %d %b %Y"),
                            "url": f"{urls.base_url()}/me/enrollments/{enr.id}"})


def get_item(enr: Enrollment, key: str) -> ChecklistItem:
    item = db.session.scalar(select(ChecklistItem).where(ChecklistItem.enrollment_id == enr.id,
                                                         ChecklistItem.key == key))
    if item is None or key not in TASKS_BY_KEY:
        raise NotFound("No such checklist item.")
    return item


def complete(enr: Enrollment, key: str, *, answer: str = "", acknowledged: bool = False,
             now: datetime) -> ChecklistItem:
    """Save an answer (or acknowledgement). Too long or empty answers change nothing."""
    from retreat.cohorts import consents, enrollment

    if not enrollment.is_active(enr):
        raise Conflict("This application is closed; the checklist can no longer be changed.")
    task = TASKS_BY_KEY.get(key)
    if task is None:
        raise NotFound("No such checklist item.")
    item = get_item(enr, key)
    if task.kind == "consents":
        if not consents.all_signed(enr):
            raise Conflict("Sign every current consent document first.")
        item.answer = ""
    elif task.kind == "ack":
        if not acknowledged:
            raise ValidationFailed("Tick the box to confirm you have read the instructions.", field="acknowledged")
        item.answer = ""
    else:
        answer = (answer or "").strip()
        if not answer:
            raise ValidationFailed("Please write an answer.", field="answer")
        if len(answer) > ANSWER_MAX:
            raise ValidationFailed(f"Please keep your answer under {ANSWER_MAX} characters "
                                   f"(it has {len(answer)}).", field="answer")
        item.answer = answer
    item.completed_at = item.completed_at or now
    item.updated_at = now
    outbox.cancel(dedupe_keys=[f"prep-{item.id}-reminder"], now=now)
    return item


def refresh_consent_item(enr: Enrollment, *, now: datetime) -> None:
    """Keep the consents item in step with the signatures (a new version re-opens it)."""
    from retreat.cohorts import consents

    item = db.session.scalar(select(ChecklistItem).where(ChecklistItem.enrollment_id == enr.id,
                                                         ChecklistItem.key == "consents"))
    if item is None:
        return
    signed = consents.all_signed(enr)
    if signed and item.completed_at is None:
        item.completed_at = now
        outbox.cancel(dedupe_keys=[f"prep-{item.id}-reminder"], now=now)
    elif not signed and item.completed_at is not None:
        item.completed_at = None


def progress(enr: Enrollment) -> tuple[int, int]:
    items = enr.checklist
    return sum(1 for i in items if i.completed_at is not None), len(items)


def view_items(enr: Enrollment) -> list[dict]:
    return [{"item": i, "task": TASKS_BY_KEY[i.key]} for i in enr.checklist if i.key in TASKS_BY_KEY]
