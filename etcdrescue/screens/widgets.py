"""Pieces every screen shares: the status header, the footer and the yes/no modal.

The header renders the app's `WizardStatus` (cluster, profile, DRY RUN and
REHEARSAL badges, connection state) so the operator always sees what a key
press will act on; `update_status` changes that state and redraws the headers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import Resize
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Footer, Static


@dataclass
class WizardStatus:
    cluster: str = ""
    profile: str = ""
    dry_run: bool = False
    rehearsal: bool = False
    connection: str = "not connected"


def relabel(button: Button, label: str) -> None:
    """A new label, and the button sized to it: Textual measures a button's auto width at layout only, and a new
    label alone does not lay it out again (a longer one was cut: "etcd fix-flags" without its "(n)")."""
    button.label = label
    button.refresh(layout=True)


def update_status(app: Any, **changes: object) -> None:
    """Change the app's `WizardStatus` and redraw every header now (screens below included)."""
    status = getattr(app, "status", None)
    if status is None:
        return
    for key, value in changes.items():
        setattr(status, key, value)
    for screen in app.screen_stack:
        for header in screen.query(RescueHeader):
            header.refresh()


class RescueHeader(Widget):
    DEFAULT_CSS = """
    RescueHeader { height: 1; background: $primary-background; color: $text; }
    """

    def render(self) -> Text:
        """Without the labels when the line would not fit: the badges and the connection state must."""
        st: WizardStatus = getattr(self.app, "status", WizardStatus())
        full = Text(" etcdrescue ", style="bold")
        full.append(f"│ cluster {st.cluster or '-'} │ profile {st.profile or '-'} ")
        line = self.line(st, full)
        if line.cell_len <= self.size.width:
            return line
        return self.line(st, Text(f" {st.cluster or '-'} │ {st.profile or '-'} "))

    @staticmethod
    def line(st: WizardStatus, head: Text) -> Text:
        t = head.copy()
        if st.dry_run:
            t.append(" DRY RUN ", style="bold black on yellow")
            t.append(" ")
        if st.rehearsal:
            t.append(" REHEARSAL ", style="bold white on blue")
            t.append(" ")
        t.append(f"│ {st.connection}", style="italic")
        return t


class RescueFooter(Footer):
    """Compact and without the palette hint, so the keys of the busiest screen fit 80 columns;
    f1 lists them all with what they do."""

    def __init__(self) -> None:
        super().__init__(compact=True, show_command_palette=False)


class ConfirmScreen(ModalScreen[bool]):
    """A question that must be answered before the caller goes on: y = True, n/escape = False.

    The text scrolls (arrow keys) between fixed buttons: a long detail on a 24-line terminal
    must not push the answer off the screen.
    """

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical { width: 70; max-width: 95%; height: auto; max-height: 100%; border: thick $warning;
                               background: $surface; padding: 1 2; }
    ConfirmScreen VerticalScroll { height: auto; }
    ConfirmScreen #question { margin-bottom: 1; }
    ConfirmScreen Horizontal { height: auto; align-horizontal: center; }
    ConfirmScreen Button { margin: 0 2; }
    """
    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n", "answer(False)", "No"),
                Binding("escape", "answer(False)", "No", show=False),
                Binding("up", "scroll(-1)", show=False), Binding("down", "scroll(1)", show=False)]

    def __init__(self, question: str, detail: str = "", yes: str = "Yes (y)", no: str = "No (n)") -> None:
        super().__init__()
        self.question, self.detail, self.yes, self.no = question, detail, yes, no

    def compose(self) -> ComposeResult:
        with Vertical():
            with VerticalScroll(can_focus=False):
                yield Static(Text(self.question, style="bold"), id="question")
                if self.detail:
                    yield Static(self.detail, id="detail")
            with Horizontal():
                yield Button(self.yes, variant="warning", id="yes")
                yield Button(self.no, variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_resize(self, event: Resize) -> None:
        """The text gets what the border, padding and buttons (8 lines) leave of the terminal."""
        self.query_one(VerticalScroll).styles.max_height = max(2, event.size.height - 8)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)

    def action_scroll(self, lines: int) -> None:
        self.query_one(VerticalScroll).scroll_relative(y=lines, animate=False)
