"""One step in full: its whole title, why it runs, what it asks, every command, its gate.

A row of the plan tree or of the run's step list is cut at the edge of an 80-column
terminal; this is where the operator reads the rest, by keyboard (`v` on the
highlighted step), before approving or while watching the run. The text is the
engine's own `Step`, never a summary of it.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.events import Resize
from textual.screen import ModalScreen
from textual.widgets import Static

from ..plan import Plan


def step_title(plan: Plan, i: int) -> str:
    return f"[{i + 1}/{len(plan.steps)}] {plan.steps[i].title}"


def step_text(plan: Plan, i: int) -> Text:
    step = plan.steps[i]
    t = Text()
    t.append(f"why: {step.why}\n")
    if step.destructive:
        t.append(f"asks first: {step.destructive}\n", style="yellow")
    t.append(f"hosts: {', '.join(step.hosts) or '-'}\n")
    for cmd in step.commands:
        t.append(f"\n# {cmd.purpose}\n", style="dim")
        t.append(f"{cmd.host}$ {cmd.script}\n")
    if step.gate is not None:
        t.append(f"\nhealth gate: {step.gate.summary}\n", style="cyan")
    if step.undo_note:
        t.append(f"\nto undo: {step.undo_note}\n", style="dim")
    return t


class StepDetailScreen(ModalScreen[None]):
    """Scrolls with the arrow and page keys; escape, enter, q or v close it."""

    DEFAULT_CSS = """
    StepDetailScreen { align: center middle; }
    StepDetailScreen > Vertical { width: 100; max-width: 100%; height: auto; max-height: 100%;
                                  border: thick $primary; border-subtitle-align: right; background: $surface;
                                  padding: 0 1; }
    StepDetailScreen #step-title { text-style: bold; height: auto; margin-bottom: 1; }
    StepDetailScreen VerticalScroll { height: auto; }
    StepDetailScreen #step-body { height: auto; }
    """
    BINDINGS = [Binding("escape,enter,q,v", "close", "Close")]

    def __init__(self, plan: Plan, index: int) -> None:
        super().__init__()
        self.plan, self.index = plan, index

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(step_title(self.plan, self.index)), id="step-title")
            with VerticalScroll():
                yield Static(step_text(self.plan, self.index), id="step-body")

    def on_mount(self) -> None:
        self.query_one(Vertical).border_subtitle = "↑/↓ PgUp/PgDn scroll · esc closes"
        self.query_one(VerticalScroll).focus()

    def on_resize(self, event: Resize) -> None:
        """The commands get what the border and the (wrapped) title leave of the terminal."""
        title = self.query_one("#step-title", Static)
        self.query_one(VerticalScroll).styles.max_height = max(2, event.size.height - 3 - title.outer_size.height)

    def action_close(self) -> None:
        self.dismiss(None)
