"""Pre-flight: read-only survey of every host in parallel, and the verdict.

Refuses (exit 2, nothing changed) when a host is unreachable, a file the
procedure needs is missing or malformed, the backup is absent or unreadable,
disk is short, or the cluster still has a healthy quorum.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml

from ..backup_identity import BackupIdentityError, backup_members, identity_problem, remote_reader
from ..errors import RescueError
from ..hosts import Hosts
from ..inventory import Member
from ..probes import (
    ParseError,
    SnapshotInfo,
    backup_survey,
    conf_values,
    endpoint_health,
    endpoint_status,
    host_survey,
    snapshot_status,
)
from .base import Method
from .seed import EXEC_LINE, FLAG


@dataclass
class HostFacts:
    name: str
    reachable: bool = False
    error: str = ""
    survey: dict[str, str] = field(default_factory=dict)
    manifest_path: str = ""
    manifest_problem: str = ""
    healthy: bool = False
    health_error: str = ""
    member_id: str = ""
    conf_name: str = ""
    """ETCD_NAME in this host's etcd.conf."""

    @property
    def manifest_state(self) -> str:
        on, off = self.survey.get("manifest") == "yes", self.survey.get("disabled") == "yes"
        return {(True, False): "enabled", (False, True): "disabled", (True, True): "both"}.get((on, off), "missing")

    @property
    def etcd_running(self) -> bool:
        return bool(self.survey.get("etcd_pid"))

    def kb(self, key: str) -> int:
        try:
            return int(self.survey.get(key) or 0)
        except ValueError:
            return 0


@dataclass
class BackupFacts:
    path: str
    kind: str = "missing"
    size_kb: int = 0
    mtime: int = 0
    snapshot: SnapshotInfo | None = None
    error: str = ""


@dataclass
class PreflightReport:
    hosts: list[HostFacts]
    seed: str
    quorum: int
    backup: BackupFacts | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def healthy_count(self) -> int:
        return sum(h.healthy for h in self.hosts)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def verdict(self) -> str:
        if self.ok:
            return (f"quorum lost ({self.healthy_count}/{len(self.hosts)} healthy, {self.quorum} needed): "
                    "recovery can start")
        return self.problems[0]

    def journal_fields(self) -> dict[str, Any]:
        """What the journal keeps of the pre-flight, so a report can say what the hosts looked like before."""
        return {"verdict": self.verdict,
                "hosts": [{"name": h.name, "healthy": h.healthy, "manifest": h.manifest_state, **h.survey}
                          for h in self.hosts],
                "backup": asdict(self.backup) if self.backup else None}


def survey_host(hosts: Hosts, member: Member) -> HostFacts:
    inv = hosts.inv
    facts = HostFacts(member.name)
    try:
        facts.survey = hosts.fact(member.name, host_survey(inv.paths, member.client_host,
                                                            member.client_port, member.peer_port))
        facts.reachable = True
        state = facts.manifest_state
        if state in ("enabled", "disabled"):
            facts.manifest_path = inv.paths.manifest if state == "enabled" else inv.paths.disabled_manifest
            text = hosts[member.name].read_file(facts.manifest_path).decode("utf-8", errors="replace")
            facts.manifest_problem = manifest_problem(text)
        if facts.survey.get("conf") == "yes":
            facts.conf_name = hosts.fact(member.name, conf_values(inv.paths.etcd_conf)).get("ETCD_NAME", "")
        if facts.survey.get("client_port") == "open":
            health = hosts.fact(member.name, endpoint_health(inv.paths, [member.client_url]))
            facts.healthy = bool(health and health[0].healthy)
            facts.health_error = health[0].error if health else ""
            with contextlib.suppress(ParseError):
                status = hosts.fact(member.name, endpoint_status(inv.paths, [member.client_url]))
                facts.member_id = f"{status[0].member_id:x}" if status else ""
    except (RescueError, ParseError) as exc:
        facts.error = str(exc)
    return facts


def manifest_problem(text: str) -> str:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return f"malformed YAML ({str(exc).splitlines()[0]})"
    if not isinstance(doc, dict) or not doc.get("spec", {}).get("containers"):
        return "not a pod manifest (no spec.containers)"
    if FLAG in text:
        return f"already contains {FLAG} (an earlier attempt?): put the original manifest back first"
    n = len(EXEC_LINE.findall(text))
    if n != 1:
        return f"expected one `exec etcd` line to edit, found {n}"
    return ""


def backup_kind_problem(survey: dict[str, str], seed: str, path: str) -> str:
    """Why the `backup_survey` of `path` shows no backup a run could restore ("" when it shows one).

    Shared with `etcdrescue runbook`, which asks the seed only for the kind but must refuse what a run refuses.
    """
    kind = survey.get("kind", "missing")
    if kind == "missing":
        return f"backup {path} not found on {seed}"
    if kind == "dir" and survey.get("db") != "yes":
        return f"backup {path} on {seed} has no member/snap/db: not an etcd data-dir backup"
    return ""


def survey_backup(hosts: Hosts, seed: str, path: str) -> BackupFacts:
    facts = BackupFacts(path)
    try:
        kv = hosts.fact(seed, backup_survey(path))
    except (RescueError, ParseError) as exc:
        facts.error = str(exc)
        return facts
    facts.kind = kv.get("kind", "missing")
    facts.size_kb = int(kv.get("size_kb") or 0)
    facts.mtime = int(kv.get("mtime") or 0)
    facts.error = backup_kind_problem(kv, seed, path)
    if facts.error:
        return facts
    db = path if facts.kind == "file" else path.rstrip("/") + "/member/snap/db"
    try:
        facts.snapshot = hosts.fact(seed, snapshot_status(db))
    except (RescueError, ParseError):
        facts.error = f"backup {path} on {seed}: {db} is not a readable etcd database (corrupt or truncated?)"
        return facts
    facts.error = wrong_cluster(hosts, seed, path, db)
    return facts


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


def run_preflight(hosts: Hosts, *, backup: str | None, method: Method, resuming: bool = False) -> PreflightReport:
    inv = hosts.inv
    report = PreflightReport([], seed=inv.seed.name, quorum=inv.quorum)
    with cf.ThreadPoolExecutor(max_workers=min(8, len(inv.members) + 1)) as pool:
        futures = [pool.submit(survey_host, hosts, m) for m in inv.members]
        backup_future = pool.submit(survey_backup, hosts, inv.seed.name, backup) if backup else None
        report.hosts = [f.result() for f in futures]
        report.backup = backup_future.result() if backup_future else None
    judge(report, inv.paths.data_dir, backup=backup, method=method, resuming=resuming)
    return report


def judge(report: PreflightReport, data_dir: str, *, backup: str | None, method: Method,
          resuming: bool = False) -> None:
    """Fill `report.problems`. A resumed run is mid-way by definition: partly moved files,
    a seed already serving and a quorum already back are expected there, not refused."""
    p = report.problems
    for h in report.hosts:
        if not h.reachable:
            p.append(h.error or f"{h.name}: unreachable")
            continue
        s = h.survey
        if h.manifest_state == "missing":
            p.append(f"{h.name}: etcd manifest missing (neither in the pod dir nor the disabled dir)")
        elif h.manifest_state == "both" and not resuming:
            p.append(f"{h.name}: etcd manifest present both in the pod dir and the disabled dir: resolve by hand")
        elif h.manifest_problem and not resuming and (method is Method.FORCE_NEW_CLUSTER or "YAML" in h.manifest_problem
                                     or "pod" in h.manifest_problem):
            p.append(f"{h.name}: {h.manifest_path}: {h.manifest_problem}")
        for key, what in (("conf", "etcd.conf not readable"), ("data_dir", f"data dir {data_dir} missing"),
                          ("tls", "TLS files (ca/cert/key) not readable")):
            if s.get(key) != "yes":
                p.append(f"{h.name}: {what}")
        if h.conf_name and h.conf_name != h.name:
            report.warnings.append(f"{h.name}: etcd.conf says ETCD_NAME={h.conf_name}; the recovery sets it to "
                                   f"the inventory's name {h.name}")
        if not s.get("etcdctl"):
            p.append(f"{h.name}: etcdctl not found on PATH")
        if not s.get("bash"):
            p.append(f"{h.name}: bash not available")
    seed = next(h for h in report.hosts if h.name == report.seed)
    if seed.reachable and not resuming:
        free = seed.kb("free_kb")
        if backup is None:
            if seed.survey.get("member") != "yes":
                p.append(f"{seed.name}: no member data to restore from: give --backup")
            need = seed.kb("member_kb")
        else:
            b = report.backup
            if b is None or b.error:
                p.append(b.error if b else f"backup {backup}: not checked")
            need = (b.size_kb if b else 0) * 2
        if need and seed.survey.get("free_kb") and free < need:
            p.append(f"{seed.name}: not enough free disk in {data_dir}: {free} KiB free, {need} KiB needed")
    if all(h.reachable for h in report.hosts) and report.healthy_count >= report.quorum and not resuming:
        p.insert(0, f"cluster still has a healthy quorum ({report.healthy_count}/{len(report.hosts)} members "
                    "healthy): refusing to recover a working cluster")
