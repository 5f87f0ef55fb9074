"""What `diagnose` reads of each member besides the pre-flight's survey: its last log lines (classified), its
process, its flags (certificates, quota) and its certificates' expiry. Read-only, one member per thread."""

from __future__ import annotations

import concurrent.futures as cf
from dataclasses import dataclass

from ..errors import RescueError
from ..inventory.model import Member
from ..preflight.verdict import HostFacts
from ..probes import ParseError
from ..space import effective_quota
from ..ssh.hosts import Hosts
from .certs import SETTINGS_FLAG, CertFact, CertRole, read_cert
from .signatures import Finding, classify

LOG_LINES = 300
"""Enough to reach back past a refused flag's usage text (21-25 lines, after the line naming the flag) and a
few restarts' worth of start-up lines."""


@dataclass(frozen=True)
class Process:
    pid: int | None
    uptime_s: int | None = None
    """Seconds since the process started: a crash-looping etcd never gets far."""
    restarts: int | None = None
    """The kubelet's restart count of etcd's container (None: the runtime did not say)."""

    @property
    def words(self) -> str:
        restarts = f", {self.restarts} restarts" if self.restarts else ""
        if self.pid is None:
            return "not running" + restarts
        return f"running, pid {self.pid}" + (f", up {self.uptime_s}s" if self.uptime_s is not None else "") + restarts


@dataclass(frozen=True)
class MemberLook:
    """One member, looked at closely: the pre-flight's facts and the rest."""

    host: HostFacts
    process: Process | None = None
    log_tail: str = ""
    findings: tuple[Finding, ...] = ()
    flags: tuple[tuple[str, str], ...] = ()
    certs: tuple[CertFact, ...] = ()
    error: str = ""
    """Why part of the close look is missing (the host answered the survey, then not this)."""

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def quota(self) -> int:
        return effective_quota(dict(self.flags).get("quota-backend-bytes"))


def look_at(hosts: Hosts, member: Member, facts: HostFacts) -> MemberLook:
    """Log, process, flags and certificates of one surveyed member; an unreachable one has only its survey."""
    if not facts.reachable or facts.survey is None:
        return MemberLook(facts)
    inv = hosts.inv
    pid = facts.survey.etcd_pid
    with cf.ThreadPoolExecutor(4) as pool:
        log = pool.submit(hosts.run, member.name, str(inv.platform.pod.logs(LOG_LINES)), 20)
        up = pool.submit(hosts.run, member.name, f"ps -o etimes= -p {int(pid)}", 10) if pid else None
        settings = pool.submit(read_flags, hosts, member)
        counted = pool.submit(hosts.run, member.name, inv.platform.restarts, 10) if inv.platform.restarts else None
    errors: list[str] = []
    tail = ""
    try:
        tail = log.result().stdout
    except RescueError as exc:
        errors.append(f"log: {exc}")
    uptime = None
    if up is not None:
        try:
            text = up.result().stdout.strip()
            uptime = int(text) if text.isdigit() else None
        except RescueError as exc:
            errors.append(f"process: {exc}")
    restarts = None
    if counted is not None:
        try:
            text = counted.result().stdout.strip()
            restarts = int(text) if text.isdigit() else None
        except RescueError as exc:
            errors.append(f"restarts: {exc}")
    flags: dict[str, str] = {}
    try:
        flags = settings.result()
    except (RescueError, ParseError) as exc:
        errors.append(f"settings: {exc}")
    certs = read_certs(hosts, member, flags)
    return MemberLook(facts, Process(pid, uptime, restarts), tail, classify(tail), tuple(sorted(flags.items())), certs,
                      "; ".join(errors))


def read_flags(hosts: Hosts, member: Member) -> dict[str, str]:
    s = hosts.inv.platform.settings
    return s.parse_values(hosts.run(member.name, s.values_script(), 20).stdout)


def read_certs(hosts: Hosts, member: Member, flags: dict[str, str]) -> tuple[CertFact, ...]:
    """Server, peer, then the client certificate the tool uses, each file once (okd3's client is the peer's)."""
    paths = [(role, flags.get(flag, "")) for role, flag in SETTINGS_FLAG.items()]
    paths.append((CertRole.CLIENT, hosts.inv.paths.cert))
    out: list[CertFact] = []
    for role, path in paths:
        if not path or path in {c.path for c in out}:
            continue
        try:
            out.append(read_cert(role, path, hosts[member.name].read_file(path)))
        except (RescueError, OSError) as exc:
            out.append(CertFact(role, path, error=f"unreadable ({str(exc)[:80]})"))
    return tuple(out)
