"""Journal entries participants chose to share with a cohort's facilitators.

Only facilitators of the cohort (``journal.cohort_team``) read them; admins are refused here (they
never read journal text). An entry that is not shared answers 403 with no trace of its text, and
the refusal is audited; every read of a shared entry leaves a ``journal.read`` audit event.
"""

from __future__ import annotations

from flask import abort, render_template

from retreat.accounts.models import Role
from retreat.blueprints.facilitator import bp
from retreat.cohorts.models import Cohort, Enrollment
from retreat.core.errors import NotFound
from retreat.extensions import db
from retreat.integration import journal
from retreat.timeutil import now_utc
from retreat.web import transaction
from retreat.web.hooks import no_store
from retreat.web.security import acting_user, request_context, roles_required


def _refused(fn, *args, **kwargs):
    """Run a journal read; a refusal keeps its audit event (committed) and answers 403."""
    try:
        return fn(*args, **kwargs)
    except journal.JournalDenied:
        transaction.keep("the journal.denied audit event of a refused read")
        abort(403)
    except NotFound:
        abort(404)


def _cohort(cohort_id: int) -> Cohort:
    cohort = db.session.get(Cohort, cohort_id)
    if cohort is None:
        abort(404)
    return cohort


@bp.get("/cohorts/<int:cohort_id>/journal")
@roles_required(Role.FACILITATOR)
@no_store
def shared_journal(cohort_id: int):
    cohort = _cohort(cohort_id)
    rows = _refused(journal.shared_overview, acting_user(), cohort, ctx=request_context(), now=now_utc())
    return render_template("facilitator/shared_journal.html", cohort=cohort, rows=rows)


@bp.get("/cohorts/<int:cohort_id>/journal/<int:enrollment_id>")
@roles_required(Role.FACILITATOR)
@no_store
def shared_journal_participant(cohort_id: int, enrollment_id: int):
    cohort = _cohort(cohort_id)
    enr = db.session.get(Enrollment, enrollment_id)
    if enr is None or enr.cohort_id != cohort.id:
        abort(404)
    items = _refused(journal.shared_entries, acting_user(), enr, ctx=request_context(), now=now_utc())
    return render_template("facilitator/shared_journal_participant.html", cohort=cohort, enrollment=enr, items=items)


@bp.get("/journal/<int:entry_id>")
@roles_required(Role.FACILITATOR)
@no_store
def shared_journal_entry(entry_id: int):
    item = _refused(journal.read_shared, acting_user(), entry_id, ctx=request_context(), now=now_utc())
    return render_template("facilitator/shared_journal_entry.html", item=item, enrollment=item.entry.enrollment)
