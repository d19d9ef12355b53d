"""Small helpers shared by the admin views."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import abort, flash, redirect, request
from flask_wtf import FlaskForm

from retreat.blueprints.admin.forms import ActionForm
from retreat.core.errors import DomainError
from retreat.web.forms import refused, show_domain_error

T = TypeVar("T")


def form_failed(form: FlaskForm, exc: DomainError) -> None:
    """Show the domain error next to its field (or above the form); nothing of the attempt is kept."""
    show_domain_error(form, exc)


def page_arg() -> int:
    raw = request.args.get("page", "1")
    return int(raw) if raw.isdigit() and 0 < len(raw) < 8 else 1


def query_without_page() -> dict:
    return {k: v for k, v in request.args.items() if k != "page" and v}


def submit(form: FlaskForm, action: Callable[[], T]) -> tuple[bool, T | None]:
    """Validate the POSTed form, call the service and commit once.

    Returns (True, result), or (False, None) with the problems shown on the form (nothing changed).
    """
    if not form.validate_on_submit():
        return False, None
    try:
        result = action()
    except DomainError as exc:
        form_failed(form, exc)
        return False, None
    return True, result


def button(action: Callable[[str], object], *, done: str, back: str):
    """A POST button (CSRF token plus an optional ``value``): call, commit, flash, go back."""
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        action(form.value.data or "")
    except DomainError as exc:
        refused(exc.message, "error")
    else:
        flash(done, "success")
    return redirect(back)
