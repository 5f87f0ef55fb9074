"""`etcdrescue report JOURNAL`: what a recovery run did, as Markdown or HTML, from its journal."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import EXIT_OK, InputError
from . import write_document


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("report", help="render a run's journal as a report (what changed, "
                                                 "where, the operator's time; every command in an appendix)")
    p.add_argument("journal", type=Path, help="journal file (.jsonl), or a directory: its newest journal")
    p.add_argument("--format", choices=["md", "html"], default="md", help="output format (default md)")
    p.add_argument("-o", "--output", type=Path, help="write to FILE instead of stdout")
    p.add_argument("--no-commands", action="store_true",
                   help="leave out the appendix of every command with its output (what changed stays)")
    p.set_defaults(func=cmd_report)


def find_journal(path: Path) -> Path:
    """A directory stands for its newest journal, so `report ~/.local/state/etcdrescue` just works."""
    if path.is_dir():
        found = sorted(path.glob("*.jsonl"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise InputError(f"{path}: no journal (*.jsonl) in this directory")
        return found[-1]
    if not path.is_file():
        raise InputError(f"{path}: journal not found")
    return path


def cmd_report(args: argparse.Namespace) -> int:
    from ..documents.report import render_html, render_markdown
    from ..journal import read_journal

    path = find_journal(args.journal)
    try:
        events = read_journal(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read journal: {exc}") from None
    render = render_html if args.format == "html" else render_markdown
    write_document(render(events, str(path), commands=not args.no_commands), args.output, "report")
    return EXIT_OK
