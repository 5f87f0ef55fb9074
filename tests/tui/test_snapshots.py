"""SVG snapshots of every screen at 120x40 and at 80x24 (the smallest terminal the wizard must
be usable in), compared with tests/tui/snapshots/ after normalising volatile text (stamps,
durations, tmp paths). `UPDATE_SNAPSHOTS=1 pytest tests/tui` rewrites them.

The flow is offline (canned pre-flight facts, dry run), so the pictures are deterministic.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from etcdrescue.screens.app import RescueApp
from etcdrescue.screens.detail import StepDetailScreen
from etcdrescue.screens.inventory import InventoryScreen
from etcdrescue.screens.plan import PlanScreen
from etcdrescue.screens.preflight import PreflightScreen
from etcdrescue.screens.run import Phase, RunScreen
from etcdrescue.screens.summary import SummaryScreen
from etcdrescue.screens.widgets import ConfirmScreen

from .conftest import BACKUP, CannedPreflight, sync, wait_until

Snapshot = Callable[[Pilot[Any], str], Awaitable[None]]


@pytest.fixture
def fixed_stamp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("etcdrescue.session.new_stamp", lambda: "20260101T000000Z")


SIZES = pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=["120x40", "80x24"])


@SIZES
@sync
async def test_every_screen(size: tuple[int, int], offline_inventory: Path, canned_preflight: CannedPreflight,
                            fixed_stamp: None, snapshot: Snapshot,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    canned_preflight(False)
    tag = f"{size[0]}x{size[1]}"
    monkeypatch.chdir(offline_inventory.parent)  # a relative path: the same picture in every tmp dir
    app = RescueApp(offline_inventory.name, BACKUP, rehearsal=True)
    async with app.run_test(size=size) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, InventoryScreen), what="inventory")
        await snapshot(pilot, f"inventory-{tag}")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PreflightScreen) and app.screen.report is not None,
                         what="verdict")
        await snapshot(pilot, f"preflight-{tag}")
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, PlanScreen), what="plan")
        await pilot.press("down", "space", "down")
        await snapshot(pilot, f"plan-{tag}")
        await pilot.press("v")
        await wait_until(pilot, lambda: isinstance(app.screen, StepDetailScreen), what="step detail")
        await snapshot(pilot, f"step-{tag}")
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, PlanScreen), what="plan again")
        await pilot.press("d", "s")
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.phase is Phase.ENDED,
                         what="dry run")
        await pilot.press("home")
        await snapshot(pilot, f"run-{tag}")
        app.push_screen(ConfirmScreen("Stop etcd on all 3 masters of offline?", "Step: Stop etcd on every master"))
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="modal")
        await snapshot(pilot, f"confirm-{tag}")
        await pilot.press("n", "n")
        await wait_until(pilot, lambda: isinstance(app.screen, SummaryScreen), what="summary")
        await snapshot(pilot, f"summary-{tag}")
        await pilot.press("q")


@SIZES
@sync
async def test_inventory_error_snapshot(size: tuple[int, int], tmp_path: Path, snapshot: Snapshot,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("inventory.yaml").write_text("cluster: x\nmembers: []\n", encoding="utf-8")
    app = RescueApp("inventory.yaml")
    async with app.run_test(size=size) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, InventoryScreen), what="inventory")
        await snapshot(pilot, f"inventory-error-{size[0]}x{size[1]}")


@SIZES
@sync
async def test_resume_question_snapshot(size: tuple[int, int], offline_inventory: Path, snapshot: Snapshot,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from .test_offline import fake_unfinished_journal

    monkeypatch.chdir(offline_inventory.parent)
    fake_unfinished_journal(offline_inventory.parent / "journal")
    app = RescueApp(offline_inventory.name, BACKUP, journal_dir=Path("journal"))
    async with app.run_test(size=size) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, InventoryScreen), what="inventory")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="resume question")
        await snapshot(pilot, f"resume-{size[0]}x{size[1]}")
