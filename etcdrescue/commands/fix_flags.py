"""`etcdrescue fix-flags`: rewrite the flags of each kubeadm etcd manifest whose etcd refuses them (3.7 and the
`--experimental-*` flags, 3.5 and the names 3.6 gave them), one member at a time; printed as it goes, like
`recover`."""

from __future__ import annotations

import argparse

from .options import add_run, add_tools, can_confirm

PROCEDURE = "fix-flags"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(PROCEDURE, help="kubeadm: rewrite etcd flags its version refuses, one member at a time")
    p.add_argument("-i", "--inventory", required=True, help="inventory YAML")
    add_run(p)
    add_tools(p)
    p.set_defaults(func=cmd_fix_flags)


def cmd_fix_flags(args: argparse.Namespace) -> int:
    from ..preflight.options import RecoveryOptions
    from ..session import RecoverySession
    from .recover import recover

    can_confirm(args)
    session = RecoverySession.open(RecoveryOptions(
        args.inventory, etcd_tools=args.etcd_tools, journal_dir=args.journal, gate_timeout=args.gate_timeout,
        procedure=PROCEDURE))
    try:
        return recover(session, args)
    finally:
        session.close()
