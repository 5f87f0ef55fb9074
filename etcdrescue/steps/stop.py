"""Phase 1: stop etcd everywhere by moving its static-pod manifest out of the kubelet's sight."""

from __future__ import annotations

from ..checks import EtcdDown
from ..model import Context, Gate, Step
from .seed import restore_backup, restored_dir


def stop_all(ctx: Context) -> Step:
    names = tuple(m.name for m in ctx.inv.members)
    pod = ctx.platform.pod
    restore = restore_backup(ctx)
    meanwhile = f" Meanwhile the backup is restored into a fresh directory on {ctx.seed.name}." if restore else ""
    return Step(
        key="stop-etcd",
        title="Stop etcd on every master",
        phase="stop",
        why="No member may run while the seed is rebuilt: a stale member would rejoin with old data.",
        commands=(*(pod.stop(n) for n in names), *((restore,) if restore else ())),
        gate=Gate("etcd is down everywhere (no process, ports closed)", names, ctx.down_timeout, (EtcdDown(),),
                  settle=ctx.down_settle),
        undo=tuple(pod.start(n) for n in names),
        undo_note=f"The restored copy in {restored_dir(ctx)} is left as it is." if restore else "",
        destructive=f"Stop etcd on all {len(names)} masters of {ctx.inv.cluster}?{meanwhile}",
    )
