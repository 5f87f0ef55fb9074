"""The layers' import contract, over every module: the core never imports Textual, steps never reach a
transport, the platform layer never imports a step. Checked on the source (direct imports) and in a fresh
interpreter (everything a layer pulls in transitively)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "etcdrescue"
MODULES = sorted(PACKAGE.rglob("*.py"))


def dotted(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """Absolute names of everything `path` imports, at any depth of its code (lazy imports too)."""
    mod = dotted(path)
    package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            out.add(name)
            out |= {f"{name}.{a.name}" for a in node.names}
    return out


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


RULES: list[tuple[str, Callable[[str], bool], tuple[str, ...]]] = [
    ("only screens/ and the tui command import Textual",
     lambda m: not (under(m, "etcdrescue.screens") or m == "etcdrescue.commands.tui"),
     ("textual",)),
    ("steps/ import no transport", lambda m: under(m, "etcdrescue.steps"),
     ("etcdrescue.transport", "etcdrescue.hosts", "etcdrescue.shell", "paramiko")),
    ("platform/ imports no step", lambda m: under(m, "etcdrescue.platform"),
     ("etcdrescue.steps", "etcdrescue.plan", "etcdrescue.engine", "etcdrescue.model")),
    ("the core never imports a front end", lambda m: not under(m, "etcdrescue.screens")
     and not under(m, "etcdrescue.commands") and m not in ("etcdrescue.cli", "etcdrescue.__main__"),
     ("etcdrescue.screens", "etcdrescue.cli", "etcdrescue.commands")),
]


@pytest.mark.parametrize(("rule", "applies", "forbidden"), RULES, ids=[r[0] for r in RULES])
def test_direct_imports(rule: str, applies: Callable[[str], bool], forbidden: tuple[str, ...]) -> None:
    bad = [f"{dotted(p)} imports {name}" for p in MODULES if applies(dotted(p))
           for name in sorted(imports(p)) if any(under(name, f) for f in forbidden)]
    assert not bad, f"{rule}: " + "; ".join(bad)


def test_the_rules_see_a_violation() -> None:
    """The scan itself works: screens/ really do import Textual, and relative imports resolve."""
    app = PACKAGE / "screens" / "app.py"
    names = imports(app)
    assert "textual.app" in names and "etcdrescue.session.RecoverySession" in names


@pytest.mark.parametrize(("layer", "forbidden"), [
    ("etcdrescue.steps", ("etcdrescue.transport", "paramiko", "textual")),
    ("etcdrescue.platform", ("etcdrescue.steps", "etcdrescue.engine", "textual", "paramiko")),
])
def test_transitive_imports(layer: str, forbidden: tuple[str, ...]) -> None:
    mods = [dotted(p) for p in MODULES if under(dotted(p), layer)]
    code = "\n".join(["import importlib, sys", *(f"importlib.import_module({m!r})" for m in mods),
                      f"forbidden = {forbidden!r}",
                      "bad = sorted(m for m in sys.modules if any(m == f or m.startswith(f + '.') for f in forbidden))",
                      "print(' '.join(bad))"])
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert res.stdout.strip() == "", f"{layer} pulls in {res.stdout.strip()}"


HEAVY = ("paramiko", "textual", "rich", "yaml", "etcd3", "grpc", "google.protobuf", "ansible", "cryptography",
         "markdown_it", "mdit_py_plugins")
HELP_ARGVS = [["--help"], *([cmd, "--help"] for cmd in ("check", "recover", "tui", "runbook", "report", "lab",
                                                        "rehearse", "inventory")),
              ["inventory", "discover", "--help"], ["inventory", "from-ansible", "--help"]]
PARSING_MODULES = ("etcdrescue", "etcdrescue.cli", "etcdrescue.errors", "etcdrescue.commands", "etcdrescue.platform",
                   "etcdrescue.platform.profiles")
BEFORE_THE_FIRST_CHOICE = (
    *(h for h in HEAVY if h not in ("textual", "rich")),
    "etcdrescue.session", "etcdrescue.engine", "etcdrescue.hosts", "etcdrescue.transport", "etcdrescue.plan",
    "etcdrescue.model", "etcdrescue.inventory", "etcdrescue.preflight.verdict",
    # the platform package itself is the profile names the parser lists; nothing of a platform loads
    "etcdrescue.platform.base", "etcdrescue.platform.kinds", "etcdrescue.platform.okd3", "etcdrescue.platform.kubeadm",
    "etcdrescue.screens.run", "etcdrescue.screens.new_inventory")


def loaded(lines: list[str], forbidden: tuple[str, ...]) -> str:
    """The forbidden modules a fresh interpreter of this checkout holds after running `lines`."""
    code = "\n".join(["import sys", *lines,
                      f"print(' '.join(sorted(m for m in sys.modules if any(m == f or m.startswith(f + '.') "
                      f"for f in {forbidden!r}))))"])
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
                         cwd=PACKAGE.parent)
    return res.stdout.strip()


def test_help_imports_only_the_parser() -> None:
    """`--help` of the tool and of every subcommand loads argparse and the command modules, nothing they run."""
    heavy = loaded(["import contextlib, io",
                    "from etcdrescue.cli import main",
                    f"for argv in {HELP_ARGVS!r}:",
                    "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):",
                    "        main(argv)"], HEAVY)
    assert heavy == "", f"--help imports {heavy}"
    ours = loaded(["from etcdrescue.cli import build_parser", "build_parser()"], ("etcdrescue",))
    extra = [m for m in ours.split() if m not in PARSING_MODULES and not m.startswith("etcdrescue.commands.")]
    assert not extra, f"--help imports {' '.join(extra)}"


def test_the_wizard_paints_its_first_screen_before_ssh() -> None:
    """`etcdrescue tui` up to its first screen (the inventory form) loads Textual, not SSH, YAML or the engine."""
    early = loaded(["from etcdrescue.cli import build_parser",
                    "from etcdrescue.commands.tui import cmd_tui",
                    "from etcdrescue.screens.app import RescueApp",
                    "from etcdrescue.screens.inventory import InventoryScreen",
                    "RescueApp.run = lambda self: None",
                    "cmd_tui(build_parser().parse_args(['tui', '--bump-revision', '5']))",
                    "InventoryScreen()"], BEFORE_THE_FIRST_CHOICE)
    assert early == "", f"the wizard's first screen imports {early}"
