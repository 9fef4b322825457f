#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds once, runs every test, then runs the
# Kafka tests again under AddressSanitizer (own scratch path). EXOCHECK_SKIP_ASAN=1 skips that.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Interop tests (Python client, noida-db, kcat) must run, not skip, when driven from here.
export EXOCHECK_REQUIRE_INTEROP=1
swift build --build-tests
# One test at a time: several suites start brokers, simulators and worker processes, and timing
# assertions (rebalances, thread counts) must not compete for 2 cores.
swift test --skip-build --no-parallel "$@"
bash deploy/lint.sh
if [ "${EXOCHECK_SKIP_ASAN:-0}" != "1" ]; then
    echo "test.sh: Kafka tests under AddressSanitizer" >&2
    swift build --build-tests --sanitize=address --scratch-path .build-asan
    LSAN_OPTIONS="suppressions=$PWD/.ci/lsan.supp:print_suppressions=0" \
        swift test --skip-build --no-parallel --sanitize=address --scratch-path .build-asan --filter KafkaTests
fi
