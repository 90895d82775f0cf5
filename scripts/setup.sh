#!/usr/bin/env bash
# Makes this machine ready for gridwatch: installs what is missing (Debian packages), starts
# PostgreSQL, and checks the Rust toolchain. Idempotent: on a machine where everything runs
# already it only checks. Used by scripts/demo.sh and scripts/test.sh.
#
#   scripts/setup.sh           PostgreSQL, Mosquitto (broker and clients), a C toolchain and
#                              pkg-config for the build; checks the Rust toolchain
#   scripts/setup.sh --test    the same, plus what the test suite uses: promtool and amtool
#                              (prometheus, prometheus-alertmanager), Chromium for the web page,
#                              python3 with PyYAML for the deployment checks
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=false
[ "${1:-}" = "--test" ] && want_test=true

say() { printf 'setup: %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        say "need root to run: $*"; return 1; fi
}

packages=()
command -v pg_ctlcluster >/dev/null || packages+=(postgresql)
command -v psql >/dev/null || packages+=(postgresql-client)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || packages+=(mosquitto)
command -v mosquitto_passwd >/dev/null || packages+=(mosquitto)
command -v mosquitto_pub >/dev/null || packages+=(mosquitto-clients)
# The Rust build links through the system C toolchain (the linker `cc`) and some crates' build
# scripts look libraries up with pkg-config; a minimal Debian with only rustup has neither.
command -v cc >/dev/null || packages+=(build-essential)
command -v pkg-config >/dev/null || packages+=(pkg-config)
if $want_test; then
    # The deployment checks (scripts/check-deploy.sh) read the YAML files with PyYAML.
    command -v python3 >/dev/null || packages+=(python3)
    python3 -c 'import yaml' >/dev/null 2>&1 || packages+=(python3-yaml)
    command -v promtool >/dev/null || packages+=(prometheus)
    command -v amtool >/dev/null || packages+=(prometheus-alertmanager)
    command -v chromium >/dev/null || packages+=(chromium)
fi
if [ ${#packages[@]} -gt 0 ]; then
    say "installing ${packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq "${packages[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin"

# PostgreSQL: start the cluster if it is not accepting connections.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$version" ]; then
        say "no PostgreSQL cluster found under /etc/postgresql"; exit 1
    fi
    say "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
fi
pg_isready -q -h 127.0.0.1 -p 5432 || { say "PostgreSQL does not answer on 127.0.0.1:5432"; exit 1; }
# gridwatch connects as postgres over TCP; a fresh Debian cluster asks for a password there.
if ! psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
    say "allowing local trust authentication for 127.0.0.1 (development setup)"
    hba=$(as_root su postgres -c "psql -Atc 'show hba_file'")
    as_root sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/; s/^(host\s+all\s+all\s+::1\/128\s+)\S+/\1trust/' "$hba"
    as_root su postgres -c "psql -Atc 'select pg_reload_conf()'" >/dev/null
fi

# A broker on the default address for `gridwatch run` (the demo and the tests start their own
# from deploy/mosquitto, with the production queue settings).
if ! (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
    say "starting Mosquitto on 127.0.0.1:1883"
    as_root mosquitto -d -c /etc/mosquitto/mosquitto.conf || say "could not start the system Mosquitto (the demo starts its own)"
fi

command -v cargo >/dev/null || { say "cargo is missing: install Rust (https://rustup.rs)"; exit 1; }
say "ready"
