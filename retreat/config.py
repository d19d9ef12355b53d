"""Settings from environment variables, with safe embedded defaults.

Every setting can be overridden by an environment variable of the same name. The embedded
defaults run the whole product on one machine: SQLite under ``instance/``, email written to
``instance/outbox/``, rate limits in memory, Stripe pointed at a local ``localstripe``.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

INSTANCE_DIR = Path(os.environ.get("RETREAT_INSTANCE_DIR", Path(__file__).resolve().parent.parent / "instance"))

DEFAULT_SECRET_MARKER = "insecure-default"


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def _secret_key(instance_dir: Path) -> tuple[str, bool]:
    """Return (secret, generated). A missing SECRET_KEY is generated once and kept under instance/."""
    env = os.environ.get("SECRET_KEY")
    if env:
        return env, False
    path = instance_dir / "secret_key"
    try:
        instance_dir.mkdir(parents=True, exist_ok=True)
        if path.exists():
            return path.read_text().strip(), True
        key = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        return key, True
    except FileExistsError:
        return path.read_text().strip(), True


def load_config(overrides: dict | None = None) -> dict:
    instance_dir = Path(os.environ.get("RETREAT_INSTANCE_DIR", INSTANCE_DIR))
    env = os.environ.get("RETREAT_ENV", "development")
    secret, generated = _secret_key(instance_dir)
    cfg: dict = {
        "ENV_NAME": env,  # development | production | testing
        "INSTANCE_DIR": str(instance_dir),
        "SECRET_KEY": secret,
        "SECRET_KEY_GENERATED": generated,
        "SQLALCHEMY_DATABASE_URI": os.environ.get("DATABASE_URL")
        or f"sqlite:///{instance_dir / 'retreat.sqlite3'}",
        "SQLALCHEMY_TRACK_MODIFICATIONS": False,
        # PostgreSQL: give up connecting after this many seconds (an unreachable host must not hang
        # a request); optional per-statement and lock-wait limits in milliseconds (0: none). A
        # statement or lock wait cut short is answered 503 "try again", like a database outage.
        "DATABASE_CONNECT_TIMEOUT": _int("DATABASE_CONNECT_TIMEOUT", 5),
        "DATABASE_STATEMENT_TIMEOUT_MS": _int("DATABASE_STATEMENT_TIMEOUT_MS", 0),
        "DATABASE_LOCK_TIMEOUT_MS": _int("DATABASE_LOCK_TIMEOUT_MS", 0),
        "DATABASE_POOL_SIZE": _int("DATABASE_POOL_SIZE", 10),
        "DATABASE_PING_IDLE_SECONDS": _int("DATABASE_PING_IDLE_SECONDS", 5),
        "DATABASE_MAX_OVERFLOW": _int("DATABASE_MAX_OVERFLOW", 10),
        # Reverse proxies in front of the app that set X-Forwarded-For/-Proto/-Host (nginx: 1).
        # 0 (default): those headers are ignored, as they can be forged by any client.
        "TRUSTED_PROXY_HOPS": _int("TRUSTED_PROXY_HOPS", 0),
        # ...and only on requests that come from these addresses or networks (the proxies themselves).
        "TRUSTED_PROXY_ADDRESSES": os.environ.get("TRUSTED_PROXY_ADDRESSES", "127.0.0.0/8,::1"),
        "BASE_URL": os.environ.get("BASE_URL", "http://127.0.0.1:5000").rstrip("/"),
        "PRACTICE_NAME": os.environ.get("PRACTICE_NAME", "Open Meadow Retreats"),
        # Shown with crisis resources after a check-in asks for contact (empty: not shown).
        "PRACTICE_CONTACT_PHONE": os.environ.get("PRACTICE_CONTACT_PHONE", ""),
        "PRACTICE_CONTACT_EMAIL": os.environ.get("PRACTICE_CONTACT_EMAIL", "care@retreat.localhost"),
        "REDIS_URL": os.environ.get("REDIS_URL", ""),
        # Accounts
        "IDLE_TIMEOUT_MINUTES_STAFF": _int("IDLE_TIMEOUT_MINUTES_STAFF", 15),
        "IDLE_TIMEOUT_MINUTES": _int("IDLE_TIMEOUT_MINUTES", 24 * 60),
        # "Keep me signed in" (participants only): the remember-me cookie's life, and how long such a
        # session may sit unused on the server.
        "REMEMBER_COOKIE_DURATION": timedelta(days=_int("REMEMBER_DAYS", 30)),
        # Staff must set up two-factor until an admin decides otherwise (unset: on in production).
        "REQUIRE_STAFF_TOTP_DEFAULT": _bool("REQUIRE_STAFF_TOTP", env == "production"),
        # Failed sign-ins, counted across workers (retreat.accounts.signin_limits): per client
        # address; per address and email together; per email from addresses that never signed in
        # as that account (the owner's usual address is not locked out by others' failures).
        "LOGIN_RATE_LIMIT": os.environ.get("LOGIN_RATE_LIMIT", "10 per minute"),
        "LOGIN_PAIR_RATE_LIMIT": os.environ.get("LOGIN_PAIR_RATE_LIMIT", "5 per 10 minutes"),
        "LOGIN_EMAIL_RATE_LIMIT": os.environ.get("LOGIN_EMAIL_RATE_LIMIT", "10 per 10 minutes"),
        # Sign-ups / resends / resets per IP, two-factor codes per pending sign-in (Flask-Limiter).
        "SIGNUP_RATE_LIMIT": os.environ.get("SIGNUP_RATE_LIMIT", "10 per hour"),
        "RESEND_RATE_LIMIT": os.environ.get("RESEND_RATE_LIMIT", "5 per 10 minutes"),
        "PASSWORD_RESET_RATE_LIMIT": os.environ.get("PASSWORD_RESET_RATE_LIMIT", "5 per 10 minutes"),
        "TOTP_RATE_LIMIT": os.environ.get("TOTP_RATE_LIMIT", "10 per 5 minutes"),
        "PASSWORD_RESET_MAX_AGE": _int("PASSWORD_RESET_MAX_AGE", 3600),
        "EMAIL_VERIFY_MAX_AGE": _int("EMAIL_VERIFY_MAX_AGE", 7 * 24 * 3600),
        "MAX_CONTENT_LENGTH": _int("MAX_CONTENT_LENGTH", 10 * 1024 * 1024),
        "RATELIMIT_ENABLED": _bool("RATELIMIT_ENABLED", True),
        # Public consult API and booking form, per client address (read by their views).
        "CONSULT_API_SLOTS_RATE_LIMIT": os.environ.get("CONSULT_API_SLOTS_RATE_LIMIT", "120 per minute"),
        "CONSULT_API_BOOK_RATE_LIMIT": os.environ.get("CONSULT_API_BOOK_RATE_LIMIT", "10 per minute"),
        "CONSULT_BOOK_RATE_LIMIT": os.environ.get("CONSULT_BOOK_RATE_LIMIT", "20 per minute"),
        # Program guide PDFs uploaded by staff (shared storage when several web machines serve);
        # empty: <instance>/uploads.
        "UPLOAD_DIR": os.environ.get("UPLOAD_DIR", ""),
        # Clinical data encryption: comma-separated Fernet keys, newest first (rotation).
        # FIELD_ENCRYPTION_KEYS is the older name, still read as a fallback.
        "CLINICAL_DATA_KEYS": os.environ.get("CLINICAL_DATA_KEYS") or os.environ.get("FIELD_ENCRYPTION_KEYS", ""),
        # Email
        "MAIL_FROM": os.environ.get("MAIL_FROM", "Open Meadow Retreats <hello@retreat.localhost>"),
        "SMTP_HOST": os.environ.get("SMTP_HOST", ""),
        "SMTP_PORT": _int("SMTP_PORT", 587),
        "SMTP_USERNAME": os.environ.get("SMTP_USERNAME", ""),
        "SMTP_PASSWORD": os.environ.get("SMTP_PASSWORD", ""),
        "SMTP_STARTTLS": _bool("SMTP_STARTTLS", True),
        "SMTP_TIMEOUT": _int("SMTP_TIMEOUT", 20),
        "MAIL_OUTBOX_DIR": os.environ.get("MAIL_OUTBOX_DIR", str(instance_dir / "outbox")),
        # Slot cache: PostgreSQL LISTEN/NOTIFY instead of a version query per list (retreat.consults.slot_changes)
        "SLOTS_NOTIFY": _bool("SLOTS_NOTIFY", True),
        # Scheduler
        "SCHEDULER_IN_PROCESS": _bool("SCHEDULER_IN_PROCESS", False),
        "DISPATCH_INTERVAL_SECONDS": _int("DISPATCH_INTERVAL_SECONDS", 5),
        "OUTBOX_BATCH_SIZE": _int("OUTBOX_BATCH_SIZE", 50),
        "OUTBOX_MAX_ATTEMPTS": _int("OUTBOX_MAX_ATTEMPTS", 6),
        "OUTBOX_LEASE_SECONDS": _int("OUTBOX_LEASE_SECONDS", 0),  # 0: batch size x SMTP_TIMEOUT + 60, at least 300
        # Retry delays after a temporary failure: base x 2^(attempt-1), at most the cap.
        "OUTBOX_BACKOFF_BASE_SECONDS": _int("OUTBOX_BACKOFF_BASE_SECONDS", 60),
        "OUTBOX_BACKOFF_CAP_SECONDS": _int("OUTBOX_BACKOFF_CAP_SECONDS", 6 * 3600),
        # Stripe
        "STRIPE_SECRET_KEY": os.environ.get("STRIPE_SECRET_KEY", "sk_test_localstripe"),
        "STRIPE_PUBLISHABLE_KEY": os.environ.get("STRIPE_PUBLISHABLE_KEY", "pk_test_localstripe"),
        "STRIPE_WEBHOOK_SECRET": os.environ.get("STRIPE_WEBHOOK_SECRET", "whsec_localstripe"),
        "STRIPE_API_BASE": os.environ.get("STRIPE_API_BASE", "http://127.0.0.1:8420"),
        # reconciliation: send created[gte]/[lte] when listing (unset: yes for api.stripe.com, no for localstripe)
        "STRIPE_LIST_CREATED_FILTER": os.environ.get("STRIPE_LIST_CREATED_FILTER") or None,
        # Cookies
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": env == "production" or _bool("SESSION_COOKIE_SECURE", False),
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "WTF_CSRF_TIME_LIMIT": None,
        # API docs (flask-smorest); docs are rendered by our own template, no CDN.
        "API_TITLE": "retreat API",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
    }
    if "PUBLIC_CACHE_SECONDS" in os.environ:  # unset: 5 s, or off when testing (retreat.web.page_cache)
        cfg["PUBLIC_CACHE_SECONDS"] = _int("PUBLIC_CACHE_SECONDS", 5)
    if "ROSTER_CACHE_SECONDS" in os.environ:  # unset: 30 s, or off when testing (retreat.web.page_cache.versioned)
        cfg["ROSTER_CACHE_SECONDS"] = _int("ROSTER_CACHE_SECONDS", 30)
    if "SETTINGS_CACHE_SECONDS" in os.environ:  # unset: 10 s, or off when testing (accounts.staff_totp_required)
        cfg["SETTINGS_CACHE_SECONDS"] = _int("SETTINGS_CACHE_SECONDS", 10)
    if overrides:
        cfg.update(overrides)
    if cfg["ENV_NAME"] == "production" and "SESSION_COOKIE_SECURE" not in (overrides or {}):
        cfg["SESSION_COOKIE_SECURE"] = True  # also when production is chosen by an override
    if (cfg["ENV_NAME"] == "production" and "REQUIRE_STAFF_TOTP" not in os.environ
            and "REQUIRE_STAFF_TOTP_DEFAULT" not in (overrides or {})):
        cfg["REQUIRE_STAFF_TOTP_DEFAULT"] = True  # also when production is chosen by an override
    cfg.setdefault("REMEMBER_COOKIE_SECURE", cfg["SESSION_COOKIE_SECURE"])
    return cfg


def check_production_safety(cfg: dict) -> None:
    """Refuse to start in production with a default or generated secret."""
    if cfg.get("ENV_NAME") != "production":
        return
    secret = cfg.get("SECRET_KEY") or ""
    if cfg.get("SECRET_KEY_GENERATED") or DEFAULT_SECRET_MARKER in secret or len(secret) < 32:
        raise RuntimeError(
            "Refusing to start in production without a strong SECRET_KEY environment variable "
            "(at least 32 characters)."
        )
    if not (cfg.get("CLINICAL_DATA_KEYS") or cfg.get("FIELD_ENCRYPTION_KEYS")):
        raise RuntimeError("Refusing to start in production without CLINICAL_DATA_KEYS.")
