"""Reads a rendered runbook as an operator would: which command to run on which host, in which order.

The runbook prints a command once where the plan repeats it (the same commands on several hosts, a step that is
an earlier one on another host, the same skip check again); this reader expands those references back into
one entry per host and command, so a test can compare the operator's sequence with the engine's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from etcdrescue.command import Command
from etcdrescue.documents.helpers import Shelf

STEP = re.compile(r"^### Step (\d+)/\d+: ")
ITEM = re.compile(r"^(undo )?(\d+)\.(\d+)\. ")
SAME_STEP = re.compile(r"^The same as step (\d+), on `([^`]+)` instead of `([^`]+)`")
SAME_CHECK = re.compile(r"Skip if the check of (?:undo )?(\d+\.\d+) succeeds now; otherwise run:$")
FENCE = re.compile(r"^(`{3,})sh$")


@dataclass(frozen=True)
class Entry:
    host: str
    script: str
    skip_if: str | None


def hosts_of(line: str) -> list[str] | None:
    if not line.startswith("On `") or not line.endswith(":"):
        return None
    return re.findall(r"`([^`]+)`", line)


def _fenced(lines: list[str], i: int) -> tuple[str, int]:
    """The script of the fenced block starting at or after line i, and the line after it."""
    while not FENCE.match(lines[i]):
        i += 1
    mark = FENCE.match(lines[i]).group(1)  # type: ignore[union-attr]
    end = lines.index(mark, i + 1)
    return "\n".join(lines[i + 1:end]), end + 1


def read(doc: str, *, undo: bool = False) -> dict[int, list[Entry]]:
    """Step number -> the entries the operator runs for it (its undo with `undo=True`), references expanded."""
    lines = doc.splitlines()
    steps: dict[int, list[Entry]] = {}
    step = 0
    hosts: list[str] = []
    in_undo = False
    in_gate = False
    checks: dict[str, str | None] = {}
    pending: list[tuple[str, str | None]] = []

    def flush() -> None:
        for h in hosts:
            steps[step].extend(Entry(h, s, k) for s, k in pending)
        pending.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        if (m := STEP.match(line)) or line.startswith("## "):
            flush()
            if m:
                step = int(m.group(1))
                steps[step] = []
            else:
                step = 0
            hosts, in_undo, in_gate = [], False, False
        elif step and (m := SAME_STEP.match(line)):
            earlier, now, was = int(m.group(1)), m.group(2), m.group(3)
            source = steps[earlier]
            assert all(e.host == was for e in source), (line, source)
            steps[step] = [Entry(now, e.script, e.skip_if) for e in source]
        elif step and line.startswith("**Before moving on:**"):
            flush()
            in_gate = True
        elif step and line.startswith(f"**Undo step {step}:**"):
            flush()
            in_gate, in_undo = False, True
            hosts = []
        elif step and not in_gate and in_undo == undo and (h := hosts_of(line)) is not None:
            flush()
            hosts = h
        elif step and not in_gate and in_undo == undo and (m := ITEM.match(line)):
            label = f"{m.group(2)}.{m.group(3)}"
            skip: str | None = None
            if line.endswith("Skip if this succeeds:"):
                skip, i = _fenced(lines, i + 1)
                assert lines[i + 1] == "Otherwise run:", lines[i:i + 2]
            elif same := SAME_CHECK.search(line):
                skip = checks[same.group(1)]
            script, i = _fenced(lines, i + 1)
            checks[label] = skip
            pending.append((script, skip))
            continue
        i += 1
    flush()
    return steps


def expected(commands: list[Command] | tuple[Command, ...], stamp: str) -> list[Entry]:
    """What the runbook should show for the engine's commands: each with the shipped programs read from files."""
    shelf = Shelf(stamp)
    return [Entry(c.host, shelf.command(c.script), shelf.command(c.skip_if) if c.skip_if else None)
            for c in commands]
