"""Screen 4: the run. The engine works in a thread worker; this screen only renders
what the bridge reports and hands the operator's decisions back to it.

Keys: p pause after the current step, a abort (the engine stops at the next
command boundary; nothing is deleted), r retry the failed step with a new
Engine on the same plan, hosts and journal, n go on to the summary, v the
highlighted step in full, as enter does (the step list follows the running step; ↑/↓ move it).
"""

from __future__ import annotations

import enum
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import DataTable, Log, OptionList, Static

from ..checks import MemberHealth
from ..engine import Engine, StepOutcome, StepStatus
from ..errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_REFUSED, InputError, Interrupted, RescueError
from ..gates import GateReport
from ..plan import Plan
from ..session import RecoverySession, failure_lines
from .bridge import (
    Bridge,
    ConfirmRequested,
    GateProgressed,
    GateStarted,
    RunEnded,
    RunPaused,
    RunResumed,
    StepFinished,
    StepStarted,
)
from .detail import StepDetailScreen, step_title
from .widgets import ConfirmScreen, RescueFooter, RescueHeader

ICONS = {StepStatus.PENDING: ("·", "dim"), StepStatus.RUNNING: ("▶", "bold cyan"), StepStatus.SKIPPED: ("↷", "green"),
         StepStatus.DONE: ("✔", "green"), StepStatus.PLANNED: ("○", "blue"), StepStatus.FAILED: ("✘", "bold red")}


class RunOutcome(enum.Enum):
    NOT_STARTED = "not started"
    RECOVERED = "recovered"
    PLANNED = "planned"
    """A dry run went through every step."""
    ABORTED = "aborted"
    FAILED = "failed"
    REFUSED = "refused"
    """Stopped before its first change: the cluster was no longer as the pre-flight saw it."""


class Phase(enum.Enum):
    """Where the Run screen is; it decides which keys work."""

    RUNNING = "running"
    PAUSED = "paused"
    FAILED = "failed"
    ENDED = "ended"


@dataclass
class WizardRun:
    """What the wizard's run did, for the summary: nothing here is recomputed from the hosts."""

    plan: Plan
    status: RunOutcome = RunOutcome.NOT_STARTED
    error: str = ""
    outcomes: dict[str, StepOutcome] = field(default_factory=dict)
    kept: dict[str, list[str] | None] = field(default_factory=dict)
    """What the run kept aside per member, as the engine read it at the run's end (None: not read)."""
    duration: float = 0.0
    journal: Path | None = None
    members: tuple[MemberHealth, ...] = ()

    @property
    def exit_code(self) -> int:
        """The CLI's: 0 recovered (or a dry run planned), 3 failed, 130 aborted."""
        return EXIT_CODES.get(self.status, EXIT_FAILED)


EXIT_CODES = {RunOutcome.RECOVERED: EXIT_OK, RunOutcome.PLANNED: EXIT_OK, RunOutcome.ABORTED: EXIT_INTERRUPTED,
              RunOutcome.FAILED: EXIT_FAILED, RunOutcome.REFUSED: EXIT_REFUSED}


def yn(flag: bool) -> Text:
    return Text("yes", "green") if flag else Text("no", "red")


class RunScreen(Screen[WizardRun]):
    DEFAULT_CSS = """
    RunScreen #top { height: 11; }
    RunScreen #steps { width: 1fr; height: 100%; max-height: 100%; border: round $primary; padding: 0;
                       text-wrap: nowrap; text-overflow: ellipsis; }
    RunScreen #steps:focus { border: round $accent; }
    RunScreen #step-detail { height: auto; max-height: 3; padding: 0 1; background: $boost; }
    RunScreen #gatebox { width: 40%; min-width: 36; max-width: 44; border: round $secondary; }
    RunScreen #gate-title { height: auto; max-height: 2; }
    RunScreen #gate { height: auto; }
    RunScreen Log { height: 1fr; border: round $panel; }
    RunScreen #status { height: auto; max-height: 4; padding: 0 1; text-style: bold; }
    RunScreen .failed { color: $error; }
    RunScreen .done { color: $success; }
    RunScreen .aborted { color: $warning; }
    """
    BINDINGS = [Binding("p", "pause", "Pause/resume"), Binding("a", "abort", "Abort"),
                Binding("r", "retry", "Retry step"), Binding("n", "next", "Summary"),
                Binding("v", "view_step", "Step")]

    def __init__(self, session: RecoverySession, plan: Plan, *, dry_run: bool, ask: bool, confirm_once: bool = False,
                 done: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.session, self.plan, self.dry_run = session, plan, dry_run
        self.cancel = threading.Event()
        self.bridge = Bridge(self.post_message, ask=ask and not dry_run, cancel=self.cancel)
        self.engine: Engine | None = None
        self.bridge.confirm_once = confirm_once
        self.phase = Phase.RUNNING
        self.status: dict[str, StepStatus] = {s.key: StepStatus.PENDING for s in plan.steps}
        for key in done:  # a resumed run: what the journal shows finished
            if key in self.status:
                self.status[key] = StepStatus.DONE
        self.start_at = session.start_at
        self.started: dict[str, float] = {}
        self.waiting_for: str = ""
        self.gate_deadline = 0.0
        self.gate_report: GateReport | None = None
        journal = session.journal
        self.record = WizardRun(plan, journal=journal.path if journal and not dry_run else None)
        self.failed_step = ""

    def compose(self) -> ComposeResult:
        yield RescueHeader()
        with Horizontal(id="top"):
            yield OptionList(*(self.step_line(i) for i in range(len(self.plan.steps))), id="steps")
            with Vertical(id="gatebox"):
                yield Static("No health gate yet", id="gate-title")
                yield DataTable(id="gate", show_cursor=False)
        yield Static("", id="step-detail")
        yield Log(id="log", max_lines=20000)
        yield Static("", id="status")
        yield RescueFooter()

    def on_mount(self) -> None:
        self.query_one("#steps", OptionList).border_title = "Steps"
        self.query_one("#gatebox").border_title = "Health gate"
        self.query_one("#gatebox").border_subtitle = "★ leader"
        self.query_one("#log", Log).border_title = "Commands and output"
        gate = self.query_one("#gate", DataTable)
        for c in ("member", "up", "healthy", "raft"):
            gate.add_column(c, key=c)
        self.set_interval(0.05, self.flush_log)
        self.set_interval(0.5, self.tick)
        self.render_steps()
        self.set_status("Running…" if not self.dry_run else "Dry run: only the read-only probes run")
        self.run_engine(self.start_at)

    # -- the engine -------------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="engine")
    def run_engine(self, start_at: str | None) -> None:
        engine = self.session.engine(self.plan, self.bridge, dry_run=self.dry_run, cancel=self.cancel)
        self.engine = engine
        t0 = time.monotonic()
        try:
            engine.run(start_at=start_at)
        except Interrupted as exc:
            self.post_message(RunEnded(False, str(exc), interrupted=True, failed_step=self.current_key(),
                                       duration=time.monotonic() - t0))
        except InputError as exc:
            self.post_message(RunEnded(False, str(exc), refused=not self.session.changed,
                                       failed_step=self.current_key(), duration=time.monotonic() - t0))
        except RescueError as exc:
            self.explain_failure(exc)
            self.post_message(RunEnded(False, str(exc), failed_step=self.current_key(),
                                       duration=time.monotonic() - t0))
        except Exception as exc:  # a bug must not leave the operator with a frozen screen
            self.post_message(RunEnded(False, f"unexpected error: {exc!r}", failed_step=self.current_key(),
                                       duration=time.monotonic() - t0))
        else:
            self.post_message(RunEnded(True, duration=time.monotonic() - t0))

    def explain_failure(self, exc: RescueError) -> None:
        """Into the log: the etcd log lines the engine fetched, and how to undo the step by hand."""
        b = self.bridge
        b.log(f"FAILED: {exc}")
        for line in failure_lines(exc, b.current, log_lines=10):
            b.log(line)
        b.log("r: retry this step (what is already done is skipped)   a: abort and leave everything as it is")

    def current_key(self) -> str:
        return self.bridge.current.key if self.bridge.current is not None else ""

    # -- messages from the bridge -----------------------------------------------------
    def on_step_started(self, msg: StepStarted) -> None:
        self.status[msg.step.key] = StepStatus.RUNNING
        self.started[msg.step.key] = time.monotonic()
        self.waiting_for = ""
        self.render_steps()
        self.follow(msg.step.key)

    def on_step_finished(self, msg: StepFinished) -> None:
        self.status[msg.outcome.step.key] = msg.outcome.status
        self.record.outcomes[msg.outcome.step.key] = msg.outcome
        self.render_steps()

    def on_gate_started(self, msg: GateStarted) -> None:
        self.gate_deadline = time.monotonic() + msg.gate.timeout
        self.gate_report = None
        table = self.query_one("#gate", DataTable)
        table.clear()
        for name in msg.gate.members:
            table.add_row(name.split(".")[0][:10], "…", "…", "", key=name)
        self.tick()

    def on_gate_progressed(self, msg: GateProgressed) -> None:
        r = msg.report
        self.gate_report = r
        self.gate_deadline = time.monotonic() + r.remaining
        if len(r.members) >= len(self.record.members):
            self.record.members = r.members
        table = self.query_one("#gate", DataTable)
        for m in r.members:
            if m.name in table.rows:
                member = m.name.split(".")[0][:10] + (" ★" if m.leader else "")
                for col, value in zip(("member", "up", "healthy", "raft"),
                                      (member, yn(m.up), yn(m.healthy), str(m.raft_index or "")), strict=True):
                    table.update_cell(m.name, col, value, update_width=True)
        self.tick()

    def on_confirm_requested(self, msg: ConfirmRequested) -> None:
        self.waiting_for = msg.step.key
        self.render_steps()
        self.follow(msg.step.key)
        detail = (f"Step: {msg.step.title}\nHosts: {', '.join(msg.step.hosts)}\n"
                  f"What it replaces is kept aside, not deleted (suffix .etcdrescue-{self.plan.ctx.stamp}).")
        self.app.push_screen(ConfirmScreen(msg.step.destructive, detail),
                             callback=lambda ok: msg.reply.put(bool(ok)))

    def on_run_paused(self, msg: RunPaused) -> None:
        self.phase = Phase.PAUSED
        self.set_status(f"Paused before: {msg.step.title} (p resumes, a aborts)")
        self.refresh_bindings()

    def on_run_resumed(self, msg: RunResumed) -> None:
        self.phase = Phase.RUNNING
        self.set_status("Running…")
        self.refresh_bindings()

    def on_run_ended(self, msg: RunEnded) -> None:
        self.record.duration += msg.duration
        self.record.outcomes.update(self.bridge.outcomes)
        if self.engine is not None:
            self.record.kept = dict(self.engine.result.kept)
        self.waiting_for = ""
        if msg.ok:
            self.phase = Phase.ENDED
            self.record.status = RunOutcome.PLANNED if self.dry_run else RunOutcome.RECOVERED
            self.record.error = ""
            self.set_status("Dry run complete: every command marked, nothing changed. n: summary" if self.dry_run
                            else f"{self.session.procedure.done.capitalize()} in {self.record.duration:.0f}s: every "
                                 "step done. n: summary", "done")
        elif msg.interrupted:
            self.mark_aborted(msg.error)
        elif msg.refused:
            self.record.status, self.record.error = RunOutcome.REFUSED, msg.error
            self.dismiss(self.record)
            return
        else:
            self.phase = Phase.FAILED
            self.failed_step = msg.failed_step
            self.record.status, self.record.error = RunOutcome.FAILED, msg.error
            self.set_status(f"FAILED: {msg.error}\nr: retry this step   a: abort (leave it as it is)", "failed")
        self.render_steps()
        self.refresh_bindings()

    def mark_aborted(self, why: str) -> None:
        self.phase = Phase.ENDED
        self.record.status, self.record.error = RunOutcome.ABORTED, why
        done = [s.title for s in self.plan.steps if self.status[s.key] in (StepStatus.DONE, StepStatus.SKIPPED)]
        self.set_status(f"ABORTED ({why}). Steps done: {len(done)} of {len(self.plan.steps)}. Nothing was deleted: "
                        f"old data kept with suffix .etcdrescue-{self.plan.ctx.stamp}. n: summary", "aborted")

    # -- rendering --------------------------------------------------------------------
    def set_status(self, text: str, cls: str = "") -> None:
        status = self.query_one("#status", Static)
        status.update(Text(text))
        status.set_classes(cls)

    def flush_log(self) -> None:
        """The log follows the output unless the operator is in it, reading further up.

        Not the Log's own rule (follow only while at the end): a batch written while a modal
        covers this screen left it short of the end, and it never followed again."""
        lines = self.bridge.drain()
        if lines:
            log = self.query_one("#log", Log)
            follow = not log.has_focus or log.is_vertical_scroll_end
            log.write_lines(lines, scroll_end=False)
            if follow:
                log.scroll_end(animate=False, x_axis=False)

    def tick(self) -> None:
        self.render_steps()
        if self.gate_report is not None or self.gate_deadline:
            r = self.gate_report
            title = r.gate.title if r is not None else ""
            if r is not None and r.ok:
                line = Text(f"✔ {title}", "green")
            else:
                left = max(0.0, self.gate_deadline - time.monotonic())
                line = Text(f"{left:3.0f}s left  ", "bold yellow")
                line.append(r.problem[:80] if r is not None else "waiting for the first answer")
            self.query_one("#gate-title", Static).update(line)

    def step_line(self, i: int) -> Text:
        step = self.plan.steps[i]
        st = self.status[step.key]
        icon, style = ICONS[st]
        if step.key == self.waiting_for:
            icon, style = "?", "bold yellow"
        outcome = self.record.outcomes.get(step.key) or self.bridge.outcomes.get(step.key)
        secs = (time.monotonic() - self.started[step.key]) if st is StepStatus.RUNNING else (
            outcome.duration if outcome else None)
        out = Text()
        out.append(f"{icon} ", style)
        out.append(f"{'' if secs is None else f'{secs:5.1f}s'}".rjust(7) + " ", "dim")
        out.append(step.title, "bold" if st is StepStatus.RUNNING else "")
        return out

    def render_steps(self) -> None:
        steps = self.query_one("#steps", OptionList)
        for i in range(len(self.plan.steps)):
            steps.replace_option_prompt_at_index(i, self.step_line(i))

    def follow(self, key: str) -> None:
        """The highlight moves to the step the engine is at; ↑/↓ take it elsewhere until the next step."""
        self.query_one("#steps", OptionList).highlighted = [s.key for s in self.plan.steps].index(key)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        """The full title of the highlighted step: the list cuts it at the box's edge."""
        self.query_one("#step-detail", Static).update(
            Text(step_title(self.plan, event.option_index)).append("  v: every command", "dim"))

    def on_resize(self, event: Resize) -> None:
        """As many step rows as fit a third of the height (the list scrolls), the log the rest."""
        rows = min(len(self.plan.steps), max(3, event.size.height // 3))
        self.query_one("#top").styles.height = rows + 2

    # -- operator intents -------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        allowed = {"pause": (Phase.RUNNING, Phase.PAUSED), "abort": (Phase.RUNNING, Phase.PAUSED, Phase.FAILED),
                   "retry": (Phase.FAILED,), "next": (Phase.ENDED,)}
        if action in allowed:
            return self.phase in allowed[action]
        return True

    def action_pause(self) -> None:
        if self.bridge.pause_requested.is_set():
            self.bridge.pause_requested.clear()
            self.set_status("Running…")
        else:
            self.bridge.pause_requested.set()
            self.set_status("Pausing after the current step… (p cancels the pause)")

    def action_abort(self) -> None:
        if self.phase is Phase.FAILED:
            self.mark_aborted(f"after failure: {self.record.error}")
            self.refresh_bindings()
            return

        def answer(ok: bool | None) -> None:
            if ok:
                self.cancel.set()
                self.bridge.pause_requested.clear()
                self.set_status("Aborting: the engine stops at the next command boundary…", "aborted")

        self.app.push_screen(ConfirmScreen(
            "Abort the recovery?", "The current command finishes, nothing more runs, nothing is deleted. "
            f"Old data stays beside the new with suffix .etcdrescue-{self.plan.ctx.stamp}."), callback=answer)

    def action_retry(self) -> None:
        if self.phase is not Phase.FAILED or not self.failed_step:
            return
        self.phase = Phase.RUNNING
        self.status[self.failed_step] = StepStatus.PENDING
        self.set_status(f"Retrying {self.failed_step}…")
        self.refresh_bindings()
        self.run_engine(self.failed_step)

    def action_next(self) -> None:
        if self.phase is Phase.ENDED:
            self.dismiss(self.record)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.action_view_step()

    def action_view_step(self) -> None:
        i = self.query_one("#steps", OptionList).highlighted
        if i is not None:
            self.app.push_screen(StepDetailScreen(self.plan, i))

    def on_unmount(self) -> None:
        """Leaving the screen (or the app) must never leave the engine blocked in confirm/checkpoint."""
        self.cancel.set()
        self.bridge.pause_requested.clear()

    @property
    def running(self) -> bool:
        return self.phase in (Phase.RUNNING, Phase.PAUSED)
