#!/usr/bin/env bash
# The East Kazakhstan demonstration, end to end, on a fresh machine: installs and starts what is
# missing, builds gridwatch, and runs `gridwatch demo` (its own broker from deploy/mosquitto, its
# own database, a simulated region with a 50 MW diversion). Extra arguments go to `gridwatch demo`
# (for example --exit to stop after the report).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
export PATH="$PATH:/usr/sbin"
cargo build --release --locked
exec target/release/gridwatch demo "$@"
