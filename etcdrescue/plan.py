"""The ordered list of steps for one run of a procedure: the single object the engine runs,
the dry run prints, the wizard shows and the runbook renders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .command import Command
from .model import Context, Step
from .steps.tools import image_copies

if TYPE_CHECKING:
    from .procedures.base import Procedure


@dataclass(frozen=True)
class Plan:
    ctx: Context
    steps: tuple[Step, ...]
    procedure: str = "recover"
    """The procedure's name (`procedures.PROCEDURES`)."""
    mode: str = ""
    """How this run goes, in one line (the procedure's words)."""

    def step(self, key: str) -> Step:
        for s in self.steps:
            if s.key == key:
                return s
        raise KeyError(key)

    def commands(self) -> list[Command]:
        return [c for s in self.steps for c in s.commands]


def build_plan(ctx: Context, procedure: Procedure | None = None) -> Plan:
    """The plan of `procedure` (default: the quorum recovery) for `ctx`: first, where the tools are copies of the
    nodes' etcd image binaries, the step putting them in place (every procedure's commands use them)."""
    if procedure is None:
        from .procedures import QUORUM_RECOVERY

        procedure = QUORUM_RECOVERY
    return Plan(ctx, (*image_copies(ctx), *procedure.steps(ctx)), procedure.name, procedure.mode(ctx))
