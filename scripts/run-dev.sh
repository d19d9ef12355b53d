#!/usr/bin/env bash
# Serves the demo on http://HOST:PORT with a local Stripe test server (localstripe) beside it:
#   scripts/run-dev.sh [--dry-run] [HOST [PORT [LOCALSTRIPE_PORT]]]
# Applies the migrations and loads the demo data first. Links in emails use BASE_URL, which
# defaults to http://HOST:PORT. localstripe keeps its state in $INSTANCE/localstripe.pickle (not
# the /tmp pickle every localstripe on the machine shares) and starts empty with a new database.
# --dry-run prints what it would use and starts nothing.
set -euo pipefail
DRY_RUN=0
if [ "${1:-}" = "--dry-run" ]; then DRY_RUN=1; shift; fi
HOST=${1:-127.0.0.1}
PORT=${2:-5000}
LS_PORT=${3:-8420}
BIN=${BIN:-.venv/bin}
INSTANCE=${RETREAT_INSTANCE_DIR:-instance}
LS_STATE="$INSTANCE/localstripe.pickle"
export BASE_URL=${BASE_URL:-http://${HOST}:${PORT}}
USE_LOCALSTRIPE=0
if [ -z "${STRIPE_SECRET_KEY:-}" ] || [[ "${STRIPE_SECRET_KEY}" == sk_test_localstripe* ]]; then
  USE_LOCALSTRIPE=1
  export STRIPE_API_BASE="http://127.0.0.1:${LS_PORT}"
fi

if [ "$DRY_RUN" = 1 ]; then
  echo "BASE_URL=${BASE_URL}"
  echo "INSTANCE=${INSTANCE}"
  if [ "$USE_LOCALSTRIPE" = 1 ]; then
    echo "STRIPE_API_BASE=${STRIPE_API_BASE}"
    echo "LOCALSTRIPE_STATE=${LS_STATE}"
  fi
  exit 0
fi

mkdir -p "$INSTANCE"
# A database without a migration revision is new: the demo (and its Stripe state) starts afresh.
NEW_DB=1
if "$BIN/flask" --app wsgi db current 2>/dev/null | grep -qE '^[0-9A-Za-z_]+( \(.*\))?$'; then NEW_DB=0; fi
"$BIN/flask" --app wsgi db upgrade

PIDS=()
cleanup() { [ ${#PIDS[@]} -eq 0 ] || kill "${PIDS[@]}" 2>/dev/null || true; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$USE_LOCALSTRIPE" = 1 ]; then
  if (exec 3<>"/dev/tcp/127.0.0.1/${LS_PORT}") 2>/dev/null; then
    echo "note: a localstripe is already listening on ${LS_PORT}; using it and its state as they are"
  else
    LS_ARGS=(--port "$LS_PORT")
    if [ "$NEW_DB" = 1 ]; then rm -f "$LS_STATE"; LS_ARGS+=(--from-scratch); fi
    "$BIN/python" scripts/localstripe_instance.py "$LS_STATE" "${LS_ARGS[@]}" > "$INSTANCE/localstripe.log" 2>&1 &
    PIDS+=($!)
  fi
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/${LS_PORT}") 2>/dev/null && break; sleep 0.1; done
fi
# The demo pays its deposits and balances through localstripe (started first, above), so the
# finance pages and the reconciliation have real Stripe objects behind them.
"$BIN/flask" --app wsgi seed-demo > /dev/null
if [ "$USE_LOCALSTRIPE" = 1 ]; then
  # localstripe delivers its signed events (payment_intent.succeeded ...) to the app's webhook.
  curl -fsS -X POST "${STRIPE_API_BASE}/_config/webhooks/retreat" \
    --data-urlencode "url=http://${HOST}:${PORT}/webhooks/stripe" \
    --data-urlencode "secret=${STRIPE_WEBHOOK_SECRET:-whsec_localstripe}" > /dev/null \
    || echo "warning: could not register the webhook with localstripe"
fi

echo
echo "retreat is starting on http://${HOST}:${PORT} (links in emails: ${BASE_URL})"
echo "Demo logins (password: retreat-demo-2026):"
echo "  admin        admin@demo.retreat"
echo "  facilitator  facilitator@demo.retreat"
echo "  provider     provider@demo.retreat"
echo "  finance      finance@demo.retreat"
echo "  participant  participant@demo.retreat"
echo "Emails are written to ${INSTANCE}/outbox/ (set SMTP_HOST to send them)."
echo
export SCHEDULER_IN_PROCESS=${SCHEDULER_IN_PROCESS:-1}
# webhooks to receivers on this machine (a local Zapier stand-in, a test server)
export WEBHOOK_ALLOW_PRIVATE_URLS=${WEBHOOK_ALLOW_PRIVATE_URLS:-1}
# Not exec: this shell stays to stop localstripe when the app ends.
"$BIN/flask" --app wsgi run --host "$HOST" --port "$PORT" --no-debugger --no-reload &
PIDS+=($!)
wait "${PIDS[-1]}"
