"""The wizard resumes what the headless CLI left: `recover` is SIGKILLed right after the seed
started, then the wizard on the same inventory and journal dir offers the unfinished run; accepting
it finishes the recovery in the same journal, without redoing any mutating command.

Subnet 64 is this module's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from e2e.helpers import break_lab, etcdrescue
from e2e.test_recover import assert_recovered
from e2e.test_resume import assert_nothing_redone
from textual.widgets import Static

from etcdrescue.journal import read_journal
from etcdrescue.lab import Lab
from etcdrescue.locks import LOCK_PATH
from etcdrescue.resume import find_unfinished
from etcdrescue.screens.app import RescueApp
from etcdrescue.screens.plan import PlanScreen
from etcdrescue.screens.preflight import PreflightScreen
from etcdrescue.screens.run import Phase, RunOutcome, RunScreen
from etcdrescue.screens.summary import SummaryScreen
from etcdrescue.screens.widgets import ConfirmScreen

from .conftest import SIZE, requires_lab, resume_question, sync, wait_until

pytestmark = [pytest.mark.lab, requires_lab, pytest.mark.timeout(300)]

LabFactory = Callable[..., Lab]


def text(app: RescueApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


@sync
async def test_wizard_resumes_a_killed_cli_run(lab_factory: LabFactory, tmp_path: Path) -> None:
    b = break_lab(lab_factory(3, subnet=64), "openshift")
    assert b.backup
    lab, journal = b.lab, tmp_path / "journal"
    killed = etcdrescue("recover", "-i", str(lab.inventory_path), "--backup", b.backup, "--yes",
                        "--journal", str(journal), env={"ETCDRESCUE_FAULT": "after-step:seed-start"})
    assert killed.returncode == -9, killed.stdout + killed.stderr
    unfinished = find_unfinished(journal, "lab")
    assert unfinished is not None and "seed-start" in unfinished.done
    stamp = unfinished.stamp

    app = RescueApp(lab.inventory_path, b.backup, journal_dir=journal, gate_timeout=90)
    confirmed = 0
    async with app.run_test(size=SIZE) as pilot:
        question = await resume_question(app, pilot)
        assert question == (f"An unfinished recovery of lab from {stamp} stopped at step {unfinished.next_step} "
                            f"(killed). Resume it?")
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, PreflightScreen) and app.screen.report is not None,
                         timeout=60, what="pre-flight verdict")
        assert app.screen.session.resuming  # type: ignore[attr-defined]
        assert "recovery can start" in text(app, "#verdict"), text(app, "#verdict")
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, PlanScreen), what="plan screen")
        assert app.screen.plan.ctx.stamp == stamp  # type: ignore[attr-defined]
        await pilot.press("s")
        await wait_until(pilot, lambda: any(isinstance(s, RunScreen) for s in app.screen_stack), what="run screen")
        run = next(s for s in app.screen_stack if isinstance(s, RunScreen))
        deadline = time.monotonic() + 180
        while run.phase is not Phase.ENDED:
            assert time.monotonic() < deadline, "recovery did not finish"
            assert run.phase is not Phase.FAILED, run.record.error
            if isinstance(app.screen, ConfirmScreen):
                confirmed += 1
                await pilot.press("y")
            await pilot.pause(0.05)
        assert run.record.status is RunOutcome.RECOVERED, run.record.error
        keys = [s.key for s in run.plan.steps]
        assert list(run.record.outcomes) == keys[keys.index(str(unfinished.next_step)):]
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, SummaryScreen), what="summary")
        assert "RECOVERED lab" in text(app, "#verdict")
        await pilot.press("q")
    assert app.return_code == 0
    assert confirmed == sum(bool(s.destructive) for s in run.plan.steps[keys.index(str(unfinished.next_step)):])
    assert run.record.journal == unfinished.path, "the resumed run appends to the interrupted run's journal"
    assert [e["event"] for e in read_journal(unfinished.path)].count("run_start") == 2
    assert_recovered(b, journal, keys=500, post=0)
    assert_nothing_redone(journal)
    for h in lab.hosts:
        lock = lab.host_path(h, LOCK_PATH)
        assert not lock.exists(), "every member's lock is released after the recovery"
        assert lock.with_name(f"lock.released-{stamp}").exists()
