"""Phase 5, only when etcd's revisions went backwards: restart the control plane so every watcher relists.

One host at a time and one stage at a time (all API servers, then the controllers), each behind a gate
that the component runs again: a master whose API server does not come back stops the run before the
next one is touched.
"""

from __future__ import annotations

from ..checks import ComponentsBack
from ..command import Command, chain, sh
from ..model import Context, Gate, Step


def control_plane_restart(ctx: Context) -> list[Step]:
    if not ctx.revisions.restart_control_plane:
        return []
    cp = ctx.platform.control_plane
    steps = []
    for components in cp.stages:
        names = " and ".join(c.label for c in components)
        for m in ctx.inv.members:
            undo = tuple(Command(m.name, chain(sh("test", "!", "-e", c.manifest),
                                               sh("cp", "-p", cp.kept(c, ctx.stamp), c.manifest)),
                                 f"put {c.label}'s manifest back from the copy kept before the restart")
                         for c in components if not cp.restart)
            steps.append(Step(
                key=f"restart-{components[0].name}-{m.name}",
                title=f"Restart {names} on {m.name}",
                phase="kubernetes",
                why="etcd's revisions went backwards: its watchers (API server caches, controllers' informers) "
                    "must list anew, or they wait for revisions that never come.",
                commands=tuple(cmd for c in components for cmd in cp.restart_commands(m.name, c, ctx.stamp)),
                gate=Gate(f"{names} running again on {m.name}", (m.name,), ctx.gate_timeout,
                          (ComponentsBack(components, ctx.stamp),)),
                undo=undo,
            ))
    return steps
