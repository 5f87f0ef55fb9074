"""Pre-flight time: `etcdrescue check` on a broken lab (a backup on the seed, quorum lost), median of N runs.

    python3 bench/preflight.py [--runs 5] [--members 3] [--profile okd3|kubeadm] [--subnet 191]

The lab is broken once and stays broken (`check` changes nothing); `--down` takes it down at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from benchlib import accepted_logins, break_again, load, open_lab, stats, timed


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
        logins: list[int] = []
        for n in range(1, args.runs + 1):
            before = accepted_logins(lab)
            _, res, wall = timed(cmd)
            after = accepted_logins(lab)
            if res.returncode != 0:
                raise SystemExit(f"check failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
            walls.append(wall)
            logins.append(sum(after.values()) - sum(before.values()))
            print(f"run {n}: {wall:.2f}s  ssh logins {logins[-1]}  load {load()}", flush=True)
    finally:
        if args.down:
            lab.down()
    print(f"\n== etcdrescue check, {args.members} members, {args.profile}, broken lab; load at end {load()}")
    print(f"check wall  {stats(walls)}")
    print(f"ssh logins per check: median {statistics.median(logins):.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
