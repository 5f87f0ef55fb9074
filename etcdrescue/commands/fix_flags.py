"""`etcdrescue fix-flags`: rewrite the flags of each kubeadm etcd manifest whose etcd refuses them (3.7 and the
`--experimental-*` flags, 3.5 and the names 3.6 gave them), one member at a time; printed as it goes, like
`recover`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import InputError

PROCEDURE = "fix-flags"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(PROCEDURE, help="kubeadm: rewrite etcd flags its version refuses, one member at a time")
    p.add_argument("-i", "--inventory", required=True, help="inventory YAML")
    p.add_argument("--yes", action="store_true", help="do not ask before the steps that ask")
    p.add_argument("--dry-run", action="store_true",
                   help="print every command and whether it would run; only read-only probes run")
    p.add_argument("--etcd-tools", metavar="DIR",
                   help="a directory here holding etcdctl (and etcdutl for 3.5+): copied to every master and used "
                        "there instead of the hosts' own (for hosts without them, e.g. kubeadm)")
    p.add_argument("--journal", type=Path, help="journal directory (default ~/.local/state/etcdrescue)")
    p.add_argument("--gate-timeout", type=float, default=120.0, help="seconds a health gate may wait")
    p.add_argument("--resume", action="store_true", help="continue the newest unfinished run of this cluster")
    p.add_argument("--fresh", action="store_true", help="start anew even if an unfinished journal exists")
    p.add_argument("--break-lock", action="store_true", help="take over a stale lock on the members")
    p.add_argument("-v", "--verbose", action="store_true", help="print every command as it runs")
    p.set_defaults(func=cmd_fix_flags)


def cmd_fix_flags(args: argparse.Namespace) -> int:
    from ..preflight.options import RecoveryOptions
    from ..session import RecoverySession
    from .recover import recover

    if not args.yes and not args.dry_run and not sys.stdin.isatty():
        raise InputError("refusing to change hosts: no terminal to confirm on; pass --yes to run unattended")
    session = RecoverySession.open(RecoveryOptions(
        args.inventory, etcd_tools=args.etcd_tools, journal_dir=args.journal, gate_timeout=args.gate_timeout,
        procedure=PROCEDURE))
    try:
        return recover(session, args)
    finally:
        session.close()
