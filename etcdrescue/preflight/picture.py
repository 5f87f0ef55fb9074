"""What a verdict and its plan rest on, so that a second look can be compared with the first.

The fresh look before the first change re-runs the survey and compares: which members answer and
whether the quorum is lost, each member's data reach and revision, where each manifest is, the backup's
identity and checksum, and the verdict, seed and revision path drawn from them. It refuses on a difference
that changes the verdict or the plan (`changes`). A member's data reach alone does not: a survivor without
quorum still appends to its log (an election, an uncommitted proposal), and what its data decides, the
seed and the revision path, is compared itself; such drift is only reported (`drift`).
A resumed run is mid-way by definition (etcd stopped or starting, a quorum coming back): only what the
run itself does not move is compared there (reachability, the manifests' places, the backup).
"""

from __future__ import annotations

from dataclasses import dataclass

from .verdict import BackupFacts, HostFacts, PreflightReport


@dataclass(frozen=True)
class HostPicture:
    name: str
    reachable: bool
    manifest: str
    healthy: bool | None
    """None where it is not compared (a resumed run)."""
    reach: tuple[int, int] | None
    """(raft index, revision) of its own data; None when unread or not compared."""


@dataclass(frozen=True)
class BackupPicture:
    kind: str
    size_kb: int
    mtime: int
    checksum: str
    revision: int
    error: str


@dataclass(frozen=True)
class Picture:
    verdict: str
    seed: str
    revisions: str
    hosts: tuple[HostPicture, ...]
    backup: BackupPicture | None
    members: tuple[str, ...] = ()
    """The member list a healthy member gave (`name id`, `learner` marked), for procedures that read it;
    a resumed run changes it itself and does not compare it."""
    alarms: tuple[str, ...] = ()

    @classmethod
    def of(cls, report: PreflightReport, *, resuming: bool) -> Picture:
        c = None if resuming else report.cluster
        members = tuple(sorted(f"{m.name or '(unstarted)'} {m.hex_id}{' learner' if m.is_learner else ''}"
                               for m in c.members)) if c else ()
        alarms = tuple(sorted(f"{a.kind.value} on {a.hex_id}" for a in c.alarms)) if c else ()
        return cls("" if resuming else report.verdict, report.seed, "" if resuming else report.revisions.path.value,
                   tuple(_host(h, resuming) for h in report.hosts), _backup(report.backup), members, alarms)


def _host(h: HostFacts, resuming: bool) -> HostPicture:
    reach = (h.freshness.index, h.freshness.revision) if h.freshness is not None and not resuming else None
    return HostPicture(h.name, h.reachable, h.manifest_state.value, None if resuming else h.healthy, reach)


def _backup(b: BackupFacts | None) -> BackupPicture | None:
    if b is None:
        return None
    snap = b.snapshot
    return BackupPicture(b.kind_label, b.size_kb, b.mtime, f"{snap.hash:x}" if snap else "",
                         snap.revision if snap else 0, b.error)


def _yn(flag: object) -> str:
    return "yes" if flag else "no"


def drift(before: Picture, after: Picture) -> list[str]:
    """Differences in the members' data reach, in words (they refuse only through the seed or revision path)."""
    now = {h.name: h.reach for h in after.hosts}

    def words(r: tuple[int, int] | None) -> str:
        return f"raft index {r[0]}, revision {r[1]}" if r else "unread"

    return [f"{h.name}: data {words(h.reach)} -> {words(now[h.name])}" for h in before.hosts
            if h.name in now and h.reach != now[h.name]]


def changes(before: Picture, after: Picture) -> list[str]:
    """Each difference that changes the verdict or the plan, in words ("" fields were not compared)."""
    out: list[str] = []
    if before.verdict != after.verdict:
        out.append(f"verdict: {before.verdict!r} -> {after.verdict!r}")
    if before.seed != after.seed:
        out.append(f"seed: {before.seed} -> {after.seed}")
    if before.revisions != after.revisions:
        out.append(f"revision path: {before.revisions} -> {after.revisions}")
    for what, was_seen, now_seen in (("members", before.members, after.members),
                                     ("alarms", before.alarms, after.alarms)):
        if was_seen != now_seen:
            out.append(f"{what}: {', '.join(was_seen) or 'none'} -> {', '.join(now_seen) or 'none'}")
    now = {h.name: h for h in after.hosts}
    for was in before.hosts:
        is_ = now.get(was.name)
        if is_ is None:
            continue
        if was.reachable != is_.reachable:
            out.append(f"{was.name}: reachable {_yn(was.reachable)} -> {_yn(is_.reachable)}")
        if was.manifest != is_.manifest:
            out.append(f"{was.name}: manifest {was.manifest} -> {is_.manifest}")
        if was.healthy != is_.healthy:
            out.append(f"{was.name}: healthy {_yn(was.healthy)} -> {_yn(is_.healthy)}")
    b, a = before.backup, after.backup
    if b != a:
        if b is None or a is None:
            out.append("backup: checked -> not checked" if a is None else "backup: not checked -> checked")
        else:
            for field, x, y in (("kind", b.kind, a.kind), ("size", f"{b.size_kb} KiB", f"{a.size_kb} KiB"),
                                ("mtime", b.mtime, a.mtime), ("checksum", b.checksum, a.checksum),
                                ("revision", b.revision, a.revision), ("problem", b.error, a.error)):
                if x != y:
                    out.append(f"backup {field}: {x or 'none'} -> {y or 'none'}")
    return out
