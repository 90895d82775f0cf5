#!/usr/bin/env bash
# Property-based testing of the HTTP API against its own OpenAPI document.
#
# Installs schemathesis (PyPI) into .run/schemathesis-venv if missing, starts `gridwatch api`
# on a free port against a fresh database with the development tokens (deploy/tokens.dev.toml),
# seeds it with the contract's example registry, and runs schemathesis with the admin token,
# bounded in examples per operation and in time. Exits non-zero if any request got a server
# error (5xx), or if schemathesis itself failed.
#
# Environment:
#   GRIDWATCH_BIN          the binary to test (default: builds target/debug/gridwatch)
#   GRIDWATCH_TEST_PG      PostgreSQL server URL without a database (default postgres://postgres@127.0.0.1:5432)
#   SCHEMATHESIS_EXAMPLES  examples per operation (default 200)
#   SCHEMATHESIS_SECONDS   time limit of the run (default 600)
#   SCHEMATHESIS_CHECKS    checks to run (default not_a_server_error); `all` adds the
#                          conformance checks, reported but not failing the script
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
run_dir="$root/.run"
venv="$run_dir/schemathesis-venv"
mkdir -p "$run_dir"

if [ ! -x "$venv/bin/schemathesis" ]; then
    echo "Installing schemathesis into $venv ..."
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet 'schemathesis>=4,<5'
fi

bin=${GRIDWATCH_BIN:-}
if [ -z "$bin" ]; then
    (cd "$root" && cargo build --quiet -p gridwatch)
    bin="${CARGO_TARGET_DIR:-$root/target}/debug/gridwatch"
fi

pg=${GRIDWATCH_TEST_PG:-postgres://postgres@127.0.0.1:5432}
db="gw_schemathesis_$$"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
log="$run_dir/schemathesis-api.log"

GRIDWATCH_DATABASE_URL="$pg/$db" \
GRIDWATCH_HTTP_ADDR="127.0.0.1:$port" \
GRIDWATCH_TOKENS_FILE="$root/deploy/tokens.dev.toml" \
GRIDWATCH_API_MQTT_PURCHASES=false \
GRIDWATCH_LOG=warn \
    "$bin" api >"$log" 2>&1 &
api_pid=$!

cleanup() {
    kill "$api_pid" 2>/dev/null || true
    wait "$api_pid" 2>/dev/null || true
    psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

for _ in $(seq 1 100); do
    if curl -fsS "$base/api/v1/status" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$api_pid" 2>/dev/null; then
        echo "gridwatch api did not start:" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.2
done

# Something to read: the contract's example registry and a purchase.
curl -fsS -X PUT "$base/api/v1/registry" -H 'Authorization: Bearer dev-admin-token' \
    -H 'Content-Type: application/json' --data-binary @- >/dev/null <<'JSON'
{
  "regions":  [{"id": "east-kz", "name": "East Kazakhstan", "tariff_kzt_per_kwh": 10.3}],
  "nodes":    [{"id": "EK-SUB-01", "parent": null, "region": "east-kz", "kind": "substation", "input_meter": "EK-SUB-01-IN"},
               {"id": "EK-F-001", "parent": "EK-SUB-01", "region": "east-kz", "kind": "feeder", "input_meter": "EK-F-001-IN"}],
  "meters":   [{"id": "EK-SUB-01-IN", "node": "EK-SUB-01", "role": "input", "class": "boundary", "accuracy_pct": 0.5},
               {"id": "EK-F-001-IN", "node": "EK-F-001", "role": "input", "class": "boundary", "accuracy_pct": 0.5},
               {"id": "M-000001", "node": "EK-F-001", "role": "consumer", "class": "household", "accuracy_pct": 1.0},
               {"id": "FARM-042", "node": "EK-F-001", "role": "consumer", "class": "mining", "accuracy_pct": 0.5, "licence": "KZ-MIN-042"}],
  "licences": [{"id": "KZ-MIN-042", "holder": "Qazaq Hash LLP", "pool": "pool-3", "registered_machines": 1200, "machine_rated_w": 3250}]
}
JSON

checks=${SCHEMATHESIS_CHECKS:-not_a_server_error}
status=0
timeout "${SCHEMATHESIS_SECONDS:-600}" "$venv/bin/schemathesis" run "$base/api/v1/openapi.json" \
    --header 'Authorization: Bearer dev-admin-token' \
    --checks "$checks" \
    --max-examples "${SCHEMATHESIS_EXAMPLES:-200}" \
    --request-timeout 60 \
    --seed 42 \
    || status=$?

if grep -qi 'panicked' "$log"; then
    echo "gridwatch api panicked during the run; see $log" >&2
    status=1
fi
echo "schemathesis exit status $status; API log: $log"
exit "$status"
