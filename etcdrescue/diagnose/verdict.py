"""From the members' facts to one verdict: the procedure that fits, the members it acts on, and the evidence.

The order of the rules is the order an SRE would fix things in: a cluster that lost quorum to bad flags or
expired certificates needs those fixed, not a recovery (a recovery would start the same binaries on the same
flags and certificates); with quorum held, NOSPACE first (the cluster is read-only), then what keeps members
from starting at all (flags, certificates), then members to replace.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any

from ..inventory.model import Inventory
from ..platform.release import flags_for_36
from ..preflight.cluster import ClusterFacts
from ..preflight.verdict import SeedChoice, choose_seed
from ..probes import AlarmKind, MemberInfo
from .certs import SOON, CertRole
from .facts import MemberLook
from .signatures import Cause


class Remedy(enum.Enum):
    """What the diagnosis says fits: a procedure this tool runs (its name), one done by hand, or none."""

    NONE = "none"
    REPLACE = "replace"
    RECOVER = "recover"
    RECLAIM_SPACE = "reclaim-space"
    RENEW_CERTS = "renew-certs"
    """By hand, with the platform's own tooling (`Platform.renew_certs`)."""
    FIX_FLAGS = "fix-flags"
    """The manifest's flags do not suit the etcd binary that runs it: `etcdrescue fix-flags` rewrites them (kubeadm),
    or by hand."""
    UNKNOWN = "unknown"


class Trouble(enum.Enum):
    """What keeps one member from serving, as far as the facts tell."""

    FLAGS = "flags"
    CERTS = "certificates"
    BROKEN = "broken"
    """Its data or its identity: a replace rebuilds it."""
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Diagnosis:
    procedure: Remedy
    members: tuple[str, ...]
    evidence: tuple[str, ...]
    next_steps: tuple[str, ...]
    findings: dict[str, tuple[str, ...]]
    """Per member, in inventory order: what was seen, in words."""
    looks: tuple[MemberLook, ...]
    cluster: ClusterFacts | None
    now: dt.datetime

    def record(self) -> dict[str, Any]:
        """`--json`: {"procedure": {"name", "members"}, "members": {NAME: {"findings", ...}}, ...}."""
        members: dict[str, Any] = {}
        for look in self.looks:
            h = look.host
            status = _status(self.cluster, look.name)
            members[look.name] = {
                "findings": list(self.findings[look.name]),
                "reachable": h.reachable, "healthy": h.healthy, "health_unknown": h.health_unknown,
                "manifest": h.manifest_state.value,
                "process": ({"pid": look.process.pid, "uptime_s": look.process.uptime_s,
                             "restarts": look.process.restarts}
                            if look.process else None),
                "causes": [{"cause": f.cause.value, "line": f.line} for f in look.findings],
                "db_size": status.db_size if status else None,
                "db_size_in_use": status.db_size_in_use if status else None,
                "quota": look.quota,
                "certs": [{"role": c.role.value, "path": c.path, "error": c.error,
                           "not_after": c.not_after.isoformat() if c.not_after else None,
                           "expired": c.expired(self.now)} for c in look.certs],
                "data": ({"raft_index": h.freshness.index, "revision": h.freshness.revision}
                         if h.freshness else None),
            }
        return {"procedure": {"name": self.procedure.value, "members": list(self.members)},
                "evidence": list(self.evidence), "next": list(self.next_steps), "members": members,
                "alarms": [{"member": a.hex_id, "alarm": a.kind.value} for a in self.cluster.alarms]
                if self.cluster else []}


def _status(cluster: ClusterFacts | None, name: str) -> Any:
    m = cluster.member(name) if cluster else None
    return cluster.status_of(m.id) if cluster and m else None


def trouble(look: MemberLook, now: dt.datetime) -> Trouble:
    causes = {f.cause for f in look.findings}
    if Cause.FLAG_UNDEFINED in causes:
        return Trouble.FLAGS
    own = [c for c in look.certs if c.role in (CertRole.SERVER, CertRole.PEER)]
    if any(c.expired(now) for c in own):
        return Trouble.CERTS
    if causes & {Cause.ALREADY_BOOTSTRAPPED, Cause.TOCOMMIT_OUT_OF_RANGE, Cause.WAL_CORRUPT,
                 Cause.REMOVED_ALL_VOTERS}:
        return Trouble.BROKEN
    if causes & {Cause.ADDRESS_IN_USE, Cause.DISK_FULL, Cause.CERT_UNKNOWN_AUTHORITY}:
        return Trouble.UNKNOWN
    return Trouble.BROKEN


def member_findings(look: MemberLook, cluster: ClusterFacts | None, inv: Inventory, now: dt.datetime
                    ) -> tuple[str, ...]:
    h = look.host
    if not h.reachable:
        return (f"unreachable: {h.error}",)
    out = [f"manifest {h.manifest_state.value}" + (f" ({h.manifest_path})" if h.manifest_path else "")]
    if look.process is not None:
        out.append(f"etcd {look.process.words}")
    if h.healthy:
        out.append("healthy")
    elif h.serves:
        out.append(f"serving, with an alarm ({h.health_error})")
    elif h.health_unknown:
        out.append(h.health_error or "health unknown")
    else:
        out.append("not healthy" + (f": {h.health_error}" if h.health_error else ""))
    out += [f"log: {f.words}" for f in look.findings]
    listed = cluster.member(h.name) if cluster else None
    if cluster is not None:
        mine = _by_peer(cluster, inv.member(h.name).peer_url) or listed
        if mine is None:
            out.append("not in the member list")
        elif not mine.started:
            learner = " (learner)" if mine.is_learner else ""
            out.append(f"in the member list as {mine.hex_id}, never started{learner}")
        elif mine.is_learner:
            out.append(f"a learner ({mine.hex_id}), not a voter")
        else:
            out.append(f"member {mine.hex_id}")
        for a in cluster.alarms:
            if mine is not None and a.member_id == mine.id:
                out.append(f"alarm {a.kind.value}")
        status = cluster.status_of(mine.id) if mine else None
        if status is not None:
            out.append(f"db {_mib(status.db_size)} of quota {_mib(look.quota)}, {_mib(status.db_size_in_use)} in use"
                       + (" (leader)" if status.is_leader else ""))
    out += [c.words(now) for c in look.certs]
    if h.freshness is not None:
        out.append(f"data: raft index {h.freshness.index}, revision {h.freshness.revision}")
    elif h.freshness_error:
        out.append(f"data: unreadable ({h.freshness_error})")
    if look.error:
        out.append(f"not all read: {look.error}")
    return tuple(out)


def _mib(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB"


def _by_peer(cluster: ClusterFacts, peer_url: str) -> MemberInfo | None:
    return next((m for m in cluster.members if peer_url in m.peer_urls), None)


def diagnose(looks: tuple[MemberLook, ...], cluster: ClusterFacts | None, inv: Inventory, *,
             now: dt.datetime | None = None, inventory_file: str = "INV") -> Diagnosis:
    now = now or dt.datetime.now(dt.UTC)
    findings = {look.name: member_findings(look, cluster, inv, now) for look in looks}
    procedure, members, evidence = decide(looks, cluster, inv, now)
    steps = next_steps(procedure, members, looks, inv, inventory_file)
    return Diagnosis(procedure, members, tuple(evidence), steps, findings, looks, cluster, now)


def decide(looks: tuple[MemberLook, ...], cluster: ClusterFacts | None, inv: Inventory, now: dt.datetime
           ) -> tuple[Remedy, tuple[str, ...], list[str]]:
    healthy = [lk.name for lk in looks if lk.host.serves]
    down = [lk for lk in looks if not lk.host.serves]
    troubles = {lk.name: trouble(lk, now) for lk in down}
    evidence = [f"{len(healthy)}/{len(looks)} members serving, {inv.quorum} needed for quorum"]
    unreachable = [lk.name for lk in looks if not lk.host.reachable]
    if unreachable:
        evidence.append(f"unreachable: {', '.join(unreachable)}")
    unknown_health = [lk.name for lk in down if lk.host.health_unknown]
    if unknown_health and len(unknown_health) == len(down) and _all_reachable(down):
        evidence.append(f"health unknown on {', '.join(unknown_health)}: no etcdctl (give --etcd-tools DIR)")
        return Remedy.UNKNOWN, tuple(unknown_health), evidence

    def because(kind: Trouble) -> list[str]:
        return [lk.name for lk in down if troubles[lk.name] is kind]

    def why(names: list[str]) -> list[str]:
        return [f"{n}: {line}" for n in names for line in _trouble_lines(next(lk for lk in looks if lk.name == n), now)]

    flags, certs, broken = because(Trouble.FLAGS), because(Trouble.CERTS), because(Trouble.BROKEN)
    if len(healthy) < inv.quorum:
        evidence.append("quorum lost")
        for kind, names, procedure in ((Trouble.FLAGS, flags, Remedy.FIX_FLAGS),
                                       (Trouble.CERTS, certs, Remedy.RENEW_CERTS)):
            if names and len(healthy) + len(names) >= inv.quorum:
                evidence.append(f"fixing the {kind.value} of {', '.join(names)} brings the quorum back: a recovery "
                                "would start the same etcd on the same " + kind.value)
                return procedure, tuple(names), evidence + why(names)
        hosts = tuple(lk.host for lk in looks)
        seed, reason, _, _ = choose_seed(hosts, inv.seed.name, SeedChoice())
        evidence.append(f"seed {seed}: {reason}" if reason else f"seed {seed} (the inventory's first)")
        return Remedy.RECOVER, (seed,), evidence + why([lk.name for lk in down])
    if cluster is not None and cluster.error:
        evidence.append(f"cluster view incomplete: {cluster.error}")
    nospace = cluster.alarmed(AlarmKind.NOSPACE) if cluster else ()
    if nospace and cluster is not None:
        names = _names_of(cluster, [a.member_id for a in nospace])
        evidence.append(f"NOSPACE alarm on {', '.join(names)}: the cluster takes no writes")
        return Remedy.RECLAIM_SPACE, tuple(lk.name for lk in looks), evidence
    if flags:
        return Remedy.FIX_FLAGS, tuple(flags), evidence + why(flags)
    expired = [lk.name for lk in looks if any(c.expired(now) for c in lk.certs)]
    if certs or expired:
        names = list(dict.fromkeys(certs + expired))
        return Remedy.RENEW_CERTS, tuple(names), evidence + [
            f"{lk.name}: {c.words(now)}" for lk in looks if lk.name in names for c in lk.certs if c.expired(now)]
    corrupt = cluster.alarmed(AlarmKind.CORRUPT) if cluster else ()
    if corrupt and cluster is not None:
        names = _names_of(cluster, [a.member_id for a in corrupt])
        evidence.append(f"CORRUPT alarm on {', '.join(names)}")
        return Remedy.REPLACE, tuple(names), evidence
    if broken:
        return Remedy.REPLACE, tuple(broken), evidence + why(broken)
    if cluster is not None:
        known = {m.peer_url for m in inv.members}
        strangers = [m for m in cluster.members if not set(m.peer_urls) & known]
        if strangers:
            evidence += [f"member {m.hex_id} ({m.name or 'never started'}, {', '.join(m.peer_urls)}) is not in the "
                         "inventory: remove it by hand (`member remove`) or add it to the inventory" for m in strangers]
            return Remedy.UNKNOWN, (), evidence
        stale = [m for m in cluster.members if m.is_learner or not m.started]
        if stale:
            names = [next(x.name for x in inv.members if x.peer_url in m.peer_urls) for m in stale]
            evidence += [f"{n}: {'an unstarted' if not m.started else 'a'} learner entry {m.hex_id} blocks the next "
                         "join" for n, m in zip(names, stale, strict=True)]
            return Remedy.REPLACE, tuple(names), evidence
    unknown = because(Trouble.UNKNOWN)
    if unknown:
        return Remedy.UNKNOWN, tuple(unknown), evidence + why(unknown)
    soon = [f"{lk.name}: {c.words(now)}" for lk in looks for c in lk.certs
            if (left := c.left(now)) is not None and left < SOON]
    return Remedy.NONE, (), evidence + soon


def _all_reachable(looks: list[MemberLook]) -> bool:
    return all(lk.host.reachable for lk in looks)


def _names_of(cluster: ClusterFacts, ids: list[int]) -> list[str]:
    return [(m.name if (m := cluster.member_by_id(i)) else f"{i:x}") for i in ids]


def _trouble_lines(look: MemberLook, now: dt.datetime) -> list[str]:
    h = look.host
    if not h.reachable:
        return [f"unreachable: {h.error}"]
    lines = [f"log ({f.cause.value}): {f.line}" for f in look.findings]
    lines += [c.words(now) for c in look.certs if c.expired(now)]
    if not lines:
        process = look.process.words if look.process else "?"
        lines.append(f"not healthy ({h.health_error or 'no answer'}); etcd {process}, "
                     f"manifest {h.manifest_state.value}")
    return lines


def fix_flags_line(look: MemberLook, inv: Inventory) -> str:
    """Which flag the binary refused, and the items etcd 3.6+ takes instead where the refused ones are the
    `--experimental-*` forms 3.7 removed."""
    refused = sorted({f.detail.rsplit(": ", 1)[-1].lstrip("-") for f in look.findings
                      if f.cause is Cause.FLAG_UNDEFINED})
    flags = dict(look.flags)
    old = {n: v for n, v in flags.items() if n.startswith("experimental-")}
    rewrite = look.host.flag_rewrite
    if rewrite is not None and rewrite.set and not rewrite.problem:
        instead = (f"; for etcd {rewrite.release} replace {' '.join('--' + n for n in rewrite.drop)} with: "
                   f"{' '.join(f'--{n}={v}' for n, v in rewrite.set)}")
    else:
        instead = (f"; for etcd 3.6+ replace every --experimental-* item with: {' '.join(flags_for_36(old))}"
                   if old and any(r.startswith("experimental-") for r in refused) else "")
    return (f"on {look.name}: etcd refuses --{', --'.join(refused) or '?'} in its "
            f"{inv.platform.settings.label}{instead}")


def next_steps(procedure: Remedy, members: tuple[str, ...], looks: tuple[MemberLook, ...], inv: Inventory,
               inventory_file: str) -> tuple[str, ...]:
    i = f"-i {inventory_file}"
    if procedure is Remedy.NONE:
        return ("nothing to do",)
    if procedure is Remedy.REPLACE:
        return tuple(f"etcdrescue replace {i} {m} --dry-run, then without --dry-run" for m in members)
    if procedure is Remedy.RECOVER:
        return (f"etcdrescue recover {i} --dry-run (quorum restore from {members[0]}'s data), or with "
                "--backup PATH; then without --dry-run",)
    if procedure is Remedy.RECLAIM_SPACE:
        return (f"etcdrescue reclaim-space {i} --dry-run, then without --dry-run",)
    if procedure is Remedy.RENEW_CERTS:
        return (f"by hand, for {', '.join(members)}:", *inv.platform.renew_certs)
    if procedure is Remedy.FIX_FLAGS:
        from ..procedures import PROCEDURES

        lines = tuple(fix_flags_line(lk, inv) for lk in looks if lk.name in members)
        if inv.platform.name not in PROCEDURES[procedure.value].platforms:
            return tuple(f"{line} (by hand: copy it aside, then correct the flags)" for line in lines)
        return (f"etcdrescue fix-flags {i} --dry-run, then without --dry-run (it keeps each manifest aside and "
                "rewrites the items below)", *lines)
    return ("look at the evidence above; `etcdrescue check -i INV` shows the pre-flight",)
