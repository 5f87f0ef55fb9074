"""Engine callbacks -> Textual messages, and operator decisions -> the engine's thread.

The engine runs in a thread worker and calls `Callbacks` from that thread. This
bridge never touches a widget: it posts past-tense messages to its target
(`post_message` is thread-safe) and buffers log lines, which the screen drains
on a timer, because one cross-thread call per output line is too slow when a
command streams. Two hooks block the engine's thread on purpose: `confirm`
(until the modal answers) and `checkpoint` (while the operator has paused);
both give up as soon as the run is cancelled, so an abort never hangs.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from textual.message import Message

from ..command import Command
from ..engine import Callbacks, StepOutcome
from ..gates import GateReport
from ..model import Gate, Step
from ..ssh.transport import Result

POLL = 0.1


@dataclass
class StepStarted(Message):
    step: Step
    index: int
    total: int


@dataclass
class StepFinished(Message):
    outcome: StepOutcome


@dataclass
class GateStarted(Message):
    gate: Gate


@dataclass
class GateProgressed(Message):
    report: GateReport


@dataclass
class ConfirmRequested(Message):
    """The engine waits in `confirm`; answer with `reply.put(bool)`."""

    step: Step
    reply: queue.Queue[bool]


@dataclass
class RunPaused(Message):
    step: Step


@dataclass
class RunResumed(Message):
    step: Step


@dataclass
class RunEnded(Message):
    """The engine returned or raised; `error` is empty on success."""

    ok: bool
    error: str = ""
    interrupted: bool = False
    failed_step: str = ""
    duration: float = 0.0
    refused: bool = False
    """Refused before the first change (the fresh look, a lock taken over): nothing changed."""


class Bridge(Callbacks):
    """Implements `engine.Callbacks` for one wizard run (kept across retries)."""

    def __init__(self, post: Callable[[Message], object], *, ask: bool,
                 cancel: threading.Event) -> None:
        self._post = post
        self.ask = ask
        self.cancel = cancel
        self.confirm_once = False
        self.pause_requested = threading.Event()
        self.outcomes: dict[str, StepOutcome] = {}
        self.current: Step | None = None
        """The step the engine is at (set in `checkpoint`, which comes first for every step)."""
        self._lines: list[str] = []
        self._lock = threading.Lock()

    # -- log buffer: filled by the engine thread, drained by the screen's timer ----------
    def log(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)

    def drain(self) -> list[str]:
        with self._lock:
            lines, self._lines = self._lines, []
        return lines

    # -- engine callbacks ---------------------------------------------------------------
    def step_started(self, step: Step, index: int, total: int) -> None:
        self.log(f"== [{index + 1}/{total}] {step.title}")
        self._post(StepStarted(step, index, total))

    def step_finished(self, outcome: StepOutcome) -> None:
        self.outcomes[outcome.step.key] = outcome
        word = outcome.status.name.lower()
        self.log(f"-> {word} in {outcome.duration:.1f}s" + (f": {outcome.reason}" if outcome.reason else ""))
        self._post(StepFinished(outcome))

    def command_started(self, cmd: Command) -> None:
        self.log(f"{cmd.host}$ {cmd.script}")

    def command_output(self, cmd: Command, line: str) -> None:
        self.log(f"  | {line.rstrip()}")

    def command_finished(self, cmd: Command, result: Result | None, note: str) -> None:
        if result is None:
            self.log(f"  {note}")
        else:
            self.log(f"  {'ok' if result.ok else f'FAILED (exit {result.exited})'} ({result.duration:.2f}s)"
                     + (f", {note}" if note else ""))
            if not result.ok:
                for line in result.output.splitlines()[-10:]:
                    self.log(f"  | {line}")

    def gate_started(self, gate: Gate) -> None:
        self.log(f"gate: {gate.summary}")
        self._post(GateStarted(gate))

    def gate_progress(self, report: GateReport) -> None:
        if report.ok:
            self.log(f"gate passed: {report.gate.title}")
        self._post(GateProgressed(report))

    def checkpoint(self, step: Step) -> None:
        """Blocks while the operator has asked for a pause; the pause takes effect between steps."""
        self.current = step
        if not self.pause_requested.is_set() or self.cancel.is_set():
            return
        self.log(f"paused before: {step.title}")
        self._post(RunPaused(step))
        while self.pause_requested.is_set() and not self.cancel.is_set():
            time.sleep(POLL)
        self.log("resumed")
        self._post(RunResumed(step))

    def confirm(self, step: Step) -> bool:
        """Blocks the engine's thread until the modal answers; a cancelled run answers no."""
        if not self.ask or self.confirm_once:
            return True
        reply: queue.Queue[bool] = queue.Queue(maxsize=1)
        self._post(ConfirmRequested(step, reply))
        while not self.cancel.is_set():
            try:
                answer = reply.get(timeout=POLL)
            except queue.Empty:
                continue
            self.log(f"operator {'confirmed' if answer else 'declined'}: {step.destructive}")
            return answer
        return False
