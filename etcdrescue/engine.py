"""Runs a plan: for each step, skip what is already in place, run the rest, then hold at its gate.

The engine is the only place that decides whether a command runs or is only
shown (dry run, which still reads the hosts through the read-only `skip_if`
probes); it reports through `Callbacks` so the CLI and the wizard render the
same events. It never imports a UI.
"""

from __future__ import annotations

import enum
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .checks import MemberHealth
from .command import Command
from .errors import EXIT_INTERRUPTED, GateTimeout, InputError, Interrupted, StepFailed, TransportError
from .faults import maybe_die
from .gates import GateReport, wait_gate
from .journal import Journal
from .leftovers import leftovers, leftovers_probe
from .model import Gate, Step
from .plan import Plan
from .probes import ParseError, endpoint_status, member_list
from .ssh.hosts import Hosts
from .ssh.transport import Result

HUMAN = 0.05
"""Seconds: a wait shorter than this was no person's (a front end that answers for the operator, `--yes`)."""


def retried(attempts: int, seconds: float) -> str:
    """The note on a command etcd refused for a while before it answered ("" when the first try answered)."""
    return f"after {attempts} tries in {seconds:.1f} s" if attempts > 1 else ""


class StepStatus(enum.IntEnum):
    PENDING = 0
    RUNNING = 1
    SKIPPED = 2
    DONE = 3
    PLANNED = 4
    FAILED = 5


class DryRunMark(enum.Enum):
    """What a dry run says about one command (the rule is `Engine._dry_run_mark`'s); the value is its wording."""

    WOULD_RUN = "would run"
    IN_PLACE = "already in place"
    AFTER_EARLIER_CHANGE = "depends on an earlier change: decided when the run gets here"
    NOT_PROBED = "dry run: not executed"


@dataclass(frozen=True)
class DryRunVerdict:
    """One command's mark in a dry run (for the totals the CLI prints, and for tests)."""

    step: str
    cmd: Command
    mark: DryRunMark


@dataclass
class StepOutcome:
    step: Step
    status: StepStatus = StepStatus.PENDING
    reason: str = ""
    duration: float = 0.0
    gate: GateReport | None = None


@dataclass
class RunResult:
    outcomes: list[StepOutcome] = field(default_factory=list)
    duration: float = 0.0
    verdicts: list[DryRunVerdict] = field(default_factory=list)
    """A dry run's mark for every command it reached, in plan order; empty for a real run."""
    kept: dict[str, list[str] | None] = field(default_factory=dict)
    """Per member, the paths the run moved or copied aside (`<path>.<tag>-<stamp>`), as the masters showed them at
    its end (None: that member could not be read); empty until the end is recorded. The tool's own stamped marks
    are not among them."""

    @property
    def aside(self) -> int | None:
        """How many paths `kept` holds; None where the end was not recorded or a member not read."""
        if not self.kept or any(v is None for v in self.kept.values()):
            return None
        return sum(len(v or ()) for v in self.kept.values())

    @property
    def ok(self) -> bool:
        return all(o.status in (StepStatus.DONE, StepStatus.SKIPPED, StepStatus.PLANNED) for o in self.outcomes)


class Callbacks:
    """No-op hooks; the CLI and the wizard override what they show."""

    def step_started(self, step: Step, index: int, total: int) -> None: ...
    def step_finished(self, outcome: StepOutcome) -> None: ...
    def command_started(self, cmd: Command) -> None: ...
    def command_output(self, cmd: Command, line: str) -> None: ...
    def command_finished(self, cmd: Command, result: Result | None, note: str) -> None: ...
    def gate_started(self, gate: Gate) -> None: ...
    def gate_progress(self, report: GateReport) -> None: ...

    def checkpoint(self, step: Step) -> None:
        """Called before every step from the engine's thread; a UI may block here to pause."""

    def confirm(self, step: Step) -> bool:
        return True


class Guard:
    """What a real run checks around its changes (the session's locks and fresh look); no-op defaults.

    Either hook refuses by raising `InputError`: the run stops with nothing (more) changed.
    """

    def before_step(self) -> None:
        """Before every step of a real run, after its confirmation."""

    def before_first_change(self) -> None:
        """Once, immediately before the run's first mutating command (after every confirmation before it)."""


ENDS = (StepFailed, TransportError, Interrupted, InputError)
"""What stops a run and is journaled as its end."""


class Engine:
    def __init__(self, plan: Plan, hosts: Hosts | None, *, journal: Journal | None = None,
                 callbacks: Callbacks | None = None, dry_run: bool = False,
                 cancel: threading.Event | None = None, guard: Guard | None = None) -> None:
        if hosts is None and not dry_run:
            raise ValueError("a real run needs hosts")
        self.plan = plan
        self.hosts = hosts
        self.journal = journal
        self.cb = callbacks or Callbacks()
        self.guard = guard or Guard()
        self.changed = False
        """A mutating command ran in this run (a run that changed nothing leaves nothing to resume)."""
        self._looked = False
        self.dry_run = dry_run
        self.cancel = cancel or threading.Event()
        self.failed_step: Step | None = None
        self.result = RunResult()
        """Outcomes so far; still complete when `run` raises."""
        self._unapplied_change = False
        """Dry run: a mutating command earlier in this run would run, so later probes would read a stale state."""

    def _log(self, event: str, **fields: object) -> None:
        if self.journal is not None:
            self.journal.write(event, **fields)

    def run(self, start_at: str | None = None) -> RunResult:
        result = self.result = RunResult()
        self._unapplied_change = False
        self.changed = self._looked = False
        t0 = time.monotonic()
        steps = self.plan.steps
        ctx = self.plan.ctx
        self._log("run_start", cluster=ctx.inv.cluster, procedure=self.plan.procedure, dry_run=self.dry_run,
                  steps=[s.key for s in steps],
                  mode=self.plan.mode, seed=ctx.seed.name, stamp=ctx.stamp, backup=ctx.backup, method=ctx.method.value,
                  backup_kind=ctx.backup_kind.value, learners=ctx.learners, start_at=start_at,
                  revisions=ctx.revisions.record(),
                  **({"fixes": {m: r.record() for m, r in ctx.fixes}} if ctx.fixes else {}))
        self.record_members("before")
        started = start_at is None
        try:
            for i, step in enumerate(steps):
                started = started or step.key == start_at
                if not started:
                    continue
                outcome = StepOutcome(step)
                result.outcomes.append(outcome)
                self._run_step(step, i, len(steps), outcome)
        except ENDS as exc:
            if self.changed:
                self.record_leftovers()
            self._log("run_end", ok=False, error=str(exc), exit_code=exc.exit_code, changed=self.changed,
                      interrupted=isinstance(exc, Interrupted))
            raise
        except KeyboardInterrupt:
            self._log("run_end", ok=False, error="interrupted (Ctrl-C)", exit_code=EXIT_INTERRUPTED,
                      changed=self.changed, interrupted=True)
            raise
        finally:
            result.duration = time.monotonic() - t0
        self.record_members("after")
        self.record_leftovers()
        self._log("run_end", ok=True, duration=round(result.duration, 3))
        return result

    def _operator_wait(self, what: str, step: Step, since: float, **fields: object) -> None:
        """Journal the time a front end held the run for the operator (a pause, a confirmation), so the report
        tells it from the tool's own. Under `HUMAN` nobody was asked (`--yes`, no pause): nothing to journal."""
        waited = time.monotonic() - since
        if waited >= HUMAN:
            self._log("operator_wait", what=what, step=step.key, seconds=round(waited, 3), **fields)

    def record_leftovers(self) -> None:
        """Journal what the run's stamp names on every master as the run ends (read-only, best effort): what
        was moved aside, and what the report tells the operator how to tidy (`leftovers`)."""
        if self.dry_run or self.hosts is None or self.journal is None:
            return
        ctx = self.plan.ctx
        found: dict[str, object] = {}
        for m in ctx.inv.members:
            try:
                seen = self.hosts.fact(m.name, leftovers_probe(ctx.platform, ctx.stamp))
            except (ParseError, TransportError) as exc:
                found[m.name] = {"error": str(exc)[:300]}
                self.result.kept[m.name] = None
            else:
                mine = leftovers(seen, ctx.platform, ctx.stamp)
                found[m.name] = [x.record() for x in mine]
                self.result.kept[m.name] = [x.path for x in mine if x.origin]
        self._log("leftovers", stamp=ctx.stamp, hosts=found)

    def record_members(self, phase: str) -> None:
        """Journal the member list as the seed sees it (for the run report); best effort.

        Asked only when the seed has a leader: without one, `member list` waits out its whole timeout
        (5 s, before every recovery of a cluster that lost its quorum), where `endpoint status` says so at once.
        That status, of every member that answers, is journaled too: each one's ID and revision, leader or not
        (before the run the survivors' own view, after it the new cluster's).
        """
        if self.dry_run or self.hosts is None or self.journal is None:
            return
        inv = self.plan.ctx.inv
        tools, seed = inv.platform.tools, inv.seed
        names = {m.client_url: m.name for m in inv.members}
        try:
            every = self.hosts.fact(seed.name, endpoint_status(tools, names))
        except (ParseError, TransportError) as exc:
            every, error = [], str(exc)[:300]
        else:
            error = ""
        status = [{"name": names.get(s.endpoint, s.endpoint), "id": f"{s.member_id:x}", "revision": s.revision,
                   "raft_index": s.raft_index, "leader": s.is_leader, "learner": s.is_learner} for s in every]
        ours = next((s for s in every if s.endpoint == seed.client_url), None)
        if ours is None or ours.leader is None:
            self._log("members", phase=phase, status=status,
                      error=error or f"{seed.name} has no leader: the member list needs one")
            return
        try:
            members = self.hosts.fact(seed.name, member_list(tools, [seed.client_url]))
        except (ParseError, TransportError) as exc:
            self._log("members", phase=phase, status=status, error=str(exc)[:300])
            return
        self._log("members", phase=phase, status=status, members=[
            {"id": m.hex_id, "name": m.name, "peer_urls": list(m.peer_urls), "client_urls": list(m.client_urls)}
            for m in members])

    def _run_step(self, step: Step, index: int, total: int, outcome: StepOutcome) -> None:
        asked = time.monotonic()
        self.cb.checkpoint(step)
        self._operator_wait("pause", step, asked)
        if self.cancel.is_set():
            raise Interrupted(f"interrupted before step {step.key}")
        if step.destructive and not self.dry_run:
            asked = time.monotonic()
            answer = self.cb.confirm(step)
            self._operator_wait("confirmation", step, asked, answer=answer)
            if not answer:
                raise Interrupted(f"operator declined: {step.destructive}")
        if not self.dry_run:
            self.guard.before_step()
        start = time.monotonic()
        outcome.status = StepStatus.RUNNING
        self.cb.step_started(step, index, total)
        self._log("step_start", step=step.key, title=step.title)
        ran = 0
        try:
            for n, cmd in enumerate(step.commands, 1):
                if self.cancel.is_set():
                    raise Interrupted(f"interrupted during step {step.key}")
                if cmd.while_gate and step.gate is not None:
                    continue
                ran += self._run_command(step, cmd)
                maybe_die(f"after-command:{step.key}:{n}")
            if step.gate is not None:
                outcome.gate, alongside = self._gate_with(step, step.gate)
                ran += alongside
        except ENDS as exc:
            outcome.status = StepStatus.FAILED
            outcome.reason = str(exc)
            self.failed_step = step
            outcome.duration = time.monotonic() - start
            self._log("step_end", step=step.key, status="failed", error=str(exc), duration=round(outcome.duration, 3),
                      undo=[{"host": c.host, "script": c.script, "purpose": c.purpose} for c in step.undo],
                      undo_note=step.undo_note)
            self.cb.step_finished(outcome)
            raise
        outcome.duration = time.monotonic() - start
        if self.dry_run:
            outcome.status = StepStatus.PLANNED
        elif ran == 0 and any(c.mutates for c in step.commands):
            outcome.status, outcome.reason = StepStatus.SKIPPED, "already done"
        else:
            outcome.status = StepStatus.DONE
        self._log("step_end", step=step.key, status=outcome.status.name.lower(), duration=round(outcome.duration, 3))
        self.cb.step_finished(outcome)
        maybe_die(f"after-step:{step.key}")

    def _run_command(self, step: Step, cmd: Command) -> int:
        """Returns 1 when a mutating command actually ran."""
        self.cb.command_started(cmd)
        if self.dry_run:
            mark = self._dry_run_mark(cmd)
            self.result.verdicts.append(DryRunVerdict(step.key, cmd, mark))
            self._log("command", step=step.key, host=cmd.host, script=cmd.script, mutates=cmd.mutates,
                      dry_run=mark.name.lower(), note=mark.value)
            self.cb.command_finished(cmd, None, mark.value)
            return 0
        assert self.hosts is not None
        if cmd.skip_if is not None:
            probe = self.hosts.run(cmd.host, cmd.skip_if, timeout=30)
            if probe.ok:
                self._log("command", step=step.key, host=cmd.host, script=cmd.script, skipped=True)
                self.cb.command_finished(cmd, None, "already done")
                return 0
        if cmd.mutates and not self._looked:
            self._looked = True
            self.guard.before_first_change()
        if cmd.upload is not None:
            self.changed = True
            self._log("upload", step=step.key, host=cmd.host, local=cmd.upload[0], remote=cmd.upload[1])
            self.hosts[cmd.host].put_file(Path(cmd.upload[0]), cmd.upload[1])
        retry = cmd.retry
        began = time.monotonic()
        deadline = began + (retry.within if retry else 0.0)
        attempt = 0
        while True:
            attempt += 1
            self.changed = self.changed or cmd.mutates  # sent is as good as done: its effect may be in place
            try:
                res = self.hosts.run(cmd.host, cmd.script, timeout=cmd.timeout,
                                     on_output=lambda line: self.cb.command_output(cmd, line))
            except TransportError as exc:
                if self._settled_after_reconnect(step, cmd, exc, attempt):
                    return 1 if cmd.mutates else 0
                continue
            refused = retry is not None and not res.ok and any(s in res.output for s in retry.on)
            self._log("command", step=step.key, host=cmd.host, script=cmd.script, mutates=cmd.mutates, exit=res.exited,
                      attempt=attempt, duration=round(res.duration, 3), stdout=res.stdout[-4000:],
                      stderr=res.stderr[-4000:], **({"refused": retry.why} if retry and refused else {}))
            if retry is None or not refused or time.monotonic() >= deadline or self.cancel.wait(retry.every):
                break
        self.cb.command_finished(cmd, res, retried(attempt, time.monotonic() - began))
        if not res.ok:
            last = (res.stderr.strip() or res.stdout.strip()).splitlines()[-1:] or ["no output"]
            still = f" (still after {attempt} tries in {retry.within:g} s: {retry.why})" if retry and refused else ""
            raise StepFailed(f"{step.key}: {cmd.host}: {cmd.purpose} failed (exit {res.exited}): "
                             f"{last[0][:300]}{still}")
        if cmd.check is not None:
            problem = cmd.check(res.stdout)
            if problem:
                raise StepFailed(f"{step.key}: {cmd.host}: {problem}")
        return 1 if cmd.mutates else 0

    def _dry_run_mark(self, cmd: Command) -> DryRunMark:
        """Decide one command's dry-run mark; the only script it may run on a host is `skip_if` (read-only).

        Rule: probes are evaluated in plan order while nothing earlier would run. Once a mutating
        command is marked WOULD_RUN, every later mutating command's probe describes a state this dry
        run did not produce (a real run would have changed the host by then), so that probe is not run
        and the command is marked AFTER_EARLIER_CHANGE rather than guessed. Hosts are not assumed
        independent: a later command on another host waits for the run as well. A mutating command
        without a probe always would run. Read-only commands and gates are never executed in a dry run,
        and without hosts nothing is probed (NOT_PROBED). A probe's transport error ends the dry run,
        as it would end a real run.
        """
        if self.hosts is None or not cmd.mutates:
            return DryRunMark.NOT_PROBED
        if self._unapplied_change:
            return DryRunMark.AFTER_EARLIER_CHANGE
        if cmd.skip_if is not None and self.hosts.run(cmd.host, cmd.skip_if, timeout=30).ok:
            return DryRunMark.IN_PLACE
        self._unapplied_change = True
        return DryRunMark.WOULD_RUN

    def _settled_after_reconnect(self, step: Step, cmd: Command, exc: TransportError, attempt: int) -> bool:
        """The connection dropped while `cmd` ran. Reconnect and ask the host what happened.

        True: the command's effect is confirmed in place, move on. False: safe to run it again
        (read-only, first time). Otherwise stop: a half-known mutation is for a human to look at.
        """
        assert self.hosts is not None
        self._log("connection_lost", step=step.key, host=cmd.host, script=cmd.script, error=str(exc))
        if cmd.skip_if is not None and self.hosts.run(cmd.host, cmd.skip_if, timeout=30).ok:
            self._log("command", step=step.key, host=cmd.host, script=cmd.script, mutates=cmd.mutates,
                      confirmed_after_reconnect=True, exit=0, attempt=attempt)
            self.cb.command_finished(cmd, None, "connection lost, reconnected: effect confirmed")
            return True
        if not cmd.mutates and attempt == 1:
            return False
        raise TransportError(f"{step.key}: {cmd.host}: connection lost during '{cmd.purpose}' and its effect is "
                             "not confirmed: stopped; check the host, then rerun with --resume")

    def _gate_with(self, step: Step, gate: Gate) -> tuple[GateReport | None, int]:
        """Hold at `gate` while the step's `while_gate` commands run in a second thread.

        Both always finish before the step does: a failed gate still waits for the commands (their
        effect must be known before the run stops), and their failure fails the step after the gate.
        A dry run marks them one after another, as it marks every command.
        """
        side = [c for c in step.commands if c.while_gate]
        if not side or self.dry_run:
            ran_first = sum(self._run_command(step, c) for c in side)
            return self._gate(gate), ran_first
        ran: list[int] = []
        failed: list[BaseException] = []

        def alongside() -> None:
            try:
                ran.extend(self._run_command(step, c) for c in side)
            except (StepFailed, TransportError, InputError) as exc:
                failed.append(exc)

        worker = threading.Thread(target=alongside, name=f"{step.key}-while-gate", daemon=True)
        worker.start()
        try:
            report = self._gate(gate)
        finally:
            worker.join()
        if failed:
            raise failed[0]
        return report, sum(ran)

    def _gate(self, gate: Gate) -> GateReport | None:
        self.cb.gate_started(gate)
        if self.dry_run:
            return None
        assert self.hosts is not None
        try:
            report = wait_gate(gate, self.hosts, cancel=self.cancel, on_progress=self.cb.gate_progress)
        except GateTimeout as exc:
            seed = self.plan.ctx.seed.name
            culprits = (*gate.learners, *(m.name for m in (exc_report(exc) or ()))) or gate.members
            culprits = tuple(sorted(culprits, key=lambda n: n == seed))  # the joiner's log says why first
            logs = self._last_logs(culprits)
            self._log("gate", title=gate.title, ok=False, error=str(exc), logs=logs)
            raise GateTimeout(str(exc), logs, exc.report) from None
        self._log("gate", title=gate.title, ok=True, remaining=round(report.remaining, 1),
                  members=[m.__dict__ for m in report.members])
        return report

    def _last_logs(self, names: tuple[str, ...]) -> dict[str, str]:
        assert self.hosts is not None
        logs = {}
        cmd = self.plan.ctx.platform.pod.logs(20)
        for name in names:
            try:
                logs[name] = self.hosts.run(name, cmd, timeout=15).stdout
            except TransportError as exc:
                logs[name] = str(exc)
        return logs


def exc_report(exc: GateTimeout) -> tuple[MemberHealth, ...] | None:
    """Members the failed gate found unhealthy (all of them when the gate never got an answer)."""
    report = exc.report
    if not isinstance(report, GateReport):
        return None
    bad = tuple(m for m in report.members if not m.healthy)
    return bad or None
