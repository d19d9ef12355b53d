"""Show a service's domain error on the form that caused it: by the field it names, else on top."""

from __future__ import annotations

from flask_wtf import FlaskForm

from retreat.core.errors import DomainError


def show_domain_error(form: FlaskForm, exc: DomainError) -> None:
    placed = False
    for name, msgs in exc.errors.items():
        if name in form._fields:
            form._fields[name].errors = list(form._fields[name].errors) + list(msgs)
            placed = True
    if not placed:
        form.form_errors.append(exc.message)


def status_for(form: FlaskForm) -> int:
    """422 when the form (or the service) refused the input, else 200."""
    return 422 if form.errors or form.form_errors else 200
