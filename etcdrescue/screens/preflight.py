"""Screen 2: the read-only survey of every member and the backup, and the verdict.

One worker runs the session's pre-flight, the same call the CLI's `check` and `recover` make, so the
wizard can never be more permissive than the command line; its progress hooks fill the rows in as the
hosts and the backup answer. A pre-flight that raises instead of answering leaves the survey incomplete:
the verdict says so and there is no verdict to go Next with until a refresh completes one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, DataTable, Static
from textual.worker import Worker, WorkerState, get_current_worker

from ..errors import SurveyFailed
from ..preflight.survey import PreflightProgress
from ..preflight.verdict import BackupFacts, HostFacts, PreflightReport
from ..procedures import DEFAULT
from ..session import RecoverySession
from .widgets import RescueFooter, RescueHeader, update_status

COLUMNS = ("member", "ID", "ssh", "host key", "manifest", "etcd", "health", "data", "free", "raft")
"""ID: the etcd member ID (hex, as `etcdctl member list` shows it) of a member whose etcd answers.
raft: how far its own data goes (raft index, read offline): a quorum restore starts from the highest."""
DROP_ORDER = ("ID", "host key", "manifest", "free", "raft")
"""The columns left out, in this order, while the table is wider than the terminal: a column cut in
the middle shows `122.2` for `122.2 MiB`. The detail line under the table names every column."""
Cells = list[str | Text]


@dataclass
class MemberSurveyed(Message):
    facts: HostFacts
    generation: int


@dataclass
class BackupSurveyed(Message):
    facts: BackupFacts
    generation: int


@dataclass
class Judged(Message):
    report: PreflightReport
    generation: int


class ScreenProgress(PreflightProgress):
    """The core's pre-flight progress, posted to the screen as messages tagged with the survey's generation."""

    def __init__(self, post: Callable[[Message], object], generation: int) -> None:
        self.post, self.generation = post, generation

    def host_surveyed(self, facts: HostFacts) -> None:
        self.post(MemberSurveyed(facts, self.generation))

    def backup_surveyed(self, facts: BackupFacts) -> None:
        self.post(BackupSurveyed(facts, self.generation))


def size(kb: int) -> str:
    return f"{kb / 1048576:.1f} GiB" if kb >= 1048576 else f"{kb / 1024:.1f} MiB" if kb >= 1024 else f"{kb} KiB"


def short_names(names: list[str]) -> dict[str, str]:
    """First DNS label of each member when those are unique: the table then fits 80 columns."""
    short = [n.split(".")[0] for n in names]
    return dict(zip(names, short if len(set(short)) == len(short) else names, strict=True))


def member_cells(f: HostFacts) -> list[str | Text]:
    if not f.reachable:
        key = "UNKNOWN" if "host key" in f.error.lower() or "known_hosts" in f.error else "?"
        return [f.name, "?", Text("FAIL", "bold red"), key, "?", "?", "?", "?", "?", "?"]
    etcd = f"pid {f.survey.etcd_pid}" if f.survey and f.survey.etcd_pid else "stopped"
    health = (Text("healthy", "green") if f.healthy else Text("unknown", "dim") if f.health_unknown
              else Text("unhealthy", "yellow"))
    manifest = f.manifest_state.value + (" (!)" if f.manifest_problem else "")
    raft = str(f.freshness.index) if f.freshness else "-"
    return [f.name, f.member_id or "-", Text("ok", "green"), "known", manifest, etcd, health,
            size(f.member_kb), size(f.free_kb), raft]


def cell_len(value: str | Text) -> int:
    return value.cell_len if isinstance(value, Text) else Text(value).cell_len


def content_widths(rows: list[Cells]) -> dict[str, int]:
    """Each column's widest cell, its header included."""
    return {c: max([cell_len(c), *(cell_len(r[i]) for r in rows)]) for i, c in enumerate(COLUMNS)}


def fit_columns(rows: list[Cells], width: int) -> tuple[str, ...]:
    """The columns that fit `width` cells whole (content plus a cell of padding each side)."""
    need = {c: w + 2 for c, w in content_widths(rows).items()}
    shown = list(COLUMNS)
    for column in DROP_ORDER:
        if sum(need[c] for c in shown) <= width:
            break
        shown.remove(column)
    return tuple(shown)


def detail_text(label: str, cells: Cells, error: str, hidden: tuple[str, ...], width: int) -> Text:
    """Every column of one member, packed into lines of `width` cells, then why it failed, if it did.

    Packed here rather than wrapped by the widget, which breaks at any space: `free 21.9` on one
    line and `GiB` on the next is the cut figure again."""
    pieces = [Text(label, style="bold")]
    for column, value in zip(COLUMNS[1:], cells[1:], strict=True):
        piece = Text()
        piece.append(f"{column} ", style="dim")
        piece.append(value)
        pieces.append(piece)
    t, line = Text(), 0
    for i, piece in enumerate(pieces):
        if i and line + 3 + piece.cell_len > width:
            t.append("\n")
            line = 0
        elif i:
            t.append(" · ", style="dim")
            line += 3
        t.append_text(piece)
        line += piece.cell_len
    if error:
        t.append(f"\n{error}", style="red")
    if hidden:
        t.append(f"\n↑/↓ picks a member; not in the table at this width: {', '.join(hidden)}", style="dim")
    return t


def failed_cells(name: str) -> list[str | Text]:
    return [name, "?", Text("ERROR", "bold red"), *(["?"] * (len(COLUMNS) - 3))]


def describe(exc: BaseException | None) -> str:
    """`Type: first line of the message`: the verdict is one line, and a paramiko or OSError text can be several."""
    if exc is None:
        return "unknown error"
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def backup_text(b: BackupFacts | None, path: str | None, bastion: list[str] | None = None, *,
                restores: bool = True) -> str:
    """The backup line; with a `bastion:` file, also what the console prints about it (its size, sha256, revision,
    cluster, and where it is copied on the seed). `restores`: the procedure restores the cluster's data (the quorum
    recovery), so no backup means the seed's own data; the others take no backup, and the line says nothing."""
    if path is None:
        return "Backup: none (quorum restore from the seed's own surviving data)" if restores else ""
    more = "".join(f"\n{line.strip()}" for line in bastion or ())
    if b is None:
        return f"Backup {path}: checking…{more}"
    if b.snapshot is None:
        return f"Backup {path}: {b.error or 'unreadable'}{more}"
    age = f", {(time.time() - b.mtime) / 3600:.1f} h old" if b.mtime else ""
    return (f"Backup {path}: {b.kind_label}, {size(b.size_kb)}, revision {b.snapshot.revision}, "
            f"{b.snapshot.total_keys} keys{age}{more}")


class PreflightScreen(Screen[PreflightReport | None]):
    DEFAULT_CSS = """
    PreflightScreen #body { height: 1fr; }
    PreflightScreen DataTable { height: auto; }
    PreflightScreen #member-detail { padding: 0 1; height: auto; background: $boost; }
    PreflightScreen #backup-line, PreflightScreen #verdict { padding: 0 1; height: auto; }
    PreflightScreen #verdict { margin-top: 1; text-style: bold; }
    PreflightScreen .ok { color: $success; }
    PreflightScreen .refuse { color: $error; }
    PreflightScreen #problems { padding: 0 1; color: $warning; height: auto; }
    PreflightScreen Horizontal { height: auto; }
    PreflightScreen Button { margin: 0 1; }
    """
    BINDINGS = [Binding("r", "refresh_survey", "Refresh"), Binding("n", "next", "Next"),
                Binding("b,escape", "back", "Back"),
                Binding("up", "member(-1)", show=False), Binding("down", "member(1)", show=False)]

    def __init__(self, session: RecoverySession) -> None:
        super().__init__()
        self.session = session
        self.inv, self.backup = session.inv, session.backup
        self.bastion = session.bastion.lines() if session.bastion else None
        self.restores = session.procedure.name == DEFAULT
        self.generation = 0
        self.report: PreflightReport | None = None
        self.survey_worker: Worker[None] | None = None
        self.names = short_names([m.name for m in self.inv.members])
        self.cells: dict[str, Cells] = {}
        """Every column of every member; the table shows those that fit (`fit_columns`)."""
        self.errors: dict[str, str] = {}
        self.shown: tuple[str, ...] = COLUMNS

    def compose(self) -> ComposeResult:
        yield RescueHeader()
        with VerticalScroll(id="body"):
            yield DataTable(cursor_type="row", zebra_stripes=True, id="members")
            yield Static("", id="member-detail")
            yield Static("", id="backup-line")
            yield Static("Surveying…", id="verdict")
            yield Static("", id="problems")
        with Horizontal():
            yield Button("Back (b)", id="back")
            yield Button("Refresh (r)", id="refresh")
            yield Button("Next (n)", variant="primary", id="next", disabled=True)
        yield RescueFooter()

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
        self.action_refresh_survey()

    def action_member(self, step: int) -> None:
        """↑/↓ pick a member for the detail line wherever the focus is (it moves to Next with the verdict)."""
        table = self.query_one(DataTable)
        table.move_cursor(row=table.cursor_row + step)

    def on_resize(self) -> None:
        self.render_table()

    def set_cells(self, name: str, cells: Cells, error: str = "") -> None:
        cells[0] = self.names[name]
        self.cells[name], self.errors[name] = cells, error
        self.render_table()

    def render_table(self) -> None:
        """Rebuilt whole on every change: the set of columns that fits depends on every cell. Each column gets
        its width here, not from the table's own measure, which waits for the table's next idle moment: a
        rebuild that posts the table no message (the cursor already on its row) left the headers' widths."""
        if not self.cells:
            return
        table = self.query_one(DataTable)
        rows = [self.cells[m.name] for m in self.inv.members]
        self.shown = fit_columns(rows, self.size.width - 2)
        widths = content_widths(rows)
        cursor = table.cursor_row
        table.clear(columns=True)
        for c in self.shown:
            table.add_column(c, width=widths[c], key=c)
        for m, row in zip(self.inv.members, rows, strict=True):
            table.add_row(*(row[COLUMNS.index(c)] for c in self.shown), key=m.name)
        table.move_cursor(row=cursor)
        self.show_detail(cursor)

    def show_detail(self, row: int) -> None:
        member = self.inv.members[max(0, min(row, len(self.inv.members) - 1))]
        hidden = tuple(c for c in COLUMNS if c not in self.shown)
        self.query_one("#member-detail", Static).update(
            detail_text(member.name, self.cells[member.name], self.errors.get(member.name, ""), hidden,
                        self.size.width - 4))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.cells:
            self.show_detail(event.cursor_row)

    def action_refresh_survey(self) -> None:
        self.generation += 1
        self.workers.cancel_group(self, "preflight")
        self.report = None
        self.cells = {m.name: [self.names[m.name], *(["…"] * (len(COLUMNS) - 1))] for m in self.inv.members}
        self.errors = {}
        self.render_table()
        self.query_one("#backup-line", Static).update(backup_text(None, self.backup, self.bastion,
                                                                  restores=self.restores))
        verdict = self.query_one("#verdict", Static)
        verdict.update("Surveying…")
        verdict.set_classes("")
        self.query_one("#problems", Static).update("")
        self.query_one("#next", Button).disabled = True
        self.app_status(f"ssh: connecting to {len(self.inv.members)} members…")
        self.survey_worker = self.survey(self.generation)

    def app_status(self, text: str) -> None:
        update_status(self.app, connection=text)

    @work(thread=True, exit_on_error=False, group="preflight")
    def survey(self, generation: int) -> None:
        report = self.session.preflight(ScreenProgress(self.post_message, generation))
        if not get_current_worker().is_cancelled:
            self.post_message(Judged(report, generation))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A pre-flight that raised: show it, keep Next disabled, wait for a refresh or Back.

        Textual's state event rather than a try/except in the worker that posts a message: the
        framework sets ERROR for whatever escapes the worker function and delivers it on the event loop.
        A refresh replaces `survey_worker`, so a late event from an earlier generation finds nothing.
        """
        if event.state is not WorkerState.ERROR or event.worker is not self.survey_worker:
            return
        error = event.worker.error
        failure = str(error) if isinstance(error, SurveyFailed) else describe(error)
        for m in self.inv.members:
            if self.cells.get(m.name, ["", ""])[1] == "…":
                self.set_cells(m.name, failed_cells(m.name), f"survey failed: {failure}")
        if self.backup:
            self.query_one("#backup-line", Static).update(f"Backup {self.backup}: survey failed: {failure}")
        self.report = None
        self.query_one("#next", Button).disabled = True
        verdict = self.query_one("#verdict", Static)
        verdict.update(f"Survey failed: {failure}")
        verdict.set_classes("refuse")
        self.query_one("#problems", Static).update("The survey is incomplete: r surveys again, b goes back.")
        self.app_status("ssh: survey failed")

    def on_member_surveyed(self, msg: MemberSurveyed) -> None:
        if msg.generation == self.generation:
            self.set_cells(msg.facts.name, member_cells(msg.facts), msg.facts.error)

    def on_backup_surveyed(self, msg: BackupSurveyed) -> None:
        if msg.generation == self.generation:
            self.query_one("#backup-line", Static).update(backup_text(msg.facts, self.backup, self.bastion,
                                                                      restores=self.restores))

    def on_judged(self, msg: Judged) -> None:
        if msg.generation != self.generation:
            return
        report = self.report = msg.report
        for h in report.hosts:  # the verdict's own facts: the rows never lag behind it
            self.cells[h.name], self.errors[h.name] = [self.names[h.name], *member_cells(h)[1:]], h.error
        self.render_table()
        reachable = sum(h.reachable for h in report.hosts)
        self.app_status(f"ssh: {reachable}/{len(report.hosts)} reachable")
        verdict = self.query_one("#verdict", Static)
        if report.ok:
            verdict.update(f"Verdict: {report.verdict}" + (f"\nSeed: {report.seed_reason}" if report.seed_reason
                                                            else "") + f"\n{report.revisions.explained.capitalize()}")
            verdict.set_classes("ok")
            self.query_one("#problems", Static).update("\n".join(f"⚠ {w}" for w in report.warnings))
        else:
            verdict.update(f"Verdict: REFUSED: {report.verdict}")
            verdict.set_classes("refuse")
            more = report.problems[1:]
            self.query_one("#problems", Static).update("\n".join(f"• {p}" for p in more[:4]) + (
                f"\n… and {len(more) - 4} more" if len(more) > 4 else ""))
        self.query_one("#next", Button).disabled = not report.ok
        if report.ok:
            self.query_one("#next", Button).focus()

    def action_next(self) -> None:
        if self.report is not None and self.report.ok:
            self.dismiss(self.report)

    def action_back(self) -> None:
        self.workers.cancel_group(self, "preflight")
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        {"back": self.action_back, "refresh": self.action_refresh_survey, "next": self.action_next}[
            str(event.button.id)]()
