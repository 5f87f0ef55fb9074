"""`fix-flags`, for a kubeadm manifest whose flags the etcd of its image refuses: each such member stopped, its
manifest kept aside and rewritten (`release.rewrite_for`), started, behind a gate; then the whole cluster verified.

The pre-flight rules: a kubeadm inventory; at least one member whose manifest's flags its etcd refuses and that
the rewrite knows how to translate; that refusal is what the other procedures' pre-flight stops at, so it does not
stop this one, but every other host problem still does. A quorum is not needed: members on refused flags
crash-loop, and when enough of them do, the cluster has none until they are fixed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..model import Context, Method, RevisionPath, Revisions, Step
from ..platform.profiles import KUBEADM
from ..platform.release import FlagRewrite
from ..preflight.verdict import HostFacts, PreflightReport, ToolChoice, host_problems
from ..steps.flags import fix_flags_steps
from .base import HandCheck, Procedure

NAME = "fix-flags"
UNCHANGED = Revisions(RevisionPath.CONTINUES, "fix-flags keeps every member's data: only the manifests' flags change")
NOTHING = "every manifest's flags suit its etcd: nothing for fix-flags to rewrite"


def judge(hosts: tuple[HostFacts, ...], *, seed: str, quorum: int, data_dir: str, resuming: bool = False,
          settings: str = "etcd.conf", tools: ToolChoice | None = None, **_: Any) -> PreflightReport:
    """The fix's rules over the survey's facts; the other keywords of `preflight.verdict.judge` do not apply."""
    p: list[str] = []
    warnings: list[str] = []
    for h in hosts:
        mine = h.manifest_problem is not None and h.manifest_problem.flags and h.flag_rewrite is not None
        p += host_problems(replace(h, manifest_problem=None) if mine else h, data_dir,
                           method=Method.SNAPSHOT_RESTORE, resuming=resuming, settings=settings)
    if tools is not None:
        p += tools.problems
        warnings += tools.warnings
    fixes = tuple((h.name, h.flag_rewrite) for h in hosts if h.flag_rewrite is not None and not h.flag_rewrite.problem)
    if not fixes and not resuming and not p:
        p.append(NOTHING)
    ok_line = (f"{', '.join(n for n, _ in fixes)}: {'their' if len(fixes) > 1 else 'its'} etcd refuses the "
               "manifest's flags: fix-flags can start (rewrite, one member at a time, each behind a gate; verify)"
               if fixes else "resuming fix-flags")
    chosen = tools.tools if tools is not None and not p else None
    return PreflightReport(hosts, seed, quorum, None, tuple(p), tuple(warnings), chosen, "", UNCHANGED,
                           ok_line=ok_line, fixes=fixes)


def steps(ctx: Context) -> tuple[Step, ...]:
    return fix_flags_steps(ctx)


def mode(ctx: Context) -> str:
    return "fix flags, one member at a time: " + "; ".join(f"{m} (etcd {r.release}): {r.words}" for m, r in ctx.fixes)


def condition(ctx: Context) -> HandCheck:
    name, rewrite = ctx.fixes[0] if ctx.fixes else (ctx.seed.name, FlagRewrite(""))
    return HandCheck(
        "The refused flags", f"etcd on {name} exits at every start on flags its version refuses", name,
        str(ctx.platform.pod.logs(30)),
        f"a line `flag provided but not defined: -{rewrite.drop[0] if rewrite.drop else 'FLAG'}` (or another of "
        f"{', '.join('--' + n for n in rewrite.drop) or 'the flags'}), followed by etcd's usage.")


FIX_FLAGS = Procedure(name=NAME, title="etcd fix-flags", done="FIXED", judge=judge, steps=steps, mode=mode,
                      condition=condition, platforms=(KUBEADM,),
                      outcome="every member runs on flags its etcd takes; every member healthy, one leader")
