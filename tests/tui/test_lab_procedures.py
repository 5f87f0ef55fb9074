"""The wizard runs every procedure the diagnosis names, on a real lab: diagnosis -> pre-flight -> plan -> run ->
summary, with the same engine, locks and journal as the quorum recovery."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest_lab import LabFactory
from e2e.helpers import etcdrescue
from e2e.test_reclaim import alarms
from textual.widgets import Button

from etcdrescue.journal import read_journal
from etcdrescue.lab import Lab
from etcdrescue.lab.breaks import refused_flags
from etcdrescue.lab.data_breaks import wipe
from etcdrescue.lab.nospace import break_nospace
from etcdrescue.procedures import PROCEDURES
from etcdrescue.screens.app import RescueApp
from etcdrescue.screens.diagnose import DiagnoseScreen
from etcdrescue.screens.plan import PlanScreen
from etcdrescue.screens.preflight import PreflightScreen
from etcdrescue.screens.run import Phase, RunOutcome, RunScreen
from etcdrescue.screens.summary import SummaryScreen
from etcdrescue.screens.widgets import ConfirmScreen

from .conftest import SIZE, requires_lab, screen_text, sync, wait_until
from .test_lab_wizard import run_screen, static_text

pytestmark = [pytest.mark.lab, requires_lab, pytest.mark.timeout(400)]


def nospace(lab: Lab) -> None:
    break_nospace(lab)


def wiped(lab: Lab) -> None:
    """The last member's data wiped and etcd restarted under its old identity (the `tocommit` panic)."""
    wipe(lab, lab.hosts[-1])


def old_flags(lab: Lab) -> None:
    """The last member's manifest keeps flags its etcd 3.7 refuses; returns once the diagnosis sees it crash-loop
    (the wizard diagnoses once, on its first screen)."""
    refused_flags(lab, 2)
    inv = str(lab.inventory_path)
    deadline = time.monotonic() + 60
    while json.loads(etcdrescue("diagnose", "-i", inv, "--json").stdout)["procedure"]["name"] != "fix-flags":
        assert time.monotonic() < deadline, "the diagnosis never named fix-flags"
        time.sleep(2)


CASES: dict[str, tuple[Callable[[Lab], None], int, str, dict[str, str]]] = {
    "reclaim-space": (nospace, 247, "RECLAIMED", {}),
    "replace": (wiped, 195, "REPLACED", {}),
    "fix-flags": (old_flags, 237, "FIXED", {"profile": "kubeadm", "etcd": "3.7"}),
}
"""procedure -> (its break mode, the lab's subnet, the summary's word, the lab's platform and etcd)."""


@pytest.mark.parametrize("procedure", list(CASES))
@sync
async def test_the_wizard_runs_the_procedure_the_diagnosis_names(lab_factory: LabFactory, tmp_path: Path,
                                                                 procedure: str) -> None:
    breaks, subnet, word, shape = CASES[procedure]
    lab = lab_factory(3, subnet=subnet, **shape)
    lab.put_keys("/pre/", 200)
    breaks(lab)
    journal = tmp_path / "journal"
    app = RescueApp(lab.inventory_path, journal_dir=journal, gate_timeout=90, yes=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DiagnoseScreen) and app.screen.diagnosis is not None
                         and app.screen.diagnosis.procedure.value == procedure, timeout=90, what="the diagnosis")
        assert f"verdict: {procedure}" in static_text(app, "#verdict")
        offer = str(app.screen.query_one("#next", Button).label)
        assert offer.startswith(PROCEDURES[procedure].title) and offer.endswith(" (n)"), offer
        await wait_until(pilot, lambda: offer in screen_text(app), timeout=5, what=f"the whole {offer!r} button")
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, PreflightScreen) and app.screen.report is not None,
                         timeout=60, what="the pre-flight")
        assert isinstance(app.screen, PreflightScreen) and app.screen.report is not None
        assert app.screen.report.ok, app.screen.report.problems
        assert static_text(app, "#backup-line") == "", "no word of backups in a procedure that restores none"
        if procedure == "replace":
            assert app.screen.report.verdict.startswith(f"{lab.hosts[-1].name}: voter ")
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, PlanScreen), what="plan screen")
        assert app.screen.query_one("#seed").disabled, "the procedure chose its seed"
        await pilot.press("s")
        await wait_until(pilot, lambda: any(isinstance(s, RunScreen) for s in app.screen_stack), what="run screen")
        run = run_screen(app)
        deadline = time.monotonic() + 200
        while run.phase is not Phase.ENDED:
            assert time.monotonic() < deadline and run.phase is not Phase.FAILED, run.record.error
            if isinstance(app.screen, ConfirmScreen):
                await pilot.press("y")
            await pilot.pause(0.05)
        assert run.record.status is RunOutcome.RECOVERED, run.record.error
        assert f"{word.capitalize()} in " in screen_text(app), "the run's end in the procedure's own word"
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, SummaryScreen), what="summary")
        assert static_text(app, "#verdict").startswith(f"{word} lab: 3/3 members healthy")
        facts = static_text(app, "#facts")
        assert ".etcdctl.etcdrescue-" not in facts, "what the masters hold aside, not a copy's passing temp name"
        if procedure == "fix-flags":
            assert f"/etc/kubernetes/manifests-disabled/etcd.yaml.etcdrescue-{run.plan.ctx.stamp}" in facts, facts
        await pilot.press("q")
    assert app.return_code == 0
    (path,) = journal.glob("*.jsonl")
    assert [e["procedure"] for e in read_journal(path) if e["event"] == "run_start"] == [procedure]
    assert alarms(lab) == []
    for h in lab.hosts:
        assert lab.healthy(h) and len(lab.read_prefix("/pre/", host=h)) == 200
