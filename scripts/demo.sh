#!/usr/bin/env bash
# A one-command tour: checks the dependencies, builds exocheck (showing the build's progress), then
# runs `exocheck demo`: an embedded Kafka-protocol broker, the Graph simulator and workers, a few
# checks with exactly the Centreon plugin's arguments. Ends with three commands to try next.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
echo "demo: 1/3 checking the dependencies (scripts/install-deps.sh; installs what is missing)"
scripts/install-deps.sh
echo "demo: 2/3 building exocheck (debug); a first build takes several minutes on 2 cores, later ones seconds"
# The build's own progress, one line in 40 steps (every error and the last line in full).
swift build --product exocheck 2>&1 | awk '
    /^\[[0-9]+\/[0-9]+\]/ { split(substr($1, 2), n, "/"); if ((n[1] % 40 == 0 && n[1] > 0) || n[1] == n[2]+0) { print "demo:   " $0; fflush() } next }
    /error:|complete!|Compiling plugin/ { print "demo:   " $0; fflush(); next }'
echo "demo: 3/3 running the demo (built in $((SECONDS - started)) s)"
status=0
.build/debug/exocheck demo "$@" || status=$?
cat <<'NEXT'

Next, try:
  1. .build/debug/exocheck run --help       # every option of a check (the Centreon plugin's)
  2. a check against the simulator, as a Nagios command would run it:
       .build/debug/exocheck simulate-graph --port 8080 &
       .build/debug/exocheck run --mode=mailbox-usage --tenant=contoso.onmicrosoft.com \
         --client-id=8f2c6d1e-4b7a-4e39-9c55-0a1b2c3d4e5f --client-secret='Xy7~Q8r.pL-2+s/Ab=c%d&e' \
         --login-endpoint=http://127.0.0.1:8080 --graph-endpoint=http://127.0.0.1:8080 --verbose
  3. bash scripts/test.sh                   # the whole test suite (about 35 minutes)
NEXT
exit $status
