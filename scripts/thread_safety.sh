#!/usr/bin/env bash
# scripts/thread_safety.sh [BUILD_DIR]: clang's thread-safety analysis over the engine and
# the store. Every member marked ABSL_GUARDED_BY(mu) (core/mutex.h) must be touched with
# mu held, and every function marked ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) called with it;
# a violation fails the run, naming file and line.
#
# The project builds with g++, which ignores the annotations; this compiles the same
# translation units (flags from BUILD_DIR/compile_commands.json, default build/, written
# by scripts/build.sh) with clang++ -fsyntax-only: no objects, a minute or two. CI runs it
# after scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${1:-build}"
db="$build_dir/compile_commands.json"
if [ ! -f "$db" ]; then
  echo "thread_safety: $db not found: run scripts/build.sh first" >&2
  exit 2
fi
if ! command -v clang++ >/dev/null 2>&1; then
  bash scripts/deps.sh
fi
# One command per line: the unit's clang++ invocation, with g++'s warning set replaced by
# the analysis alone (g++ and clang++ warn about different things; the build already
# holds the code to g++'s -Wall -Wextra -Werror).
/usr/bin/python3 - "$db" "$PWD" >"$build_dir/thread_safety.commands" <<'EOF'
import json, shlex, sys
db, root = sys.argv[1], sys.argv[2]
for unit in json.load(open(db)):
    source = unit["file"]
    rel = source[len(root) + 1:] if source.startswith(root + "/") else source
    if not (rel.startswith("core/") or rel.startswith("rest/")) or rel.endswith("_test.cc"):
        continue
    args = unit.get("arguments") or shlex.split(unit["command"])
    keep, skip = [], False
    for a in args[1:]:
        if skip:
            skip = False
            continue
        if a == "-o":
            skip = True
            continue
        if a.startswith("-W") or a == "-c" or a == source:
            continue
        keep.append(a)
    cmd = ["clang++", "-fsyntax-only", "-Wno-everything", "-Wthread-safety",
           "-Werror=thread-safety"] + keep + [source]
    print("cd " + shlex.quote(unit["directory"]) + " && " + " ".join(shlex.quote(c) for c in cmd))
EOF
units=$(wc -l <"$build_dir/thread_safety.commands")
if ! tr '\n' '\0' <"$build_dir/thread_safety.commands" | xargs -0 -P "${WSSTEP_JOBS:-2}" -I{} bash -c '{}'; then
  echo "thread_safety: FAILED (clang -Wthread-safety, see above)" >&2
  exit 1
fi
echo "thread_safety: $units translation units of core/ and rest/ pass clang -Wthread-safety"
