"""Checking a pooled PostgreSQL connection before a request uses it, without a round trip each time.

SQLAlchemy's ``pool_pre_ping`` sends ``SELECT 1`` on every checkout: about a tenth of a
millisecond of CPU on each side per request, for a failure that happens once per database restart.
Here a connection is pinged only when it may be dead:

- its socket has something to read while idle in the pool: a server that shuts down or kills the
  backend (restart, ``pg_terminate_backend``) tells the client and closes the socket, which
  ``select`` sees at once, for the cost of a system call;
- or it sat in the pool longer than ``DATABASE_PING_IDLE_SECONDS`` (default 5): a silent failure
  (a network partition) leaves no trace on the socket, so idle connections are checked as before.

A failed ping raises ``DisconnectionError``: the pool discards that connection and checks out or
opens another (SQLAlchemy tries three times), so the request never sees the dead one. A connection
that dies while in use fails that request (a 503, ``retreat.web.errors``) and the pool drops every
connection older than the failure.
"""

from __future__ import annotations

import select
from time import monotonic

from sqlalchemy import event, exc

_IDLE_SINCE = "retreat_idle_since"


def _may_be_dead(dbapi_connection, record, idle_seconds: float) -> bool:
    if monotonic() - record.info.get(_IDLE_SINCE, 0.0) >= idle_seconds:
        return True
    try:
        fd = dbapi_connection.pgconn.socket
        readable, _, failed = select.select([fd], [], [fd], 0)
    except Exception:  # noqa: BLE001 - a closed or broken connection has no usable socket
        return True
    return bool(readable or failed)


def install(engine, idle_seconds: float) -> None:
    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection, record):
        record.info[_IDLE_SINCE] = monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, proxy):
        if not _may_be_dead(dbapi_connection, record, idle_seconds):
            return
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            dbapi_connection.rollback()  # the ping's transaction (autocommit is off)
        except Exception as err:  # noqa: BLE001 - whatever the driver says, this connection is unusable
            raise exc.DisconnectionError(f"connection failed its liveness check: {err}") from err
