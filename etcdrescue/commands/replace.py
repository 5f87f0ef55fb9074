"""`etcdrescue replace -i INV MEMBER`: one dead, corrupt or wiped member rebuilt while the quorum holds."""

from __future__ import annotations

import argparse

from ..errors import InputError
from .options import add_run, add_tools, can_confirm


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("replace", help="rebuild one member (dead, corrupt or wiped) while the others keep the "
                                       "quorum: remove it, add it back as a learner with empty data, promote it")
    p.add_argument("-i", "--inventory", required=True, help="inventory YAML")
    p.add_argument("member", metavar="MEMBER", help="the inventory member to replace")
    add_tools(p)
    p.add_argument("--force", action="store_true",
                   help="rebuild the member even though it is healthy (never the leader)")
    add_run(p)
    p.set_defaults(func=cmd_replace)


def cmd_replace(args: argparse.Namespace) -> int:
    from ..preflight.options import RecoveryOptions
    from ..procedures.replace import stop_key
    from ..session import RecoverySession
    from .recover import recover

    can_confirm(args)
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
