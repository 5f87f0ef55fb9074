"""Start-up cost: `python3 -m etcdrescue --help` against `python3 -c pass`, median of N runs each, interleaved.

    python3 bench/startup.py [--runs 10]

Also prints the slowest imports of one `--help` run (`python3 -X importtime`, cumulative): every command of
the tool pays them before it does anything.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time

from benchlib import ENV, load, stats, timed

TOOL = [sys.executable, "-m", "etcdrescue", "--help"]
BARE = [sys.executable, "-c", "pass"]


def slowest_imports(top: int) -> list[tuple[float, str]]:
    _, res, _ = timed([sys.executable, "-X", "importtime", *TOOL[1:]], env=ENV)
    rows = []
    for line in res.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if m and len(m.group(2)) <= 3:  # top-level imports and their direct children
            rows.append((int(m.group(1)) / 1e6, m.group(3)))
    return sorted(rows, reverse=True)[:top]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10, help="runs of each (default 10)")
    args = p.parse_args()
    print(f"startup bench: {args.runs} runs each; load {load()}; {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    tool: list[float] = []
    bare: list[float] = []
    for _ in range(args.runs):
        for cmd, out in ((TOOL, tool), (BARE, bare)):
            _, res, wall = timed(cmd)
            if res.returncode != 0:
                raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr[-2000:]}")
            out.append(wall)
    print(f"python3 -m etcdrescue --help  {stats(tool)}")
    print(f"python3 -c pass               {stats(bare)}")
    print(f"the tool's own start-up (difference of medians): {statistics.median(tool) - statistics.median(bare):.2f}s")
    print("slowest imports of one --help run (cumulative):")
    for seconds, name in slowest_imports(8):
        print(f"  {seconds:6.3f}s  {name}")
    print(f"load at end {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
