#!/usr/bin/env bash
# `make dev`: the whole system on embedded defaults, in the foreground.
#   Temporal dev server (SQLite file, Web UI on :8233) → metasim (local Graph
#   API with a demo world) → `starter setup` (search attributes, schedule,
#   tenants) → worker → a steady trickle of demo claims.
# Ctrl-C stops everything it started. Settings (environment):
#   SPEED        time acceleration (default 1: the schedule fires every minute)
#   DEMO_CLAIMS  claims per demo tick (default 20), DEMO_EVERY seconds between ticks (default 10)
#   DATA_DIR     where state and logs go (default .data, git-ignored)
#   DEV_BUDGET   budget per demo token, in metasim and in the engine's
#                limiters (default 20000/1h, so the demo trickle is decided in
#                minutes; the plan's figure is 200/1h)
set -euo pipefail
cd "$(dirname "$0")/.."

DATA_DIR=${DATA_DIR:-.data}
SPEED=${SPEED:-1}
DEMO_CLAIMS=${DEMO_CLAIMS:-20}
DEMO_EVERY=${DEMO_EVERY:-10}
TEMPORAL_PORT=${TEMPORAL_PORT:-7233}
UI_PORT=${UI_PORT:-8233}
METASIM_ADDR=${METASIM_ADDR:-127.0.0.1:8088}
WEBHOOK_ADDR=${WEBHOOK_ADDR:-127.0.0.1:8089}
API_ADDR=${API_ADDR:-127.0.0.1:8090}
METRICS_ADDR=${METRICS_ADDR:-127.0.0.1:9464}
DEV_BUDGET=${DEV_BUDGET:-20000/1h}
LOGS=$DATA_DIR/logs

# Every run is a fresh demo: metasim keeps its world in memory, so claims
# left in the store by an earlier run could not be checked against it.
rm -rf "$DATA_DIR/verifier.db"* "$DATA_DIR/temporal.db"* "$DATA_DIR/tenants.json" "$LOGS"
mkdir -p "$LOGS" "$DATA_DIR/secrets"

export TEMPORAL_ADDRESS=127.0.0.1:$TEMPORAL_PORT
export STORE_URL=${STORE_URL:-sqlite:$DATA_DIR/verifier.db}
export META_GRAPH_URL=http://$METASIM_ADDR/
export META_APP_SECRET_REF=file:$PWD/$DATA_DIR/secrets/app_secret
export SPEED
# The worker serves Meta webhooks; metasim subscribes (the verify token
# handshake) and delivers its world's comments, mentions and reactions, signed.
export WEBHOOK_ADDR API_ADDR METRICS_ADDR
export META_WEBHOOK_VERIFY_TOKEN_REF=file:$PWD/$DATA_DIR/secrets/webhook_verify_token
# Payloads are encrypted (a fresh key per run); the Web UI decodes them through
# the worker's codec server on the API's address.
export PAYLOAD_KEYS_REF=file:$PWD/$DATA_DIR/secrets/payload_keys
export CODEC_CORS_ORIGIN=http://127.0.0.1:$UI_PORT
# Tenants' connected tokens are stored sealed under this master key (a fresh
# one per run, like the store); rotate with bin/starter tokens rotate-keys.
export TOKEN_KEYS_REF=file:$PWD/$DATA_DIR/secrets/token_keys

pids=()
cleanup() {
  trap - EXIT INT TERM
  echo
  echo "stopping..."
  for ((i=${#pids[@]}-1; i>=0; i--)); do kill "${pids[$i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped. State is kept in $DATA_DIR (make clean removes it)."
}
trap cleanup EXIT
# Exit after cleanup: returning from the trap would go back into the demo loop.
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

wait_for() { # what, seconds, command...
  local what=$1 secs=$2; shift 2
  for ((i=0; i<secs*5; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "dev: $what did not come up; see $LOGS" >&2
  exit 1
}

head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DATA_DIR/secrets/webhook_verify_token"
printf 'dev-%s:%s\n' "$(date +%s)" "$(head -c 32 /dev/urandom | base64 -w0)" >"$DATA_DIR/secrets/payload_keys"
[ -s "$DATA_DIR/secrets/token_keys" ] ||
  printf 'tok-%s:%s\n' "$(date +%s)" "$(head -c 32 /dev/urandom | base64 -w0)" >"$DATA_DIR/secrets/token_keys"
# Other shells source this to reach the demo: the starter gets the store and
# the payload keys, the temporal CLI the codec server (to show payloads decoded).
cat >"$DATA_DIR/env" <<ENV
export TEMPORAL_ADDRESS=$TEMPORAL_ADDRESS STORE_URL=$STORE_URL
export PAYLOAD_KEYS_REF=$PAYLOAD_KEYS_REF TEMPORAL_CODEC_ENDPOINT=http://$API_ADDR/codec
export TOKEN_KEYS_REF=$TOKEN_KEYS_REF META_GRAPH_URL=$META_GRAPH_URL META_APP_SECRET_REF=$META_APP_SECRET_REF SPEED=$SPEED
ENV

for port in "$TEMPORAL_PORT" "$UI_PORT" "${METASIM_ADDR##*:}" "${WEBHOOK_ADDR##*:}" "${API_ADDR##*:}" "${METRICS_ADDR##*:}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "dev: port $port is already in use (another make dev?)" >&2
    exit 1
  fi
done

echo "starting Temporal dev server (logs: $LOGS/temporal.log)"
bin/temporal server start-dev \
  --ip 127.0.0.1 --port "$TEMPORAL_PORT" --ui-port "$UI_PORT" \
  --db-filename "$DATA_DIR/temporal.db" --log-level warn \
  --ui-codec-endpoint "http://$API_ADDR/codec" \
  >"$LOGS/temporal.log" 2>&1 &
pids+=($!)
wait_for "Temporal" 60 bin/temporal operator cluster health --address "$TEMPORAL_ADDRESS"

echo "starting metasim on $METASIM_ADDR (logs: $LOGS/metasim.log)"
METASIM_WEBHOOK_VERIFY_TOKEN=$(cat "$DATA_DIR/secrets/webhook_verify_token") \
bin/metasim -addr "$METASIM_ADDR" -speed "$SPEED" \
  -platform-budget "$DEV_BUDGET" -tenant-budget "$DEV_BUDGET" \
  -app-secret-file "$DATA_DIR/secrets/app_secret" \
  -write-config "$DATA_DIR/tenants.json" -secrets-dir "$PWD/$DATA_DIR/secrets" \
  -webhook-url "http://$WEBHOOK_ADDR/webhooks/meta" -webhook-wait 60s \
  -deauthorize-url "http://$API_ADDR/meta/deauthorize" \
  >"$LOGS/metasim.log" 2>&1 &
pids+=($!)
wait_for "metasim" 30 curl -fsS "http://$METASIM_ADDR/_sim/healthz"

bin/starter setup -tenants "$DATA_DIR/tenants.json"
API_KEY=$(bin/starter api-key -tenant brand-01 -name "make dev")

echo "starting worker (logs: $LOGS/worker.log)"
bin/worker >"$LOGS/worker.log" 2>&1 &
pids+=($!)

cat <<INFO

  Temporal Web UI   http://127.0.0.1:$UI_PORT/namespaces/default/workflows
                    filter batches: TenantID = "brand-01"
                    (payloads are encrypted; the UI decodes them through http://$API_ADDR/codec)
  schedule          http://127.0.0.1:$UI_PORT/namespaces/default/schedules/verification-dispatcher
  other shells      . $DATA_DIR/env   (store, payload keys, codec server for bin/temporal)
  queue status      bin/starter status
  verdicts          bin/starter export | head
  metasim           http://$METASIM_ADDR/_sim/world   (webhooks: /_sim/webhooks)
  platform API      curl -H "Authorization: Bearer $API_KEY" "http://$API_ADDR/v1/verdicts?limit=5"
                    (brand-01's key; more with bin/starter api-key -tenant ID; spec: /v1/openapi.json)
  tenants' tokens    bin/starter tokens   (connect one: curl -X POST http://$METASIM_ADDR/_sim/tokens -d '{"tenant":"brand-01","kind":"user_short"}',
                    then its "value" to POST http://$API_ADDR/v1/tokens {"access_token":"..."} with brand-01's key)
  metrics           http://$METRICS_ADDR/metrics
  logs              $LOGS/

  $DEMO_CLAIMS demo claims every ${DEMO_EVERY}s (10% fraudulent, some malformed). Ctrl-C stops everything.

INFO

# The demo trickle: metasim makes claims it knows the truth of (performing
# the genuine ones in its world); the starter submits them like the platform
# would.
tick=0
while true; do
  tick=$((tick+1))
  if curl -fsS -X POST "http://$METASIM_ADDR/_sim/claims?n=$DEMO_CLAIMS&fraud=0.1&malformed=1" -o "$DATA_DIR/demo-claims.jsonl" 2>>"$LOGS/demo.log"; then
    bin/starter submit -file "$DATA_DIR/demo-claims.jsonl" >>"$LOGS/demo.log" 2>&1 || echo "dev: submit failed, see $LOGS/demo.log" >&2
  fi
  if (( tick % 6 == 0 )); then
    bin/starter status -temporal=false 2>/dev/null | tail -n 1 | sed 's/^/  [status] /' || true
  fi
  sleep "$DEMO_EVERY" &
  wait $! || true
done
