"""retreat: operations platform for KAP group retreats."""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask

from retreat.config import check_configuration, generated_secret_key, load_config

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: dict | None = None) -> Flask:
    """config -> extensions -> blueprints -> cli -> errors."""
    settings = load_config(config)
    check_configuration(settings)  # before anything is written: a refused start leaves no trace
    from retreat.core import logs

    logs.configure(settings)  # LOG_LEVEL / LOG_FORMAT, request ids on every line (issue #22 item 6)
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str(Path(settings["INSTANCE_DIR"]).resolve()),
    )
    app.config.update(settings)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    if not app.config.get("SECRET_KEY"):
        if app.config.get("ENV_NAME") == "production":  # only a printing-only command gets here
            import secrets

            app.config["SECRET_KEY"] = secrets.token_urlsafe(48)
        else:
            app.config["SECRET_KEY"] = generated_secret_key(Path(app.instance_path))
    _trust_proxies(app)

    _init_extensions(app)

    from retreat import subscriptions  # noqa: F401  (signal handlers of every domain)
    from retreat.web import hooks, inputs, transaction

    hooks.init_app(app)
    from retreat.web import metrics

    metrics.init_app(app)  # /metrics (METRICS_TOKEN) and request latencies
    inputs.init_app(app)  # refuses control characters in any input (issue #16)
    inputs.install_converter(app)  # before any route: <int:...> is bounded to an Integer column
    transaction.init_app(app)  # after the hooks: it settles the response before they add headers

    from retreat.blueprints import register_blueprints

    register_blueprints(app)

    from retreat.cli import register_cli

    register_cli(app)

    from retreat.web import errors

    errors.init_app(app)

    from retreat.web import templating

    templating.init_app(app)

    from retreat.web import crisis

    crisis.init_app(app)

    if app.config.get("SCHEDULER_IN_PROCESS"):
        from retreat.scheduler import start_in_process

        start_in_process(app)
    if os.environ.get("BENCH_BARE_ENDPOINT"):
        _mount_bench_bare(app)
    return app


def _mount_bench_bare(app: Flask) -> None:
    """Benchmarks only (``BENCH_BARE_ENDPOINT`` set): a bare Flask app at ``/__bench/bare``, served by
    the same server processes, as the baseline the load figures are divided by."""
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    bare = Flask("bench_bare")
    bare.add_url_rule("/", "bare", lambda: {"ok": True})
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/__bench/bare": bare})


def _init_extensions(app: Flask) -> None:
    from sqlalchemy import event

    from retreat import models  # noqa: F401  (complete metadata)
    from retreat.extensions import api, csrf, db, limiter, login_manager, migrate

    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("postgresql://"):
        uri = "postgresql+psycopg://" + uri[len("postgresql://"):]
        app.config["SQLALCHEMY_DATABASE_URI"] = uri
    engine_options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    if uri.startswith("sqlite"):
        if ":memory:" not in uri and uri != "sqlite://":
            Path(uri.split("sqlite:///", 1)[-1]).parent.mkdir(parents=True, exist_ok=True)
        engine_options.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
    else:
        # A pooled connection killed by a database restart is replaced at checkout instead of
        # failing the request (tests/web/test_database_unavailable.py): retreat.core.db_liveness pings
        # only a connection that may be dead, SQLAlchemy's pool_pre_ping (if set) every one.
        engine_options.setdefault("pool_pre_ping", False)
        engine_options.setdefault("pool_size", int(app.config.get("DATABASE_POOL_SIZE") or 10))
        engine_options.setdefault("max_overflow", int(app.config.get("DATABASE_MAX_OVERFLOW") or 10))
        if uri.startswith("postgresql"):
            connect_args = dict(engine_options.get("connect_args") or {})
            if app.config.get("DATABASE_CONNECT_TIMEOUT"):
                connect_args.setdefault("connect_timeout", int(app.config["DATABASE_CONNECT_TIMEOUT"]))
            options = [f"-c {name}={int(app.config.get(key) or 0)}"
                       for name, key in (("statement_timeout", "DATABASE_STATEMENT_TIMEOUT_MS"),
                                         ("lock_timeout", "DATABASE_LOCK_TIMEOUT_MS"))
                       if app.config.get(key)]
            if options and "options" not in connect_args:
                connect_args["options"] = " ".join(options)
            engine_options["connect_args"] = connect_args
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options

    db.init_app(app)
    from retreat.core import locking

    locking.install()
    _close_sessions_quietly(app)
    with app.app_context():
        engine = db.engine
        if engine.dialect.name == "postgresql" and not engine_options.get("pool_pre_ping"):
            from retreat.core import db_liveness

            db_liveness.install(engine, float(app.config.get("DATABASE_PING_IDLE_SECONDS") or 5))
        if engine.dialect.name == "sqlite":

            @event.listens_for(engine, "connect")
            def _sqlite_pragmas(dbapi_conn, _record):
                # Let SQLAlchemy emit BEGIN itself (below) instead of pysqlite's deferred BEGIN.
                dbapi_conn.isolation_level = None
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()

            @event.listens_for(engine, "begin")
            def _sqlite_begin_immediate(conn):
                # One writer at a time, decided when the transaction starts, not at its first write.
                conn.exec_driver_sql("BEGIN IMMEDIATE")

    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True, compare_type=True)
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "account.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    # No binding of a sign-in to the client's address or browser (issue #22): Flask-Login's "strong"
    # mode read the leftmost X-Forwarded-For as the client sent it and signed people out whenever
    # their address changed (a phone going from Wi-Fi to mobile data). A sign-in is its server
    # session (retreat.accounts.sessions), which sign-out, sign-out-everywhere, a password change and
    # the idle timeout end for real; the account page lists each session's device and last address.
    login_manager.session_protection = None
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config.get("REDIS_URL") or "memory://")
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    limiter.init_app(app)
    from retreat.blueprints.api.schemas import ErrorSchema

    api.ERROR_SCHEMA = ErrorSchema  # documented errors have our shape: {"error", "errors"}
    api.init_app(app, spec_kwargs={
        "info": {"description": "JSON API of retreat. Authenticate with a personal API token: "
                                "`Authorization: Bearer <token>`."},
        # Security is declared per operation (security.api_roles_required); health and docs are public.
        "components": {"securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer"},
            # The few calls the signed-in web app makes for participants (with an X-CSRFToken header).
            "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "session"},
        }},
    })


def _trust_proxies(app: Flask) -> None:
    """Behind ``TRUSTED_PROXY_HOPS`` reverse proxies, take the client address, scheme and host from
    their X-Forwarded-* headers (rate limits, audit IPs, secure cookies, HSTS, external URLs)."""
    hops = int(app.config.get("TRUSTED_PROXY_HOPS") or 0)
    if hops > 0:
        from retreat.web.proxies import TrustedProxies, parse_networks

        # Only from the proxies' own addresses: a client reaching gunicorn directly forges nothing.
        try:
            networks = parse_networks(app.config.get("TRUSTED_PROXY_ADDRESSES"))
        except ValueError as err:
            raise RuntimeError(f"Refusing to start: {err}") from None
        app.wsgi_app = TrustedProxies(app.wsgi_app, hops=hops, networks=networks)  # type: ignore[method-assign]


def _close_sessions_quietly(app: Flask) -> None:
    """End each request's session before Flask-SQLAlchemy's own teardown does (teardowns run in
    reverse order), tolerating a connection the database dropped after the response was ready
    (a crash or restart): that response still goes out instead of becoming a server error."""
    import logging

    from retreat.extensions import db

    @app.teardown_appcontext
    def _remove_session(_exc):
        from retreat.web.errors import database_unavailable

        try:
            db.session.remove()
        except Exception as err:
            if not database_unavailable(err):
                raise
            logging.getLogger("retreat.database").warning("connection lost while closing a session: %s", err)
            try:
                db.session.remove()  # the dead connection is invalidated now; discard the session
            except Exception:  # noqa: BLE001 - best effort, the pool replaces the connection anyway
                db.session.registry.clear()
