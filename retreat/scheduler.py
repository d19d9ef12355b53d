"""APScheduler: the clock that triggers services. Holds no business state."""

from __future__ import annotations

from flask.cli import AppGroup

scheduler_cli = AppGroup("scheduler", help="Run the background scheduler.")


def start_in_process(app) -> None:
    """Development only: run the dispatcher inside the web process."""
    return None
