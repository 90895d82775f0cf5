#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this): set-up, formatting, lints, every
# Rust test (unit and integration, against the real PostgreSQL and per-test Mosquittos), and
# the deployment checks (Prometheus rules, Alertmanager, dashboards, compose, Kubernetes).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --test
export PATH="$PATH:/usr/sbin"

echo "== formatting"
cargo fmt --all -- --check
echo "== lints"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests"
cargo test --workspace --locked
echo "== deployment files"
scripts/check-deploy.sh
echo "== all tests passed"
