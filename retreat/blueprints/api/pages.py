"""The one shape of every API list: ``limit`` and ``cursor`` in the query, ``{"items": [...],
"next_cursor": ...}`` in the answer with a weak ETag (304 on ``If-None-Match``). The staff and
finance lists build their schemas and answers from here."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from retreat.core.cursors import MAX_CURSOR
from retreat.web.etag import etag_json

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def limit_field(default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT):
    return fields.Integer(load_default=default, validate=validate.Range(min=1, max=maximum),
                          metadata={"description": f"Rows per page, 1-{maximum}.", "example": default})


def cursor_field(maximum: int = MAX_CURSOR):
    return fields.String(validate=validate.Length(min=1, max=maximum),
                         metadata={"description": "`next_cursor` of the previous page, as returned."})


def next_cursor_field():
    return fields.String(allow_none=True, required=True,
                         metadata={"description": "Pass as `cursor` for the next page; null on the last."})


def listed(schema: Schema, page):
    """200 with the page (``items``, ``next_cursor``) and its weak ETag, or 304 when unchanged."""
    return etag_json(schema.dump({"items": page.items, "next_cursor": page.next_cursor}))
