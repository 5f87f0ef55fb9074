"""The replace's pre-flight rules: pure judgements over the hosts' facts and the cluster as a healthy member
sees it. Each refusal is one line naming the problem; nothing here asks a host.

The quorum rule: the healthy voters other than the target must make the quorum of the cluster without the
target (the voters after its entry is removed). A learner is added and caught up before it votes, so the
voters never outnumber what the healthy ones can carry.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model import Method, RevisionPath, Revisions
from ..preflight.cluster import ClusterFacts
from ..preflight.verdict import HostFacts, PreflightReport, ToolChoice, host_problems
from ..probes import MemberInfo

NO_RESTORE = Revisions(RevisionPath.CONTINUES, "nothing is restored: the member syncs from the cluster")


@dataclass(frozen=True)
class Entry:
    """The target's entry in the member list, in words for the verdict."""

    info: MemberInfo | None

    @property
    def voter(self) -> bool:
        return self.info is not None and not self.info.is_learner

    @property
    def half_added(self) -> bool:
        return self.info is not None and self.info.is_learner and not self.info.started

    def words(self, healthy: bool) -> str:
        m = self.info
        if m is None:
            return "not in the member list (added back as a learner)"
        if self.half_added:
            return f"an added, never started learner {m.hex_id} (taken over)"
        kind = "voter" if self.voter else "learner"
        state = "healthy" if healthy else "not healthy" if m.started else "never started"
        return f"{kind} {m.hex_id}, {state} (removed, then added back as a learner)"


def quorum_of(voters: int) -> int:
    return voters // 2 + 1


def membership_problems(cluster: ClusterFacts, target: str, peer_urls: dict[str, str]) -> list[str]:
    """The member list must be the inventory's: every other member a started voter, no one unknown, and the
    target (if listed) under its inventory peer URL."""
    out = []
    known = set(peer_urls.values())
    for m in cluster.members:
        if not set(m.peer_urls) & known and m.name not in peer_urls:
            what = "learner" if m.is_learner else "voter"
            out.append(f"the member list has {what} {m.hex_id} {m.name or '(never started)'} "
                       f"({','.join(m.peer_urls)}) that the inventory does not name: add it to the inventory, or "
                       f"remove it first (`member remove {m.hex_id}`)")
    for name, url in peer_urls.items():
        entry, named = cluster.listed(url), cluster.member(name)
        if entry is None and named is not None:
            out.append(f"{name} is listed with peer URL {','.join(named.peer_urls)}, the inventory says {url}: "
                       "correct the inventory first")
        elif name == target:
            continue
        elif entry is None:
            out.append(f"{name} ({url}) is not in the member list: the inventory names a member the cluster "
                       "does not have")
        elif entry.is_learner or not entry.started:
            out.append(f"{name} is {'a learner' if entry.is_learner else 'not started'} in the member list: "
                       "finish or undo that join first (one member changes at a time)")
    return out


def judge(hosts: tuple[HostFacts, ...], *, seed: str, quorum: int, data_dir: str, resuming: bool = False,
          settings: str = "etcd.conf", tools: ToolChoice | None = None, cluster: ClusterFacts | None = None,
          target: str | None = None, force: bool = False, **_: object) -> PreflightReport:
    """The replace of `target` may start (`ok_line`), or the reasons it may not, the first the one that matters.

    `force`: a healthy voter (not the leader) is rebuilt anyway. A resumed run is mid-way: the target's own
    state (stopped, removed, a learner, already a voter again) is the run's doing and not judged.
    """
    p: list[str] = []
    warnings: list[str] = []
    if target is None:
        return PreflightReport(hosts, seed, quorum, problems=("replace needs the member to replace",))
    for h in hosts:
        p += host_problems(h, data_dir, method=Method.SNAPSHOT_RESTORE, resuming=resuming, settings=settings)
    if tools is not None:
        p += tools.problems
        warnings += tools.warnings
    if cluster is None:
        return PreflightReport(hosts, seed, quorum, problems=(*p, (
            "no member is healthy: the cluster has lost its quorum, which is `etcdrescue recover`, not replace")),
            warnings=tuple(warnings))
    peer_urls = dict(cluster.inventory)
    by_name = {h.name: h for h in hosts}
    of = {name: cluster.listed(url) for name, url in peer_urls.items()}
    entry = Entry(of.get(target))
    voters = [m for m in cluster.members if not m.is_learner]
    healthy_voters = [n for n, m in of.items() if m is not None and not m.is_learner and m.started
                      and n in by_name and by_name[n].healthy]
    others = [n for n in healthy_voters if n != target]
    after = len(voters) - entry.voter
    target_healthy = target in healthy_voters
    rules: list[str] = []
    if len(healthy_voters) < quorum_of(len(voters)):
        rules.append(f"the cluster has no quorum ({len(healthy_voters)}/{len(voters)} voters healthy): that is "
                     "`etcdrescue recover`, not replace")
    elif len(others) < quorum_of(after):
        down = [n for n in peer_urls if n != target and n not in others]
        rules.append(f"replacing {target} would cost the quorum: {len(others)} healthy voters without it "
                     f"({', '.join(others) or 'none'}), {quorum_of(after)} needed once its entry is removed"
                     + (f"; bring {', '.join(down)} back first" if down else ""))
    else:
        sick = [n for n in peer_urls if n != target and n not in others]
        if sick:
            rules.append(f"{', '.join(sick)} {'is' if len(sick) == 1 else 'are'} not healthy either: a replace "
                         f"rebuilds one member while every other one is healthy (its gates wait for them, and etcd "
                         f"before 3.5.30/3.6.11 refuses a member add while a listed voter is down): bring "
                         f"{'it' if len(sick) == 1 else 'them'} back first")
    if target_healthy and not resuming and entry.info is not None:
        if cluster.leader_id == entry.info.id:
            rules.append(f"{target} is healthy and the leader: nothing to replace; to rebuild it anyway, hand the "
                         f"leadership over first (`etcdctl move-leader`), then `replace --force`")
        elif not force:
            rules.append(f"{target} is a healthy voter: nothing to replace (--force rebuilds it anyway)")
        else:
            warnings.append(f"{target} is healthy: rebuilt anyway (--force)")
    p += ([f"cannot read the cluster through {cluster.asked}: {cluster.error}"] if cluster.error else []) + (
        membership_problems(cluster, target, peer_urls) + rules)
    p += [f"alarm {a.kind.value} on member {a.hex_id}: a replace does not clear it; "
          + ("`etcdrescue reclaim-space` first" if a.kind.value == "NOSPACE" else "deal with it first")
          for a in cluster.alarms]
    chosen = seed if seed in others else (others[0] if others else seed)
    ok_line = (f"{target}: {entry.words(target_healthy)}; {len(others)} healthy voters without it, "
               f"{quorum_of(after)} needed: replace can start")
    return PreflightReport(hosts, chosen, quorum, None, tuple(p), tuple(warnings),
                           tools.tools if tools is not None and not p else None,
                           f"{chosen}, a healthy voter, announces and promotes {target}" if others else "",
                           NO_RESTORE, ok_line=ok_line)
