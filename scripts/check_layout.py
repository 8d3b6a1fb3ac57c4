#!/usr/bin/env python3
"""Fails when an #include points up the dependency order of wsstep's components.

The order, lowest first (docs/architecture.md):

    core -> core/store -> rest -> soap -> plugin/process -> plugin/server -> plugin/adapters -> plugin/cli

A file may include headers of its own component and of components below it, never above.
Besides that:
  - only plugin/ (and tests) may include the generated proto headers (wsstep/v1/...,
    google/rpc/..., grpc/health/..., goplugin/...) or gRPC (<grpcpp/...>, <grpc/...>);
  - core/ includes no libcurl, and nothing below plugin/ includes gRPC or protobuf;
  - no library source includes tests/ (only *_test.cc files and tests/ itself may).

Usage: scripts/check_layout.py [ROOT]   (default: the repository holding this script)
Prints one line per wrong-way include, "FILE:LINE: ...", and exits 1 if there is any.
"""
import os
import re
import sys

# (folder prefix, rank). The longest matching prefix decides a file's component.
COMPONENTS = [
    ("core/", 0),
    ("core/store/", 1),
    ("rest/", 2),
    ("soap/", 3),
    ("plugin/process/", 4),
    ("plugin/server/", 5),
    ("plugin/adapters/", 6),
    ("plugin/cli/", 7),
    ("plugin/", 8),  # main.cc: the executable
]
PROTO_PREFIXES = ("wsstep/v1/", "google/rpc/", "grpc/health/", "goplugin/", "proto/")
# Third-party headers a component may not see: (component prefix, forbidden header prefix).
FORBIDDEN_SYSTEM = [
    ("core/", "curl/"),
    ("core/", "grpc"),
    ("rest/", "grpc"),
    ("soap/", "grpc"),
    ("core/", "google/protobuf/"),
    ("rest/", "google/protobuf/"),
    ("soap/", "google/protobuf/"),
]
SOURCE_DIRS = ("core", "rest", "soap", "plugin")
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def component(path):
    best = None
    for prefix, rank in COMPONENTS:
        if path.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, rank)
    return best


def check_file(root, rel):
    problems = []
    own = component(rel)
    is_test = rel.endswith("_test.cc") or "/testdata/" in rel or rel.endswith("_testing.h") \
        or rel.endswith("_test_util.h")
    with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            quote, target = m.groups()
            where = f"{rel}:{number}"
            if quote == "<":
                for comp_prefix, header_prefix in FORBIDDEN_SYSTEM:
                    if rel.startswith(comp_prefix) and target.startswith(header_prefix):
                        problems.append(f"{where}: {own[0]} may not include <{target}>")
                continue
            if target.startswith(PROTO_PREFIXES):
                if not rel.startswith("plugin/"):
                    problems.append(f"{where}: only plugin/ knows the proto, not {own[0]} "
                                    f"(\"{target}\")")
                continue
            if target.startswith("tests/"):
                if not is_test:
                    problems.append(f"{where}: library code may not include test code "
                                    f"(\"{target}\")")
                continue
            theirs = component(target)
            if theirs is None or own is None:
                continue
            if theirs[1] > own[1]:
                problems.append(f"{where}: {own[0]} may not include {theirs[0]} "
                                f"(\"{target}\"): dependencies point "
                                "plugin/cli -> plugin/adapters -> plugin/server -> "
                                "plugin/process -> soap -> rest -> core/store -> core")
    return problems


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(
        os.path.dirname(os.path.abspath(__file__)))
    problems = []
    for top in SOURCE_DIRS:
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for name in sorted(files):
                if name.endswith((".cc", ".h")):
                    rel = os.path.relpath(os.path.join(dirpath, name), root)
                    problems.extend(check_file(root, rel))
    for p in problems:
        print(p)
    if problems:
        print(f"check_layout: {len(problems)} include(s) against the dependency order",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
