"""Start-up cost: `python3 -m etcdrescue --help` and the wizard's imports up to its first screen, against
`python3 -c pass`, median of N runs each, interleaved.

    python3 bench/startup.py [--runs 10]

The wizard's figure is `etcdrescue tui` without a terminal: its command runs with `RescueApp.run` stubbed
and the first screen (the inventory form) is built, so it times the imports and set-up before the first
paint, not the paint. Also prints how much of the package has bytecode (`PYTHONDONTWRITEBYTECODE` keeps
Python from writing it at run time: `scripts/bootstrap` precompiles) and the slowest imports of one `--help`
run (`python3 -X importtime`, cumulative), then the tool's own: every command pays them before it does
anything.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import resource
import statistics
import sys
import time

from benchlib import ENV, REPO, load, stats, timed

TOOL = [sys.executable, "-m", "etcdrescue", "--help"]
BARE = [sys.executable, "-c", "pass"]
FIRST_SCREEN = "; ".join([
    "from etcdrescue.cli import build_parser", "from etcdrescue.commands.tui import cmd_tui",
    "from etcdrescue.screens.app import RescueApp", "from etcdrescue.screens.inventory import InventoryScreen",
    "RescueApp.run = lambda self: None", "cmd_tui(build_parser().parse_args(['tui']))", "InventoryScreen()"])
WIZARD = [sys.executable, "-c", FIRST_SCREEN]
COMMANDS = {"python3 -m etcdrescue --help": TOOL, "etcdrescue tui to its first screen": WIZARD,
            "python3 -c pass": BARE}


def bytecode() -> str:
    """How many of the package's modules have bytecode next to them, and whether Python may write more."""
    sources = sorted((REPO / "etcdrescue").rglob("*.py"))
    compiled = sum(os.path.exists(importlib.util.cache_from_source(str(src))) for src in sources)
    writes = "no (PYTHONDONTWRITEBYTECODE)" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "yes"
    return f"{compiled} of {len(sources)} modules precompiled; written at run time: {writes}"


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def slowest_imports() -> list[tuple[float, str]]:
    _, res, _ = timed([sys.executable, "-X", "importtime", *TOOL[1:]], env=ENV)
    rows = []
    for line in res.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if m and len(m.group(2)) <= 3:  # top-level imports and their direct children
            rows.append((int(m.group(1)) / 1e6, m.group(3)))
    return sorted(rows, reverse=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10, help="runs of each (default 10)")
    args = p.parse_args()
    print(f"startup bench: {args.runs} runs each; load {load()}; {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"bytecode of etcdrescue: {bytecode()}")
    walls: dict[str, list[float]] = {name: [] for name in COMMANDS}
    cpus: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.runs):
        for name, cmd in COMMANDS.items():
            cpu = children_cpu()
            _, res, wall = timed(cmd)
            if res.returncode != 0:
                raise SystemExit(f"{name} failed ({res.returncode}): {res.stderr[-2000:]}")
            walls[name].append(wall)
            cpus[name].append(children_cpu() - cpu)
    bare = statistics.median(walls["python3 -c pass"])
    bare_cpu = statistics.median(cpus["python3 -c pass"])
    for name, values in walls.items():
        print(f"{name:<36} {stats(values)}  ({statistics.median(values) / bare:.2f}x python3 -c pass)")
    print("CPU time (user + sys), less at the mercy of the machine's load:")
    for name, values in cpus.items():
        print(f"{name:<36} median {statistics.median(values):.2f}s  "
              f"({statistics.median(values) / bare_cpu:.2f}x python3 -c pass)")
    print(f"the tool's own start-up (difference of medians): "
          f"{statistics.median(walls['python3 -m etcdrescue --help']) - bare:.2f}s")
    imports = slowest_imports()
    print("slowest imports of one --help run (cumulative):")
    for seconds, name in imports[:8]:
        print(f"  {seconds:6.3f}s  {name}")
    print("the tool's own, in the same run:")
    for seconds, name in [row for row in imports if row[1].startswith("etcdrescue")][:5]:
        print(f"  {seconds:6.3f}s  {name}")
    print(f"load at end {load()}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
