#!/usr/bin/env bash
# Fuzzes gridwatch's edges on stable Rust: each target (the meter and gateway payload parsers,
# registry validation, the compliance calculator) for a bounded time, starting from the
# committed corpus in fuzz/corpus/<target>/. Prints executions per target and the crashes found;
# crashing inputs are saved under fuzz/crashes/<target>/ (not committed: turn one into a seed
# of the corpus once its bug is fixed).
#
#   scripts/fuzz.sh                              # every target, 60 s each, seed 1
#   scripts/fuzz.sh --seconds 300 registry       # one target, longer
#   FUZZ_SECONDS=10 FUZZ_SEED=42 scripts/fuzz.sh
#
# The same seed replays the same inputs. Exit status: 0 without crashes, 1 with crashes, 3 on a
# hang. A target that kills the process (a stack overflow cannot be caught) is replayed with
# --trace, which leaves the input that killed it in fuzz/crashes/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
seed="${FUZZ_SEED:-1}"
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) targets+=("$1"); shift ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(meter_payload gateway_payload registry calculator)

cargo build --release --locked -p gridwatch-fuzz
fuzz="${CARGO_TARGET_DIR:-target}/release/gridwatch-fuzz"

status=0
for target in "${targets[@]}"; do
    code=0
    "$fuzz" --seconds "$seconds" --seed "$seed" "$target" || code=$?
    if [ "$code" -gt 128 ]; then
        echo "$target: the process died (signal $((code - 128))); replaying seed $seed with --trace"
        replay=0
        "$fuzz" --seconds $((seconds * 20)) --seed "$seed" --trace "$target" || replay=$?
        current="fuzz/crashes/$target/current.bin"
        if [ "$replay" -gt 128 ] && [ -f "$current" ]; then
            saved="fuzz/crashes/$target/abort-$(sha256sum < "$current" | cut -c1-16).bin"
            mv "$current" "$saved"
            echo "$target: the input that kills the process is saved to $saved"
        else
            rm -f "$current"
            echo "$target: the replay did not die again (exit $replay)"
        fi
        code=1
    fi
    [ "$code" -le "$status" ] || status=$code
done
exit "$status"
