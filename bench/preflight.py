"""Pre-flight time: `etcdrescue check` on a broken lab (a backup on the seed, quorum lost), median of N runs.

    python3 bench/preflight.py [--runs 5] [--members 3] [--profile okd3|kubeadm] [--subnet 191]

The lab is broken once and stays broken (`check` changes nothing); `--down` takes it down at the end.
Two figures: the whole `check` process (Python's start, imports, SSH logins, pre-flight, output), and the
pre-flight proper, `run_preflight` in this process from its first connection to its verdict.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from benchlib import accepted_logins, break_again, load, open_lab, stats, timed

from etcdrescue.inventory.model import load_inventory
from etcdrescue.model import Method
from etcdrescue.preflight.survey import run_preflight
from etcdrescue.ssh.hosts import Hosts


def in_process(inventory: Path, backup: str) -> float:
    """`run_preflight` with connections of its own, as `check` does after its imports."""
    inv = load_inventory(inventory)
    t = time.monotonic()
    with Hosts(inv) as hosts:
        report = run_preflight(hosts, backup=backup, method=Method.SNAPSHOT_RESTORE)
    wall = time.monotonic() - t
    if not report.ok:
        raise SystemExit(f"pre-flight refused the broken lab: {report.problems}")
    return wall


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="runs (default 5)")
    p.add_argument("--members", type=int, choices=(3, 5), default=3)
    p.add_argument("--profile", choices=("okd3", "kubeadm"), default="okd3")
    p.add_argument("--subnet", type=int, default=191, help="the lab's 127.0.<subnet>.x (default 191)")
    p.add_argument("--root", type=Path, help="lab directory (default /tmp/bench-check-<profile>-<members>)")
    p.add_argument("--down", action="store_true", help="take the lab down at the end")
    args = p.parse_args()
    root = (args.root or Path(f"/tmp/bench-check-{args.profile}-{args.members}")).absolute()
    print(f"pre-flight bench: {args.runs} runs, {args.members} members, {args.profile}, lab {root}; "
          f"load {load()}; {time.strftime('%Y-%m-%d %H:%M:%S %Z')}", flush=True)
    lab = open_lab(root, args.members, args.subnet, args.profile)
    try:
        backup = break_again(lab, f"check-{time.strftime('%Y%m%dT%H%M%S')}")
        cmd = [sys.executable, "-m", "etcdrescue", "check", "-i", str(lab.inventory_path), "--backup", backup]
        walls: list[float] = []
        proper: list[float] = []
        logins: list[int] = []
        for n in range(1, args.runs + 1):
            before = accepted_logins(lab)
            _, res, wall = timed(cmd)
            after = accepted_logins(lab)
            if res.returncode != 0:
                raise SystemExit(f"check failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
            walls.append(wall)
            logins.append(sum(after.values()) - sum(before.values()))
            proper.append(in_process(lab.inventory_path, backup))
            print(f"run {n}: {wall:.2f}s (pre-flight proper {proper[-1]:.2f}s)  ssh logins {logins[-1]}  "
                  f"load {load()}", flush=True)
    finally:
        if args.down:
            lab.down()
    print(f"\n== etcdrescue check, {args.members} members, {args.profile}, broken lab; load at end {load()}")
    print(f"check wall  {stats(walls)}")
    print(f"pre-flight proper  {stats(proper)}")
    print(f"ssh logins per check: median {statistics.median(logins):.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
