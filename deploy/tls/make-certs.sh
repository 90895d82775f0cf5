#!/usr/bin/env bash
# Makes the certificates for MQTT over TLS (docs/runbook.md, "MQTT over TLS"):
#   ca.crt / ca.key          a private certificate authority (keep ca.key offline)
#   broker.crt / broker.key  the broker's certificate, for the names meters and services dial
#   <name>.crt / <name>.key  optional client certificates (meters, gateways): the common name is
#                            the MQTT user name when the broker sets use_identity_as_username
#
# Usage: deploy/tls/make-certs.sh [-o DIR] [-d DAYS] [-n NAME]... [-c CLIENT]...
#   -o DIR     output directory (default deploy/tls/certs, ignored by git)
#   -d DAYS    validity of the broker and client certificates (default 825)
#   -n NAME    a DNS name or IP address of the broker (repeatable; default: localhost,
#              127.0.0.1 and mosquitto, the docker compose service)
#   -c CLIENT  also make a client certificate with this common name (repeatable)
#
# An existing CA in DIR is reused: running it again re-issues the broker certificate and adds
# client certificates, all signed by the same CA.
set -euo pipefail

out="$(cd "$(dirname "$0")" && pwd)/certs"
days=825
names=()
clients=()
while getopts "o:d:n:c:h" opt; do
    case "$opt" in
        o) out="$OPTARG" ;;
        d) days="$OPTARG" ;;
        n) names+=("$OPTARG") ;;
        c) clients+=("$OPTARG") ;;
        *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2 ;;
    esac
done
[ ${#names[@]} -gt 0 ] || names=(localhost 127.0.0.1 mosquitto)
command -v openssl >/dev/null || { echo "make-certs: openssl is required" >&2; exit 1; }

mkdir -p "$out"
# Private keys must never reach the repository.
[ -f "$out/.gitignore" ] || printf '*\n' > "$out/.gitignore"
umask 077
cd "$out"

if [ ! -f ca.key ]; then
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout ca.key -out ca.crt -days 3650 -subj "/O=gridwatch/CN=gridwatch MQTT CA" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    echo "make-certs: new CA in $out/ca.crt"
fi

# Signs <name>.csr with the CA, with the given extensions.
sign() {
    local name="$1" ext="$2"
    openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
        -out "$name.crt" -days "$days" -sha256 -extfile <(printf '%s\n' "$ext") 2>/dev/null
    rm -f "$name.csr"
}

san=""
for n in "${names[@]}"; do
    if [[ "$n" =~ ^[0-9.]+$ || "$n" == *:* ]]; then san+="IP:$n,"; else san+="DNS:$n,"; fi
done
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -keyout broker.key -out broker.csr -subj "/O=gridwatch/CN=${names[0]}" 2>/dev/null
sign broker "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=${san%,}"
echo "make-certs: broker certificate for ${names[*]} in $out/broker.crt"

for c in "${clients[@]}"; do
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout "$c.key" -out "$c.csr" -subj "/O=gridwatch/CN=$c" 2>/dev/null
    sign "$c" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
    echo "make-certs: client certificate for $c in $out/$c.crt"
done

# Certificates are public; keys readable by their owner only (for the broker in docker compose,
# chown 1883 broker.key: the mosquitto user of the eclipse-mosquitto image).
chmod 0644 ca.crt broker.crt
for c in "${clients[@]}"; do chmod 0644 "$c.crt"; done
