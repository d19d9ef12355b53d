"""Opaque keyset cursors for API lists: URL-safe base64 of ``<sort key>|<id>``.

A cursor that does not decode is a ``ValidationFailed`` on ``cursor`` (a 400/422 naming it),
never a 500 and never a silently different page.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from retreat.core.errors import ValidationFailed

MAX_CURSOR = 120
BAD_CURSOR = "Not a cursor from this API: pass next_cursor as it was returned."


def encode(key: datetime | int, row_id: int) -> str:
    text = key.astimezone(UTC).isoformat() if isinstance(key, datetime) else str(int(key))
    return base64.urlsafe_b64encode(f"{text}|{row_id}".encode()).decode().rstrip("=")


def _split(cursor: str) -> tuple[str, int]:
    if not cursor or len(cursor) > MAX_CURSOR:
        raise ValidationFailed(BAD_CURSOR, field="cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        key, id_text = raw.split("|")
        row_id = int(id_text)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed(BAD_CURSOR, field="cursor") from None
    if not 0 < row_id < 2**31:
        raise ValidationFailed(BAD_CURSOR, field="cursor")
    return key, row_id


def decode_time(cursor: str) -> tuple[datetime, int]:
    key, row_id = _split(cursor)
    try:
        at = datetime.fromisoformat(key)
    except ValueError:
        raise ValidationFailed(BAD_CURSOR, field="cursor") from None
    if at.tzinfo is None:
        raise ValidationFailed(BAD_CURSOR, field="cursor")
    return at, row_id


def decode_id(cursor: str) -> int:
    key, row_id = _split(cursor)
    if key != str(row_id):
        raise ValidationFailed(BAD_CURSOR, field="cursor")
    return row_id
