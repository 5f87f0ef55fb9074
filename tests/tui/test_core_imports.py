"""The core never loads Textual: importing it (and building the CLI parser, which imports
every subcommand module) in a fresh interpreter leaves `textual` out of sys.modules."""

from __future__ import annotations

import subprocess
import sys

import pytest

CORE = ["etcdrescue.engine", "etcdrescue.model", "etcdrescue.preflight.survey",
        "etcdrescue.preflight.verdict", "etcdrescue.session", "etcdrescue.steps.seed",
        "etcdrescue.steps.join", "etcdrescue.inventory", "etcdrescue.transport", "etcdrescue.journal",
        "etcdrescue.probes", "etcdrescue.cli", "etcdrescue.plan", "etcdrescue.gates", "etcdrescue.commands.tui"]


def test_core_does_not_import_textual() -> None:
    code = "\n".join([
        "import importlib, sys",
        *(f"importlib.import_module({m!r})" for m in CORE),
        "from etcdrescue.cli import build_parser",
        "build_parser()",
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))",
        "print(' '.join(bad))",
        "sys.exit(1 if bad else 0)",
    ])
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, f"textual imported by the core: {res.stdout} {res.stderr}"


def test_the_tui_subcommand_is_registered() -> None:
    from etcdrescue.cli import build_parser

    args = build_parser().parse_args(["tui", "--backup", "/b", "--gate-timeout", "5"])
    assert args.inventory is None and args.backup == "/b" and args.gate_timeout == 5.0


def test_tui_flags_reach_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    from etcdrescue.cli import build_parser
    from etcdrescue.commands import tui
    from etcdrescue.screens import app as app_module

    made: list[app_module.RescueApp] = []

    class Recorded(app_module.RescueApp):
        def run(self, *a: object, **k: object) -> None:
            made.append(self)

    monkeypatch.setattr(app_module, "RescueApp", Recorded)
    assert tui.cmd_tui(build_parser().parse_args(["tui", "--yes", "--dry-run"])) == 0
    assert made[0].yes and made[0].status.dry_run
    assert tui.cmd_tui(build_parser().parse_args(["tui"])) == 0
    assert not made[1].yes and not made[1].status.dry_run
