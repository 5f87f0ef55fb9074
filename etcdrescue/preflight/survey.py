"""The read-only survey: facts about every master and the backup, gathered in parallel.

Nothing here decides anything; `verdict.judge` does, over the typed facts gathered here.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..errors import RescueError, SurveyFailed
from ..etcddata.backup_identity import BackupIdentityError, backup_members, identity_problem, remote_reader
from ..etcddata.freshness import FreshnessError, read_freshness
from ..inventory.model import Member
from ..model import BackupKind, Method
from ..platform.tools import EtcdTools, matching_image
from ..probes import (
    Fact,
    HostSurvey,
    ParseError,
    SnapshotInfo,
    backup_survey,
    endpoint_health,
    endpoint_status,
    host_survey,
    restore_can_bump,
    snapshot_status,
)
from ..space import effective_quota
from ..ssh.hosts import Hosts
from .cluster import survey_cluster
from .verdict import (
    BackupFacts,
    HostFacts,
    PreflightReport,
    RevisionOptions,
    SeedChoice,
    ToolChoice,
    choose_tools,
    judge,
)

NO_ETCDCTL = "health unknown: no etcdctl on the host, nor in its etcd image (give --etcd-tools DIR)"


def survey_host(hosts: Hosts, member: Member, *, uploaded: bool = False) -> HostFacts:
    """Every fact about one master; a probe that cannot answer leaves its fact empty, not the others.

    Only an unreachable host (or an unreadable survey) is an error: a manifest that is not even YAML must
    still reach the verdict as that host's manifest problem, and a member that cannot be asked its health
    is simply not healthy. After the host's survey, its configuration, its data's freshness and its health
    are read side by side (each on its own shell of the one connection). A host without etcdctl (most kubeadm
    nodes) is asked its health with its etcd image's binaries of the version its manifest runs (the manifest
    read first, then); with none of those either, and none uploaded, it is not asked: unknown, not unhealthy.
    """
    inv = hosts.inv
    try:
        survey = hosts.fact(member.name, host_survey(inv.platform, member))
    except (RescueError, ParseError) as exc:
        return HostFacts(member.name, error=str(exc))
    facts = HostFacts(member.name, reachable=True, survey=survey)
    own = uploaded or survey.etcdctl is not None
    with cf.ThreadPoolExecutor(3) as pool:
        config = pool.submit(read_config, hosts, member, survey)
        fresh = pool.submit(read_member_freshness, hosts, member.name, inv.paths.member_dir) if survey.member else None
        health = None
        tools: EtcdTools | None = inv.platform.tools if own else None
        if own and survey.client_port_open:
            health = pool.submit(ask_health, hosts, member, tools)
        try:
            facts = replace(facts, **config.result())
        except (RescueError, ParseError) as exc:
            return replace(facts, reachable=False, error=f"{member.name}: {exc}")
        if not own:
            image = matching_image(survey.images, facts.server_version)
            tools = image.tools(inv.paths) if image else None
            if tools is not None and survey.client_port_open:
                health = pool.submit(ask_health, hosts, member, tools)
    for part in (fresh, health):
        if part is not None:
            facts = replace(facts, **part.result())
    if survey.client_port_open and tools is None:
        facts = replace(facts, health_error=NO_ETCDCTL, health_unknown=True)
    return facts


def read_config(hosts: Hosts, member: Member, survey: HostSurvey) -> dict[str, Any]:
    """The manifest in use (or the disabled one), the settings' member name and backend quota."""
    inv, out = hosts.inv, dict[str, Any]()
    platform = inv.platform
    if survey.manifest != survey.disabled:
        path = inv.paths.manifest if survey.manifest else inv.paths.disabled_manifest
        text = hosts[member.name].read_file(path).decode("utf-8", errors="replace")
        out = {"manifest_path": path, "manifest_problem": platform.manifest_problem(text),
               "server_version": platform.server_version(text), "flag_rewrite": platform.flag_rewrite(text)}
    if survey.conf and out.get("manifest_problem") is None:
        s = platform.settings
        values = hosts.fact(member.name, Fact(s.label, s.values_script(), s.parse_values))
        out["conf_name"] = values.get("name", "")
        out["quota"] = effective_quota(values.get("quota-backend-bytes"))
    return out


def ask_health(hosts: Hosts, member: Member, tools: EtcdTools | None = None) -> dict[str, Any]:
    """`endpoint status` first: without a leader it answers at once, where `endpoint health` would wait out
    its timeout (and a member without a leader is not healthy either way). `tools`: those of this host (the
    platform's by default)."""
    tools = tools or hosts.inv.platform.tools
    out: dict[str, Any] = {}
    try:
        status = hosts.fact(member.name, endpoint_status(tools, [member.client_url]))
        out["member_id"] = f"{status[0].member_id:x}" if status else ""
        if status and status[0].leader is None:
            out["health_error"] = "no leader"
        else:
            health = hosts.fact(member.name, endpoint_health(tools, [member.client_url]))
            out.update(healthy=bool(health and health[0].healthy), health_error=health[0].error if health else "")
    except ParseError as exc:
        out["health_error"] = out.get("health_error") or str(exc).split(": ", 2)[-1][:120]
    return out


def read_member_freshness(hosts: Hosts, name: str, member_dir: str) -> dict[str, Any]:
    """How far the member's own data goes, read offline (etcd may be down or crash-looping)."""

    def run(script: str) -> str:
        res = hosts.run(name, script, timeout=120)
        if not res.ok:
            raise FreshnessError(res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.exited}")
        return res.stdout

    try:
        return {"freshness": read_freshness(run, member_dir)}
    except (FreshnessError, RescueError) as exc:
        return {"freshness_error": str(exc)[:200]}


def backup_kind_problem(survey: dict[str, str], seed: str, path: str) -> str:
    """Why the `backup_survey` of `path` shows no backup a run could restore ("" when it shows one).

    Shared with `etcdrescue runbook`, which asks the seed only for the kind but must refuse what a run refuses.
    """
    kind = survey.get("kind", "missing")
    if kind not in ("dir", "file"):
        return f"backup {path} not found on {seed}"
    if kind == "dir" and survey.get("db") != "yes":
        return f"backup {path} on {seed} has no member/snap/db: not an etcd data-dir backup"
    return ""


def survey_backup(hosts: Hosts, seed: str, path: str, tools: EtcdTools) -> BackupFacts:
    return check_backup(hosts, seed, locate_backup(hosts, seed, path), tools)


def locate_backup(hosts: Hosts, seed: str, path: str) -> BackupFacts:
    """What needs no etcd tool: the backup's kind, size and age.

    Why apart: it can run while the hosts' surveys still decide which tools the recovery uses.
    """
    try:
        kv = hosts.fact(seed, backup_survey(path))
    except (RescueError, ParseError) as exc:
        return BackupFacts(path, error=str(exc))
    size_kb, mtime = int(kv.get("size_kb") or 0), int(kv.get("mtime") or 0)
    problem = backup_kind_problem(kv, seed, path)
    kind = BackupKind(kv["kind"]) if kv.get("kind") in ("dir", "file") else None
    facts = BackupFacts(path, kind=kind, size_kb=size_kb, mtime=mtime)
    return facts.failed(problem) if problem else facts


def backup_db(path: str, kind: BackupKind) -> str:
    return path if kind is BackupKind.FILE else path.rstrip("/") + "/member/snap/db"


def check_backup(hosts: Hosts, seed: str, found: BackupFacts, tools: EtcdTools, *, identity: bool = True
                 ) -> BackupFacts:
    """The located backup read: its snapshot status and whether it is this cluster's (unless `identity` is off:
    a drill restores into a lab that is another cluster by design), and which restore flags the chosen tools
    have, side by side."""
    if found.kind is None or found.error:
        return found
    path, db = found.path, backup_db(found.path, found.kind)
    with cf.ThreadPoolExecutor(3) as pool:
        status = pool.submit(hosts.fact, seed, snapshot_status(tools, db))
        flags = pool.submit(hosts.fact, seed, restore_can_bump(tools))
        foreign = pool.submit(wrong_cluster, hosts, seed, path, db) if identity else None
    try:
        snapshot: SnapshotInfo = status.result()
    except (RescueError, ParseError):
        return found.failed(f"backup {path} on {seed}: {db} is not a readable etcd database (corrupt or truncated?)")
    try:
        can_bump = flags.result()
    except (RescueError, ParseError) as exc:
        return found.failed(f"{seed}: cannot ask {tools.restore_tool} which restore flags it has ({exc})")
    return replace(found, snapshot=snapshot, can_bump=can_bump, error=foreign.result() if foreign else "")


def wrong_cluster(hosts: Hosts, seed: str, path: str, db: str) -> str:
    """A backup whose stored member list names none of the inventory's members is another cluster's."""

    def run(script: str) -> str:
        res = hosts.run(seed, script, timeout=30)
        if not res.ok:
            raise BackupIdentityError(res.stderr.strip() or f"exit {res.exited}")
        return res.stdout

    try:
        members = backup_members(remote_reader(run, db))
    except BackupIdentityError as exc:
        return f"backup {path} on {seed}: {db}: cannot read its member list ({exc})"
    inv = hosts.inv
    problem = identity_problem(members, [m.peer_url for m in inv.members],
                               [h for m in inv.members for h in (m.host, m.name, m.peer_host)])
    return f"backup {path} on {seed}: {problem}" if problem else ""


def restore_flags(hosts: Hosts, seed: str, staged: BackupFacts, tools: EtcdTools) -> BackupFacts:
    """A backup still on this machine: only whether the seed's restore tool can bump revisions."""
    try:
        return replace(staged, can_bump=hosts.fact(seed, restore_can_bump(tools)))
    except (RescueError, ParseError) as exc:
        return staged.failed(f"{seed}: cannot ask {tools.restore_tool} which restore flags it has ({exc})")


@dataclass(frozen=True)
class Uploaded:
    """Tools the session uploaded to every host (`--etcd-tools`): used instead of the hosts' own."""

    tools: EtcdTools
    version: str


def tool_choice(hosts: Hosts, facts: tuple[HostFacts, ...], *, uploaded: Uploaded | None, restores: bool
                ) -> ToolChoice:
    inv = hosts.inv
    return choose_tools(facts, inv.paths, seed=inv.seed.name, uploaded=uploaded.tools if uploaded else None,
                        uploaded_version=uploaded.version if uploaded else "", restores=restores)


def survey_tools(hosts: Hosts, *, restores: bool) -> ToolChoice:
    """Which etcd tools a run would use, asked of every host (read-only; no `--etcd-tools`): for a document that
    prints a run's commands without running its pre-flight (`etcdrescue runbook`)."""
    with cf.ThreadPoolExecutor(max_workers=min(8, len(hosts.inv.members))) as pool:
        facts = tuple(pool.map(lambda m: survey_host(hosts, m), hosts.inv.members))
    return tool_choice(hosts, facts, uploaded=None, restores=restores)


class PreflightProgress:
    """What a front end hears while the pre-flight runs (from its worker threads); no-op defaults."""

    def host_surveyed(self, facts: HostFacts) -> None: ...
    def backup_surveyed(self, facts: BackupFacts) -> None: ...


def run_preflight(hosts: Hosts, *, backup: str | None, method: Method, resuming: bool = False,
                  uploaded: Uploaded | None = None, seed: SeedChoice | None = None,
                  revisions: RevisionOptions | None = None, progress: PreflightProgress | None = None,
                  rules: Callable[..., PreflightReport] = judge, cluster: bool = False,
                  target: str | None = None, identity: bool = True,
                  staged: BackupFacts | None = None) -> PreflightReport:
    """Every host and the backup's location in parallel, then the backup read with the tools the hosts' survey
    chose; `rules` (the procedure's) judge the facts. With `cluster`, the cluster as a healthy member sees it is
    read too (with the chosen tools) and the rules get it, and the `target` member, as keywords. `staged`: the
    facts of a backup checked on this machine that the plan copies to the seed first (`bastion:`); only the
    seed's restore flags are asked then. `identity=False` (a drill's lab): the backup's members are not matched."""
    inv = hosts.inv
    said = progress or PreflightProgress()

    def one(member: Member) -> HostFacts:
        try:
            facts = survey_host(hosts, member, uploaded=uploaded is not None)
        except Exception as exc:
            raise SurveyFailed.of(member.name, exc) from exc
        said.host_surveyed(facts)
        return facts

    def read_backup(path: str, found: BackupFacts, tools: EtcdTools) -> BackupFacts:
        try:
            return check_backup(hosts, inv.seed.name, found, tools, identity=identity)
        except Exception as exc:
            raise SurveyFailed.of(f"backup {path}", exc) from exc

    with cf.ThreadPoolExecutor(max_workers=min(8, len(inv.members)) + 1) as pool:
        surveys = [pool.submit(one, m) for m in inv.members]
        located = (pool.submit(locate_backup, hosts, inv.seed.name, backup) if backup is not None and staged is None
                   else None)
        facts = tuple(f.result() for f in surveys)
    tools = tool_choice(hosts, facts, uploaded=uploaded, restores=backup is not None)
    backup_facts = None
    seed_tools = tools.on(inv.seed.name)
    if staged is not None:
        backup_facts = (restore_flags(hosts, inv.seed.name, staged, seed_tools) if seed_tools is not None
                        else staged.failed(f"backup {staged.path}: not checked (no etcd tools to restore it)"))
        said.backup_surveyed(backup_facts)
    elif backup is not None and located is not None:
        backup_facts = (read_backup(backup, located.result(), seed_tools) if seed_tools is not None
                        else BackupFacts(backup, error=f"backup {backup}: not checked (no etcd tools to read it)"))
        said.backup_surveyed(backup_facts)
    extra: dict[str, Any] = {}
    if cluster:
        serving = [h.name for h in sorted(facts, key=lambda h: not h.healthy) if h.serves]
        seen = survey_cluster(hosts, serving, tools.on(serving[0]) if serving else None)
        extra = {"cluster": seen, "target": target}
    report = rules(facts, seed=inv.seed.name, quorum=inv.quorum, data_dir=inv.paths.data_dir, backup_path=backup,
                   backup=backup_facts, method=method, resuming=resuming, settings=inv.platform.settings.label,
                   tools=tools, choice=seed or SeedChoice(), revision_options=revisions, **extra)
    return replace(report, cluster=extra["cluster"]) if cluster else report
