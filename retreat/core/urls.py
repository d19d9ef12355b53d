"""Absolute links for emails, calendar files and webhooks, built from ``BASE_URL``.

The one place that reads ``BASE_URL`` (works outside a request: the scheduler sends most mail).
Views that pass a base URL to a rule get it from ``base_url()`` too.
"""

from __future__ import annotations

from flask import Flask, current_app


def base_url(app: Flask | None = None) -> str:
    """``BASE_URL`` without a trailing slash, e.g. ``https://retreat.example.org``."""
    return str((app or current_app).config["BASE_URL"]).rstrip("/")


CONSULT_BOOKING_PATH = "/consult/"  # the public consult booking page (the consults blueprint's root)
PARTICIPANT_HOME_PATH = "/me/"  # the participant portal (sign-in first when signed out): SMS links


def consult_booking_url() -> str:
    """The public consult booking page, absolute."""
    return absolute(CONSULT_BOOKING_PATH)


def absolute(path: str) -> str:
    """``path`` (starting with ``/``) under ``BASE_URL``."""
    return base_url() + (path if path.startswith("/") else "/" + path)
