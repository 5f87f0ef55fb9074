"""Command line: `etcdrescue check|recover|tui|lab|...`. Textual is imported only by `tui`."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_REFUSED, InputError, RescueError

if TYPE_CHECKING:
    from .engine import Engine
    from .hosts import Hosts
    from .inventory import Inventory
    from .steps.base import Method

EXTENSIONS: tuple[str, ...] = ("etcdrescue.commands.runbook", "etcdrescue.commands.report", "etcdrescue.commands.lab",
                              "etcdrescue.commands.rehearse", "etcdrescue.commands.tui")
"""Modules under etcdrescue/commands/ that add subcommands: each has `register(subparsers)`,
sets `func` with `set_defaults`, and keeps heavy imports (textual) inside that function."""


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--inventory", required=True, help="inventory YAML")
    p.add_argument("--backup", help="backup on the seed: a data-dir backup (has member/snap/db) or a snapshot file")
    p.add_argument("--method", choices=["snapshot-restore", "force-new-cluster"],
                   help="how to restore a backup (default snapshot-restore; ignored without --backup)")
    p.add_argument("--seed", help="member to rebuild first (default: the inventory's first)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="etcdrescue", description=__doc__)
    parser.add_argument("--version", action="version", version=f"etcdrescue {__version__}")
    sub = parser.add_subparsers(dest="cmd", required=True)

    check = sub.add_parser("check", help="read-only pre-flight of every host")
    add_common(check)

    rec = sub.add_parser("recover", help="run the recovery")
    add_common(rec)
    rec.add_argument("--yes", action="store_true", help="do not ask before destructive phases")
    rec.add_argument("--dry-run", action="store_true",
                     help="print every command and whether it would run; only read-only probes run")
    rec.add_argument("--journal", type=Path, help="journal directory (default ~/.local/state/etcdrescue)")
    rec.add_argument("--gate-timeout", type=float, default=120.0, help="seconds a health gate may wait")
    rec.add_argument("--resume", action="store_true", help="continue the newest unfinished recovery of this cluster")
    rec.add_argument("--fresh", action="store_true", help="start anew even if an unfinished journal exists")
    rec.add_argument("--break-lock", action="store_true", help="take over a stale lock on the seed")
    rec.add_argument("-v", "--verbose", action="store_true", help="print every command as it runs")
    check.set_defaults(func=cmd_check)
    rec.set_defaults(func=cmd_recover)
    for name in EXTENSIONS:
        module = importlib.import_module(name)
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv and sys.stdin.isatty() and sys.stdout.isatty():
        argv = ["tui"]  # a bare `etcdrescue` on a terminal opens the wizard
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("etcdrescue: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RescueError as exc:
        print(f"etcdrescue: {exc}", file=sys.stderr)
        return exc.exit_code


def _secrets() -> dict[str, str | None]:
    return {"sudo_password": os.environ.get("ETCDRESCUE_SUDO_PASSWORD"),
            "passphrase": os.environ.get("ETCDRESCUE_KEY_PASSPHRASE")}


def prepare(args: argparse.Namespace) -> tuple[Inventory, Method]:
    """Inventory (seed first) and restore method from the common options, checked before any connection."""
    from .inventory import load_inventory
    from .steps.base import Method

    inv = load_inventory(args.inventory).with_seed(args.seed)
    if args.method and not args.backup:
        raise InputError("--method applies to a backup; without --backup the seed's own data is used "
                         "(quorum restore with --force-new-cluster)")
    method = Method(args.method) if args.method else (
        Method.SNAPSHOT_RESTORE if args.backup else Method.FORCE_NEW_CLUSTER)
    if args.backup and not args.backup.startswith("/"):
        raise InputError(f"--backup must be an absolute path on {inv.seed.name}, got {args.backup!r}")
    return inv, method


def open_hosts(inv: Inventory) -> Hosts:
    """Unconnected hosts for the inventory: each connects on its first command."""
    from .hosts import Hosts

    return Hosts(inv, **_secrets())


def cmd_check(args: argparse.Namespace) -> int:
    from .report_text import preflight_lines
    from .steps.preflight import run_preflight

    inv, method = prepare(args)
    with open_hosts(inv) as hosts:
        report = run_preflight(hosts, backup=args.backup, method=method)
    print(f"Pre-flight of {inv.cluster} ({len(inv.members)} members, seed {inv.seed.name}):")
    print("\n".join(preflight_lines(report)))
    for problem in report.problems[1:]:
        print(f"  problem: {problem}")
    print(f"verdict: {report.verdict}")
    return EXIT_OK if report.ok else EXIT_REFUSED


def cmd_recover(args: argparse.Namespace) -> int:
    from .engine import Engine
    from .journal import Journal, default_dir
    from .locks import LocalLock, RemoteLock
    from .plan import build_plan
    from .report_text import ConsoleCallbacks, dry_run_totals, plan_header, plan_lines, preflight_lines
    from .resume import find_unfinished, resumed_context
    from .steps.base import Context, new_stamp
    from .steps.preflight import run_preflight

    inv, method = prepare(args)
    journal_dir = args.journal or default_dir()
    if not args.yes and not args.dry_run and not sys.stdin.isatty():
        raise InputError("refusing to change hosts: no terminal to confirm on; pass --yes to run unattended")
    unfinished = None if args.fresh else find_unfinished(journal_dir, inv.cluster)
    if args.resume and unfinished is None:
        raise InputError(f"nothing to resume: no unfinished recovery of {inv.cluster} in {journal_dir}")
    if unfinished is not None and not args.resume and not args.dry_run:
        raise InputError(f"an unfinished recovery of {inv.cluster} is in {unfinished.path} (next step "
                         f"{unfinished.next_step}): rerun with --resume, or --fresh to ignore it")
    resuming = bool(args.resume and unfinished)
    resumed: Context | None = None
    if resuming:
        assert unfinished is not None
        inv, resumed = resumed_context(unfinished, inv, args.gate_timeout)
        args.backup, method = resumed.backup, resumed.method
        print(f"resuming {unfinished.path.name} at step {unfinished.next_step} "
              f"(interrupted by: {unfinished.last_error})")
    local_lock = LocalLock(journal_dir / "locks", inv.cluster)
    with open_hosts(inv) as hosts:
        report = run_preflight(hosts, backup=args.backup, method=method, resuming=resuming)
        print(f"Pre-flight of {inv.cluster} ({len(inv.members)} members, seed {inv.seed.name}):")
        print("\n".join(preflight_lines(report)))
        if not report.ok:
            for problem in report.problems[1:]:
                print(f"  problem: {problem}")
            raise InputError(report.problems[0])
        print(f"verdict: {report.verdict}")
        ctx = resumed or Context(inv, args.backup, method, new_stamp(), gate_timeout=args.gate_timeout,
                                 backup_kind=report.backup.kind if report.backup else "dir")
        stamp = ctx.stamp
        plan = build_plan(ctx)
        if args.dry_run:
            print('DRY RUN: nothing will be changed; only the read-only "already done?" probes run on the hosts.')
            print(plan_header(plan))
            dry = Engine(plan, hosts, callbacks=ConsoleCallbacks(verbose=True), dry_run=True)
            planned = dry.run(start_at=unfinished.next_step if resuming and unfinished else None)
            print(dry_run_totals(planned.verdicts))
            return EXIT_OK
        if not args.yes:
            print("\n".join(plan_lines(plan)))
            answer = input(f"Type the cluster name ({inv.cluster}) to start the recovery: ").strip()
            if answer != inv.cluster:
                raise InputError("not confirmed: nothing changed")
        engine: Engine | None = None
        journal: Journal | None = None
        try:
            local_lock.acquire(stamp)
            remote_lock = RemoteLock(hosts, stamp)
            remote_lock.acquire(break_lock=args.break_lock, resume_stamp=stamp if resuming else None)
            secrets = tuple(v for v in _secrets().values() if v)
            journal = (Journal(unfinished.path, secrets) if resuming and unfinished
                       else Journal.create(journal_dir, inv.cluster, stamp, secrets))
            print(f"journal: {journal.path}")
            journal.write("preflight", **report.journal_fields())
            engine = Engine(plan, hosts, journal=journal,
                            callbacks=ConsoleCallbacks(verbose=args.verbose, confirm_each=not args.yes))
            result = engine.run(start_at=unfinished.next_step if resuming and unfinished else None)
            remote_lock.release()
        except RescueError as exc:
            if engine is not None and journal is not None:
                _explain_failure(exc, engine, journal.path, stamp)
            raise
        finally:
            if journal is not None:
                journal.close()
            local_lock.release()
    print(f"recovered {inv.cluster}: {len(inv.members)} members healthy in {result.duration:.1f}s; "
          f"old data kept beside the new with suffix .etcdrescue-{stamp}")
    return EXIT_OK


def _explain_failure(exc: RescueError, engine: Engine, journal: Path, stamp: str) -> None:
    """After a failed step: the members' last log lines, where things stand, how to go on or back."""
    for name, log in getattr(exc, "logs", {}).items():
        print(f"last etcd log lines on {name}:", file=sys.stderr)
        for line in log.splitlines()[-20:]:
            print(f"  | {line}", file=sys.stderr)
    print(f"where things stand: journal {journal}; old data is kept beside the new with suffix "
          f".etcdrescue-{stamp}; fix the cause, then rerun with --resume", file=sys.stderr)
    step = engine.failed_step
    if step is not None and (step.undo or step.undo_note):
        print(f"to undo step {step.key} instead:", file=sys.stderr)
        for c in step.undo:
            print(f"  {c.host}$ {c.script}", file=sys.stderr)
        if step.undo_note:
            print(f"  {step.undo_note}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
