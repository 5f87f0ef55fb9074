"""Phase 4: read-only proof that the whole cluster is as the inventory says."""

from __future__ import annotations

from ..command import Command, Raw, q
from ..model import Context, Step
from .health import healthy_gate


def final_check(ctx: Context) -> Step:
    p = ctx.paths
    flag = ctx.platform.force_flag.flag
    names = tuple(m.name for m in ctx.inv.members)
    commands = tuple(
        Command(n, Raw(f"test -e {q(p.manifest)} && test ! -e {q(p.disabled_manifest)} && "
                       f"! grep -q -- {q(flag)} {q(p.manifest)}"),
                f"manifest enabled, none left in {p.disabled_dir}, no {flag}", mutates=False)
        for n in names
    )
    return Step(
        key="verify", title="Verify the whole cluster", phase="verify",
        why="Done means: every inventory member started and healthy, one leader, the inventory's peer URLs.",
        commands=commands,
        gate=healthy_gate(ctx, "all members healthy, one leader, peer URLs as in the inventory", names,
                          peer_urls=True, caught_up=True),
    )
