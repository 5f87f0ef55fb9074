"""`etcdrescue backup -i INV -o DIR [--keep N]`: a checked snapshot of a healthy member on this machine."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import EXIT_OK, InputError

DEFAULT_KEEP = 7
"""`backups.rotation.DEFAULT_KEEP`, spelled out: the parser is built without importing the core."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("backup", help="take a snapshot of a healthy member to this machine, with its sha256 and "
                                      "a sidecar JSON; rotate")
    p.add_argument("-i", "--inventory", required=True, help="inventory YAML")
    p.add_argument("-o", "--out", required=True, type=Path, metavar="DIR", help="directory here for the backups")
    p.add_argument("--keep", type=int, default=DEFAULT_KEEP, metavar="N",
                   help=f"keep the newest N backups of this cluster in DIR (default {DEFAULT_KEEP}); other files "
                        "are never touched")
    p.add_argument("--etcd-tools", metavar="DIR",
                   help="a directory here holding etcdctl (and etcdutl for 3.5+): copied to every master and used "
                        "there instead of the hosts' own (as `recover` does)")
    p.add_argument("--journal", type=Path, help="journal directory (default ~/.local/state/etcdrescue)")
    p.set_defaults(func=cmd_backup)


def say(text: str) -> None:
    print(text, flush=True)


def cmd_backup(args: argparse.Namespace) -> int:
    from ..backups.take import take_backup
    from ..preflight.options import RecoveryOptions
    from ..session import RecoverySession

    if args.keep < 1:
        raise InputError("--keep must be at least 1")
    out = Path(args.out).expanduser().absolute()
    session = RecoverySession.open(RecoveryOptions(args.inventory, etcd_tools=args.etcd_tools,
                                                   journal_dir=args.journal))
    try:
        result = take_backup(session, out, args.keep, say)
    finally:
        session.close()
    s = result.sidecar
    role = "leader" if s.taken_from_leader else "follower"
    say(f"backup {result.db}: {s.size / 2**20:.1f} MiB, revision {s.revision}, etcd {s.etcd_version}"
        + (f" (storage {s.storage_version})" if s.storage_version else "")
        + f", cluster {s.cluster_id}, from {s.taken_from} ({role}) in {s.seconds:.1f}s")
    say(f"  sha256 {s.sha256} (checked against {s.taken_from}'s): {result.db.name}.sha256; sidecar "
        f"{result.db.name}.json")
    say(f"  on {s.taken_from}: the newest snapshot stays as {s.host_copy} (replaced by the next backup)")
    for p in result.removed:
        say(f"  rotated out (--keep {args.keep}): {p}")
    say(f"  journal: {result.journal}")
    return EXIT_OK
