"""The wizard's first look after the inventory: what is wrong with each member, and which procedure fits.

One worker runs the session's `diagnose`, the same call as `etcdrescue diagnose`; the screen renders its
findings and verdict and offers the procedure the verdict names (where the tool runs it), or the recovery.
A by-hand verdict (certificates, flags) shows its steps; nothing here changes a host.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Static
from textual.worker import Worker, WorkerState

from ..diagnose.verdict import Diagnosis
from ..documents.diagnosis import diagnosis_lines
from ..procedures import DEFAULT, PROCEDURES
from ..session import RecoverySession
from .preflight import describe
from .widgets import RescueFooter, RescueHeader, relabel, update_status


@dataclass(frozen=True)
class DiagnoseChoice:
    procedure: str
    target: str | None = None


@dataclass
class Diagnosed(Message):
    diagnosis: Diagnosis


def offered(d: Diagnosis) -> DiagnoseChoice | None:
    """The procedure the verdict names, when the tool runs it (one member at a time for a replace)."""
    name = d.procedure.value
    if name not in PROCEDURES:
        return None
    return DiagnoseChoice(name, d.members[0] if name == "replace" and d.members else None)


def label(choice: DiagnoseChoice) -> str:
    title = PROCEDURES[choice.procedure].title
    return f"{title}" + (f" of {choice.target}" if choice.target else "")


class DiagnoseScreen(Screen[DiagnoseChoice | None]):
    DEFAULT_CSS = """
    DiagnoseScreen #body { height: 1fr; padding: 0 1; }
    DiagnoseScreen #verdict { margin-top: 1; text-style: bold; }
    DiagnoseScreen Horizontal { height: auto; }
    DiagnoseScreen Button { margin: 0 1; }
    """
    BINDINGS = [Binding("n", "next", "Go on"), Binding("r", "recover", "Recover"),
                Binding("f5", "again", "Look again"), Binding("b,escape", "back", "Back")]

    def __init__(self, session: RecoverySession, inventory_file: str) -> None:
        super().__init__()
        self.session, self.inventory_file = session, inventory_file
        self.diagnosis: Diagnosis | None = None
        self.worker: Worker[None] | None = None

    def compose(self) -> ComposeResult:
        yield RescueHeader()
        with VerticalScroll(id="body"):
            yield Static(f"Looking at {len(self.session.inv.members)} members…", id="findings")
            yield Static("", id="verdict")
        with Horizontal():
            yield Button("Back (b)", id="back")
            yield Button("Look again (f5)", id="again")
            yield Button("Recover quorum (r)", id="recover", disabled=True)
            yield Button("Go on (n)", variant="primary", id="next", disabled=True)
        yield RescueFooter()

    def on_mount(self) -> None:
        update_status(self.app, connection=f"ssh: diagnosing {len(self.session.inv.members)} members…")
        self.worker = self.look()

    @work(thread=True, exit_on_error=False, group="diagnose")
    def look(self) -> None:
        self.post_message(Diagnosed(self.session.diagnose(self.inventory_file)))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR and event.worker is self.worker:
            self.query_one("#findings", Static).update(f"The diagnosis failed: {describe(event.worker.error)}")
            self.query_one("#verdict", Static).update("f5 looks again, b goes back.")
            self.query_one("#recover", Button).disabled = False

    def on_diagnosed(self, msg: Diagnosed) -> None:
        d = self.diagnosis = msg.diagnosis
        lines = diagnosis_lines(d)
        cut = next(i for i, line in enumerate(lines) if line.startswith("verdict:"))
        self.query_one("#findings", Static).update("\n".join(lines[:cut]))
        choice = offered(d)
        go = self.query_one("#next", Button)
        relabel(go, f"{label(choice)} (n)" if choice else "Go on (n)")
        go.disabled = choice is None
        self.query_one("#recover", Button).disabled = choice is not None and choice.procedure == DEFAULT
        self.query_one("#verdict", Static).update("\n".join(lines[cut:]))
        update_status(self.app, connection=f"diagnosis: {d.procedure.value}")
        (go if choice else self.query_one("#back", Button)).focus()

    def action_next(self) -> None:
        choice = offered(self.diagnosis) if self.diagnosis else None
        if choice is not None:
            self.dismiss(choice)

    def action_recover(self) -> None:
        """The quorum recovery whatever the verdict: its own pre-flight still refuses a working cluster."""
        if not self.query_one("#recover", Button).disabled:
            self.dismiss(DiagnoseChoice(DEFAULT))

    def action_again(self) -> None:
        self.workers.cancel_group(self, "diagnose")
        self.query_one("#findings", Static).update("Looking again…")
        self.query_one("#verdict", Static).update("")
        self.query_one("#next", Button).disabled = True
        self.worker = self.look()

    def action_back(self) -> None:
        self.workers.cancel_group(self, "diagnose")
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        {"back": self.action_back, "again": self.action_again, "recover": self.action_recover,
         "next": self.action_next}[str(event.button.id)]()
