#!/usr/bin/env bash
# Chaos runs: the suite's chaos test (tests/chaos.rs) with other fault schedules. Each run
# publishes a 4-day scenario with a diversion and a quota overrun while 14 faults hit the real
# processes (ingest, detector and API killed with SIGKILL, the broker restarted, a PostgreSQL
# server of the run's own crashed and restarted, database connections terminated), then checks
# every reading stored once, the anomalies equal to an undisturbed run's and the audit chain;
# it prints the figures. The suite runs the default schedule once.
#
#   scripts/chaos.sh            # 5 runs, seeds 1..5
#   scripts/chaos.sh 20 100     # 20 runs from seed 100
#
# Exit status: 0 when every run passed, 1 otherwise (the failing seeds are listed).
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-5}"
first="${2:-1}"
cargo test -p gridwatch --test chaos --no-run --locked >/dev/null 2>&1 \
    || cargo test -p gridwatch --test chaos --no-run --locked
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
failed=()
for seed in $(seq "$first" $((first + runs - 1))); do
    echo "== chaos run, seed $seed"
    status=0
    GRIDWATCH_CHAOS_SEED="$seed" cargo test -q -p gridwatch --test chaos --locked -- --nocapture \
        >"$log" 2>&1 || status=$?
    grep -E '^chaos:|panicked|^test result' "$log" || true
    if [ "$status" -ne 0 ]; then
        failed+=("$seed")
        grep -A40 'panicked' "$log" | head -60 || true
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "chaos: failed seeds: ${failed[*]}"
    exit 1
fi
echo "chaos: $runs runs passed"
