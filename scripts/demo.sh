#!/usr/bin/env bash
# A one-command tour: starts the Graph simulator on a free loopback port and runs a few checks
# with exactly the Centreon plugin's arguments, printing the Nagios lines and exit codes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build --product exocheck >/dev/null
exec .build/debug/exocheck demo "$@"
