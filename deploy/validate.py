#!/usr/bin/env python3
"""Checks deploy/ against the schemas the tools of operators use (run by deploy/lint.sh).

- Kubernetes' own kinds: `kubernetes-validate --strict` (PyPI; the API schemas of each Kubernetes
  release). Any warning fails, including an unknown kind or version.
- KEDA's ScaledObject: the openAPIV3Schema of KEDA's published CRD (deploy/schemas, source and
  checksum in deploy/schemas/SOURCES.md), strict: a field the schema does not name fails, as
  `kubectl apply --validate=strict` would refuse it.
- deploy/compose.yaml: the Compose Specification's JSON schema (same provenance rules).

Usage: deploy/validate.py [--self-test]. --self-test also checks that each validator refuses a
broken copy of what it accepts (a validator that accepts everything would pass otherwise).
"""
import copy
import glob
import hashlib
import json
import re
import subprocess
import sys
import tempfile

import jsonschema
import yaml

SCHEMAS = "deploy/schemas"


def pinned(name):
    """The schema file `name`, after checking its SHA-256 against SOURCES.md."""
    sources = open(f"{SCHEMAS}/SOURCES.md").read()
    row = next((l for l in sources.splitlines() if l.startswith(f"| `{name}` |")), None)
    if row is None:
        sys.exit(f"validate: {name} is not listed in {SCHEMAS}/SOURCES.md")
    expected = re.findall(r"\b[0-9a-f]{64}\b", row)
    data = open(f"{SCHEMAS}/{name}", "rb").read()
    actual = hashlib.sha256(data).hexdigest()
    if expected != [actual]:
        sys.exit(f"validate: {SCHEMAS}/{name} differs from the published file named in SOURCES.md (sha256 {actual})")
    return data


def unknown_fields(schema, doc, path="$"):
    """Fields of `doc` that `schema` does not name where it names its fields (strict decoding)."""
    found = []
    if isinstance(doc, dict) and schema.get("type") == "object":
        props = schema.get("properties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("additionalProperties") not in (None, False)
        for key, value in doc.items():
            if props is not None and key in props:
                found += unknown_fields(props[key], value, f"{path}.{key}")
            elif props is not None and not preserve:
                found.append(f"{path}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                found += unknown_fields(schema["additionalProperties"], value, f"{path}.{key}")
    elif isinstance(doc, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(doc):
            found += unknown_fields(schema["items"], item, f"{path}[{i}]")
    return found


def crd_schemas():
    """(apiVersion, kind) -> openAPIV3Schema of the pinned CRDs."""
    crd = yaml.safe_load(pinned("keda.sh_scaledobjects.yaml"))
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    return {(f"{group}/{v['name']}", kind): v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"]}


def custom_problems(doc, schemas):
    key = (doc.get("apiVersion"), doc.get("kind"))
    schema = schemas.get(key)
    if schema is None:
        return [f"no pinned schema for {key[1]} {key[0]}"]
    problems = [f"{'/'.join(map(str, e.absolute_path)) or '$'}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]
    return problems + [f"{f}: not a field of {key[1]} {key[0]}" for f in unknown_fields(schema, doc)]


def compose_problems(doc):
    schema = json.loads(pinned("compose-spec.json"))
    return [f"{'/'.join(map(str, e.absolute_path)) or '$'}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]


def builtin_problems(paths):
    """kubernetes-validate --strict on files of Kubernetes' own kinds; any WARN or ERROR fails."""
    if not paths:
        return []
    run = subprocess.run(["kubernetes-validate", "--strict", *paths], capture_output=True, text=True)
    out = (run.stdout + run.stderr).strip()
    print(out)
    bad = [l for l in out.splitlines() if not l.startswith("INFO")]
    if run.returncode != 0 and not bad:
        bad = [f"kubernetes-validate exited {run.returncode}"]
    return bad


def main():
    schemas = crd_schemas()
    custom_kinds = {k for (_, k) in schemas}
    builtin, problems = [], []
    for path in sorted(glob.glob("deploy/k8s/*.yaml")):
        docs = [d for d in yaml.safe_load_all(open(path)) if d is not None]
        if any(d.get("kind") in custom_kinds for d in docs):
            for d in docs:
                for p in custom_problems(d, schemas):
                    problems.append(f"{path}: {p}")
            print(f"validate: {path}: {len(docs)} object(s) against the pinned CRD schema")
        else:
            builtin.append(path)
    problems += builtin_problems(builtin)
    compose = yaml.safe_load(open("deploy/compose.yaml"))
    problems += [f"deploy/compose.yaml: {p}" for p in compose_problems(compose)]
    print("validate: deploy/compose.yaml against the Compose Specification schema")

    if "--self-test" in sys.argv:
        # Each validator must refuse a broken copy of what it accepted.
        scaled = next(d for d in yaml.safe_load_all(open("deploy/k8s/keda-scaledobject.yaml")) if d)
        typo = copy.deepcopy(scaled)
        typo["spec"]["maxReplicaCont"] = typo["spec"].pop("maxReplicaCount")
        wrong_type = copy.deepcopy(scaled)
        wrong_type["spec"]["minReplicaCount"] = "two"
        broken_compose = copy.deepcopy(compose)
        next(iter(broken_compose["services"].values()))["restart_policy"] = "always"
        deployment = next(d for d in yaml.safe_load_all(open("deploy/k8s/deployment.yaml")) if d)
        deployment["spec"]["replica"] = deployment["spec"].pop("replicas", 2)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            yaml.safe_dump(deployment, f)
            f.flush()
            builtin_typo = builtin_problems([f.name])
        checks = [
            ("a misspelt Deployment field", builtin_typo),
            ("a misspelt ScaledObject field", custom_problems(typo, schemas)),
            ("a ScaledObject count given as text", custom_problems(wrong_type, schemas)),
            ("an unknown Compose service key", compose_problems(broken_compose)),
        ]
        for what, found in checks:
            if not found:
                problems.append(f"self-test: {what} was accepted")
            else:
                print(f"validate: self-test: {what} refused ({found[0]})")

    for p in problems:
        print(f"validate: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print("validate: deploy/ matches the Kubernetes, KEDA and Compose schemas")


if __name__ == "__main__":
    main()
