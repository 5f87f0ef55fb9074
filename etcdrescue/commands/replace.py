"""`etcdrescue replace -i INV MEMBER`: one dead, corrupt or wiped member rebuilt while the quorum holds."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import InputError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("replace", help="rebuild one member (dead, corrupt or wiped) while the others keep the "
                                       "quorum: remove it, add it back as a learner with empty data, promote it")
    p.add_argument("-i", "--inventory", required=True, help="inventory YAML")
    p.add_argument("member", metavar="MEMBER", help="the inventory member to replace")
    p.add_argument("--etcd-tools", metavar="DIR",
                   help="a directory here holding etcdctl (and etcdutl for 3.5+): copied to every master and used "
                        "there instead of the hosts' own (for hosts without them, e.g. kubeadm)")
    p.add_argument("--force", action="store_true",
                   help="rebuild the member even though it is healthy (never the leader)")
    p.add_argument("--yes", action="store_true", help="do not ask before destructive steps")
    p.add_argument("--dry-run", action="store_true",
                   help="print every command and whether it would run; only read-only probes run")
    p.add_argument("--journal", type=Path, help="journal directory (default ~/.local/state/etcdrescue)")
    p.add_argument("--gate-timeout", type=float, default=120.0, help="seconds a health gate may wait")
    p.add_argument("--resume", action="store_true", help="continue the newest unfinished run of this cluster")
    p.add_argument("--fresh", action="store_true", help="start anew even if an unfinished journal exists")
    p.add_argument("--break-lock", action="store_true", help="take over a stale lock on the members")
    p.add_argument("-v", "--verbose", action="store_true", help="print every command as it runs")
    p.set_defaults(func=cmd_replace)


def cmd_replace(args: argparse.Namespace) -> int:
    from ..preflight.options import RecoveryOptions
    from ..procedures.replace import stop_key
    from ..session import RecoverySession
    from .recover import recover

    if not args.yes and not args.dry_run and not sys.stdin.isatty():
        raise InputError("refusing to change hosts: no terminal to confirm on; pass --yes to run unattended")
    session = RecoverySession.open(RecoveryOptions(args.inventory, etcd_tools=args.etcd_tools,
                                                   journal_dir=args.journal, gate_timeout=args.gate_timeout,
                                                   procedure="replace", target=args.member, force=args.force))
    try:
        if args.resume and not args.fresh:
            unfinished = session.find_unfinished()
            if unfinished is not None and unfinished.procedure == session.procedure.name and (
                    stop_key(args.member) not in unfinished.steps):
                raise InputError(f"the unfinished replace in {unfinished.path} is of another member "
                                 f"(steps {', '.join(unfinished.steps[:2])}): resume it with its own MEMBER")
        return recover(session, args)
    finally:
        session.close()
