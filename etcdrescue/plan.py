"""The ordered list of steps for one recovery: the single object the engine runs,
the dry run prints, the wizard shows and the runbook renders."""

from __future__ import annotations

from dataclasses import dataclass

from .command import Command
from .model import Context, Step
from .steps.join import join
from .steps.kubernetes import control_plane_restart
from .steps.seed import seed_steps
from .steps.stop import stop_all
from .steps.verify import final_check


@dataclass(frozen=True)
class Plan:
    ctx: Context
    steps: tuple[Step, ...]

    def step(self, key: str) -> Step:
        for s in self.steps:
            if s.key == key:
                return s
        raise KeyError(key)

    def commands(self) -> list[Command]:
        return [c for s in self.steps for c in s.commands]

    @property
    def mode(self) -> str:
        joins = "joins as learners, promoted once caught up" if self.ctx.learners else "voting joins"
        revisions = self.ctx.revisions.summary
        if self.ctx.quorum_restore:
            return f"quorum restore from the seed's own data (--force-new-cluster); {joins}; {revisions}"
        return f"restore from backup {self.ctx.backup} ({self.ctx.method.value}); {joins}; {revisions}"


def build_plan(ctx: Context) -> Plan:
    steps = [stop_all(ctx), *seed_steps(ctx)]
    steps += [s for i in range(1, len(ctx.inv.members)) for s in join(ctx, i)]
    steps.append(final_check(ctx))
    steps += control_plane_restart(ctx)
    return Plan(ctx, tuple(steps))
