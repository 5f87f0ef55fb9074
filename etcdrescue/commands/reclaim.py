"""`etcdrescue reclaim-space`: after etcd's NOSPACE alarm, compact, defragment one member at a time (the leader
last), raise the quota where asked (`--quota`), disarm and verify; printed as it goes, like `recover`."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import TYPE_CHECKING

from ..errors import InputError
from .options import add_run, add_tools, can_confirm

if TYPE_CHECKING:
    from ..resume import Unfinished
    from ..session import RecoverySession

PROCEDURE = "reclaim-space"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(PROCEDURE, help="after the NOSPACE alarm: compact, defragment one member at a time, disarm")
    p.add_argument("-i", "--inventory", required=True, help="inventory YAML")
    add_run(p)
    p.add_argument("--force", action="store_true",
                   help="run although there is no NOSPACE alarm and little to give back")
    p.add_argument("--quota", type=quota_bytes, metavar="BYTES",
                   help="raise every member's --quota-backend-bytes to BYTES (one restart at a time): for when the "
                        "data itself fills the quota and defragmenting cannot help")
    add_tools(p)
    p.set_defaults(func=cmd_reclaim)


def quota_bytes(raw: str) -> int:
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of bytes, got {raw!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of bytes, got {value}")
    return value


def cmd_reclaim(args: argparse.Namespace) -> int:
    from ..preflight.options import RecoveryOptions
    from ..session import RecoverySession
    from .recover import recover

    can_confirm(args)
    session = RecoverySession.open(RecoveryOptions(
        args.inventory, etcd_tools=args.etcd_tools, journal_dir=args.journal, gate_timeout=args.gate_timeout,
        procedure=PROCEDURE, quota=args.quota, force=args.force))
    try:
        if not args.dry_run:
            session.lock_here()
        unfinished = None if args.fresh else session.find_unfinished()
        if args.resume and unfinished is not None and unfinished.procedure == PROCEDURE:
            same_course(session, unfinished)
        return recover(session, args)
    finally:
        session.close()


def same_course(session: RecoverySession, unfinished: Unfinished) -> None:
    """A resume starts at the first step the journal does not show done: the steps up to it must be the same in
    this run's plan, or the resume would start somewhere else (a plan without the quota steps the run had). A run
    stopped before its quota steps may gain them (`--quota` after the room check said so); one that raised a
    member's quota already goes on with the same quota."""
    from ..journal import read_journal
    from ..model import BackupKind, Revisions

    ctx = replace(session.context(BackupKind.DIR, Revisions()), inv=session.inv.with_seed(unfinished.seed))
    keys = tuple(s.key for s in session.procedure.steps(ctx))
    upto = unfinished.steps.index(unfinished.next_step) + 1 if unfinished.next_step else len(unfinished.steps)
    again = "resume with the options it ran with (--quota as before)"
    if keys[:upto] != unfinished.steps[:upto]:
        raise InputError(f"the unfinished run in {unfinished.path} planned {', '.join(unfinished.steps)}; with these "
                         f"options the plan is {', '.join(keys)}: {again}")
    if any(k.startswith("quota-") for k in unfinished.done):
        start = next((e for e in read_journal(unfinished.path) if e.get("event") == "run_start"), {})
        if start.get("mode") != session.procedure.mode(ctx):
            raise InputError(f"the unfinished run in {unfinished.path} raised quotas already ({start.get('mode')}); "
                             f"{again}")
