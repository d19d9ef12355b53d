#!/usr/bin/env bash
# Serves the demo on http://HOST:PORT with a local Stripe test server (localstripe) beside it.
set -euo pipefail
HOST=${1:-127.0.0.1}
PORT=${2:-5000}
LS_PORT=${3:-8420}
BIN=.venv/bin
mkdir -p instance

if [ -z "${STRIPE_SECRET_KEY:-}" ] || [[ "${STRIPE_SECRET_KEY}" == sk_test_localstripe* ]]; then
  if ! (exec 3<>"/dev/tcp/127.0.0.1/${LS_PORT}") 2>/dev/null; then
    "$BIN/localstripe" --port "$LS_PORT" > instance/localstripe.log 2>&1 &
    LS_PID=$!
    trap 'kill $LS_PID 2>/dev/null || true' EXIT
  fi
  export STRIPE_API_BASE="http://127.0.0.1:${LS_PORT}"
  # localstripe delivers its signed events (payment_intent.succeeded ...) to the app's webhook.
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/${LS_PORT}") 2>/dev/null && break; sleep 0.1; done
  curl -fsS -X POST "${STRIPE_API_BASE}/_config/webhooks/retreat" \
    --data-urlencode "url=http://${HOST}:${PORT}/webhooks/stripe" \
    --data-urlencode "secret=${STRIPE_WEBHOOK_SECRET:-whsec_localstripe}" > /dev/null \
    || echo "warning: could not register the webhook with localstripe"
fi

echo
echo "retreat is starting on http://${HOST}:${PORT}"
echo "Demo logins (password: retreat-demo-2026):"
echo "  admin        admin@demo.retreat"
echo "  facilitator  facilitator@demo.retreat"
echo "  provider     provider@demo.retreat"
echo "  finance      finance@demo.retreat"
echo "  participant  participant@demo.retreat"
echo "Emails are written to instance/outbox/ (set SMTP_HOST to send them)."
echo
export SCHEDULER_IN_PROCESS=${SCHEDULER_IN_PROCESS:-1}
exec "$BIN/flask" --app wsgi run --host "$HOST" --port "$PORT" --no-debugger --no-reload
