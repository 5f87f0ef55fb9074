"""`reclaim-space`, for etcd's NOSPACE alarm: compact, defragment one member at a time (the leader last), raise the
quota where the data itself fills it (`--quota`), disarm, verify.

The pre-flight rules: every member serves (the quorum holds: without it, that is `recover`'s job), no CORRUPT
alarm (disarming it would hide a corruption), and something to do: the NOSPACE alarm, space worth giving back,
or a larger quota (`--quota`); `--force` runs anyway. The leader becomes the seed, so the plan's order is
followers first, leader last.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..model import Context, Method, RevisionPath, Revisions, Step
from ..preflight.verdict import HostFacts, PreflightReport, ToolChoice, host_problems
from ..probes import AlarmKind, alarm_list
from ..space import MAX_RECOMMENDED_QUOTA, human, near_quota, reclaimable
from ..steps.space import reclaim_steps
from .base import HandCheck, Procedure

if TYPE_CHECKING:
    from ..preflight.cluster import ClusterFacts

NAME = "reclaim-space"
UNCHANGED = Revisions(RevisionPath.CONTINUES, "reclaim-space keeps every member's data: the compaction drops only "
                                              "the history, and a watcher behind it relists")


def judge(hosts: tuple[HostFacts, ...], *, seed: str, quorum: int, data_dir: str, resuming: bool = False,
          settings: str = "etcd.conf", tools: ToolChoice | None = None, cluster: ClusterFacts | None = None,
          force: bool = False, quota: int | None = None, **_: Any) -> PreflightReport:
    """The reclaim's rules over the survey's facts; `force` and `quota` are the operator's `--force` and
    `--quota`. The other keywords of `preflight.verdict.judge` (backup, method, seed choice) do not apply."""
    p: list[str] = []
    warnings: list[str] = []
    for h in hosts:
        p += host_problems(h, data_dir, method=Method.SNAPSHOT_RESTORE, resuming=resuming, settings=settings)
    if tools is not None:
        p += tools.problems
        warnings += tools.warnings
    reason = ""
    if cluster is None:
        p.append(f"no member serves with a quorum ({sum(h.serves for h in hosts)}/{len(hosts)}, {quorum} needed): "
                 "reclaim-space needs a working cluster; a lost quorum is `etcdrescue recover`'s")
    elif cluster.error:
        p.append(f"the cluster's view could not be read: {cluster.error}")
    else:
        seed, reason, found, warned = _read(hosts, cluster, seed, resuming=resuming, force=force, quota=quota)
        p += found
        warnings += warned
    ok_line = _verdict_line(cluster, force, quota)
    chosen = tools.tools if tools is not None and not p else None
    return PreflightReport(hosts, seed, quorum, None, tuple(p), tuple(warnings), chosen, reason, UNCHANGED,
                           ok_line=ok_line)


def _read(hosts: tuple[HostFacts, ...], cluster: ClusterFacts, seed: str, *, resuming: bool, force: bool,
          quota: int | None) -> tuple[str, str, list[str], list[str]]:
    """(seed, why, problems, warnings) from the cluster's view."""
    p: list[str] = []
    w: list[str] = []
    names = {h.name for h in hosts}
    listed = {m.name for m in cluster.members if m.name}
    if not resuming:
        missing = sorted(names - listed)
        extra = sorted(listed - names) + [m.hex_id for m in cluster.members if not m.name]
        if missing or extra:
            p.append(f"the member list differs from the inventory (missing: {', '.join(missing) or 'none'}; not in "
                     f"the inventory or unstarted: {', '.join(extra) or 'none'}): reclaim-space acts on a complete "
                     "cluster; see `etcdrescue diagnose`")
        silent = sorted(m.name for m in cluster.members if m.name and cluster.status_of(m.id) is None)
        if silent:
            p.append(f"{', '.join(silent)}: no status (etcd down?): reclaim-space needs every member serving; "
                     "see `etcdrescue diagnose`")
    corrupt = cluster.alarmed(AlarmKind.CORRUPT)
    if corrupt:
        p.append(f"a CORRUPT alarm is raised (member {', '.join(a.hex_id for a in corrupt)}): not a space problem, "
                 "and disarming it would hide a corruption; refusing")
    nospace = cluster.alarmed(AlarmKind.NOSPACE)
    quotas = {h.name: h.quota for h in hosts if h.quota is not None}
    free = 0
    full: list[str] = []
    for m in cluster.members:
        s = cluster.status_of(m.id)
        if s is None:
            continue
        free = max(free, reclaimable(s.db_size, s.db_size_in_use))
        limit = quotas.get(m.name)
        if limit is not None and limit > 0 and near_quota(s.db_size_in_use, limit) and quota is None:
            full.append(f"{m.name} {human(s.db_size_in_use)} of {human(limit)}")
        if quota is not None and limit is not None and 0 < quota <= limit:
            p.append(f"--quota {quota}: not above {m.name}'s quota of {limit} bytes ({human(limit)})")
    if full:
        w.append(f"space in use near the quota ({', '.join(full)}): compaction frees the old revisions, but if the "
                 "data itself fills the quota, defragmenting cannot help: raise it with --quota BYTES (the plan "
                 "checks the room won before it disarms)")
    if quota is not None and quota > MAX_RECOMMENDED_QUOTA:
        w.append(f"--quota {quota}: above etcd's recommended maximum of {human(MAX_RECOMMENDED_QUOTA)}")
    if not nospace and not free and not resuming and quota is None:
        if force:
            w.append("no NOSPACE alarm and little to give back: compacting and defragmenting anyway (--force)")
        else:
            p.append("no NOSPACE alarm and nothing worth reclaiming (every member's free pages under "
                     "a fifth of its db): refusing to compact and defragment a cluster that needs neither; "
                     "--force does it anyway")
    leader = cluster.member_by_id(cluster.leader_id) if cluster.leader_id else None
    if resuming or leader is None or not leader.name:
        return seed, "", p, w
    return leader.name, f"{leader.name} is the leader: it is defragmented last", p, w


def _verdict_line(cluster: ClusterFacts | None, force: bool, quota: int | None) -> str:
    nospace = bool(cluster and cluster.alarmed(AlarmKind.NOSPACE))
    why = ("NOSPACE alarm raised" if nospace else "--quota" if quota else "--force" if force
           else "space to give back")
    more = f", raise the quota to {human(quota)}" if quota else ""
    return (f"{why}: reclaim-space can start (compact, defragment one member at a time, leader last{more}, "
            "disarm, verify)")


def steps(ctx: Context) -> tuple[Step, ...]:
    return reclaim_steps(ctx)


def mode(ctx: Context) -> str:
    quota = f"; then the quota raised to {ctx.quota} bytes, one restart at a time" if ctx.quota else ""
    return (f"reclaim space: compact to the current revision, defragment the followers, then the leader "
            f"{ctx.seed.name}{quota}; disarm the alarm")


def condition(ctx: Context) -> HandCheck:
    return HandCheck(
        "The NOSPACE alarm", "The cluster keeps its quorum and raised the NOSPACE alarm (`database space exceeded`)",
        ctx.seed.name, str(alarm_list(ctx.platform.tools, [ctx.seed.client_url]).script),
        "one line of JSON whose `alarms` hold `\"alarm\":1` (NOSPACE). No alarm: nothing to reclaim unless the "
        "databases hold much free space (`endpoint status`: `dbSize` far above `dbSizeInUse`).")


RECLAIM_SPACE = Procedure(name=NAME, title="etcd reclaim-space", done="RECLAIMED", judge=judge, steps=steps,
                          mode=mode, needs_cluster=True, takes_options=True, condition=condition,
                          outcome="no alarm, every member healthy, one leader, writes accepted")
