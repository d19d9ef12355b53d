"""Small helpers shared by the admin views."""

from __future__ import annotations

from flask import request
from flask_wtf import FlaskForm

from retreat.extensions import db
from retreat.services.errors import DomainError


def form_failed(form: FlaskForm, exc: DomainError) -> None:
    """Undo the attempt and show the domain error next to its field (or above the form)."""
    db.session.rollback()
    placed = False
    for name, messages in exc.errors.items():
        field = getattr(form, name, None)
        if field is not None and hasattr(field, "errors"):
            field.errors = list(field.errors) + list(messages)
            placed = True
    if not placed:
        form.form_errors.append(exc.message)


def page_arg() -> int:
    raw = request.args.get("page", "1")
    return int(raw) if raw.isdigit() and 0 < len(raw) < 8 else 1


def query_without_page() -> dict:
    return {k: v for k, v in request.args.items() if k != "page" and v}
