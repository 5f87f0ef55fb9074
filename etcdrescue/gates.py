"""Health gates: probes polled until they pass or the deadline runs out.

Why the patience: a joining member is healthy after ~1 s, or after ~12 s when its
first publish races the leader's first heartbeat (NOTES.md), so gates poll fast
and wait long.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import GateTimeout, Interrupted, TransportError
from .hosts import Hosts
from .probes import ParseError, endpoint_health, endpoint_status, etcd_down, etcd_runs_without, member_list
from .steps.base import Gate, GateKind

POLL = 0.5


@dataclass(frozen=True)
class MemberHealth:
    name: str
    up: bool = False
    healthy: bool = False
    leader: bool = False
    raft_index: int = 0
    detail: str = ""


@dataclass(frozen=True)
class GateReport:
    gate: Gate
    ok: bool
    members: tuple[MemberHealth, ...]
    problem: str = ""
    remaining: float = 0.0


@dataclass
class _Progress:
    target_index: int | None = None
    rounds: int = 0
    history: list[str] = field(default_factory=list)


def check_down(gate: Gate, hosts: Hosts) -> GateReport:
    rows, problems = [], []
    for name in gate.members:
        m = hosts.inv.member(name)
        res = hosts.run(name, etcd_down(m.client_host, (m.client_port, m.peer_port)), timeout=15)
        rows.append(MemberHealth(name, up=not res.ok, detail="" if res.ok else "etcd still running"))
        if not res.ok:
            problems.append(f"etcd still running on {name}")
    return GateReport(gate, not problems, tuple(rows), "; ".join(problems))


def check_healthy(gate: Gate, hosts: Hosts, progress: _Progress) -> GateReport:
    inv = hosts.inv
    via = inv.seed
    paths = inv.paths
    urls = [inv.member(n).client_url for n in gate.members]
    health = {h.endpoint: h for h in hosts.fact(via.name, endpoint_health(paths, urls))}
    try:
        status = {s.endpoint: s for s in hosts.fact(via.name, endpoint_status(paths, urls))}
    except ParseError:
        status = {}
    try:
        listed = hosts.fact(via.name, member_list(paths, [via.client_url]))
    except ParseError:
        listed = []
    leaders = {s.leader for s in status.values()}
    leader_index = max((s.raft_index for s in status.values() if s.is_leader), default=None)
    if progress.target_index is None and leader_index is not None and len(leaders) == 1:
        progress.target_index = leader_index
    rows, problems = [], []
    for name in gate.members:
        url = inv.member(name).client_url
        h, s = health.get(url), status.get(url)
        rows.append(MemberHealth(
            name, up=s is not None, healthy=bool(h and h.healthy), leader=bool(s and s.is_leader),
            raft_index=s.raft_index if s else 0, detail=(h.error if h else "no answer"),
        ))
        if not (h and h.healthy):
            problems.append(f"{name} not healthy ({(h.error if h else 'no answer') or 'unhealthy'})")
        elif gate.caught_up and progress.target_index is not None and s and s.raft_index < progress.target_index:
            problems.append(f"{name} catching up (raft index {s.raft_index} < {progress.target_index})")
    if len(leaders) != 1 or None in leaders:
        problems.append("no single leader" if leaders else "no status")
    if gate.without_flag:
        for name in gate.members:
            if not hosts.run(name, etcd_runs_without(gate.without_flag), timeout=15).ok:
                problems.append(f"{name}: etcd not yet running without {gate.without_flag} (restart pending)")
    by_name = {m.name: m for m in listed if m.name}
    unstarted = [m for m in listed if not m.name]
    if listed:
        extra = sorted(set(by_name) - set(gate.members))
        if extra:
            problems.append(f"member list has members not expected here: {', '.join(extra)}")
        problems += [f"member {m.hex_id} ({','.join(m.peer_urls)}) not started yet" for m in unstarted]
        for name in gate.members:
            m = by_name.get(name)
            if m is None:
                problems.append(f"{name} not started in the member list")
            elif gate.check_peer_urls and m.peer_urls != (inv.member(name).peer_url,):
                problems.append(f"{name} advertises peer URL {','.join(m.peer_urls)}")
    else:
        problems.append("member list unavailable")
    return GateReport(gate, not problems, tuple(rows), "; ".join(problems))


def wait_gate(gate: Gate, hosts: Hosts, *, cancel: threading.Event | None = None,
              on_progress: Callable[[GateReport], None] | None = None, poll: float = POLL) -> GateReport:
    deadline = time.monotonic() + gate.timeout
    progress = _Progress()
    report = GateReport(gate, False, (), "not checked yet")
    down_since: float | None = None
    while True:
        if cancel is not None and cancel.is_set():
            raise Interrupted(f"interrupted while waiting for: {gate.title}")
        try:
            down = gate.kind is GateKind.DOWN
            report = check_down(gate, hosts) if down else check_healthy(gate, hosts, progress)
        except (ParseError, TransportError) as exc:
            report = GateReport(gate, False, report.members, str(exc))
        now = time.monotonic()
        ok, problem, wait = report.ok, report.problem, poll
        if gate.settle > 0 and gate.kind is GateKind.DOWN:
            down_since = (now if down_since is None else down_since) if ok else None
            if down_since is not None and now - down_since < gate.settle:
                left = gate.settle - (now - down_since)
                ok, problem, wait = False, f"down; making sure it stays down ({left:.1f}s more)", min(poll, left)
        remaining = max(0.0, deadline - now)
        report = GateReport(gate, ok, report.members, problem, remaining)
        if on_progress is not None:
            on_progress(report)
        if report.ok:
            return report
        if remaining <= 0:
            raise GateTimeout(f"gate '{gate.title}' not met after {gate.timeout:.0f}s: {report.problem}",
                              report=report)
        time.sleep(min(wait, remaining))
