"""The quorum recovery: stop etcd everywhere, seed one member (from a backup or its own data), fix its peer
URL, join the others one at a time, verify, and restart the control plane where revisions went back."""

from __future__ import annotations

from ..model import Context, Step
from ..preflight.verdict import judge
from ..probes import endpoint_health
from ..steps.bastion import copy_backup
from ..steps.join import join
from ..steps.kubernetes import control_plane_restart
from ..steps.seed import seed_steps
from ..steps.stop import stop_all
from ..steps.verify import final_check
from .base import HandCheck, Procedure


def steps(ctx: Context) -> tuple[Step, ...]:
    out = [*([copy_backup(ctx)] if ctx.bastion else []), stop_all(ctx), *seed_steps(ctx)]
    out += [s for i in range(1, len(ctx.inv.members)) for s in join(ctx, i)]
    out.append(final_check(ctx))
    out += control_plane_restart(ctx)
    return tuple(out)


def mode(ctx: Context) -> str:
    joins = "joins as learners, promoted once caught up" if ctx.learners else "voting joins"
    revisions = ctx.revisions.summary + "".join(f"; {m}'s flags rewritten for etcd {r.release} ({r.words})"
                                                for m, r in ctx.fixes)
    if ctx.quorum_restore:
        return f"quorum restore from the seed's own data (--force-new-cluster); {joins}; {revisions}"
    return f"restore from backup {ctx.backup} ({ctx.method.value}); {joins}; {revisions}"


def condition(ctx: Context) -> HandCheck:
    inv = ctx.inv
    return HandCheck(
        "Quorum really lost",
        f"The cluster has really lost quorum: fewer than {inv.quorum} of {len(inv.members)} members healthy",
        ctx.seed.name, str(endpoint_health(ctx.platform.tools, [m.client_url for m in inv.members]).script),
        f"fewer than {inv.quorum} entries with `\"health\":true`. If {inv.quorum} or more are healthy the cluster "
        "still works: **stop here**, do not recover a working cluster.")


QUORUM_RECOVERY = Procedure(name="recover", title="etcd recovery", done="RECOVERED", judge=judge, steps=steps,
                            mode=mode, condition=condition)
