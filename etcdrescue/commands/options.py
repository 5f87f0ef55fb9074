"""The options every recovery command shares (`check`, `recover`, `runbook`, `tui`), and the one way they
become a session's options. Imported while the parser is built: nothing heavy at module level."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError

if TYPE_CHECKING:
    from ..preflight.options import RecoveryOptions, RevisionOptions


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--inventory", required=True, help="inventory YAML")
    p.add_argument("--backup", help="backup on the seed: a data-dir backup (has member/snap/db) or a snapshot file; "
                                    "bastion:PATH is a snapshot file on this machine, checked here and copied to "
                                    "the seed first")
    p.add_argument("--method", choices=["snapshot-restore", "force-new-cluster"],
                   help="how to restore a backup (default snapshot-restore; needs --backup)")
    p.add_argument("--seed", help="member to rebuild first (default: with a backup the inventory's first; without, "
                                  "the member whose own data is the most recent)")
    p.add_argument("--accept-older-seed", action="store_true",
                   help="quorum restore from --seed although another member holds newer data (lost)")
    p.add_argument("--bump-revision", type=revision_bump, metavar="N",
                   help="restore a backup with --bump-revision N --mark-compacted (default 1000000000 where the "
                        "restore tool has the flags: etcdctl >= 3.4.27, etcdutl >= 3.5.10); 0: never bump")
    p.add_argument("--no-control-plane-restart", action="store_true",
                   help="when revisions go backwards, do not restart the API servers and controllers after the "
                        "verify (the summary lists them to restart by hand)")
    add_tools(p)


def add_tools(p: argparse.ArgumentParser) -> None:
    p.add_argument("--etcd-tools", metavar="DIR",
                   help="a directory here holding etcdctl (and etcdutl for 3.5+): copied to every master and used "
                        "there instead of the hosts' own (for hosts without them, e.g. kubeadm)")


def add_run(p: argparse.ArgumentParser) -> None:
    """The options of every command that runs a procedure's plan (`recover`, `replace`, `reclaim-space`,
    `fix-flags`): confirmation, dry run, journal, gates, resume and locks, output."""
    p.add_argument("--yes", action="store_true", help="do not ask before the steps that ask")
    p.add_argument("--dry-run", action="store_true",
                   help="print every command and whether it would run; only read-only probes run")
    p.add_argument("--journal", type=Path, help="journal directory (default ~/.local/state/etcdrescue)")
    p.add_argument("--gate-timeout", type=float, default=120.0, help="seconds a health gate may wait")
    p.add_argument("--resume", action="store_true", help="continue the newest unfinished run of this cluster")
    p.add_argument("--fresh", action="store_true", help="start anew even if an unfinished journal exists")
    p.add_argument("--break-lock", action="store_true", help="take over a stale lock on the members")
    p.add_argument("-v", "--verbose", action="store_true", help="print every command as it runs")


def can_confirm(args: argparse.Namespace) -> None:
    """A run that will ask needs a terminal to ask on: refused before anything connects."""
    if not args.yes and not args.dry_run and not sys.stdin.isatty():
        raise InputError("refusing to change hosts: no terminal to confirm on; pass --yes to run unattended")


def revision_bump(raw: str) -> int:
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of revisions, got {raw!r}") from None
    if not 0 <= value <= 2**62:
        raise argparse.ArgumentTypeError(f"must be 0..{2**62}, got {value}")
    return value


def revision_options(args: argparse.Namespace) -> RevisionOptions:
    from ..preflight.options import RevisionOptions

    return RevisionOptions(args.bump_revision, not args.no_control_plane_restart)


def recovery_options(args: argparse.Namespace, **more: Any) -> RecoveryOptions:
    """The common options as the session's (`more`: what only some commands have, e.g. the journal dir)."""
    from ..preflight.options import RecoveryOptions

    return RecoveryOptions(args.inventory, backup=args.backup, method=args.method, seed=args.seed,
                           accept_older_seed=args.accept_older_seed, etcd_tools=args.etcd_tools,
                           revisions=revision_options(args), **more)
