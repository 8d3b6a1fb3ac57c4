#!/usr/bin/env python3
"""Flat profile of the samples whose call stack passes through one function.

perf report cannot restrict a DWARF call-graph recording to one subtree; this reads
`perf script` and prints, for the samples under FUNCTION (a substring of a frame's
symbol), the share of each leaf symbol (self) and of each frame on their stacks
(inclusive). Used for the store's startup (tests/bench/README.md, "Profiling"):

  perf record -e cpu-clock -F 2000 --call-graph dwarf,16384 -o /tmp/open.data -- \
    build/tests/bench/wsstep_bench store-open ...
  tests/bench/perf_under.py /tmp/open.data CertificateStore::Open
"""
import collections
import re
import subprocess
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: perf_under.py PERF_DATA FUNCTION")
    data, root = sys.argv[1], sys.argv[2]
    script = subprocess.run(["perf", "script", "-i", data], capture_output=True, text=True,
                            check=True).stdout
    self_counts, inclusive, samples = collections.Counter(), collections.Counter(), 0
    for sample in script.split("\n\n"):
        frames = [line.strip() for line in sample.strip().split("\n")[1:] if line.strip()]
        # "addr symbol+0xoff (dso)" -> "symbol (dso)"
        frames = [re.sub(r"\+0x[0-9a-f]+", "", re.sub(r"^[0-9a-f]+ ", "", f)) for f in frames]
        if not any(root in f for f in frames):
            continue
        samples += 1
        self_counts[frames[0][:110]] += 1
        for frame in set(f[:110] for f in frames):
            inclusive[frame] += 1
    print(f"{samples} samples under {root}")
    print("--- self")
    for frame, n in self_counts.most_common(25):
        print(f"{100 * n / samples:5.1f}%  {frame}")
    print("--- inclusive (at least 2%)")
    for frame, n in inclusive.most_common():
        if n / samples < 0.02:
            break
        print(f"{100 * n / samples:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
