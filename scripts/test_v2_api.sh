#!/usr/bin/env bash
# Post-deploy check of the serving API (/api/v2): every area answers, with the fields and types
# its OpenAPI schema promises, and the typed error codes clients rely on.
#
#   API_BASE=http://localhost:8000 OMNIWATCH_API_KEY=<secret> scripts/test_v2_api.sh [--read-only]
#
# API_BASE            the server (default http://localhost:8000)
# OMNIWATCH_API_KEY   the secret of one OMNIWATCH_API_KEYS entry (without its "name:"); keyed
#                     routes are checked with it, and refused without it.
# CHECK_SYMBOL        the liquid symbol to score (default BTC)
# CHECK_TIMEOUT_S     per request (default 120: the first request of a model loads it)
#
# What it writes (skip all of it with --read-only; reads, refusals and the key checks remain):
#   predictions_v2 / prediction_explanations: one prediction of CHECK_SYMBOL and one of the
#       vc model when it has a champion (request_key "omniwatch-api-check"), the explanation of
#       the first, and the predictions that signals/* and portfolio/* store;
#   signal_candidates: strategy "omniwatch_api_check" (one row per target, horizon and hour: a
#       rerun in the same hour updates it);
#   events: source "api_check", source_id "omniwatch-api-check" (an upsert: a rerun updates it);
#   model_promotions: one manual audit note whose reason starts with "omniwatch API check";
#   backtest_runs / serving_tasks: one 6-hour in-sample backtest and one task of the same.
# It never gates, advances, rolls back or evaluates drift (those move aliases or audit decisions).
#
# Needs curl and jq. Exit status 0 when every assertion passed, 1 otherwise (2: bad usage); the
# last line is "v2 API check: N passed, M failed".
set -u -o pipefail

API_BASE="${API_BASE:-http://localhost:8000}"
API_BASE="${API_BASE%/}"
KEY="${OMNIWATCH_API_KEY:-}"
SYMBOL="${CHECK_SYMBOL:-BTC}"
TIMEOUT_S="${CHECK_TIMEOUT_S:-120}"
TAG="omniwatch-api-check"
WRITES=1
for arg in "$@"; do
  case "$arg" in
    --read-only) WRITES=0 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done
for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 2; }
done

PASSED=0
FAILED=0
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
BODY="$WORK/body.json"
STATUS=000
AREA=""

ok() { PASSED=$((PASSED + 1)); }
fail() {
  FAILED=$((FAILED + 1))
  echo "FAIL [$AREA] $1" >&2
  [ -s "$BODY" ] && echo "     answer ($STATUS): $(head -c 400 "$BODY")" >&2
  return 0
}

# call METHOD PATH [JSON] [key|nokey|wrongkey]: the answer's status in STATUS, its body in $BODY.
call() {
  local method="$1" path="$2" data="${3:-}" auth="${4:-key}"
  local args=(-sS -o "$BODY" -w '%{http_code}' -X "$method" --max-time "$TIMEOUT_S" -H 'Accept: application/json')
  case "$auth" in
    key) [ -n "$KEY" ] && args+=(-H "X-API-Key: $KEY") ;;
    wrongkey) args+=(-H "X-API-Key: not-${KEY:-a-key}-$$") ;;
  esac
  [ -n "$data" ] && args+=(-H 'Content-Type: application/json' --data "$data")
  : >"$BODY"
  STATUS="$(curl "${args[@]}" "$API_BASE$path" 2>"$WORK/curl.err")" || STATUS=000
  if [ "$STATUS" = 000 ]; then
    echo "no answer from $method $API_BASE$path: $(cat "$WORK/curl.err")" >"$BODY"
  fi
}

# expect CODE DESCRIPTION: the last answer's status.
expect() {
  if [ "$STATUS" = "$1" ]; then ok; else fail "$2: status $STATUS, expected $1"; fi
}

# check JQ_EXPR [DESCRIPTION]: the expression must be true on the last answer's body.
check() {
  if jq -e "$1" "$BODY" >/dev/null 2>&1; then ok; else fail "${2:-$1}"; fi
}

# error CODE STATUS DESCRIPTION: the last answer is the one error shape with that status and code.
error() {
  expect "$2" "$3"
  check ".code == \"$1\" and (.detail | type) == \"string\"" "$3: code $1 with a detail"
}

value() { jq -r "$1" "$BODY" 2>/dev/null; }

# --------------------------------------------------------------------------------- health
AREA=health
call GET /api/v2/health
if [ "$STATUS" = 000 ]; then
  fail "the server does not answer"
  echo "v2 API check: $PASSED passed, $FAILED failed ($API_BASE)"
  exit 1
fi
expect 200 "GET /api/v2/health"
check '.status == "ok" or .status == "degraded"' "health.status is ok or degraded"
check '(.reasons | type) == "array" and (.models | type) == "object" and (.rows_written | type) == "object"' \
  "health.reasons/models/rows_written are an array and objects"
check '(.rows_pending | type) == "number" and (.write_failures | type) == "number"' \
  "health.rows_pending and write_failures are numbers"
check '.status == "ok"' "health.status is ok (degraded: $(value '.reasons | join("; ")'))"

# --------------------------------------------------------------------------------- openapi
AREA=openapi
call GET /openapi.json "" nokey
expect 200 "GET /openapi.json"
for path in /api/v2/health /api/v2/predict/liquid /api/v2/predict/vc /api/v2/signals/generate \
  /api/v2/portfolio/score /api/v2/portfolio/rebalance /api/v2/backtest/run /api/v2/tasks/backtest \
  /api/v2/tasks/pnl-attribution /api/v2/ingest/events /api/v2/models/rollout/state \
  /api/v2/models/audit/log /api/v2/data-quality/sample /api/v2/data-quality/lineage/check; do
  check ".paths[\"$path\"] != null" "openapi documents $path"
done
check '.info.version == "2.0"' "openapi info.version is 2.0"

# --------------------------------------------------------------------------------- auth
AREA=auth
call POST /api/v2/predict/liquid "{\"target\":\"$SYMBOL\"}" nokey
error unauthorized 401 "predict/liquid without X-API-Key"
call POST /api/v2/signals/generate '{}' wrongkey
error unauthorized 401 "signals/generate with a wrong X-API-Key"
if [ -z "$KEY" ]; then
  fail "OMNIWATCH_API_KEY is not set: the keyed routes below can only answer 401"
fi

# --------------------------------------------------------------------------------- validation / legacy
AREA=errors
call POST /api/v2/predict/liquid '{"target":"btc"}'
error validation_error 422 "predict/liquid with a lower-case symbol"
check '.errors[0].field == "body.target" and (.errors[0].reason | type) == "string"' \
  "validation errors name the field (body.target) and a reason"
call GET /api/prices "" nokey
error gone 410 "legacy GET /api/prices"
check '.context.use == "/api/v2/data-quality/sample?table=market_bars"' "legacy answer names the v2 path"

# --------------------------------------------------------------------------------- predict
AREA=predict
PREDICTION_ID=""
AS_OF=""
if [ "$WRITES" = 1 ]; then
  call POST /api/v2/predict/liquid "{\"target\":\"$SYMBOL\",\"request_key\":\"$TAG\"}"
  expect 200 "POST /api/v2/predict/liquid $SYMBOL"
  check "(.prediction_id | type) == \"string\" and .track == \"liquid\" and .target == \"$SYMBOL\"" \
    "prediction has an id, track liquid and the target"
  check '(.model_name | type) == "string" and (.model_version | type) == "string" and .unit == "bps"' \
    "prediction names its model version, unit bps"
  check '.model_role == "champion" or .model_role == "candidate" or .model_role == "pinned"' "prediction.model_role"
  check '[.predictions["1h","4h","24h"] | type] == ["number","number","number"]' \
    "predictions has numbers for 1h, 4h and 24h"
  check '(.as_of_ts | type) == "string" and (.infer_lineage_id | type) == "string" and (.history_rows | type) == "number"' \
    "prediction as_of_ts, infer_lineage_id and history_rows"
  check '.input_source == "snapshot" and (.snapshot.snapshot_id | type) == "number"' "prediction read a stored snapshot"
  PREDICTION_ID="$(value '.prediction_id // empty')"
  AS_OF="$(value '.as_of_ts // empty')"
  if [ -n "$PREDICTION_ID" ]; then
    call GET "/api/v2/predictions/$PREDICTION_ID/explanation"
    expect 200 "GET explanation of $PREDICTION_ID"
    check ".prediction_id == \"$PREDICTION_ID\" and (.horizons | type) == \"object\" and (.horizons | length) > 0" \
      "explanation has horizons"
    check '[.horizons[] | (.prediction_bps | type), (.lightgbm.contributions | type), (.tsmixer.contributions | type)]
           | unique == ["number","object"]' "each horizon explains its prediction with both components"
  fi
  # predict/vc answers a prediction once an omniwatch-vc champion exists, a typed 503 until then.
  call POST /api/v2/predict/vc "{\"entity_id\":\"cik:0000000000\",\"request_key\":\"$TAG\"}"
  if [ "$STATUS" = 200 ]; then
    check '.track == "vc" and (.prediction_id | type) == "string"' "predict/vc answers a vc prediction"
  else
    check '(.code == "model_artifact_missing" or .code == "insufficient_features") and (.detail | type) == "string"' \
      "predict/vc answers a prediction or a typed refusal (status $STATUS)"
  fi
fi
call GET /api/v2/predictions/00000000-0000-4000-8000-000000000000/explanation
error not_found 404 "explanation of an unknown prediction"

# --------------------------------------------------------------------------------- signals
AREA=signals
if [ "$WRITES" = 1 ]; then
  call POST /api/v2/signals/generate \
    "{\"targets\":[\"$SYMBOL\"],\"horizons\":[\"1h\",\"24h\"],\"strategy_id\":\"omniwatch_api_check\",\"request_key\":\"$TAG\"}"
  expect 200 "POST /api/v2/signals/generate"
  check '.strategy_id == "omniwatch_api_check" and (.model_name | type) == "string"' "signals name strategy and model"
  check '(.signals | type) == "array" and (.skipped | type) == "array" and (.signals | length) == 2' \
    "two signals (one per horizon asked), skipped is an array"
  check 'all(.signals[]; (.direction == -1 or .direction == 0 or .direction == 1) and (.strength | type) == "number"
         and (.prediction_bps | type) == "number" and (.threshold_bps | type) == "number"
         and (.signal_id | type) == "string" and (.horizon == "1h" or .horizon == "24h"))' \
    "each signal has a direction in -1/0/1, strength, forecast, threshold"
fi

# --------------------------------------------------------------------------------- portfolio
AREA=portfolio
if [ "$WRITES" = 1 ]; then
  call POST /api/v2/portfolio/score "{\"weights\":{\"$SYMBOL\":0.1},\"horizon\":\"24h\"}"
  expect 200 "POST /api/v2/portfolio/score"
  check '.horizon == "24h" and (.expected_return_bps | type) == "number" and (.gross_exposure | type) == "number"' \
    "score has expected return and exposure"
  check "(.assets | length) == 1 and .assets[0].target == \"$SYMBOL\" and (.assets[0].contribution_bps | type) == \"number\"" \
    "score has one asset with its contribution"
  check '(.limit_breaches | type) == "array"' "score lists limit breaches"
  call POST /api/v2/portfolio/rebalance "{\"targets\":[\"$SYMBOL\"],\"horizon\":\"24h\"}"
  expect 200 "POST /api/v2/portfolio/rebalance"
  check "(.target_weights | type) == \"object\" and (.target_weights[\"$SYMBOL\"] | type) == \"number\"" \
    "rebalance has a target weight"
  check '(.trades | type) == "object" and (.binding_limits | type) == "array" and (.limits | type) == "object"' \
    "rebalance has trades, binding limits and limits"
  check '(.gross_exposure | type) == "number" and (.net_exposure | type) == "number" and (.skipped | type) == "array"' \
    "rebalance has exposures"
fi

# --------------------------------------------------------------------------------- backtest and tasks
AREA=backtest
call GET /api/v2/backtest/00000000-0000-4000-8000-000000000000
error not_found 404 "an unknown backtest run"
if [ "$WRITES" = 1 ] && [ -n "$AS_OF" ]; then
  # Six hours ending two hours before the newest snapshot: each replayed hour has its next price.
  WINDOW="$(jq -nc --arg t "$AS_OF" --arg s "$SYMBOL" '($t | sub("\\.[0-9]+"; "") | sub("\\+00:00$"; "Z")
    | fromdateiso8601) as $e | {start: ($e - 8 * 3600 | todate), end: ($e - 2 * 3600 | todate), targets: [$s],
    horizon: "1h", allow_in_sample: true}')"
  call POST /api/v2/backtest/run "$WINDOW"
  expect 200 "POST /api/v2/backtest/run $WINDOW"
  check '.status == "succeeded" and (.run_id | type) == "string" and (.model_version | type) == "string"' \
    "backtest succeeded with a run id"
  check '[.cost_breakdown | .gross, .fees, .slippage, .funding, .net | type] | unique == ["number"]' \
    "backtest cost breakdown has numbers"
  check '(.metrics | type) == "array" and (.metrics | length) > 0 and (.input_digest | type) == "string"' \
    "backtest has metrics and an input digest"
  RUN_ID="$(value '.run_id // empty')"
  if [ -n "$RUN_ID" ]; then
    call GET "/api/v2/backtest/$RUN_ID"
    expect 200 "GET /api/v2/backtest/$RUN_ID"
    check ".run_id == \"$RUN_ID\" and .status == \"succeeded\"" "the stored run reads back"
  fi

  AREA=tasks
  call POST /api/v2/tasks/backtest "$WINDOW"
  expect 202 "POST /api/v2/tasks/backtest"
  check '.kind == "backtest" and (.task_id | type) == "string" and (.executor == "webserver" or .executor == "in_process")' \
    "task accepted with an id and its executor"
  TASK_ID="$(value '.task_id // empty')"
  if [ -n "$TASK_ID" ]; then
    for _ in $(seq 1 "$TIMEOUT_S"); do
      call GET "/api/v2/tasks/$TASK_ID"
      case "$(value '.status')" in queued|running) sleep 1 ;; *) break ;; esac
    done
    expect 200 "GET /api/v2/tasks/$TASK_ID"
    check ".task_id == \"$TASK_ID\" and .status == \"succeeded\" and .result.run_id == \"$TASK_ID\"" \
      "the task finished: succeeded with its backtest (status $(value '.status'), error $(value '.error.code'))"
  fi
fi
AREA=tasks
call GET /api/v2/tasks/00000000-0000-4000-8000-000000000000
error not_found 404 "an unknown task"

# --------------------------------------------------------------------------------- events
AREA=events
call GET /api/v2/entities/omniwatch-api-check-no-such-entity
error not_found 404 "an unknown entity"
call POST /api/v2/ingest/events \
  '{"events":[{"source":"edgar","source_id":"x","track":"vc","event_type":"filing","title":"t","event_time":"2024-01-01T00:00:00Z"}]}'
error pipeline_source 403 "ingest under a pipeline source"
if [ "$WRITES" = 1 ]; then
  EVENT="{\"events\":[{\"source\":\"api_check\",\"source_id\":\"$TAG\",\"track\":\"liquid\",\"event_type\":\"api_check\",
    \"title\":\"Omniwatch API check (scripts/test_v2_api.sh)\",\"event_time\":\"2024-01-01T00:00:00Z\"}]}"
  call POST /api/v2/ingest/events "$EVENT"
  expect 200 "POST /api/v2/ingest/events"
  check '.received == 1 and (.inserted + .updated) == 1 and (.links_written | type) == "number"' "one event received"
  check ".events[0].source == \"api_check\" and (.events[0].event_id | type) == \"number\"
         and (.events[0].available_time | type) == \"string\"" "the stored event has an id and its available_time"
  call POST /api/v2/ingest/events "$EVENT"
  expect 200 "POST /api/v2/ingest/events again"
  check '.inserted == 0 and .updated == 1 and .events[0].status == "updated"' "sending it again updates it"
fi

# --------------------------------------------------------------------------------- models
AREA=models
call GET /api/v2/models/rollout/state
expect 200 "GET /api/v2/models/rollout/state"
check '(.model_name | type) == "string" and (.aliases | type) == "object" and (.versions | type) == "array"' \
  "rollout state has model name, aliases and versions"
check '(.stage | type) == "number" and (.stages | type) == "array" and (.clock | type) == "string"
       and (.recent_decisions | type) == "array"' "rollout state has stage, stages, clock and decisions"
check '.aliases.champion | type == "string"' "a version carries the alias champion"
call GET '/api/v2/models/rollout/state?model_name=omniwatch-api-check-no-such-model'
error not_found 404 "rollout state of an unknown model"
if [ "$WRITES" = 1 ]; then
  call POST /api/v2/models/audit/log \
    '{"reason":"omniwatch API check (scripts/test_v2_api.sh): audit log reachable","metrics":{"check":true}}'
  expect 200 "POST /api/v2/models/audit/log"
  check '.action == "manual" and (.audit_id | type) == "number" and (.reason | startswith("omniwatch API check"))' \
    "audit note stored with its id"
fi

# --------------------------------------------------------------------------------- data quality
AREA=data-quality
call GET '/api/v2/data-quality/sample?table=market_bars&limit=1'
expect 200 "GET /api/v2/data-quality/sample"
check '.table == "market_bars" and (.count | type) == "number" and (.rows | type) == "array" and .count == (.rows | length)' \
  "sample has table, count and rows"
call GET '/api/v2/data-quality/audit?limit=5'
expect 200 "GET /api/v2/data-quality/audit"
check '(.count | type) == "number" and (.rows | type) == "array"
       and all(.rows[]; (.passed | type) == "boolean" and (.check_name | type) == "string")' "audit rows"
call GET /api/v2/data-quality/stats
expect 200 "GET /api/v2/data-quality/stats"
check '(.results | type) == "number" and (.failures | type) == "number" and (.checks | type) == "array"' "stats"
call GET "/api/v2/data-quality/consistency?targets=$SYMBOL"
expect 200 "GET /api/v2/data-quality/consistency"
check "(.consistent | type) == \"boolean\" and .targets[0].target == \"$SYMBOL\" and (.targets[0].bars | type) == \"number\"" \
  "consistency per target"
call POST /api/v2/data-quality/lineage/check "{\"target\":\"$SYMBOL\"}"
expect 200 "POST /api/v2/data-quality/lineage/check (read-only)"
check '(.ok | type) == "boolean" and (.mismatch_keys | type) == "array" and (.targets | type) == "array"' \
  "lineage check answers ok, mismatch keys and targets"

echo "v2 API check: $PASSED passed, $FAILED failed ($API_BASE)"
[ "$FAILED" -eq 0 ]
