"""Sign-in limits: failed sign-ins counted across every worker, per address and per address + email.

Three counts of *failed* password checks, each in fixed windows read from the config (the
Flask-Limiter strings, e.g. "10 per minute"):

- per client address (``LOGIN_RATE_LIMIT``): one address guessing at many accounts;
- per address and email together (``LOGIN_PAIR_RATE_LIMIT``): one address guessing at one account;
- per email, whatever the address (``LOGIN_EMAIL_RATE_LIMIT``): many addresses guessing at one
  account. It stops only addresses that never signed in successfully as that account (its
  ``auth.login`` audit events), so that someone else's failures cannot keep the owner, from the
  address they usually sign in from, out of their account.

An attempt is refused (429, with ``Retry-After``) before its password is checked, so a refused
guess costs no hash and tells nothing. A right password forgets the address + email count.

The counts live where every worker sees them: in Redis when ``REDIS_URL`` is set (``INCR`` and
``EXPIRE``), else in the database (``sign_in_counters``, one ``INSERT ... ON CONFLICT DO UPDATE``
per failure, written with the attempt's audit event). Either way a key is an HMAC (with the
secret key) of what it counts: no email address or client address is stored in plain text.

Redis down (issue #22 item 5): a Redis error (refused, timed out: 0.5 s timeouts) never fails the
sign-in. The counts go to the database instead, which every worker shares too, so the limits still
hold across workers; Redis is tried again after ``REDIS_RETRY_SECONDS``, and the outage is logged
as a warning at most once a minute per process (``core.throttled_log``). What was counted in the
database during the outage is not carried back to Redis: at worst an attacker gets one more window.
``RATELIMIT_ENABLED = False`` turns the limits off, as it does Flask-Limiter's.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from time import monotonic

from flask import current_app
from limits import parse
from sqlalchemy import BigInteger, Integer, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from retreat.accounts import auth
from retreat.accounts import users as accounts
from retreat.audit.models import AuditEvent
from retreat.core import jobs, throttled_log
from retreat.core.context import RequestContext
from retreat.core.errors import RateLimited
from retreat.extensions import db
from retreat.timeutil import now_utc

BY_ADDRESS, BY_PAIR, BY_EMAIL = "address", "pair", "email"
_CONFIG = {BY_ADDRESS: "LOGIN_RATE_LIMIT", BY_PAIR: "LOGIN_PAIR_RATE_LIMIT", BY_EMAIL: "LOGIN_EMAIL_RATE_LIMIT"}
REDIS_TIMEOUT_SECONDS = 0.5
REDIS_RETRY_SECONDS = 5.0
log = logging.getLogger("retreat.accounts.signin_limits")
REFUSED = "Too many attempts. Please wait a few minutes and try again, or reset your password."


class SignInCounter(db.Model):
    """Failed sign-ins under one (hashed) key in one window; rows past ``expires_at`` are swept."""

    __tablename__ = "sign_in_counters"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    window: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    count: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class SignInLimited(RateLimited):
    def __init__(self, retry_after: int):
        super().__init__(REFUSED)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Limit:
    kind: str
    amount: int
    seconds: int


@dataclass(frozen=True)
class Counter:
    limit: Limit
    key: str  # HMAC hex of the kind, the window length and the counted value
    window: int  # now // seconds

    def retry_after(self, now: datetime) -> int:
        return max(1, (self.window + 1) * self.limit.seconds - int(now.timestamp()))

    def expires_at(self) -> datetime:
        return datetime.fromtimestamp((self.window + 1) * self.limit.seconds, tz=UTC)


@lru_cache(maxsize=32)
def _parse(text: str) -> tuple[int, int]:
    item = parse(text)
    return item.amount, item.get_expiry()


def limit(kind: str) -> Limit:
    amount, seconds = _parse(current_app.config[_CONFIG[kind]])
    return Limit(kind, amount, seconds)


def hashed_key(kind: str, seconds: int, value: str) -> str:
    """HMAC-SHA256 (secret key) of what a counter counts: emails and addresses never stored in clear."""
    secret = current_app.config["SECRET_KEY"]
    secret = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(secret, f"sign-in:{kind}:{seconds}:{value}".encode(), hashlib.sha256).hexdigest()


def _counters(email: str, ip: str | None, now: datetime) -> dict[str, Counter]:
    address = ip or "unknown"
    values = {BY_ADDRESS: address, BY_PAIR: f"{address}|{email}", BY_EMAIL: email}
    out = {}
    for kind, value in values.items():
        lim = limit(kind)
        out[kind] = Counter(lim, hashed_key(kind, lim.seconds, value), int(now.timestamp()) // lim.seconds)
    return out


def enabled() -> bool:
    return bool(current_app.config.get("RATELIMIT_ENABLED", True))


# Storage: Redis when configured, the database otherwise ------------------------------------------


def _redis():
    """The Redis client, or None: no ``REDIS_URL``, or Redis failed less than
    ``REDIS_RETRY_SECONDS`` ago in this process (then the database counts)."""
    url = current_app.config.get("REDIS_URL")
    if not url:
        return None
    ext = current_app.extensions
    if ext.get("sign_in_limits_redis_down_until", 0.0) > monotonic():
        return None
    client = ext.get("sign_in_limits_redis")
    if client is None:
        import redis

        client = ext["sign_in_limits_redis"] = redis.Redis.from_url(
            url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=REDIS_TIMEOUT_SECONDS)
    return client


def _redis_failed(err: Exception) -> None:
    current_app.extensions["sign_in_limits_redis_down_until"] = monotonic() + REDIS_RETRY_SECONDS
    throttled_log.warning(log, "sign-in-limits-redis",
                          "sign-in limits: Redis unreachable (%s: %s); counting in the database instead",
                          type(err).__name__, err)


def _redis_errors() -> tuple[type[Exception], ...]:
    import redis

    return (redis.RedisError, OSError)


def _redis_key(counter: Counter) -> str:
    return f"retreat:sign-in:{counter.key}:{counter.window}"


def counts(counters: list[Counter]) -> list[int]:
    client = _redis()
    if client is not None:
        try:
            return [int(v or 0) for v in client.mget([_redis_key(c) for c in counters])]
        except _redis_errors() as err:
            _redis_failed(err)
    rows = dict(db.session.execute(select(SignInCounter.key, SignInCounter.count).where(
        SignInCounter.key.in_([c.key for c in counters]),
        SignInCounter.window.in_(sorted({c.window for c in counters})))).all())
    return [rows.get(c.key, 0) for c in counters]


def _insert():
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def add_failure(counters: list[Counter]) -> None:
    """One more failure under each counter: atomic in Redis, one upsert per counter in the database
    (committed with the attempt's audit event)."""
    client = _redis()
    if client is not None:
        try:
            pipe = client.pipeline(transaction=False)
            for c in counters:
                pipe.incr(_redis_key(c))
                pipe.expire(_redis_key(c), c.limit.seconds + 1)
            pipe.execute()
            return
        except _redis_errors() as err:
            _redis_failed(err)
    insert = _insert()
    for c in sorted(counters, key=lambda c: (c.key, c.window)):  # one order: no deadlock between workers
        stmt = insert(SignInCounter).values(key=c.key, window=c.window, count=1, expires_at=c.expires_at())
        db.session.execute(stmt.on_conflict_do_update(
            index_elements=[SignInCounter.key, SignInCounter.window],
            set_={"count": SignInCounter.count + 1}))


def forget(counters: list[Counter]) -> None:
    client = _redis()
    if client is not None:
        try:
            client.delete(*[_redis_key(c) for c in counters])
            return
        except _redis_errors() as err:
            _redis_failed(err)
    for c in counters:
        db.session.execute(delete(SignInCounter).where(SignInCounter.key == c.key, SignInCounter.window == c.window))


def sweep_expired(now: datetime) -> int:
    """The scheduler's job: drop the database counters of windows that have ended."""
    done = db.session.execute(delete(SignInCounter).where(SignInCounter.expires_at <= now))
    return done.rowcount or 0


jobs.register("accounts.sweep_sign_in_counters", sweep_expired, seconds=600)


# The rule ----------------------------------------------------------------------------------------


def signed_in_from(user_id: int, ip: str | None) -> bool:
    """Has ``ip`` ever completed a sign-in as this user (password, and code where asked)?"""
    if not ip:
        return False
    return db.session.scalar(select(AuditEvent.id).where(
        AuditEvent.object_type == "user", AuditEvent.object_id == str(user_id),
        AuditEvent.action == "auth.login", AuditEvent.ip == ip).limit(1)) is not None


def check(email: str, ip: str | None, *, now: datetime) -> dict[str, Counter]:
    """The attempt's counters; raises ``SignInLimited`` when one of them is used up."""
    counters = _counters(email, ip, now)
    kinds = list(counters)
    over = [kind for kind, n in zip(kinds, counts([counters[k] for k in kinds]), strict=True)
            if n >= counters[kind].limit.amount]
    if BY_EMAIL in over and len(over) == 1:
        user = accounts.get_by_email(email)
        if user is not None and signed_in_from(user.id, ip):
            over = []  # the owner's usual address: only its own counts apply
    if over:
        raise SignInLimited(max(counters[k].retry_after(now) for k in over))
    return counters


def authenticate(email: str, password: str, *, ctx: RequestContext | None = None,
                 now: datetime | None = None) -> auth.AuthResult:
    """``auth.authenticate`` behind the limits: refused (``SignInLimited``) before the password is
    checked when a count is used up; a wrong password counts; a right one forgets the pair's count."""
    if not enabled():
        return auth.authenticate(email, password, ctx=ctx, now=now)
    now = now or now_utc()
    counters = check(accounts.normalize_email(email), ctx.ip if ctx else None, now=now)
    result = auth.authenticate(email, password, ctx=ctx, now=now)
    if result.user is None:
        add_failure(list(counters.values()))
    else:
        forget([counters[BY_PAIR]])
    return result
