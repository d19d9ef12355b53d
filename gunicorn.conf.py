"""gunicorn settings for production: `gunicorn -c gunicorn.conf.py wsgi:app`.

Every value can be changed by an environment variable (shown next to it). Behind nginx on the
same machine keep BIND on loopback (or a unix socket) and set TRUSTED_PROXY_HOPS=1 for the app.
The scheduler is NOT started here: run `flask --app wsgi scheduler run` as its own process.
"""

import multiprocessing
import os


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


bind = os.environ.get("BIND", "127.0.0.1:8000")  # BIND; e.g. unix:/run/retreat/gunicorn.sock
workers = _int("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 8))  # WEB_CONCURRENCY
worker_class = "sync"  # requests are short: a Stripe call or SMTP never happens in a request for long
threads = _int("GUNICORN_THREADS", 1)

# A request running longer than this is killed and its worker replaced (GUNICORN_TIMEOUT). Keep it
# above DATABASE_STATEMENT_TIMEOUT_MS and the Stripe client timeout, so those fail first, cleanly.
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)  # on SIGTERM/HUP: finish in-flight requests
keepalive = _int("GUNICORN_KEEPALIVE", 5)  # behind nginx (upstream keepalive); 2-5 s is usual

# Recycle workers now and then (bounded memory growth), rarely and not all at once: a new worker
# takes ~1.5 s to import the app, and with a small jitter all workers restarted within one second
# (bench/faults.py pg-restart saw every worker busy for 1.5 s at 2,000 requests each).
max_requests = _int("GUNICORN_MAX_REQUESTS", 20000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 5000)

# Slow clients are nginx's job; limit what reaches us anyway.
limit_request_line = 8190
limit_request_fields = 100
backlog = _int("GUNICORN_BACKLOG", 2048)

# The app creates its database pool lazily in each worker; never share connections across fork.
preload_app = False
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # heartbeat files off slow disks

# X-Forwarded-* are interpreted by the app (TRUSTED_PROXY_HOPS, werkzeug ProxyFix), not by gunicorn.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None  # "-" for stdout


def _redacting_logger():
    """gunicorn's logger with capability tokens taken out of the access log's request line, path,
    query and referrer (retreat.web.log_redaction; issue #22 item 2)."""
    from gunicorn.glogging import Logger

    from retreat.web.log_redaction import redact, redact_query

    class RedactingLogger(Logger):
        def atoms(self, resp, req, environ, request_time):
            atoms = super().atoms(resp, req, environ, request_time)
            for key in ("r", "U", "f", "{referer}i"):
                if key in atoms:
                    atoms[key] = redact(atoms[key])
            atoms["q"] = redact_query(atoms.get("q"))
            return atoms

    return RedactingLogger


logger_class = _redacting_logger()
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
proc_name = "retreat"


# >>> observability (issue #22 item 6): gunicorn's own lines (master and workers) in the app's
# format, LOG_FORMAT / LOG_LEVEL, each with a request_id field ("-" outside a request). The app's
# access log is its own line on the retreat.access logger (retreat.web.access_log).
def _logconfig_dict() -> dict:
    import sys

    from retreat.config import ConfigurationError, load_config
    from retreat.core.logs import gunicorn_logconfig

    try:
        return gunicorn_logconfig(load_config())
    except ConfigurationError as err:  # a malformed number: the same one line as the checks below
        print(str(err), file=sys.stderr)
        raise SystemExit(2) from None


logconfig_dict = _logconfig_dict()
# <<< observability


# Rolling restart without a stall (issue #22 item 7). On SIGHUP gunicorn starts new workers and at
# once stops the old ones, while each new worker still spends ~2 s importing the app: requests
# waited ~3 s (bench/restart.py: 2.9 and 3.5 s). preload_app would make new workers ready at once,
# but then a SIGHUP no longer loads new code, which is what an upgrade needs. Instead each new
# worker stops one old worker only once it has loaded the app (post_worker_init): old workers
# serve until their replacements can. The master counts the old ones as extra workers meanwhile
# (on_reload), and forgets each as it exits (child_exit), so the pool ends at `workers`.
_handoff: list[int] = []  # master: old workers not yet given to a new one, oldest first
_retiring: set[int] = set()  # master: old workers still counted in num_workers


def on_reload(server):
    old = [pid for pid, _ in sorted(server.WORKERS.items(), key=lambda item: item[1].age)]
    _handoff[:] = old
    _retiring.update(old)
    server.num_workers += len(old)  # the reload's manage_workers() then stops nobody


def pre_fork(server, worker):
    while _handoff and _handoff[0] not in server.WORKERS:
        _handoff.pop(0)  # exited meanwhile
    worker.retreat_replaces = _handoff.pop(0) if _handoff else None


def post_worker_init(worker):
    import signal

    target = getattr(worker, "retreat_replaces", None)
    if target:
        try:
            os.kill(target, signal.SIGTERM)  # graceful: it finishes its in-flight request
        except ProcessLookupError:
            pass


def child_exit(server, worker):
    if worker.pid in _retiring:
        _retiring.discard(worker.pid)
        server.num_workers = max(server.cfg.workers, server.num_workers - 1)
    else:
        target = getattr(worker, "retreat_replaces", None)
        if target in _retiring and target in server.WORKERS and target not in _handoff:
            _handoff.insert(0, target)  # a new worker died before taking over: the next one will


def _refuse_bad_configuration() -> None:
    """Check the configuration in the master, before it binds or forks: a refused start is one line
    on stderr naming the variable and exit status 2 (a worker's failed import would only be retried)."""
    import sys

    from retreat.config import ConfigurationError, check_configuration, load_config

    try:
        check_configuration(load_config())
    except ConfigurationError as err:
        print(str(err), file=sys.stderr)
        raise SystemExit(2) from None


_refuse_bad_configuration()
