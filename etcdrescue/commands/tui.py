"""`etcdrescue tui`: the guided recovery. Textual is imported only when this runs,
so `check`, `recover` and the core never load it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .options import add_common


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser("tui", help="guided recovery in a terminal UI")
    add_common(p)
    for action in p._actions:  # the wizard asks for the inventory when it is not given
        if action.dest == "inventory":
            action.required = False
    p.add_argument("--journal", type=Path, help="journal directory (default ~/.local/state/etcdrescue)")
    p.add_argument("--gate-timeout", type=float, default=120.0, help="seconds a health gate may wait")
    p.add_argument("--yes", action="store_true",
                   help="confirm once: starting the plan is the only question, not each destructive step")
    p.add_argument("--dry-run", action="store_true", help="start in dry-run mode: only read-only probes run")
    p.add_argument("--procedure", metavar="NAME",
                   help="go straight to this procedure's pre-flight (recover, or another `diagnose` names); by "
                        "default the wizard diagnoses the cluster first, unless --backup is given")
    p.add_argument("--member", help="the member the procedure acts on (replace)")
    p.set_defaults(func=cmd_tui)


def cmd_tui(args: argparse.Namespace) -> int:
    from ..screens.app import RescueApp
    from .options import revision_options

    if args.etcd_tools:  # checked before the first screen, as every command checks it before any connection
        from ..upload import find_local

        find_local(args.etcd_tools)
    if args.procedure:
        from ..procedures import named

        named(args.procedure)
    app = RescueApp(inventory_path=args.inventory, backup=args.backup, journal_dir=args.journal,
                    gate_timeout=args.gate_timeout, method=args.method, seed=args.seed, etcd_tools=args.etcd_tools,
                    yes=args.yes, dry_run=args.dry_run, revisions=revision_options(args),
                    accept_older_seed=args.accept_older_seed, procedure=args.procedure, target=args.member)
    app.run()
    return app.return_code or 0
