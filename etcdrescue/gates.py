"""Holding at a gate: its checks polled until all hold (for `settle` seconds in a row) or time runs out.

Why the patience: a joining member is healthy well under 2 s after it starts, or after ~7 s
(etcd's request timeout) when the seed applied its first publish before building the snapshot it
sent it (docs/performance.md, "The slow join"; the join restarts such a member), so gates poll fast
and wait long. Why the checks of one round run side by side: the round's time is the
slowest probe's, not their sum, and the gate notices a healthy cluster that much sooner
(docs/performance.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .checks import MemberHealth, Prober, Round
from .errors import GateTimeout, Interrupted, TransportError
from .model import Gate
from .probes import ParseError

POLL = 0.1


@dataclass(frozen=True)
class GateReport:
    gate: Gate
    ok: bool
    members: tuple[MemberHealth, ...]
    problem: str = ""
    remaining: float = 0.0


def check_once(gate: Gate, hosts: Prober, state: Round) -> GateReport:
    """Every check of the gate, once; the report holds all their problems in the gate's order."""
    state.rows = {n: MemberHealth(n) for n in gate.members}
    with ThreadPoolExecutor(len(gate.checks)) as pool:
        verdicts = [pool.submit(check.judge, gate.members, hosts, state) for check in gate.checks]
    problems = [p for v in verdicts for p in v.result()]
    return GateReport(gate, not problems, tuple(state.rows.values()), "; ".join(problems))


def wait_gate(gate: Gate, hosts: Prober, *, cancel: threading.Event | None = None,
              on_progress: Callable[[GateReport], None] | None = None, poll: float = POLL) -> GateReport:
    deadline = time.monotonic() + gate.timeout
    state = Round({})
    report = GateReport(gate, False, (), "not checked yet")
    held_since: float | None = None
    while True:
        if cancel is not None and cancel.is_set():
            raise Interrupted(f"interrupted while waiting for: {gate.title}")
        try:
            report = check_once(gate, hosts, state)
        except (ParseError, TransportError) as exc:
            report = GateReport(gate, False, report.members, str(exc))
        now = time.monotonic()
        ok, problem, wait = report.ok, report.problem, poll
        if gate.settle > 0:
            held_since = (now if held_since is None else held_since) if ok else None
            if held_since is not None and now - held_since < gate.settle:
                left = gate.settle - (now - held_since)
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
