"""Subcommands beyond check/recover, each registering itself with the CLI."""

from __future__ import annotations

import sys
from pathlib import Path


def write_document(text: str, output: Path | None, what: str) -> None:
    """Write a generated document to `output`, or to stdout when none is given."""
    if output:
        output.write_text(text, encoding="utf-8")
        print(f"{what} written to {output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
