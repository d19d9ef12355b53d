"""Domain errors raised by services; the HTTP layer turns them into messages or status codes."""

from __future__ import annotations


class DomainError(Exception):
    """A rule was broken. ``status`` is the HTTP status a view should answer with."""

    status = 400

    def __init__(self, message: str, *, field: str | None = None, errors: dict | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.errors: dict[str, list[str]] = dict(errors or {})
        if field and field not in self.errors:
            self.errors[field] = [message]


class ValidationFailed(DomainError):
    status = 422


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    """The state changed under us (taken slot, full cohort, illegal transition)."""

    status = 409


class PermissionDenied(DomainError):
    status = 403


class RateLimited(DomainError):
    status = 429
