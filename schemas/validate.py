#!/usr/bin/env python3
"""Validates JSON documents (files, or JSON lines with --lines) against a schema, independently
of the Swift code: python3 schemas/validate.py SCHEMA FILE... [--lines]"""
import json
import sys

from jsonschema import Draft202012Validator, FormatChecker

schema_path, *rest = sys.argv[1:]
lines = "--lines" in rest
files = [f for f in rest if f != "--lines"]
validator = Draft202012Validator(json.load(open(schema_path)), format_checker=FormatChecker())
count, bad = 0, 0
for path in files:
    docs = [json.loads(l) for l in open(path) if l.strip()] if lines else [json.load(open(path))]
    for doc in docs:
        count += 1
        for error in validator.iter_errors(doc):
            bad += 1
            print(f"{path}: {error.json_path}: {error.message}")
print(f"validated {count} document(s), {bad} error(s)")
sys.exit(1 if bad else 0)
