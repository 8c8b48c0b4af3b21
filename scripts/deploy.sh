#!/usr/bin/env bash
# Bring the Omniwatch deployment (deploy/docker-compose.yml) up in one command.
#
#   scripts/deploy.sh            check settings, build the images, start everything, wait for health
#   scripts/deploy.sh --gpu      the same with the gpu profile (CUDA image; runs on GPU 1, the API on GPU 0)
#   scripts/deploy.sh --check    validate only: settings, the compose file (both profiles' services),
#                                prometheus.yml / alertmanager.yml when promtool / amtool are installed
#   --no-build                   start from images built before
#
# Settings and secrets: the environment, else deploy/.env (OMNIWATCH_ENV_FILE names another file;
# deploy/.env.example lists them). Works with `docker compose` (v2) and `docker-compose` (v1.28+).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPLOY="$ROOT/deploy"
COMPOSE_FILE="$DEPLOY/docker-compose.yml"
ENV_FILE="${OMNIWATCH_ENV_FILE:-$DEPLOY/.env}"
TIMEOUT_S="${OMNIWATCH_DEPLOY_TIMEOUT_S:-900}"
PROFILE=cpu
CHECK_ONLY=0
BUILD=1

usage() { sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { echo "deploy: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --gpu) PROFILE=gpu ;;
        --check) CHECK_ONLY=1 ;;
        --no-build) BUILD=0 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
    shift
done

# The value of a setting: the environment first, else the last NAME=value line of the env file.
setting() {
    local name="$1" line value
    if [ -n "${!name+x}" ]; then
        printf '%s' "${!name}"
        return
    fi
    [ -f "$ENV_FILE" ] || return 0
    line="$(grep -E "^[[:space:]]*${name}=" "$ENV_FILE" | tail -n 1 || true)"
    value="${line#*=}"
    value="${value%\"}"; value="${value#\"}"; value="${value%\'}"; value="${value#\'}"
    printf '%s' "$value"
}

check_settings() {
    local missing=() name
    for name in POSTGRES_PASSWORD GRAFANA_ADMIN_PASSWORD OMNIWATCH_API_KEYS; do
        [ -n "$(setting "$name")" ] || missing+=("$name")
    done
    if [ "$(setting OMNIWATCH_SOURCE)" != "replay" ] && [ -z "$(setting OMNIWATCH_SEC_USER_AGENT)" ]; then
        missing+=("OMNIWATCH_SEC_USER_AGENT (SEC EDGAR needs a contact User-Agent when OMNIWATCH_SOURCE=live)")
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        printf 'deploy: missing settings (environment or %s):\n' "$ENV_FILE" >&2
        printf '  %s\n' "${missing[@]}" >&2
        exit 1
    fi
    alertmanager_secret >/dev/null \
        || die "OMNIWATCH_API_KEYS needs an entry alertmanager:<secret> (Alertmanager posts alerts to the API with it)"
    # The password is spliced into the warehouse and MLflow database URLs.
    [[ "$(setting POSTGRES_PASSWORD)" =~ ^[A-Za-z0-9._~-]+$ ]] \
        || die "POSTGRES_PASSWORD may hold only A-Z a-z 0-9 . _ ~ - (it goes into database URLs); try: openssl rand -hex 24"
}

# The secret of the `alertmanager:<secret>` entry of OMNIWATCH_API_KEYS; status 1 when there is none.
alertmanager_secret() {
    local entry
    IFS=',' read -r -a entries <<< "$(setting OMNIWATCH_API_KEYS)"
    for entry in "${entries[@]}"; do
        entry="${entry#"${entry%%[![:space:]]*}"}"; entry="${entry%"${entry##*[![:space:]]}"}"
        if [[ "$entry" == alertmanager:?* ]]; then
            printf '%s' "${entry#alertmanager:}"
            return 0
        fi
    done
    return 1
}

# deploy/secrets/alertmanager_api_key (git-ignored, 0600), mounted into Alertmanager.
write_secrets() {
    mkdir -p "$DEPLOY/secrets"
    (umask 077 && alertmanager_secret > "$DEPLOY/secrets/alertmanager_api_key")
}

COMPOSE=()
find_compose() {
    if docker compose version >/dev/null 2>&1; then
        COMPOSE=(docker compose)
    elif command -v docker-compose >/dev/null 2>&1; then
        COMPOSE=(docker-compose)
    else
        die "neither 'docker compose' nor 'docker-compose' is installed"
    fi
    COMPOSE+=(-f "$COMPOSE_FILE" --profile "$PROFILE")
    [ -f "$ENV_FILE" ] && COMPOSE+=(--env-file "$ENV_FILE")
    # One of the two profiles: this wins over a COMPOSE_PROFILES line in the env file.
    export COMPOSE_PROFILES="$PROFILE"
}

validate() {
    "${COMPOSE[@]}" config -q || die "docker-compose.yml does not validate"
    echo "compose file: valid (profile $PROFILE)"
    if command -v promtool >/dev/null 2>&1; then
        promtool check config "$DEPLOY/monitoring/prometheus.yml"
    else
        echo "promtool not installed: prometheus.yml not checked"
    fi
    if command -v amtool >/dev/null 2>&1; then
        amtool check-config "$DEPLOY/monitoring/alertmanager.yml"
    else
        echo "amtool not installed: alertmanager.yml not checked"
    fi
}

# Every service container healthy (migrate: exited 0) before the deadline, else its logs and exit 1.
wait_healthy() {
    local deadline=$((SECONDS + TIMEOUT_S)) pending id name state code
    while :; do
        pending=0
        for id in $("${COMPOSE[@]}" ps -q); do
            name="$(docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}}' "$id")"
            state="$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id")"
            code="$(docker inspect -f '{{.State.ExitCode}}' "$id")"
            case "$name:$state" in
                migrate:exited)
                    [ "$code" = 0 ] || { "${COMPOSE[@]}" logs --tail 50 migrate >&2; die "migrate failed (exit $code)"; } ;;
                *:healthy) ;;
                *:unhealthy) "${COMPOSE[@]}" logs --tail 50 "$name" >&2; die "$name is unhealthy" ;;
                *) pending=$((pending + 1)) ;;
            esac
        done
        [ "$pending" -eq 0 ] && return 0
        [ "$SECONDS" -lt "$deadline" ] || { "${COMPOSE[@]}" ps >&2; die "not healthy after ${TIMEOUT_S}s"; }
        sleep 5
    done
}

check_settings
find_compose
validate
[ "$CHECK_ONLY" -eq 1 ] && { echo "settings and configuration valid (profile $PROFILE)"; exit 0; }

docker info >/dev/null 2>&1 || die "the Docker engine is not reachable (docker info failed)"
write_secrets
if [ "$BUILD" -eq 1 ]; then
    "${COMPOSE[@]}" build
fi
"${COMPOSE[@]}" up -d --remove-orphans
wait_healthy

cat <<EOF
Omniwatch is up (profile $PROFILE):
  Dagster UI     http://127.0.0.1:$(setting DAGSTER_UI_PORT | grep . || echo 3000)
  REST API       http://127.0.0.1:$(setting OMNIWATCH_API_PORT | grep . || echo 8000)/docs  (health: /api/v2/health, metrics: /metrics)
  MLflow         http://127.0.0.1:$(setting MLFLOW_PORT | grep . || echo 5000)
  Grafana        http://127.0.0.1:$(setting GRAFANA_PORT | grep . || echo 3001)  (user $(setting GRAFANA_ADMIN_USER | grep . || echo admin))
  Prometheus     http://127.0.0.1:$(setting PROMETHEUS_PORT | grep . || echo 9090)
  Alertmanager   http://127.0.0.1:$(setting ALERTMANAGER_PORT | grep . || echo 9093)
EOF
