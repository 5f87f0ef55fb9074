"""Screen 5: how the run ended, where every host's old data is, and the journal.

Exports (runbook, run report) come from `etcdrescue.documents.runbook` / `etcdrescue.documents.report`
when those modules exist; the wizard renders nothing of its own there, so a
missing module only means "not available", never a second format.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Static

from ..engine import StepStatus
from ..journal import read_journal
from ..procedures import named
from .run import RunOutcome, WizardRun, yn
from .widgets import RescueFooter, RescueHeader

EXPORTS = {"runbook": ("etcdrescue.documents.runbook", "runbook.md"),
           "report": ("etcdrescue.documents.report", "report.md")}


def exporter(kind: str) -> Callable[[WizardRun], str] | None:
    """A function rendering `kind` as Markdown for a finished run, or None when the module is missing."""
    try:
        module = importlib.import_module(EXPORTS[kind][0])
    except ImportError:
        return None
    render: Callable[..., str] | None = getattr(module, "render_markdown", None)
    if render is None:
        return None
    if kind == "runbook":
        return lambda record: render(record.plan, date=time.strftime("%Y-%m-%d"))

    def report(record: WizardRun) -> str:
        if record.journal is None:
            raise ValueError("a dry run has no journal to report on")
        return render(read_journal(record.journal), str(record.journal))

    return report


def phase_times(record: WizardRun) -> dict[str, float]:
    out: dict[str, float] = {}
    for step in record.plan.steps:
        o = record.outcomes.get(step.key)
        if o is not None:
            out[step.phase] = out.get(step.phase, 0.0) + o.duration
    return out


class SummaryScreen(Screen[None]):
    DEFAULT_CSS = """
    SummaryScreen #verdict { padding: 0 1; text-style: bold; height: auto; }
    SummaryScreen .recovered, SummaryScreen .planned { color: $success; }
    SummaryScreen .aborted { color: $warning; }
    SummaryScreen .failed { color: $error; }
    SummaryScreen DataTable { height: auto; margin: 1 0; }
    SummaryScreen #facts, SummaryScreen #export { padding: 0 1; height: auto; }
    """
    BINDINGS = [Binding("e", "export('runbook')", "Export runbook"), Binding("x", "export('report')", "Export report"),
                Binding("q", "done", "Quit")]

    def __init__(self, record: WizardRun) -> None:
        super().__init__()
        self.record = record

    def compose(self) -> ComposeResult:
        r = self.record
        yield RescueHeader()
        with VerticalScroll():
            yield Static(self.verdict(), id="verdict", classes=r.status.value)
            yield DataTable(id="members", show_cursor=False)
            yield Static(self.facts(), id="facts")
            yield Static(self.export_line(), id="export")
        yield RescueFooter()

    def verdict(self) -> str:
        r = self.record
        cluster = r.plan.ctx.inv.cluster
        healthy = sum(m.healthy for m in r.members)
        return {
            RunOutcome.RECOVERED: f"{named(r.plan.procedure).done} {cluster}: {healthy}/{len(r.plan.ctx.inv.members)} "
                                  "members healthy",
            RunOutcome.PLANNED: f"DRY RUN of {cluster}: every step shown, nothing changed",
            RunOutcome.ABORTED: f"ABORTED: {r.error}",
            RunOutcome.FAILED: f"FAILED: {r.error}",
        }.get(r.status, r.status.value)

    def facts(self) -> Text:
        r, ctx = self.record, self.record.plan.ctx
        t = Text()
        done = [s for s in r.plan.steps if r.outcomes.get(s.key) and r.outcomes[s.key].status in
                (StepStatus.DONE, StepStatus.SKIPPED, StepStatus.PLANNED)]
        t.append(f"Steps done: {len(done)} of {len(r.plan.steps)}\n")
        phases = ", ".join(f"{p} {s:.1f}s" for p, s in phase_times(r).items())
        t.append(f"Time: total {r.duration:.1f}s ({phases or 'no step ran'})\n")
        t.append(f"Kept aside with the suffix .etcdrescue-{ctx.stamp} (nothing was deleted):\n")
        for m in ctx.inv.members:
            paths = r.kept.get(m.name, [])
            said = "not read (the report lists it)" if paths is None else "" if paths else "nothing moved"
            t.append(f"  {m.name}: {said}\n")
            for path in paths or ():
                t.append(f"    {path}\n")
        t.append(f"Journal: {r.journal or 'none (dry run)'}")
        todo = ctx.revisions.restart_by_hand
        if todo and r.status is RunOutcome.RECOVERED:
            t.append("\netcd's revisions went backwards: restart by hand, in this order:\n")
            t.append("\n".join(f"  • {x}" for x in todo))
        return t

    def export_line(self) -> str:
        avail = [k for k in EXPORTS if exporter(k) is not None]
        missing = [k for k in EXPORTS if k not in avail]
        return "  ".join([*(f"{k}: press {'e' if k == 'runbook' else 'x'} to export" for k in avail),
                          *(f"{k}: not available" for k in missing)])

    def on_mount(self) -> None:
        """The page scrolls by keyboard: the table has no cursor, so the scroll takes the focus."""
        self.query_one(VerticalScroll).focus()
        table = self.query_one("#members", DataTable)
        table.can_focus = False
        for c in ("member", "up", "healthy", "leader", "raft index"):
            table.add_column(c)
        by_name = {m.name: m for m in self.record.members}
        for member in self.record.plan.ctx.inv.members:
            h = by_name.get(member.name)
            if h is None:
                table.add_row(member.name, "?", "?", "", "")
            else:
                table.add_row(member.name, yn(h.up), yn(h.healthy), "★" if h.leader else "",
                              str(h.raft_index or ""))

    def action_done(self) -> None:
        """Back to the wizard, which exits with the run's exit code."""
        self.dismiss(None)

    def action_export(self, kind: str) -> None:
        fn = exporter(kind)
        line = self.query_one("#export", Static)
        if fn is None:
            line.update(f"{kind}: not available (module {EXPORTS[kind][0]} is not installed)")
            return
        ctx = self.record.plan.ctx
        where = self.record.journal.parent if self.record.journal else Path.cwd()
        path = where / f"{ctx.inv.cluster}-{ctx.stamp}-{EXPORTS[kind][1]}"
        try:
            path.write_text(fn(self.record), encoding="utf-8")
        except Exception as exc:  # another engineer's module: report, never crash the summary
            line.update(f"{kind}: export failed: {exc}")
            return
        line.update(f"{kind} written to {path}")
