"""The embeddable booking widget: ``/widget.js`` (the snippet the practice pastes into its
website) and the ``/widget/*`` pages it frames. Only the websites in WIDGET_ALLOWED_ORIGINS may
frame them (``retreat.web.embedding``); the pages book through the public consult API."""

from flask import Blueprint

bp = Blueprint("widget", __name__)

from retreat.blueprints.widget import views  # noqa: E402,F401
