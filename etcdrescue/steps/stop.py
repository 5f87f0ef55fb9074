"""Phase 1: stop etcd everywhere by moving its static-pod manifest out of the kubelet's sight."""

from __future__ import annotations

from ..command import Command, Raw, q
from .base import Context, Gate, GateKind, Step


def disable_manifest(ctx: Context, host: str) -> Command:
    p = ctx.paths
    return Command(
        host=host,
        script=Raw(
            f"mkdir -p {q(p.disabled_dir)} && test ! -e {q(p.disabled_manifest)} && "
            f"mv {q(p.manifest)} {q(p.disabled_manifest)}"
        ),
        purpose="move the etcd manifest out of the kubelet's pod directory",
        skip_if=Raw(f"test ! -e {q(p.manifest)} && test -e {q(p.disabled_manifest)}"),
    )


def enable_manifest(ctx: Context, host: str) -> Command:
    p = ctx.paths
    return Command(
        host=host,
        script=Raw(f"test ! -e {q(p.manifest)} && mv {q(p.disabled_manifest)} {q(p.manifest)}"),
        purpose="move the etcd manifest back: the kubelet starts etcd",
        skip_if=Raw(f"test -e {q(p.manifest)}"),
    )


def stop_all(ctx: Context) -> Step:
    names = tuple(m.name for m in ctx.inv.members)
    return Step(
        key="stop-etcd",
        title="Stop etcd on every master",
        phase="stop",
        why="No member may run while the seed is rebuilt: a stale member would rejoin with old data.",
        commands=tuple(disable_manifest(ctx, n) for n in names),
        gate=Gate(GateKind.DOWN, "etcd is down everywhere (no process, ports closed)", names, ctx.down_timeout,
                  settle=ctx.down_settle),
        undo=tuple(enable_manifest(ctx, n) for n in names),
        destructive=f"Stop etcd on all {len(names)} masters of {ctx.inv.cluster}?",
    )
