"""Screen 2: the read-only survey of every member and the backup, and the verdict.

One thread worker per member (`survey_host`) plus one for the backup
(`survey_backup`) run in parallel; rows fill in as answers arrive. The verdict
is the core's `judge`, the same code the CLI's `check` uses, so the wizard can
never be more permissive than the command line. A worker that raises instead of
answering leaves the survey incomplete: the verdict says so and there is no
verdict to go Next with until a refresh completes one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, DataTable, Static
from textual.worker import Worker, WorkerState, get_current_worker

from ..inventory import Member
from ..platform.tools import EtcdTools
from ..preflight.survey import survey_backup, survey_host, tool_choice
from ..preflight.verdict import BackupFacts, HostFacts, PreflightReport, ToolChoice, judge
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
    health = Text("healthy", "green") if f.healthy else Text("unhealthy", "yellow")
    manifest = f.manifest_state.value + (" (!)" if f.manifest_problem else "")
    raft = str(f.freshness.index) if f.freshness else "-"
    return [f.name, f.member_id or "-", Text("ok", "green"), "known", manifest, etcd, health,
            size(f.member_kb), size(f.free_kb), raft]


def cell_len(value: str | Text) -> int:
    return value.cell_len if isinstance(value, Text) else Text(value).cell_len


def fit_columns(rows: list[Cells], width: int) -> tuple[str, ...]:
    """The columns that fit `width` cells whole (content plus a cell of padding each side)."""
    need = {c: max([cell_len(c), *(cell_len(r[i]) for r in rows)]) + 2 for i, c in enumerate(COLUMNS)}
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


def backup_text(b: BackupFacts | None, path: str | None) -> str:
    if path is None:
        return "Backup: none (quorum restore from the seed's own surviving data)"
    if b is None:
        return f"Backup {path}: checking…"
    if b.snapshot is None:
        return f"Backup {path}: {b.error or 'unreadable'}"
    age = f", {(time.time() - b.mtime) / 3600:.1f} h old" if b.mtime else ""
    return (f"Backup {path}: {b.kind_label}, {size(b.size_kb)}, revision {b.snapshot.revision}, "
            f"{b.snapshot.total_keys} keys{age}")


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
        self.inv, self.hosts, self.backup = session.inv, session.hosts, session.backup
        self.tools: ToolChoice | None = None
        self.generation = 0
        self.facts: dict[str, HostFacts] = {}
        self.backup_facts: BackupFacts | None = None
        self.report: PreflightReport | None = None
        self.probes: dict[Worker[None], str] = {}
        """This generation's workers and what each surveys: a member's name, or "" for the backup."""
        self.failures: list[str] = []
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
        """Rebuilt whole on every change: the set of columns that fits depends on every cell."""
        if not self.cells:
            return
        table = self.query_one(DataTable)
        rows = [self.cells[m.name] for m in self.inv.members]
        self.shown = fit_columns(rows, self.size.width - 2)
        cursor = table.cursor_row
        table.clear(columns=True)
        for c in self.shown:
            table.add_column(c, key=c)
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
        self.started = time.time()
        self.workers.cancel_group(self, "preflight")
        self.facts, self.backup_facts, self.report, self.tools = {}, None, None, None
        self.probes, self.failures = {}, []
        self.cells = {m.name: [self.names[m.name], *(["…"] * (len(COLUMNS) - 1))] for m in self.inv.members}
        self.errors = {}
        self.render_table()
        self.query_one("#backup-line", Static).update(backup_text(None, self.backup))
        verdict = self.query_one("#verdict", Static)
        verdict.update("Surveying…")
        verdict.set_classes("")
        self.query_one("#problems", Static).update("")
        self.query_one("#next", Button).disabled = True
        self.app_status(f"ssh: connecting to {len(self.inv.members)} members…")
        for m in self.inv.members:
            self.probes[self.probe_member(m, self.generation)] = m.name

    def app_status(self, text: str) -> None:
        update_status(self.app, connection=text)

    @work(thread=True, exit_on_error=False, group="preflight")
    def probe_member(self, member: Member, generation: int) -> None:
        facts = survey_host(self.hosts, member)
        if not get_current_worker().is_cancelled:
            self.post_message(MemberSurveyed(facts, generation))

    @work(thread=True, exit_on_error=False, group="preflight")
    def probe_backup(self, path: str, tools: EtcdTools, generation: int) -> None:
        facts = survey_backup(self.hosts, self.inv.seed.name, path, tools)
        if not get_current_worker().is_cancelled:
            self.post_message(BackupSurveyed(facts, generation))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A probe that raised: show it, keep Next disabled, wait for a refresh or Back.

        Textual's state event rather than a try/except in the worker that posts a message: the
        framework sets ERROR for whatever escapes the worker function, wherever it is raised (before
        `survey_host` returns, hence before the first message, or in `get_current_worker` and
        `post_message` themselves), and delivers it on the event loop. A catch in the worker covers only
        the code inside it, and a failure of that catch-and-post path would be silent again.
        `probes` is replaced by each refresh, so a late event from an earlier generation finds nothing.
        """
        if event.state is not WorkerState.ERROR or event.worker not in self.probes:
            return
        target = self.probes.pop(event.worker)
        label = target or f"backup {self.backup}"
        self.failures.append(f"{label}: {describe(event.worker.error)}")
        if target:
            self.set_cells(target, failed_cells(target), f"survey failed: {describe(event.worker.error)}")
        else:
            self.query_one("#backup-line", Static).update(
                f"Backup {self.backup}: survey failed: {describe(event.worker.error)}")
        self.report = None
        self.query_one("#next", Button).disabled = True
        verdict = self.query_one("#verdict", Static)
        verdict.update(f"Survey failed: {self.failures[0]}")
        verdict.set_classes("refuse")
        more = self.failures[1:]
        lines = [f"• {f}" for f in more[:4]] + ([f"… and {len(more) - 4} more"] if len(more) > 4 else [])
        self.query_one("#problems", Static).update("\n".join(
            [*lines, "The survey is incomplete: r surveys again, b goes back."]))
        self.app_status("ssh: survey failed")

    def on_member_surveyed(self, msg: MemberSurveyed) -> None:
        if msg.generation != self.generation:
            return
        self.facts[msg.facts.name] = msg.facts
        self.set_cells(msg.facts.name, member_cells(msg.facts), msg.facts.error)
        if len(self.facts) == len(self.inv.members):
            self.members_done()
        self.maybe_judge()

    def members_done(self) -> None:
        """The backup is read with the tools the members' survey chose (the CLI's order)."""
        facts = tuple(self.facts[m.name] for m in self.inv.members)
        self.tools = tool_choice(self.hosts, facts, uploaded=self.session.uploaded, restores=self.backup is not None)
        if not self.backup:
            return
        if self.tools.tools is None:
            self.backup_facts = BackupFacts(self.backup, error=f"backup {self.backup}: not checked (no etcd tools)")
        else:
            self.probes[self.probe_backup(self.backup, self.tools.tools, self.generation)] = ""

    def on_backup_surveyed(self, msg: BackupSurveyed) -> None:
        if msg.generation != self.generation:
            return
        self.backup_facts = msg.facts
        self.query_one("#backup-line", Static).update(backup_text(msg.facts, self.backup))
        self.maybe_judge()

    def maybe_judge(self) -> None:
        if (self.failures or self.tools is None or len(self.facts) < len(self.inv.members)
                or (self.backup and self.backup_facts is None)):
            return
        s = self.session
        report = judge(tuple(self.facts[m.name] for m in self.inv.members), seed=self.inv.seed.name,
                       quorum=self.inv.quorum, data_dir=self.inv.paths.data_dir, backup_path=self.backup,
                       backup=self.backup_facts, method=s.method, resuming=s.resuming,
                       settings=self.inv.platform.settings.label, tools=self.tools,
                       revision_options=s.revision_options)
        report = replace(report, started=self.started)
        self.report = report
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
