"""`etcdrescue tui`: the guided recovery. Textual is imported only when this runs,
so `check`, `recover` and the core never load it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..cli import add_common


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
    p.set_defaults(func=cmd_tui)


def cmd_tui(args: argparse.Namespace) -> int:
    from ..cli import local_tools, revision_options
    from ..screens.app import RescueApp

    tools = local_tools(args)
    app = RescueApp(inventory_path=args.inventory, backup=args.backup, journal_dir=args.journal,
                    gate_timeout=args.gate_timeout, method=args.method, seed=args.seed, etcd_tools=tools,
                    yes=args.yes, dry_run=args.dry_run, revisions=revision_options(args))
    app.run()
    return app.return_code or 0
