"""`etcdrescue check` and `etcdrescue recover`: the pre-flight alone, and the recovery, printed as they go."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

from ..errors import EXIT_OK, EXIT_REFUSED, InputError, RescueError
from .options import add_common, add_run, can_confirm, recovery_options

if TYPE_CHECKING:
    from ..session import RecoverySession



def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = sub.add_parser("check", help="read-only pre-flight of every host")
    add_common(check)
    rec = sub.add_parser("recover", help="run the recovery")
    add_common(rec)
    for p in (check, rec):
        p.add_argument("--fix-flags", action="store_true",
                       help="kubeadm: where a manifest's flags are ones its etcd refuses, the recovery's settings "
                            "edits rewrite them too (as `etcdrescue fix-flags` does) instead of refusing")
    add_run(rec)
    rec.add_argument("--no-learner", action="store_true",
                     help="join members as voters at once (default: as learners, promoted once caught up)")
    check.set_defaults(func=cmd_check)
    rec.set_defaults(func=cmd_recover)


def open_session(args: argparse.Namespace, **more: object) -> RecoverySession:
    from ..session import RecoverySession

    return RecoverySession.open(recovery_options(args, fix_flags=args.fix_flags, **more))


def cmd_check(args: argparse.Namespace) -> int:
    from ..documents.console import preflight_lines

    session = open_session(args)
    inv = session.inv
    try:
        report = session.preflight()
        advice = [] if report.ok else session.advice()
    finally:
        session.close()
    print(f"Pre-flight of {inv.cluster} ({len(inv.members)} members, seed {inv.seed.name}):")
    print("\n".join(preflight_lines(report) + (session.bastion.lines() if session.bastion else [])))
    for problem in report.problems[1:]:
        print(f"  problem: {problem}")
    for line in advice:
        print(f"  {line}")
    print(f"verdict: {report.verdict}")
    return EXIT_OK if report.ok else EXIT_REFUSED


def cmd_recover(args: argparse.Namespace) -> int:
    can_confirm(args)
    session = open_session(args, journal_dir=args.journal, gate_timeout=args.gate_timeout,
                           learners=not args.no_learner)
    try:
        return recover(session, args)
    finally:
        session.close()


def recover(session: RecoverySession, args: argparse.Namespace) -> int:
    """The locks (not for a dry run), then the resume question, then `drive`."""
    inv = session.inv
    if not args.dry_run:
        session.lock_here()
    unfinished = None if args.fresh else session.find_unfinished()
    if args.resume and unfinished is None:
        raise InputError(f"nothing to resume: no unfinished recovery of {inv.cluster} in {session.journal_dir}")
    if unfinished is not None and not args.resume and not args.dry_run:
        raise InputError(f"an unfinished recovery of {inv.cluster} is in {unfinished.path} (next step "
                         f"{unfinished.next_step}, stopped by: {unfinished.last_error}): rerun with --resume, "
                         "or --fresh to ignore it")
    if args.resume and unfinished is not None:
        session.resume(unfinished)
        print(f"resuming {unfinished.path.name} at step {unfinished.next_step} "
              f"(interrupted by: {unfinished.last_error})")
    if not args.dry_run:
        for line in session.lock_hosts(break_lock=args.break_lock):
            print(f"--break-lock: {line}")
    return drive(session, dry_run=args.dry_run, confirm=not args.yes, verbose=args.verbose)


def drive(session: RecoverySession, *, dry_run: bool = False, confirm: bool = False, verbose: bool = False) -> int:
    """Pre-flight, plan, (confirm,) run and release, printing as it goes: `recover` and `rehearse`.

    A real run holds its locks already (`lock_hosts`); it releases them when it changed nothing."""
    from ..documents.console import (
        ConsoleCallbacks,
        by_hand_lines,
        dry_run_totals,
        plan_header,
        plan_lines,
        preflight_lines,
    )
    from ..session import failure_lines

    inv = session.inv
    try:
        report = session.preflight()
        print(f"Pre-flight of {inv.cluster} ({len(inv.members)} members, seed {inv.seed.name}):")
        print("\n".join(preflight_lines(report) + (session.bastion.lines() if session.bastion else [])))
        if not report.ok:
            for problem in report.problems[1:]:
                print(f"  problem: {problem}")
            for line in session.advice():
                print(f"  {line}")
            raise InputError(report.problems[0])
        print(f"verdict: {report.verdict}")
        plan = session.plan(report)
        if dry_run:
            print('DRY RUN: nothing will be changed; only the read-only "already done?" probes run on the hosts.')
            print(plan_header(plan))
            planned = session.run(session.engine(plan, ConsoleCallbacks(verbose=True), dry_run=True))
            print(dry_run_totals(planned.verdicts))
            return EXIT_OK
        if confirm:
            print("\n".join(plan_lines(plan)))
            asked = time.monotonic()
            answer = input(f"Type the cluster name ({inv.cluster}) to start the recovery: ").strip()
            session.operator_waited("start confirmation (typing the cluster name)", time.monotonic() - asked)
            if answer != inv.cluster:
                raise InputError("not confirmed: nothing changed; the locks are released")
        journal = session.start(plan, report)
        print(f"journal: {journal.path}")
        engine = session.engine(plan, ConsoleCallbacks(verbose=verbose, confirm_each=confirm))
        try:
            result = session.run(engine)
        except (RescueError, KeyboardInterrupt) as exc:
            if isinstance(exc, RescueError) and engine.changed:
                for line in failure_lines(exc, engine.failed_step):
                    print(line, file=sys.stderr)
            if session.finish(ok=False):
                print("nothing was changed on any host; the locks are released", file=sys.stderr)
            else:
                print(f"where things stand: journal {journal.path}; old data is kept beside the new with suffix "
                      f".etcdrescue-{plan.ctx.stamp}; fix the cause, then rerun with --resume", file=sys.stderr)
            raise
        session.finish(ok=True)
    finally:
        session.close()
    print(f"{session.procedure.done.lower()} {inv.cluster}: {len(inv.members)} members healthy in "
          f"{result.duration:.1f}s; {kept_line(result.aside, plan.ctx.stamp)}")
    for line in by_hand_lines(plan.ctx.revisions):
        print(line)
    return EXIT_OK


def kept_line(aside: int | None, stamp: str) -> str:
    """What the run kept aside, as the masters showed it at its end: a procedure that moved nothing says so."""
    if aside == 0:
        return "nothing was moved or copied aside"
    what = f"{aside} paths" if aside else "what was moved or copied aside"
    return f"{what} kept beside the originals with the suffix .etcdrescue-{stamp} (`etcdrescue report` lists them)"
