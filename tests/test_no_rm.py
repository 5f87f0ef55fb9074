"""Nothing is deleted on a host: no plan, for any platform, method, backup kind or member count, runs `rm` (or a cousin)
in a command, its `skip_if` probe or its undo."""

from __future__ import annotations

import re
import shlex
from itertools import product

import pytest

from etcdrescue.command import Command
from etcdrescue.inventory import Inventory, parse_inventory
from etcdrescue.model import BackupKind, Context, Method
from etcdrescue.plan import Plan, build_plan
from etcdrescue.platform import PROFILES

DELETERS = {"rm", "unlink", "shred", "wipefs"}
"""Command words that delete. `rmdir` (only removes an empty dir) is allowed."""
SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", "{", "}", "!", "then", "else", "do", "if", "while", "until",
              "$(", "`", "\n", "xargs", "sudo", "exec", "command", "env", "nohup", "timeout"}


def commands_words(script: str) -> list[str]:
    """Each word in command position (first of a simple command, or after a separator/wrapper)."""
    lexer = shlex.shlex(script.replace("$(", " ( "), posix=True, punctuation_chars=";&|()")
    lexer.whitespace_split = True
    lexer.commenters = ""
    words: list[str] = []
    at_start = True
    for tok in lexer:
        assignment = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", tok) is not None  # VAR=x cmd
        if at_start and not assignment:
            words.append(tok.rsplit("/", 1)[-1])
        at_start = (at_start and assignment) or tok in SEPARATORS or set(tok) <= set(";&|()")
    return words


def deletes(script: str) -> list[str]:
    found = [w for w in commands_words(script) if w in DELETERS]
    if re.search(r"(^|\s)-delete(\s|$)", script) or re.search(r"\brm\s+-", script):
        found.append("delete")
    return found


def inventory(n: int, profile: str) -> Inventory:
    return parse_inventory({"cluster": "c", "profile": profile, "members": [
        {"name": f"m{i}", "host": f"10.0.0.{i}", "peer_url": f"https://10.0.0.{i}:2380",
         "client_url": f"https://10.0.0.{i}:2379"} for i in range(1, n + 1)]})


def every_plan() -> list[tuple[str, Plan]]:
    out = []
    for profile, n in product(PROFILES, range(1, 8)):
        inv = inventory(n, profile)
        out.append((f"{profile}-{n}-quorum", build_plan(Context(inv, None, Method.FORCE_NEW_CLUSTER, "S"))))
        for method in Method:
            for kind in BackupKind:
                ctx = Context(inv, "/var/lib/etcd/backup", method, "S", backup_kind=kind)
                out.append((f"{profile}-{n}-{method.value}-{kind.value}", build_plan(ctx)))
    return out


def scripts(plan: Plan) -> list[tuple[str, str]]:
    out = []
    for s in plan.steps:
        cmds: list[Command] = [*s.commands, *s.undo]
        for c in cmds:
            out.append((s.key, c.script))
            if c.skip_if is not None:
                out.append((s.key, c.skip_if))
    return out


@pytest.mark.parametrize(("label", "plan"), every_plan(), ids=[label for label, _ in every_plan()])
def test_no_command_deletes(label: str, plan: Plan) -> None:
    found = [(key, script) for key, script in scripts(plan) if deletes(script)]
    assert not found, found
    assert any(s.undo for s in plan.steps)  # undo commands were looked at too


@pytest.mark.parametrize("script", [
    "rm -rf /var/lib/etcd/member", "test -e x && rm x", "cp a b; /bin/rm b", "x=$(rm -f y)", "sudo rm a",
    "find /var/lib/etcd -name '*.wal' -delete", "ETCDCTL_API=3 rm x", "true || unlink f", "if true; then rm a; fi",
])
def test_detector_finds_deletes(script: str) -> None:
    assert deletes(script)


@pytest.mark.parametrize("script", [
    "rmdir /var/lib/etcd/etcdrescue-restore-S", "mv a 'rm b'", "grep -q rm f", "echo /tmp/rm.log",
])
def test_detector_allows(script: str) -> None:
    assert not deletes(script)
