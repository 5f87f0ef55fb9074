"""`etcdrescue runbook`: the recovery plan as a printable Markdown or HTML document (no SSH)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..errors import EXIT_OK, InputError
from . import write_document


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ..cli import add_common

    p = subparsers.add_parser("runbook", help="render the recovery plan as a printable runbook (no SSH)")
    add_common(p)
    p.add_argument("--format", choices=["md", "html", "pdf"], default="md",
                   help="output format (default md; pdf prints the HTML with headless Chromium, needs -o)")
    p.add_argument("-o", "--output", type=Path, help="write to FILE instead of stdout")
    p.add_argument("--stamp", help="fixed stamp (suffix of everything moved aside) for reproducible output; "
                                   "a recovery run later uses its own stamp")
    p.add_argument("--date", help="date printed on the runbook (default: today, or the stamp's date)")
    p.set_defaults(func=cmd_runbook)


def stamp_date(stamp: str) -> str | None:
    """`20240102T030405Z` -> `2024-01-02`; None when the stamp is not in new_stamp()'s format."""
    try:
        return time.strftime("%Y-%m-%d", time.strptime(stamp, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        return None


def build(args: argparse.Namespace) -> tuple[str, str]:
    """(document, format) for the parsed options; shared with tests."""
    from ..cli import prepare
    from ..model import BackupKind, Context, new_stamp
    from ..plan import build_plan
    from ..runbook import render_html, render_markdown

    inv, backup, method = prepare(args)
    stamp = args.stamp or new_stamp()
    if not all(ch.isalnum() or ch in "-_." for ch in stamp):
        raise InputError(f"--stamp may hold letters, digits, '-', '_' and '.', got {stamp!r}")
    date = args.date or stamp_date(stamp) or time.strftime("%Y-%m-%d")
    kind = BackupKind.FILE if backup and backup.endswith(".db") else BackupKind.DIR
    plan = build_plan(Context(inv, backup, method, stamp, backup_kind=kind))
    render = render_markdown if args.format == "md" else render_html
    return render(plan, date=date), args.format


def print_pdf(html: str, output: Path) -> None:
    """Chromium prints the self-contained HTML with its print stylesheet (a page per phase)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise InputError("--format pdf needs Chromium: apt-get install chromium (or use --format html and print it)")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "runbook.html"
        src.write_text(html, encoding="utf-8")
        res = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
             "--disable-background-networking", "--disable-component-update", f"--user-data-dir={tmp}/profile",
             "--no-pdf-header-footer", f"--print-to-pdf={output.resolve()}", src.as_uri()],
            capture_output=True, text=True, timeout=120, check=False)
    if res.returncode != 0 or not output.exists():
        raise InputError(f"Chromium could not print {output}: {res.stderr.strip().splitlines()[-1:] or 'no output'}")


def cmd_runbook(args: argparse.Namespace) -> int:
    text, _ = build(args)
    if args.format == "pdf":
        if not args.output:
            raise InputError("--format pdf writes a file: give -o FILE.pdf")
        print_pdf(text, args.output)
        print(f"runbook written to {args.output}", file=sys.stderr)
        return EXIT_OK
    write_document(text, args.output, "runbook")
    return EXIT_OK
