"""Commands as data.

A step never runs anything itself: it returns `Command` objects. The engine
executes them, the dry run prints them, the runbook renders them — all from the
same objects, so the three can never disagree. Every value that came from the
inventory is quoted by `sh()` before it becomes part of a script.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field


class Raw(str):
    """Shell syntax that must not be quoted (operators, redirections, $(...))."""


def q(value: object) -> str:
    return value if isinstance(value, Raw) else shlex.quote(str(value))


def sh(*args: object) -> Raw:
    """Join arguments into one shell command line, quoting everything but `Raw` pieces."""
    return Raw(" ".join(q(a) for a in args))


def chain(*parts: str) -> Raw:
    return Raw(" && ".join(parts))


Check = Callable[[str], "str | None"]
"""Inspects a command's output; returns None when it is as expected, else the problem."""


@dataclass(frozen=True)
class Retry:
    """A refusal etcd lifts by itself: the command runs again every `every` seconds while its output names one of
    `on`, for up to `within` seconds. `why` says, for the runbook and for the error when the time runs out, what
    etcd waits for (its rules differ by version: see `steps.join.member_add_retry`)."""

    on: tuple[str, ...]
    within: float
    every: float
    why: str

    def instruction(self) -> str:
        """The runbook's words: what an operator does on the refusal."""
        said = " or ".join(f"`{s}`" for s in self.on)
        return (f"If it is refused with {said}, run it again every {self.every:g} s for up to {self.within:g} s: "
                f"{self.why}.")


@dataclass(frozen=True)
class Command:
    host: str
    script: str
    purpose: str
    mutates: bool = True
    skip_if: str | None = None
    """Read-only script: exit 0 means this command's effect is already in place."""
    timeout: float = 60.0
    retry: Retry | None = None
    check: Check | None = field(default=None, compare=False)
    expect: str = ""
    """What `check` wants to see in the output, in words (for the runbook and the wizard)."""
    upload: tuple[str, str] | None = None
    """(a file on this machine, a path on the host): the engine sends it over SFTP just before `script` runs,
    which then checks it and moves it into place (`--backup bastion:PATH`)."""
    while_gate: bool = False
    """Runs while the step's gate is held, after the step's other commands: only for work that touches
    no live path (the snapshot restore into a fresh directory during the stop gate's settle)."""
