#!/usr/bin/env bash
# scripts/lint.sh: the habits CI holds the tree to, before any build.
#   1. clang-format (.clang-format, Google-based) leaves every C++ file as it is, except
#      the files listed in scripts/format-debt.txt (written before formatting was checked;
#      format one and delete its line when you next change it — the list only shrinks);
#   2. no #include points up the dependency order (scripts/check_layout.py);
#   3. duplicated code: where the `duplicates` tool is installed (developer machines), the
#      pairs of 12 or more shared lines are listed; a report, never a failure.
# Fix formatting with: clang-format -i FILE
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends clang-format >/dev/null
fi
status=0
mapfile -t files < <(git ls-files '*.cc' '*.h' | grep -vxF -f <(grep -v '^#' scripts/format-debt.txt))
if ! clang-format --dry-run -Werror "${files[@]}" 2>/tmp/wsstep-lint-format.$$; then
  grep -E '^[^ ].*: (error|warning):' /tmp/wsstep-lint-format.$$ | cut -d: -f1 | sort -u |
    sed 's/^/lint: not clang-formatted: /' >&2
  status=1
fi
rm -f /tmp/wsstep-lint-format.$$
if ! /usr/bin/python3 scripts/check_layout.py; then
  status=1
fi
if command -v duplicates >/dev/null 2>&1; then
  echo "lint: duplicated code (12+ lines; a report, not a failure):"
  duplicates --min-lines 12 --most 10 | sed 's/^/  /'
fi
exit $status
