"""The wizard in an 80x24 terminal, judged on the text a person sees (not only snapshots):
whole figures in the pre-flight table, every column of a member one key away, a step title too
long for its row read whole by keyboard on the plan and run screens, a long question that keeps
its buttons, a summary that scrolls. Offline: canned pre-flight facts and a dry run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.text import Text
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import DataTable

from etcdrescue.checks import MemberHealth
from etcdrescue.inventory.model import load_inventory
from etcdrescue.model import Context, Method
from etcdrescue.plan import Plan, build_plan
from etcdrescue.screens.app import RescueApp
from etcdrescue.screens.detail import StepDetailScreen
from etcdrescue.screens.inventory import InventoryScreen
from etcdrescue.screens.plan import PlanScreen
from etcdrescue.screens.preflight import COLUMNS, PreflightScreen, detail_text, fit_columns
from etcdrescue.screens.run import Phase, RunOutcome, RunScreen, WizardRun
from etcdrescue.screens.summary import SummaryScreen
from etcdrescue.screens.widgets import ConfirmScreen

from .conftest import BACKUP, CannedPreflight, flat, inventory_data, screen_text, sync, wait_until

NARROW = (80, 24)
LONG = "dc1.prod-east.corp.example.com"
"""Member names as long as real ones: the seed's restore step title is then wider than 80 columns."""


def row(member: str = "master01", **cells: str) -> list[str | Text]:
    values = dict.fromkeys(COLUMNS, "…") | {"member": member} | cells
    return [values[c] for c in COLUMNS]


FULL = row(ID="8e9e05c52164691d", ssh="ok", **{"host key": "known"}, manifest="enabled", etcd="pid 12345",
           health="unhealthy", data="122.2 MiB", free="10.0 GiB", raft="123456")


@pytest.mark.parametrize(("width", "dropped"), [
    (200, ()),
    (100, ("ID",)),
    (80, ("ID", "host key")),
    (70, ("ID", "host key", "manifest")),
    (40, ("ID", "host key", "manifest", "free", "raft")),
])
def test_columns_left_out_least_important_first(width: int, dropped: tuple[str, ...]) -> None:
    shown = fit_columns([FULL, row("master02", ssh="FAIL")], width)
    assert shown == tuple(c for c in COLUMNS if c not in dropped)


def test_columns_that_fit_are_kept_whole() -> None:
    """Each shown column gets its widest cell plus padding, and together they fit: no figure is cut."""
    for width in range(60, 130):
        shown = fit_columns([FULL], width)
        need = sum(max(len(c), len(str(FULL[COLUMNS.index(c)]))) + 2 for c in shown)
        assert need <= width or shown == tuple(c for c in COLUMNS if c not in
                                               ("ID", "host key", "manifest", "free", "raft")), width


def test_detail_line_keeps_each_column_with_its_value() -> None:
    """`free 21.9` at the end of one line and `GiB` on the next would be the cut figure again."""
    for width in range(40, 130):
        lines = detail_text("master01.example.com", FULL, "", (), width).plain.splitlines()
        assert all(len(line) <= width for line in lines), (width, lines)
        for column, value in zip(COLUMNS[1:], FULL[1:], strict=True):
            assert any(f"{column} {value}" in line for line in lines), (width, column, lines)


def long_inventory(directory: Path) -> Path:
    data = inventory_data()
    for m in data["members"]:
        m["name"] = m["name"].replace(".test", f".{LONG}")
    path = directory / "inventory.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


async def to_verdict(app: RescueApp, pilot: Pilot[Any]) -> None:
    """From the inventory screen (enter) to the pre-flight with its verdict."""
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, PreflightScreen) and app.screen.report is not None,
                     what="verdict")


def member_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r" master0[123] ", line)]


@sync
async def test_preflight_at_80x24_whole_figures_and_every_column_by_keyboard(
        offline_inventory: Path, canned_preflight: CannedPreflight) -> None:
    canned_preflight(True)
    app = RescueApp(offline_inventory, BACKUP)
    async with app.run_test(size=NARROW) as pilot:
        await to_verdict(app, pilot)
        await wait_until(pilot, lambda: len(member_rows(screen_text(app))) == 3, what="the rows painted")
        text = screen_text(app)
        rows = member_rows(text)
        assert len(rows) == 3, text
        for line in rows:
            assert "20.0 MiB" in line and "10.0 GiB" in line, line
        assert "8e9e05c52164691d" not in "\n".join(rows), "the ID column is the first left out at 80 columns"
        assert "master01.test · ID 8e9e05c52164691d · ssh ok · host key known" in flat(text)
        assert "not in the table at this width: ID" in flat(text)
        await pilot.press("down")
        await pilot.pause(0.1)
        assert "master02.test · ID 8e9e05c52164692d" in flat(screen_text(app))


@sync
async def test_preflight_at_120x40_shows_every_column(offline_inventory: Path,
                                                      canned_preflight: CannedPreflight) -> None:
    canned_preflight(True)
    app = RescueApp(offline_inventory, BACKUP)
    async with app.run_test(size=(120, 40)) as pilot:
        await to_verdict(app, pilot)
        await wait_until(pilot, lambda: len(member_rows(screen_text(app))) == 3, what="the rows painted")
        assert isinstance(app.screen, PreflightScreen)
        assert app.screen.shown == COLUMNS
        rows = member_rows(screen_text(app))
        assert [r.split()[1] for r in rows] == [f"8e9e05c5216469{i}d" for i in (1, 2, 3)]


@sync
async def test_a_rebuilt_table_is_as_wide_as_its_cells_at_once(offline_inventory: Path,
                                                               canned_preflight: CannedPreflight) -> None:
    """A rebuild with the cursor already on its row posts the table no message, so nothing but the rebuild itself
    may size the columns: under load, the table's own measure (at its next idle moment) never came, and the rows
    stayed cut at the headers' widths ("master", "pid", "20.0")."""
    canned_preflight(True)
    app = RescueApp(offline_inventory, BACKUP)
    async with app.run_test(size=NARROW) as pilot:
        await to_verdict(app, pilot)
        screen = app.screen
        assert isinstance(screen, PreflightScreen)
        table = screen.query_one(DataTable)
        screen.render_table()
        widths = {str(c.key.value): c.get_render_width(table) - 2 * table.cell_padding for c in table.ordered_columns}
        rows = [screen.cells[m.name] for m in screen.inv.members]
        assert widths == {c: max(len(c), *(len(r[COLUMNS.index(c)]) for r in rows)) for c in screen.shown}


async def to_plan(app: RescueApp, pilot: Pilot[Any]) -> Plan:
    await wait_until(pilot, lambda: isinstance(app.screen, InventoryScreen), what="inventory")
    await to_verdict(app, pilot)
    await pilot.press("n")
    await wait_until(pilot, lambda: isinstance(app.screen, PlanScreen), what="plan")
    await pilot.pause(0.1)
    assert isinstance(app.screen, PlanScreen)
    return app.screen.plan


async def step_in_full(app: RescueApp, pilot: Pilot[Any], plan: Plan, i: int, key: str = "v") -> None:
    """`key` opens the step: its whole title and first command on screen, the last one after `end`."""
    await pilot.press(key)
    await wait_until(pilot, lambda: isinstance(app.screen, StepDetailScreen), what="step detail")
    await pilot.pause(0.1)
    step = plan.steps[i]
    text = flat(screen_text(app))
    assert f"[{i + 1}/{len(plan.steps)}] {step.title}" in text, text
    assert f"{step.commands[0].host}$ {flat(step.commands[0].script)}" in text, text
    await pilot.press("end")
    await pilot.pause(0.1)
    assert flat(step.commands[-1].script) in flat(screen_text(app))
    await pilot.press("escape")
    await wait_until(pilot, lambda: not isinstance(app.screen, StepDetailScreen), what="detail closed")


@sync
async def test_long_step_title_read_whole_by_keyboard_on_plan_and_run(
        tmp_path: Path, canned_preflight: CannedPreflight) -> None:
    canned_preflight(False)
    app = RescueApp(long_inventory(tmp_path), BACKUP, rehearsal=True)
    async with app.run_test(size=NARROW) as pilot:
        plan = await to_plan(app, pilot)
        i = next(i for i, s in enumerate(plan.steps) if len(s.title) > 80)
        title = plan.steps[i].title
        assert title not in flat(screen_text(app)), "the tree row cuts this title (else the test proves nothing)"
        await pilot.press(*["down"] * i)
        await pilot.pause(0.1)
        assert title in flat(screen_text(app)), "the detail pane shows the highlighted step's whole title"
        await step_in_full(app, pilot, plan, i)

        await pilot.press("d", "s")
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.phase is Phase.ENDED,
                         what="dry run")
        await pilot.press("home", *["down"] * i)
        await pilot.pause(0.1)
        text = screen_text(app)
        header = text.splitlines()[0]
        assert "DRY RUN" in header and header.rstrip().endswith("│ dry run: read-only"), header
        rows = [line for line in text.splitlines() if title[:25] in line]
        assert any("…" in line for line in rows) and not any(title in line for line in rows), text
        assert f"[{i + 1}/{len(plan.steps)}] {title}" in flat(text)
        await step_in_full(app, pilot, plan, i)
        await step_in_full(app, pilot, plan, i, key="enter")


class One(App[None]):
    """One screen on its own, fed recorded state."""

    def __init__(self, screen: Any) -> None:
        super().__init__()
        self.first = screen

    def on_mount(self) -> None:
        self.push_screen(self.first)


@sync
async def test_confirm_keeps_its_buttons_and_scrolls_a_long_text() -> None:
    detail = "\n".join(f"line {n:02d}: " + "the old data stays beside the new " * 2 for n in range(30))
    app = One(ConfirmScreen("Replace the data of master01 with the backup?", detail))
    async with app.run_test(size=NARROW) as pilot:
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "Yes (y)" in text and "No (n)" in text and "line 00" in text and "line 29" not in text
        await pilot.press(*["down"] * 50)
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "Yes (y)" in text and "No (n)" in text and "line 29" in text


def five_member_run(tmp_path: Path) -> WizardRun:
    data = inventory_data()
    data["members"] = [{"name": f"master0{i}.{LONG}", "host": f"127.0.61.{i}",
                        "peer_url": f"https://127.0.61.{i}:2380", "client_url": f"https://127.0.61.{i}:2379"}
                       for i in range(1, 6)]
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    inv = load_inventory(path)
    stamp = "20260101T000000Z"
    plan = build_plan(Context(inv, BACKUP, Method.SNAPSHOT_RESTORE, stamp))
    kept: dict[str, list[str] | None] = {
        m.name: [f"/var/lib/etcd/member.etcdrescue-{stamp}", f"/etc/etcd/etcd.conf.etcdrescue-{stamp}"]
        for m in inv.members}
    return WizardRun(plan, RunOutcome.RECOVERED, kept=kept, duration=61.0, journal=tmp_path / "offline.jsonl",
                     members=tuple(MemberHealth(m.name, up=True, healthy=True, leader=m is inv.members[0],
                                                raft_index=1234) for m in inv.members))


@sync
async def test_summary_of_five_members_scrolls_by_keyboard(tmp_path: Path) -> None:
    app = One(SummaryScreen(five_member_run(tmp_path)))
    async with app.run_test(size=NARROW) as pilot:
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "RECOVERED offline: 5/5 members healthy" in text
        assert "Journal:" not in text, "five members' kept paths do not fit 24 lines (else the test proves nothing)"
        await pilot.press("end")
        await pilot.pause(0.2)
        text = screen_text(app)
        journal = f"Journal:{tmp_path / 'offline.jsonl'}"  # a long tmp path wraps, anywhere: compare without spaces
        assert journal in "".join(text.split())
        assert f"master05.{LONG}:" in text
