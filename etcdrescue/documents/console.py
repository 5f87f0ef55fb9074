"""Plain-text rendering of plans, pre-flight reports and progress for the headless CLI."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterable
from typing import TextIO

from ..command import Command
from ..engine import Callbacks, DryRunMark, DryRunVerdict, StepOutcome, StepStatus
from ..gates import GateReport
from ..model import Gate, Revisions, Step
from ..plan import Plan
from ..preflight.verdict import PreflightReport
from ..ssh.transport import Result


def preflight_lines(report: PreflightReport) -> list[str]:
    lines = []
    for h in report.hosts:
        if not h.reachable:
            lines.append(f"  {h.name:<28} UNREACHABLE  {h.error}")
            continue
        etcd = f"etcd pid {h.survey.etcd_pid}" if h.survey and h.survey.etcd_pid else "etcd not running"
        health = ("healthy" if h.healthy else h.health_error if h.health_unknown
                  else f"unhealthy{': ' + h.health_error[:60] if h.health_error else ''}")
        if h.member_id:
            health += f" (id {h.member_id})"
        data = (f"raft index {h.freshness.index}, revision {h.freshness.revision}" if h.freshness
                else f"data not readable: {h.freshness_error}" if h.freshness_error else "no member data")
        lines.append(f"  {h.name:<28} manifest {h.manifest_state.value:<8} {etcd:<18} {health}  "
                     f"data {h.member_kb // 1024} MiB ({data}), free {h.free_kb // 1024} MiB")
    b = report.backup
    if b is not None:
        if b.snapshot is not None:
            age = f", {(time.time() - b.mtime) / 3600:.1f} h old" if b.mtime else ""
            lines.append(f"  backup {b.path}: {b.kind_label}, {b.size_kb // 1024} MiB, revision {b.snapshot.revision}, "
                         f"{b.snapshot.total_keys} keys{age}")
        else:
            lines.append(f"  backup {b.path}: {b.error}")
    if report.tools is not None:
        t = report.tools
        lines.append(f"  etcd tools: {t.etcdctl}" + (f", snapshots with {t.etcdutl}" if t.etcdutl else "")
                     + (f" (copies of each master's etcd image binaries {t.version}, made by the plan's first step)"
                        if t.copied_from else ""))
    if report.seed_reason:
        lines.append(f"  seed: {report.seed_reason}")
    lines.append(f"  {report.revisions.explained}")
    for w in report.warnings:
        lines.append(f"  warning: {w}")
    return lines


def by_hand_lines(revisions: Revisions) -> list[str]:
    """After a recovery: what still remembers the old revisions, for the operator to restart."""
    todo = revisions.restart_by_hand
    if not todo:
        return []
    return ["etcd's revisions went backwards: restart by hand, in this order:", *(f"  - {t}" for t in todo)]


def plan_header(plan: Plan) -> str:
    return f"Plan for {plan.ctx.inv.cluster}: {plan.mode}; seed {plan.ctx.seed.name}; stamp {plan.ctx.stamp}"


def plan_lines(plan: Plan) -> list[str]:
    lines = [plan_header(plan)]
    for i, step in enumerate(plan.steps, 1):
        mark = "  [confirm]" if step.destructive else ""
        lines.append(f"[{i}/{len(plan.steps)}] {step.title}{mark}")
        for cmd in step.commands:
            lines.append(f"    {cmd.host}$ {cmd.script}")
        if step.gate is not None:
            lines.append(f"    gate: {step.gate.summary}")
    return lines


DRY_RUN_TOTALS = {DryRunMark.WOULD_RUN: "would run", DryRunMark.IN_PLACE: "already in place",
                  DryRunMark.AFTER_EARLIER_CHANGE: "depend on an earlier change",
                  DryRunMark.NOT_PROBED: "not executed (read-only)"}


def dry_run_totals(verdicts: Iterable[DryRunVerdict]) -> str:
    counts = Counter(v.mark for v in verdicts)
    return "DRY RUN done, nothing changed: " + ", ".join(f"{counts[m]} {w}" for m, w in DRY_RUN_TOTALS.items())


class ConsoleCallbacks(Callbacks):
    """Progress lines with timings; command output only when a command fails."""

    def __init__(self, out: TextIO = sys.stdout, *, verbose: bool = False, confirm_each: bool = False) -> None:
        self.out = out
        self.verbose = verbose
        self.confirm_each = confirm_each
        self._gate_t = 0.0
        self._last_gate_print = 0.0

    def _p(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def step_started(self, step: Step, index: int, total: int) -> None:
        self._p(f"[{index + 1}/{total}] {step.title}")

    def command_started(self, cmd: Command) -> None:
        if self.verbose:
            self._p(f"    {cmd.host}$ {cmd.script}")

    def command_finished(self, cmd: Command, result: Result | None, note: str) -> None:
        if result is None:
            self._p(f"    {cmd.host}: {cmd.purpose}: {note}" if not self.verbose else f"      {note}")
            return
        status = "ok" if result.ok else f"FAILED (exit {result.exited})"
        self._p(f"    {cmd.host}: {cmd.purpose}: {status} ({result.duration:.2f}s)" + (f", {note}" if note else ""))
        if not result.ok:
            for line in result.output.splitlines()[-10:]:
                self._p(f"      | {line}")

    def gate_started(self, gate: Gate) -> None:
        self._gate_t = time.monotonic()
        self._p(f"    gate: {gate.summary}")

    def gate_progress(self, report: GateReport) -> None:
        now = time.monotonic()
        if report.ok:
            self._p(f"    gate passed after {now - self._gate_t:.1f}s")
        elif now - self._last_gate_print > 5:
            self._last_gate_print = now
            self._p(f"    waiting ({report.remaining:.0f}s left): {report.problem}")

    def step_finished(self, outcome: StepOutcome) -> None:
        word = {StepStatus.DONE: "done", StepStatus.SKIPPED: "already done", StepStatus.PLANNED: "planned",
                StepStatus.FAILED: "FAILED"}.get(outcome.status, outcome.status.name)
        self._p(f"    -> {word} in {outcome.duration:.1f}s")

    def confirm(self, step: Step) -> bool:
        if not self.confirm_each:
            return True
        answer = input(f"{step.destructive} [y/N] ").strip().lower()
        return answer in ("y", "yes")
