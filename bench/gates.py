"""One gate round on a healthy lab: the final verify gate's checks judged side by side (as the engine does),
against the same checks judged one after another, N rounds each, alternating.

    python3 bench/gates.py [--rounds 20] [--members 3] [--profile okd3|kubeadm] [--subnet 197] [--down]

A round is `gates.check_once` over the tool's own SSH connections (already open: a gate polls on the
run's connections), so the figure is what a gate spends between two polls when the cluster is healthy.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchlib import load, open_lab, stats

from etcdrescue.checks import MemberHealth, Round
from etcdrescue.gates import POLL, check_once
from etcdrescue.inventory.model import load_inventory
from etcdrescue.model import Context, Gate, Method
from etcdrescue.ssh.hosts import Hosts
from etcdrescue.steps.health import healthy_gate


def one_by_one(gate: Gate, hosts: Hosts) -> bool:
    """The round as it was before the checks ran side by side."""
    state = Round({n: MemberHealth(n) for n in gate.members})
    return not [p for check in gate.checks for p in check.judge(gate.members, hosts, state)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=20, help="rounds of each kind (default 20)")
    p.add_argument("--members", type=int, choices=(3, 5), default=3)
    p.add_argument("--profile", choices=("okd3", "kubeadm"), default="okd3")
    p.add_argument("--subnet", type=int, default=197, help="the lab's 127.0.<subnet>.x (default 197)")
    p.add_argument("--root", type=Path, help="lab directory (default /tmp/bench-gates-<profile>-<members>)")
    p.add_argument("--down", action="store_true", help="take the lab down at the end")
    args = p.parse_args()
    root = (args.root or Path(f"/tmp/bench-gates-{args.profile}-{args.members}")).absolute()
    print(f"gate round bench: {args.rounds} rounds each, {args.members} members, {args.profile}, lab {root}; "
          f"poll {POLL}s; load {load()}; {time.strftime('%Y-%m-%d %H:%M:%S %Z')}", flush=True)
    lab = open_lab(root, args.members, args.subnet, args.profile)
    side: list[float] = []
    serial: list[float] = []
    try:
        lab.wait_healthy(timeout=60)
        inv = load_inventory(lab.inventory_path)
        ctx = Context(inv, None, Method.FORCE_NEW_CLUSTER, "bench")
        gate = healthy_gate(ctx, "every member healthy", tuple(m.name for m in inv.members), peer_urls=True,
                            caught_up=True)
        with Hosts(inv) as hosts:
            check_once(gate, hosts, Round({}))  # opens the connections and shells: not a round's cost
            for _ in range(args.rounds):
                t = time.monotonic()
                report = check_once(gate, hosts, Round({}))
                side.append(time.monotonic() - t)
                if not report.ok:
                    raise SystemExit(f"the healthy lab failed the gate: {report.problem}")
                t = time.monotonic()
                if not one_by_one(gate, hosts):
                    raise SystemExit("the healthy lab failed the gate (one by one)")
                serial.append(time.monotonic() - t)
    finally:
        if args.down:
            lab.down()
    names = ", ".join(type(c).__name__ for c in gate.checks)
    print(f"\n== one round of the verify gate ({names}), {args.members} members, {args.profile}; "
          f"load at end {load()}")
    print(f"side by side  {stats(side)}")
    print(f"one by one    {stats(serial)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
