"""The one place that refuses input the database cannot hold (issue #16, invariant 7).

- ``refuse_control_characters`` (a ``before_request`` hook): a form field, query argument,
  path segment or JSON string (keys included) holding a C0 control character other than tab,
  newline and carriage return (NUL above all: PostgreSQL cannot store it in text), or a lone
  UTF-16 surrogate (JSON's ``"\\ud800"``: no encoding can write it), is answered 400 with a
  message naming the field, before any view reads it. The Stripe webhook is left alone: its raw
  body is signed and checked there (``finance.stripe_events``).
- ``BoundedIntConverter``, registered as ``int``: an id in a URL past an Integer column's range
  is a 404, never a database error.
"""

from __future__ import annotations

import re

from flask import Flask, request
from werkzeug.routing import IntegerConverter

from retreat.database import INT_MAX
from retreat.web.errors import error_response

# C0 controls except \t \n \r, and lone surrogates.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
EXEMPT_ENDPOINTS = frozenset({"webhooks.stripe_webhook"})
_MAX_DEPTH = 32


def has_forbidden_characters(value: str) -> bool:
    return _FORBIDDEN.search(value) is not None


def message_for(field: str) -> str:
    return (f"{field}: control characters (such as NUL) are not accepted. "
            "Remove them and try again.")


def _json_strings(value, path: str, depth: int = 0):
    """(field path, string) for every string in a JSON document, keys included."""
    if depth > _MAX_DEPTH:
        return
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            key = f"{path}.{k}" if path else str(k)
            yield key, str(k)
            yield from _json_strings(v, key, depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _json_strings(v, f"{path}[{i}]" if path else f"[{i}]", depth + 1)


def _offending_fields() -> list[str]:
    bad: list[str] = []
    if has_forbidden_characters(request.path):
        bad.append("path")
    sources = [request.args]
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        sources.append(request.form)
    for source in sources:
        for key, values in source.lists():
            if has_forbidden_characters(key) or any(has_forbidden_characters(v) for v in values):
                bad.append(key if not has_forbidden_characters(key) else _FORBIDDEN.sub("", key) or "field")
    if request.is_json and request.method not in ("GET", "HEAD", "OPTIONS"):
        body = request.get_json(silent=True)
        bad += [field or "body" for field, text in _json_strings(body, "") if has_forbidden_characters(text)]
    return list(dict.fromkeys(bad))


def refuse_control_characters():
    """``before_request``: a 400 naming each field that holds a forbidden character."""
    if request.endpoint in EXEMPT_ENDPOINTS:
        return None
    bad = _offending_fields()
    if not bad:
        return None
    if len(bad) == 1:
        return error_response(400, message_for(bad[0]), {bad[0]: [message_for(bad[0])]})
    return error_response(400, "Some fields contain control characters (such as NUL), which are not accepted: "
                               + ", ".join(bad) + ".", {f: [message_for(f)] for f in bad})


class BoundedIntConverter(IntegerConverter):
    """``<int:...>`` that matches only what an Integer column can hold (0..2^31-1 unless told)."""

    def __init__(self, map, fixed_digits=0, min=None, max=None, signed=False):  # noqa: A002 - werkzeug's names
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=INT_MAX if max is None else max, signed=signed)


def install_converter(app: Flask) -> None:
    """Before any route is added: every ``<int:...>`` in the app is bounded."""
    app.url_map.converters["int"] = BoundedIntConverter


def init_app(app: Flask) -> None:
    app.before_request(refuse_control_characters)
