"""The one commit point of a command: ``with committed(): ...`` around the command's work."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from retreat.core.errors import DomainError
from retreat.extensions import db


@contextmanager
def committed() -> Iterator[None]:
    """Commit when the block ends normally. A domain error rolls back and becomes the command's
    error message (exit status 1); any other error rolls back and propagates."""
    try:
        yield
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from exc
    except BaseException:
        db.session.rollback()
        raise
    db.session.commit()
