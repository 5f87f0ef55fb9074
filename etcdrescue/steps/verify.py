"""Phase 4: read-only proof that the whole cluster is as the inventory says."""

from __future__ import annotations

from ..checks import GateCheck
from ..model import Context, Step
from .health import healthy_gate


def final_check(ctx: Context, extra: tuple[GateCheck, ...] = ()) -> Step:
    """`extra`: checks a procedure adds to the final gate (a replace: no alarm)."""
    names = tuple(m.name for m in ctx.inv.members)
    commands = tuple(ctx.platform.settled(n) for n in names)
    return Step(
        key="verify", title="Verify the whole cluster", phase="verify",
        why="Done means: every inventory member started and healthy, one leader, the inventory's peer URLs.",
        commands=commands,
        gate=healthy_gate(ctx, "all members healthy, one leader, peer URLs as in the inventory", names,
                          peer_urls=True, caught_up=True, extra=extra),
    )
