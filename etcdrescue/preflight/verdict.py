"""The pre-flight verdict: pure rules over the survey's typed facts.

Refuses (exit 2, nothing changed) when a host is unreachable, a file the procedure needs is
missing or malformed, the backup is absent or unreadable, disk is short, or the cluster still has
a healthy quorum. A resumed run is mid-way by definition: partly moved files, a seed already
serving and a quorum already back are expected there, not refused.
"""

from __future__ import annotations

import enum
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..etcddata.freshness import Freshness, freshest
from ..model import DEFAULT_BUMP, BackupKind, Method, RevisionPath, Revisions
from ..platform import ManifestProblem, Paths, Severity
from ..platform.release import EtcdRelease, FlagRewrite
from ..platform.tools import SEARCH, TOOLS_ROOT, EtcdTools, ImageBinaries, matching_image
from ..probes import ALARM_ERROR, HostSurvey, SnapshotInfo
from .options import RevisionOptions

if TYPE_CHECKING:
    from .cluster import ClusterFacts


class ManifestState(enum.Enum):
    ENABLED = "enabled"
    DISABLED = "disabled"
    BOTH = "both"
    MISSING = "missing"


@dataclass(frozen=True)
class HostFacts:
    name: str
    reachable: bool = False
    error: str = ""
    survey: HostSurvey | None = None
    manifest_path: str = ""
    manifest_problem: ManifestProblem | None = None
    healthy: bool = False
    health_error: str = ""
    health_unknown: bool = False
    """Its health could not be asked (no etcdctl): not counted healthy, and not called unhealthy either."""
    member_id: str = ""
    conf_name: str = ""
    """The member name in this host's etcd settings (okd3: ETCD_NAME in etcd.conf)."""
    server_version: str | None = None
    """The etcd version its manifest runs, where the platform can tell."""
    freshness: Freshness | None = None
    """How far its own data goes (read offline), when it has member data."""
    freshness_error: str = ""
    quota: int | None = None
    """The backend quota its settings give etcd (`--quota-backend-bytes`, etcd's default when unset); None: unread."""
    flag_rewrite: FlagRewrite | None = None
    """What its manifest's flags need for the etcd its image runs (`Platform.flag_rewrite`); None: nothing."""

    @property
    def serves(self) -> bool:
        """Healthy, or healthy but for its alarms: etcdctl 3.5+ calls a member with an active alarm (NOSPACE)
        unhealthy, yet it has a leader and answers reads, the member list and the alarms included."""
        return self.healthy or self.health_error.startswith(ALARM_ERROR)

    @property
    def manifest_state(self) -> ManifestState:
        s = self.survey
        if s is None:
            return ManifestState.MISSING
        return {(True, False): ManifestState.ENABLED, (False, True): ManifestState.DISABLED,
                (True, True): ManifestState.BOTH}.get((s.manifest, s.disabled), ManifestState.MISSING)

    @property
    def member_kb(self) -> int:
        return self.survey.member_kb if self.survey else 0

    @property
    def free_kb(self) -> int:
        return (self.survey.free_kb or 0) if self.survey else 0


@dataclass(frozen=True)
class BackupFacts:
    path: str
    kind: BackupKind | None = None
    """None: nothing found at the path."""
    size_kb: int = 0
    mtime: int = 0
    snapshot: SnapshotInfo | None = None
    error: str = ""
    can_bump: bool = False
    """The seed's restore tool takes --bump-revision and --mark-compacted."""

    @property
    def kind_label(self) -> str:
        return self.kind.value if self.kind else "missing"

    def failed(self, error: str) -> BackupFacts:
        return replace(self, error=error)

    def journal(self) -> dict[str, Any]:
        snap = self.snapshot
        return {"path": self.path, "kind": self.kind_label, "size_kb": self.size_kb,
                "mtime": self.mtime, "error": self.error,
                "snapshot": None if snap is None else {"hash": snap.hash, "revision": snap.revision,
                                                       "total_keys": snap.total_keys, "total_size": snap.total_size}}


@dataclass(frozen=True)
class PreflightReport:
    hosts: tuple[HostFacts, ...]
    seed: str
    quorum: int
    backup: BackupFacts | None = None
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())
    tools: EtcdTools | None = None
    """The etcd tools the plan uses on every host (None when the verdict refuses)."""
    seed_reason: str = ""
    """Why `seed` is the seed (a quorum restore takes the member with the most recent data)."""
    revisions: Revisions = field(default_factory=Revisions)
    started: float | None = None
    """When the survey began (epoch seconds): the report's wall time counts from here."""
    cluster: ClusterFacts | None = None
    """The cluster as a healthy member sees it, for procedures that ask (`Procedure.needs_cluster`)."""
    ok_line: str = ""
    """The verdict's line when the rules passed: the procedure's own words (the quorum recovery's by default)."""
    fixes: tuple[tuple[str, FlagRewrite], ...] = ()
    """Member -> the rewrite of its manifest's flags, for the procedure that makes them (`fix-flags`)."""

    @property
    def seed_etcd(self) -> str | None:
        """The etcd version the seed's manifest runs, where the platform can tell."""
        return next((h.server_version for h in self.hosts if h.name == self.seed), None)

    @property
    def healthy_count(self) -> int:
        return sum(h.healthy for h in self.hosts)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def backup_kind(self) -> BackupKind:
        return self.backup.kind if self.backup and self.backup.kind else BackupKind.DIR

    @property
    def verdict(self) -> str:
        if self.ok and self.ok_line:
            return self.ok_line
        if self.ok:
            return (f"quorum lost ({self.healthy_count}/{len(self.hosts)} healthy, {self.quorum} needed): "
                    "recovery can start")
        return self.problems[0]

    def journal_fields(self) -> dict[str, Any]:
        """What the journal keeps of the pre-flight, so a report can say what the hosts looked like before."""
        return {"verdict": self.verdict,
                "hosts": [{"name": h.name, "healthy": h.healthy, "manifest": h.manifest_state.value,
                           **(h.survey.journal() if h.survey else {}),
                           **({"raft_index": h.freshness.index, "revision": h.freshness.revision}
                              if h.freshness else {})} for h in self.hosts],
                "seed": self.seed, "seed_reason": self.seed_reason, "revisions": self.revisions.explained,
                "started": self.started, "cluster": self.cluster.journal() if self.cluster else None,
                "backup": self.backup.journal() if self.backup else None}


@dataclass(frozen=True)
class HostRule:
    """One fact every master must show: the judgement and the words the runbook's pre-flight prints."""

    holds: Callable[[HostSurvey], bool]
    problem: str
    """Why the host is refused ({data_dir} is filled in)."""
    expect: str
    """What the operator checks in the survey's output."""


HOST_RULES = (
    HostRule(lambda s: s.conf, "{settings} not readable", "`conf=yes`"),
    HostRule(lambda s: s.data_dir, "data dir {data_dir} missing", "`data_dir=yes`"),
    HostRule(lambda s: s.tls, "TLS files (ca/cert/key) not readable", "`tls=yes`"),
    HostRule(lambda s: bool(s.bash), "bash not available", "`bash=` followed by a version"),
)
MANIFEST_EXPECT = "`manifest=yes` (or `disabled=yes`, not both)"
TOOLS_EXPECT = "`etcdctl=` followed by a path (or `images=` one of etcd's version)"
DISK_EXPECT = "`free_kb` well above `member_kb`"


def survey_expectations() -> str:
    """The survey's expected output in words, from the same rules `judge` applies."""
    return ", ".join([MANIFEST_EXPECT, *(r.expect for r in HOST_RULES), TOOLS_EXPECT]) + f", and {DISK_EXPECT}"


@dataclass(frozen=True)
class SeedChoice:
    """How the seed was named: by the operator (`--seed`), or left to the verdict (the freshest data)."""

    explicit: bool = False
    accept_older: bool = False


def choose_seed(hosts: tuple[HostFacts, ...], seed: str, choice: SeedChoice) -> tuple[str, str, list[str], bool]:
    """(seed, why, problems, behind) for a quorum restore: the member whose own data goes furthest, inventory
    order breaking ties; an operator's older choice is refused unless accepted (its newer writes would be lost,
    and `behind` says so)."""
    fresh = {h.name: h.freshness for h in hosts if h.freshness is not None}
    top = freshest(fresh)
    if not top:
        return seed, "", [], False
    best = top[0]
    f = fresh[best]
    unread = [h.name for h in hosts if h.freshness is None and h.survey is not None and h.survey.member]
    note = f" ({', '.join(unread)}: data not readable)" if unread else ""
    if not choice.explicit:
        why = (f"{best} has the most recent data (raft index {f.index}, revision {f.revision})"
               + (", tied; first in the inventory" if len(top) > 1 else "") + note)
        return best, why, [], False
    mine = fresh.get(seed)
    if mine is None or seed in top:
        return seed, f"{seed} chosen by --seed" + note, [], False
    behind = f"{f.index - mine.index} raft entries and {f.revision - mine.revision} revisions"
    if choice.accept_older:
        return seed, f"{seed} chosen by --seed, accepted although {behind} behind {best}", [], True
    return seed, "", [f"{seed}: its data is behind {best} by {behind}: a quorum restore from it loses them; "
                      f"use --seed {best}, or --accept-older-seed"], True


def newest_survivor(hosts: tuple[HostFacts, ...]) -> tuple[str, int] | None:
    """(member, revision) of the survivor whose own data holds the highest revision; None when none was read."""
    read = [(h.freshness.revision, h.name) for h in hosts if h.freshness is not None]
    if not read:
        return None
    revision, name = max(read, key=lambda r: r[0])
    return name, revision


def choose_revisions(*, backup: BackupFacts | None, method: Method, older_seed: bool, tool: str,
                     options: RevisionOptions, survivor: tuple[str, int] | None = None
                     ) -> tuple[Revisions, list[str], list[str]]:
    """(revisions, problems, warnings): bump where every member comes from a restore whose tool can; else
    revisions go back and the control plane is restarted, unless the data carries on: the seed's own, or a
    backup at or above every survivor's revision (`survivor`: the highest one read).

    Every member comes from the restore here: joiners start empty and copy the seed. A data-dir copy is
    not a restore, and `--force-new-cluster` cannot bump: only snapshot restore can.
    """
    restart = options.restart_control_plane
    problems: list[str] = []
    snap = backup.snapshot if backup is not None else None
    compared = ""
    if snap is not None:
        compared = (f"; compared: backup at revision {snap.revision}, " + (
            f"newest survivor {survivor[0]} at {survivor[1]}" if survivor else "no survivor's revision readable"))
    if backup is None:
        if not older_seed:
            return Revisions(RevisionPath.CONTINUES, "quorum restore from the member with the most recent data"), [], []
        why = "the seed is behind another member"
    elif snap is not None and survivor is not None and snap.revision >= survivor[1] and not options.bump:
        return Revisions(RevisionPath.CONTINUES, f"the backup is at or above every survivor's revision{compared}"
                         ), [], []
    elif method is not Method.SNAPSHOT_RESTORE:
        why = "a data-dir copy cannot bump revisions (only snapshot restore can)"
        if options.bump:
            problems.append(f"--bump-revision needs --method snapshot-restore ({method.value} copies the data dir)")
    elif options.bump == 0:
        why = "--bump-revision 0"
    elif backup.can_bump:
        bump = options.bump or DEFAULT_BUMP
        return Revisions(RevisionPath.BUMPED, f"{tool} snapshot restore takes --bump-revision; every member comes "
                                              f"from the restore{compared}", bump=bump), [], []
    else:
        why = f"{tool} snapshot restore has no --bump-revision (etcdctl >= 3.4.27, etcdutl >= 3.5.10)"
        if options.bump:
            problems.append(f"--bump-revision {options.bump}: {why}: give --etcd-tools DIR with such tools, "
                            "or drop --bump-revision")
    why += compared
    after = ("the plan restarts the API servers, then the controllers, after the verify" if restart
             else "restart the control plane by hand (--no-control-plane-restart)")
    warning = (f"etcd's revisions will go backwards ({why}): Kubernetes watchers would wait for revisions that "
               f"never come; {after}")
    return Revisions(RevisionPath.BACKWARDS, why, restart_control_plane=restart), problems, [warning]


def storage_too_new(hosts: tuple[HostFacts, ...], seed: str, backup: BackupFacts | None) -> list[str]:
    """A snapshot whose storage version is of a newer minor than the etcd the seed's manifest runs: that etcd
    refuses to start on it (3.6.17 on a 3.7 snapshot: `version "3.7.0" is not supported`), and only after the
    seed's own data was moved aside. Known where the snapshot records one (3.6+) and the platform names the
    server's version (kubeadm's image tag)."""
    stored = backup.snapshot.storage_version if backup is not None and backup.snapshot is not None else ""
    server = next((h.server_version for h in hosts if h.name == seed and h.server_version), None)
    have, runs = EtcdRelease(stored).minor, EtcdRelease(server or "").minor
    if backup is None or have is None or runs is None or EtcdRelease(server or "").starts_on(EtcdRelease(stored)):
        return []
    return [f"backup {backup.path}: its data has storage version {stored} (written by etcd {have[0]}.{have[1]}), "
            f"but etcd on {seed} is {server} and does not start on data of a newer minor: restore it where etcd "
            f"{have[0]}.{have[1]} runs, or first convert a copy with `etcdutl migrate --target-version "
            f"{runs[0]}.{runs[1]}` of etcd {have[0]}.{have[1]}"]


def force_flag_leftovers(seed: HostFacts, method: Method) -> list[str]:
    """`--force-new-cluster` keeps members recorded in the data on some patches: learners up to 3.5.24 and 3.6.5
    and on every 3.4 (etcd PR 20896), voters in a corner case up to 3.5.21 and 3.6.0 (PR 20339). Known where
    the platform names the seed's etcd version."""
    v = seed.server_version
    if method is not Method.FORCE_NEW_CLUSTER or not EtcdRelease(v or "").force_flag_keeps_members:
        return []
    return [f"{seed.name} runs etcd {v}, whose --force-new-cluster can keep members recorded in the data (fixed in "
            "3.5.25 and 3.6.6, never in 3.4): the recovery removes stray learners from the seed's member list, and "
            "its gate stops on any other member left"]


def newer_than_backup(hosts: tuple[HostFacts, ...], backup: BackupFacts | None) -> list[str]:
    """Survivors whose own data is newer than the backup: restoring it loses those revisions."""
    if backup is None or backup.snapshot is None:
        return []
    out = []
    for h in hosts:
        if h.freshness is not None and h.freshness.revision > backup.snapshot.revision:
            lost = h.freshness.revision - backup.snapshot.revision
            out.append(f"{h.name} holds revision {h.freshness.revision}, the backup {backup.snapshot.revision}: "
                       f"restoring it loses {lost} revisions; a quorum restore from {h.name} (no --backup, "
                       f"--seed {h.name}) keeps them")
    return out


@dataclass(frozen=True)
class ToolChoice:
    tools: EtcdTools | None
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    local: tuple[tuple[str, EtcdTools], ...] = ()
    """Per member, the binaries the pre-flight itself runs there where `tools` are copies the plan has yet to make
    (the etcd image's, where the runtime unpacked them: the read-only pre-flight never copies)."""

    def on(self, name: str) -> EtcdTools | None:
        """The tools a pre-flight question asked on member `name` runs."""
        return dict(self.local).get(name, self.tools)


NO_TOOLS = "give --etcd-tools DIR (a directory on this machine holding etcdctl, and etcdutl for 3.5+)"


def needs_line(server: str | None, images: tuple[ImageBinaries, ...] = ()) -> str:
    """What `--etcd-tools` must hold for a member whose etcd runs `server`, and why its image's binaries do not
    serve (`images`: those found, none of that version)."""
    layers = f" (layers: {', '.join(i.directory for i in images)})" if images else ""
    minor = EtcdRelease(server or "").minor
    if minor is None:
        why = "; the manifest does not say which etcd version runs, so its etcd image's binaries cannot be matched"
        return NO_TOOLS + (why + layers if images else "")
    what = "etcdctl and etcdutl" if EtcdRelease(server or "").has_etcdutl else "etcdctl"
    held = f", its image layers hold etcdctl {', '.join(i.etcdctl_version for i in images)}" if images else ""
    return f"etcd {server} runs there{held}: give --etcd-tools DIR with {what} of {minor[0]}.{minor[1]}{layers}"


def choose_tools(hosts: tuple[HostFacts, ...], paths: Paths, *, seed: str, uploaded: EtcdTools | None,
                 uploaded_version: str = "", restores: bool) -> ToolChoice:
    """The etcd tools every host runs, in this order: the uploaded ones when `--etcd-tools` was given; the hosts'
    own where every host has an etcdctl of the minor its etcd runs; the binaries of each node's own etcd image
    where every host has them at the version its manifest runs; else the hosts' own, whatever their version.

    One command line must work on every host (the runbook prints one), so the hosts' own etcdctl is
    used by name when PATH finds it everywhere, by its path when it sits at the same place everywhere,
    and refused otherwise; the image's binaries sit at a different place on each node, so the plan copies
    them to one (`image_tools`). etcdutl is needed only where snapshots are read or restored: on the seed.
    """
    surveyed = [h for h in hosts if h.survey is not None]
    servers = {h.name: h.server_version for h in surveyed if h.server_version}
    if uploaded is not None:
        wrong = tuple(f"{name}: the uploaded etcdctl is {uploaded_version}, but etcd there runs {v}: give "
                         f"--etcd-tools of the same minor version" for name, v in servers.items()
                         if not EtcdRelease(v).same_minor(EtcdRelease(uploaded_version)))
        return ToolChoice(None if wrong else uploaded, wrong)
    ctl = {h.name: h.survey.etcdctl for h in surveyed if h.survey}
    own_fits = all(t is not None and (name not in servers or EtcdRelease(t.version).same_minor(
        EtcdRelease(servers[name]))) for name, t in ctl.items())
    images = {h.name: matching_image(h.survey.images, h.server_version) for h in surveyed if h.survey}
    if surveyed and not own_fits and all(images.values()):
        return image_tools(paths, {n: i for n, i in images.items() if i is not None}, seed=seed, restores=restores)
    problems: list[str] = []
    warnings: list[str] = []
    for h in surveyed:
        tool = ctl[h.name]
        if tool is None and images[h.name] is None:
            problems.append(f"{h.name}: etcdctl not found (PATH, {', '.join(SEARCH)}, the etcd image's unpacked "
                            f"layers): {needs_line(h.server_version, h.survey.images if h.survey else ())}")
        elif tool is not None and h.name in servers and not EtcdRelease(tool.version).same_minor(
                EtcdRelease(servers[h.name])):
            warnings.append(f"{h.name}: etcdctl {tool.version or '(version unknown)'} with etcd {servers[h.name]}")
    if not problems and None in ctl.values():
        problems.append("one command line cannot serve every master: " + ", ".join(
            f"{n} has only its etcd image's etcdctl" if t is None else f"{n} its own etcdctl {t.version}"
            for n, t in ctl.items()) + ": give --etcd-tools DIR")
    found = [t for t in ctl.values() if t is not None]
    if problems or not found:
        return ToolChoice(None, tuple(problems), tuple(warnings))
    if all(t.on_path for t in found):
        etcdctl = "etcdctl"
    elif len({t.path for t in found}) == 1:
        etcdctl = found[0].path
    else:
        return ToolChoice(None, ("etcdctl is not on PATH everywhere and sits at different places ("
                                 + ", ".join(f"{n}: {t.path}" for n, t in ctl.items() if t) + "): give --etcd-tools"
                                 ,), tuple(warnings))
    seed_survey = next((h.survey for h in surveyed if h.name == seed), None)
    etcdutl = seed_survey.etcdutl if seed_survey else None
    use_util = etcdutl is not None and EtcdRelease(etcdutl.version).has_etcdutl
    if restores and not use_util and not EtcdRelease(found[0].version).etcdctl_restores:
        problems.append(f"{seed}: etcdctl {found[0].version} cannot restore snapshots and etcdutl was not found: "
                        "give --etcd-tools DIR with etcdutl")
    same = {t.version for t in found}
    tools = EtcdTools(paths, etcdctl, (etcdutl.path if etcdutl.on_path is False else "etcdutl")
                      if use_util and etcdutl else "", same.pop() if len(same) == 1 else "")
    return ToolChoice(None if problems else tools, tuple(problems), tuple(warnings))


def image_tools(paths: Paths, images: dict[str, ImageBinaries], *, seed: str, restores: bool) -> ToolChoice:
    """Every node's own etcd image binaries, at the version its manifest runs: copied by the plan into
    `TOOLS_ROOT/<version>/` on every master (one command line everywhere), run where they are by the pre-flight."""
    versions = {i.etcdctl_version for i in images.values()}
    if len(versions) > 1:
        return ToolChoice(None, ("the masters run different etcd versions ("
                                 + ", ".join(f"{n}: {i.etcdctl_version}" for n, i in images.items())
                                 + "): one command line cannot serve them all; give --etcd-tools DIR",))
    version = versions.pop()
    local = tuple((n, i.tools(paths)) for n, i in images.items())
    home = f"{TOOLS_ROOT}/{version}"
    util = all(i.etcdutl for i in images.values())
    if restores and not util and not EtcdRelease(version).etcdctl_restores:
        return ToolChoice(None, (f"{seed}: its etcd image has etcdctl {version} but no etcdutl {version}, which "
                                 f"restores snapshots from 3.6: {needs_line(version)}",), (), local)
    copies = EtcdTools(paths, f"{home}/etcdctl", f"{home}/etcdutl" if util else "", version,
                       copied_from=tuple((n, i.directory) for n, i in images.items()))
    return ToolChoice(copies, (), (), local)


def judge(hosts: tuple[HostFacts, ...], *, seed: str, quorum: int, data_dir: str, backup_path: str | None,
          backup: BackupFacts | None, method: Method, resuming: bool = False, settings: str = "etcd.conf",
          tools: ToolChoice | None = None, choice: SeedChoice | None = None,
          revision_options: RevisionOptions | None = None, fix_flags: bool = False) -> PreflightReport:
    """The quorum recovery's rules. `fix_flags` (`recover --fix-flags`): a manifest whose flags its etcd refuses is
    a warning, and its rewrite goes with the report for the plan's settings edits."""
    p: list[str] = []
    warnings: list[str] = []
    fixes: list[tuple[str, FlagRewrite]] = []
    reason = ""
    older_seed = False
    if backup_path is None and not resuming:
        seed, reason, refused, older_seed = choose_seed(hosts, seed, choice or SeedChoice())
        p += refused
    elif backup_path is not None:
        warnings += newer_than_backup(hosts, backup)
        p += storage_too_new(hosts, seed, backup)
        p += live_backup(backup_path, data_dir)
    for h in hosts:
        problem, rewrite = h.manifest_problem, h.flag_rewrite
        if fix_flags and problem is not None and problem.flags and rewrite is not None:
            warnings.append(f"{h.name}: etcd {rewrite.release} refuses its manifest's flags: --fix-flags rewrites them "
                            f"({rewrite.words})")
            fixes.append((h.name, rewrite))
            h = replace(h, manifest_problem=None)
        p += host_problems(h, data_dir, method=method, resuming=resuming, settings=settings)
        if h.conf_name and h.conf_name != h.name:
            warnings.append(f"{h.name}: {settings} names the member {h.conf_name}; the recovery sets it to "
                            f"the inventory's name {h.name}")
    if tools is not None:
        p += tools.problems
        warnings += tools.warnings
    s = next(h for h in hosts if h.name == seed)
    warnings += force_flag_leftovers(s, method)
    if s.reachable and s.survey is not None and not resuming:
        if backup_path is None:
            if not s.survey.member:
                p.append(f"{s.name}: no member data to restore from: give --backup")
            need = s.member_kb
        else:
            if backup is None or backup.error:
                p.append(backup.error if backup else f"backup {backup_path}: not checked")
            need = (backup.size_kb if backup else 0) * 2
        if need and s.survey.free_kb is not None and s.free_kb < need:
            p.append(f"{s.name}: not enough free disk in {data_dir}: {s.free_kb} KiB free, {need} KiB needed")
    chosen = tools.tools if tools is not None else None
    revisions, refused, warned = choose_revisions(
        backup=backup if backup_path is not None else None, method=method, older_seed=older_seed,
        tool=chosen.restore_tool if chosen else "etcdctl", options=revision_options or RevisionOptions(),
        survivor=newest_survivor(hosts))
    p += refused
    warnings += warned
    serving = sum(h.serves for h in hosts)
    if all(h.reachable for h in hosts) and serving >= quorum and not resuming:
        sick = [h.name for h in hosts if not h.serves]
        alarmed = [h.name for h in hosts if h.serves and not h.healthy]
        p.insert(0, f"cluster still has a healthy quorum ({serving}/{len(hosts)} members "
                    "serving): refusing to recover a working cluster"
                    + (f"; serving with an alarm: {', '.join(alarmed)}" if alarmed else "")
                    + (f"; not healthy: {', '.join(sick)}" if sick else "")
                    + "; `etcdrescue diagnose` names the procedure that fits")
    if fix_flags and not fixes and not resuming:
        warnings.append("--fix-flags: every manifest's flags suit its etcd; nothing to rewrite")
    return PreflightReport(hosts, seed, quorum, backup, tuple(p), tuple(warnings),
                           tools.tools if tools is not None and not p else None, reason, revisions,
                           fixes=tuple(fixes))


def live_backup(backup_path: str, data_dir: str) -> list[str]:
    """A backup inside the live member dir is refused: the restore runs while etcd may still write there,
    and the seed's own data moves aside before the restored copy goes in."""
    member = posixpath.join(posixpath.normpath(data_dir), "member")
    path = posixpath.normpath(backup_path)
    if path == member or path.startswith(member + "/"):
        return [f"backup {backup_path} is inside the live data dir {member}: copy it elsewhere first"]
    return []


def host_problems(h: HostFacts, data_dir: str, *, method: Method, resuming: bool, settings: str) -> list[str]:
    if not h.reachable or h.survey is None:
        return [h.error or f"{h.name}: unreachable"]
    p = []
    s = h.survey
    state = h.manifest_state
    problem = h.manifest_problem
    if state is ManifestState.MISSING:
        p.append(f"{h.name}: etcd manifest missing (neither in the pod dir nor the disabled dir)")
    elif state is ManifestState.BOTH and not resuming:
        p.append(f"{h.name}: etcd manifest present both in the pod dir and the disabled dir: resolve by hand")
    elif problem is not None and not resuming and (method is Method.FORCE_NEW_CLUSTER
                                                   or problem.severity is Severity.ALWAYS):
        p.append(f"{h.name}: {h.manifest_path}: {problem.text}")
    p += [f"{h.name}: {rule.problem.format(data_dir=data_dir, settings=settings)}" for rule in HOST_RULES
          if not rule.holds(s)]
    if s.pod_copies:
        p.append(f"{h.name}: {', '.join(s.pod_copies)} also define the etcd pod: the kubelet runs every file in "
                 "that directory; move the copies out of it")
    return p
