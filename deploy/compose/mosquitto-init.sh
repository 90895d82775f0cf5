#!/bin/sh
# Runs once before the broker (docker-compose.yml's mosquitto-init, in the eclipse-mosquitto
# image): builds the broker's effective configuration in the mosquitto-auth volume from the
# shipped deploy/mosquitto files, and sets the service users' passwords.
#
# - mosquitto.conf: the shipped one, plus the TLS listener (deploy/tls/mosquitto-tls.conf) when
#   GRIDWATCH_MQTT_TLS=1 (certificates from deploy/tls/make-certs.sh, mounted at
#   /etc/mosquitto/certs).
# - gridwatch.acl: the shipped one; simulator.acl too only when GRIDWATCH_MQTT_SIMULATOR_PASSWORD is
#   set (demo installs; never in production).
# - gridwatch.passwd: kept between runs (meters added with mosquitto_passwd stay); the service
#   users' entries are (re)written from the environment.
set -eu

: "${GRIDWATCH_MQTT_INGEST_PASSWORD:?set GRIDWATCH_MQTT_INGEST_PASSWORD}"
: "${GRIDWATCH_MQTT_MARKET_PASSWORD:?set GRIDWATCH_MQTT_MARKET_PASSWORD}"

umask 077
dir=/etc/mosquitto
passwd="$dir/gridwatch.passwd"

cp /src/mosquitto/mosquitto.conf "$dir/mosquitto.conf"
if [ "${GRIDWATCH_MQTT_TLS:-0}" = 1 ]; then
    printf '\n' >> "$dir/mosquitto.conf"
    cat /src/tls/mosquitto-tls.conf >> "$dir/mosquitto.conf"
fi

cp /src/mosquitto/gridwatch.acl "$dir/gridwatch.acl"
[ -f "$passwd" ] || : > "$passwd"
mosquitto_passwd -b "$passwd" gridwatch-ingest "$GRIDWATCH_MQTT_INGEST_PASSWORD"
mosquitto_passwd -b "$passwd" gridwatch-market "$GRIDWATCH_MQTT_MARKET_PASSWORD"
if [ -n "${GRIDWATCH_MQTT_SIMULATOR_PASSWORD:-}" ]; then
    printf '\n' >> "$dir/gridwatch.acl"
    cat /src/mosquitto/simulator.acl >> "$dir/gridwatch.acl"
    mosquitto_passwd -b "$passwd" gridwatch-simulator "$GRIDWATCH_MQTT_SIMULATOR_PASSWORD"
fi

# The broker drops to the mosquitto user: it must read these and write its persistence file.
chown mosquitto:mosquitto "$dir"/mosquitto.conf "$dir"/gridwatch.acl "$passwd" /var/lib/mosquitto
chmod 0600 "$passwd"
chmod 0644 "$dir/mosquitto.conf" "$dir/gridwatch.acl"
echo "mosquitto-init: configuration ready (TLS listener: ${GRIDWATCH_MQTT_TLS:-0})."
