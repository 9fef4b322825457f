#!/usr/bin/env bash
# Installs the system packages exocheck builds and tests with (Debian/Ubuntu). Idempotent:
# nothing is installed when everything is already there.
set -euo pipefail

packages=(librdkafka-dev kcat pkg-config)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "install-deps: installing ${missing[*]}" >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
    echo "install-deps: Swift 6 is required (https://www.swift.org/install/linux/)" >&2
    exit 1
fi
