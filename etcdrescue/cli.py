"""Command line: `etcdrescue check|recover|tui|lab|...`. Textual is imported only by `tui`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from .errors import EXIT_INTERRUPTED, RescueError


def build_parser() -> argparse.ArgumentParser:
    from .commands import (
        backup,
        diagnose,
        drill,
        fix_flags,
        inventory,
        lab,
        reclaim,
        recover,
        rehearse,
        replace,
        report,
        runbook,
        tui,
    )

    parser = argparse.ArgumentParser(prog="etcdrescue", description=__doc__)
    parser.add_argument("--version", action="version", version=f"etcdrescue {__version__}")
    sub = parser.add_subparsers(dest="cmd", required=True)

    for module in (diagnose, recover, replace, reclaim, fix_flags, backup, drill, inventory, runbook, report, lab,
                   rehearse, tui):
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


if __name__ == "__main__":
    raise SystemExit(main())
