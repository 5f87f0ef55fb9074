"""`etcdrescue rehearse`: a full recovery on a throw-away lab, then proof that it worked.

Why: the first time an operator runs a quorum recovery should not be on
production. This builds a lab shaped like the real cluster (same member count
and names with `-i`), takes an openshift-ansible style backup, writes more keys,
breaks quorum, and runs the recovery: in the wizard (badged REHEARSAL) when
there is a terminal and the wizard is available, else headless through the
same code path as `etcdrescue recover`. It ends with a verdict: every member
healthy, every pre-backup key back, the post-backup keys gone (a restore goes
back to the backup, by design).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import EXIT_FAILED, EXIT_OK, InputError, RescueError
from .lab import add_shape_options

if TYPE_CHECKING:
    from ..lab import Lab

PRE, POST = "/rehearsal/pre/", "/rehearsal/post/"
DEFAULT_SUBNET = 61


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("rehearse", help="practise the whole recovery on a local lab (root), then verify it")
    p.add_argument("--members", type=int, choices=[3, 5], default=3, help="lab size without -i (default 3)")
    p.add_argument("-i", "--inventory", help="shape the lab like this inventory (same member count and names)")
    p.add_argument("--keep", action="store_true", help="leave the lab running afterwards")
    p.add_argument("--headless", action="store_true", help="no wizard: run the recovery as `recover --yes` does")
    p.add_argument("--root", type=Path, help="lab directory (default $XDG_STATE_HOME/etcdrescue/rehearsal)")
    p.add_argument("--subnet", type=int, default=DEFAULT_SUBNET,
                   help=f"the lab uses 127.0.<subnet>.x (default {DEFAULT_SUBNET})")
    p.add_argument("--journal", type=Path,
                   help="journal directory (default $XDG_STATE_HOME/etcdrescue/rehearsals)")
    p.add_argument("--keys", type=int, default=500, help="keys written before the backup (default 500)")
    add_shape_options(p)
    p.set_defaults(func=cmd_rehearse)


class Verdict:
    """A plain class, not a dataclass: `dataclasses` (with `inspect`) would cost every `--help` ~15 ms."""

    def __init__(self) -> None:
        self.members_ok: list[str] = []
        self.problems: list[str] = []
        self.pre_found = 0
        self.post_found = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(lab: Lab, keys: int) -> Verdict:
    """Judge the lab from outside the tool: etcd's own /health, member list and key counts."""
    v = Verdict()
    names = [h.name for h in lab.hosts]
    for h in lab.hosts:
        if lab.healthy(h):
            v.members_ok.append(h.name)
        else:
            v.problems.append(f"{h.name} is not healthy")
    try:
        listed = sorted(m["name"] for m in lab.member_list())
        if listed != sorted(names):
            v.problems.append(f"member list is {listed}, expected {sorted(names)}")
        for h in lab.hosts:
            pre = lab.read_prefix(PRE, h)
            if h is lab.hosts[0]:
                v.pre_found, v.post_found = len(pre), len(lab.read_prefix(POST, h))
            want = {f"{PRE}{i:05d}": f"value-{i:05d}" for i in range(keys)}
            if pre != want:
                v.problems.append(f"{h.name}: {len(set(want) - set(pre))} pre-backup keys missing or changed")
    except Exception as exc:  # grpc errors of every kind: the verdict must still be printed
        v.problems.append(f"cannot read the cluster: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    if v.post_found:
        v.problems.append(f"{v.post_found} post-backup keys still present: the restore did not go back to the backup")
    return v


def make_lab(args: argparse.Namespace, root: Path) -> Lab:
    from ..inventory.model import load_inventory
    from ..lab import Lab

    profile, etcd = args.profile or "okd3", args.etcd or "3.4"
    if args.inventory:
        inv = load_inventory(args.inventory)
        return Lab(root, subnet=args.subnet, names=[m.name for m in inv.members], cluster=inv.cluster,
                   profile=profile, etcd=etcd)
    return Lab(root, args.members, subnet=args.subnet, cluster="rehearsal", profile=profile, etcd=etcd)


def fresh_root(root: Path) -> None:
    """Start from scratch: remove an earlier (kept) rehearsal lab, but never a directory that is not a lab."""
    from ..lab import Lab

    if (root / "lab.json").exists():
        Lab.load(root).destroy()
    elif root.exists() and any(root.iterdir()):
        raise InputError(f"{root} exists and is not a lab: choose another --root")


def run_wizard(lab: Lab, backup: str, journal_dir: Path) -> None:
    """The wizard on the broken lab, badged REHEARSAL."""
    from ..screens.app import RescueApp

    app = RescueApp(inventory_path=str(lab.inventory_path), backup=backup, rehearsal=True, journal_dir=journal_dir,
                    etcd_tools=lab_tools(lab))
    app.run()


def lab_tools(lab: Lab) -> Path | None:
    """None where the tool finds tools itself: on the hosts, or (kubeadm) in each node's unpacked etcd image, as
    on a real node; else the lab's own release, copied in as `--etcd-tools` would."""
    return None if lab.host_tools or lab.shape.image_layer else lab.bin_dir


def run_headless(lab: Lab, backup: str, journal_dir: Path) -> int:
    """The recovery as `recover --yes` runs it: the same session, printed by the same console."""
    from ..preflight.options import RecoveryOptions
    from ..session import RecoverySession
    from .recover import drive

    try:
        session = RecoverySession.open(RecoveryOptions(lab.inventory_path, backup=backup, journal_dir=journal_dir,
                                                       etcd_tools=lab_tools(lab)))
    except RescueError as exc:
        say(f"etcdrescue: {exc}")
        return exc.exit_code
    try:
        session.lock_hosts()
        return drive(session)
    except RescueError as exc:
        say(f"etcdrescue: {exc}")
        return exc.exit_code
    finally:
        session.close()


def say(text: str) -> None:
    print(text, flush=True)


def cmd_rehearse(args: argparse.Namespace) -> int:
    from ..journal import default_dir
    from ..lab import LabError
    from .lab import check_prerequisites

    check_prerequisites()
    if args.keys < 1:
        raise InputError("--keys must be at least 1")
    root = (args.root or default_dir() / "rehearsal").absolute()
    journal_dir = (args.journal or default_dir() / "rehearsals").absolute()
    fresh_root(root)
    lab = make_lab(args, root)
    started = time.monotonic()
    try:
        say(f"REHEARSAL: building a {len(lab.hosts)}-member lab on 127.0.{lab.subnet}.x in {root} ...")
        lab.up(timeout=90)
        lab.put_keys(PRE, args.keys)
        time.sleep(0.6)  # the backup copies the live db: let the last batch commit
        backup = (lab.backup_openshift(lab.hosts[0]) if "openshift" in lab.shape.backup_kinds
                  else lab.snapshot_save(lab.hosts[0]))
        lab.put_keys(POST, 100)
        lab.break_quorum(lab.hosts[1:])
        say(f"REHEARSAL: {args.keys} keys under {PRE}, backup {backup} on {lab.hosts[0].name}, "
            f"100 keys under {POST} after it; quorum broken ({', '.join(h.name for h in lab.hosts[1:])})")
        interactive = not args.headless and sys.stdin.isatty() and sys.stdout.isatty()
        if interactive:
            run_wizard(lab, backup, journal_dir)
        else:
            say(f"REHEARSAL: recover exited {run_headless(lab, backup, journal_dir)}")
        verdict = verify(lab, args.keys)
        report(verdict, len(lab.hosts), args.keys, journal_dir, time.monotonic() - started)
        return EXIT_OK if verdict.ok else EXIT_FAILED
    except LabError as exc:
        raise RescueError(f"rehearsal lab: {exc}") from None
    finally:
        if args.keep:
            say(f"REHEARSAL: lab kept: inventory {lab.inventory_path}; "
                f"remove with `etcdrescue lab down --root {root} --destroy`")
        else:
            lab.destroy()
            say("REHEARSAL: lab torn down")


def report(v: Verdict, members: int, keys: int, journal_dir: Path, seconds: float) -> None:
    say(f"REHEARSAL {'PASSED' if v.ok else 'FAILED'} in {seconds:.0f}s:")
    say(f"  members healthy: {len(v.members_ok)}/{members}")
    say(f"  pre-backup keys back: {v.pre_found}/{keys}")
    say(f"  post-backup keys gone (expected from a restore): {'yes' if not v.post_found else f'no, {v.post_found}'}")
    for p in v.problems:
        say(f"  problem: {p}")
    journals = sorted(journal_dir.glob("*.jsonl"), key=lambda p: p.stat().st_mtime) if journal_dir.is_dir() else []
    if journals:
        say(f"  report: etcdrescue report {journals[-1]}")
