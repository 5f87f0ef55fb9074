"""The wizard on the real lab, driven with keys only: a full recovery, a refusal on a healthy
cluster, a gate that times out (retry, then abort) and an abort mid-run.

Subnets 60-63 and 66 are this module's; each test builds its own lab.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e.helpers import tree_digest
from textual.pilot import Pilot
from textual.widgets import Button, Log, Static

from etcdrescue.engine import StepStatus
from etcdrescue.journal import read_journal
from etcdrescue.lab import Lab
from etcdrescue.locks import LOCK_PATH
from etcdrescue.screens.app import RescueApp
from etcdrescue.screens.diagnose import DiagnoseScreen
from etcdrescue.screens.inventory import InventoryScreen
from etcdrescue.screens.plan import PlanScreen
from etcdrescue.screens.preflight import PreflightScreen
from etcdrescue.screens.run import Phase, RunOutcome, RunScreen
from etcdrescue.screens.summary import SummaryScreen
from etcdrescue.screens.widgets import ConfirmScreen

from .conftest import SIZE, requires_lab, screen_text, sync, wait_until

pytestmark = [pytest.mark.lab, requires_lab, pytest.mark.timeout(240)]

LabFactory = Callable[..., Lab]
DOCS_SVG = Path(__file__).resolve().parents[2] / "docs" / "tui-run.svg"


def broken_lab(lab_factory: LabFactory, subnet: int) -> tuple[Lab, str]:
    """The issue's scenario: 500 keys in the backup, 100 after it, two members lost."""
    lab = lab_factory(3, subnet=subnet)
    lab.put_keys("/pre/", 500)
    time.sleep(0.6)
    backup = lab.backup_openshift(lab.hosts[0])
    lab.put_keys("/post/", 100)
    lab.break_quorum([lab.hosts[1], lab.hosts[2]])
    return lab, backup


def run_screen(app: RescueApp) -> RunScreen:
    for screen in app.screen_stack:
        if isinstance(screen, RunScreen):
            return screen
    raise AssertionError(f"no run screen in {app.screen_stack}")


def static_text(app: RescueApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def to_run(app: RescueApp, pilot: Pilot[Any]) -> RunScreen:
    """Inventory (enter) -> the diagnosis, without a backup (n) -> pre-flight verdict (n) -> plan (s) -> run."""
    await wait_until(pilot, lambda: isinstance(app.screen, InventoryScreen), what="inventory screen")
    await pilot.press("enter")
    if not app.backup:
        await wait_until(pilot, lambda: isinstance(app.screen, DiagnoseScreen) and app.screen.diagnosis is not None,
                         timeout=60, what="the diagnosis")
        assert isinstance(app.screen, DiagnoseScreen) and app.screen.diagnosis is not None
        assert app.screen.diagnosis.procedure.value == "recover", app.screen.diagnosis
        await pilot.press("n")
    await wait_until(pilot, lambda: isinstance(app.screen, PreflightScreen) and app.screen.report is not None,
                     timeout=60, what="pre-flight verdict")
    assert "recovery can start" in static_text(app, "#verdict"), static_text(app, "#verdict")
    await pilot.press("n")
    await wait_until(pilot, lambda: isinstance(app.screen, PlanScreen), what="plan screen")
    await pilot.press("s")
    await wait_until(pilot, lambda: any(isinstance(s, RunScreen) for s in app.screen_stack), what="run screen")
    return run_screen(app)


@sync
async def test_full_recovery_with_keys_only(lab_factory: LabFactory, tmp_path: Path) -> None:
    lab, backup = broken_lab(lab_factory, 60)
    app = RescueApp(lab.inventory_path, backup, journal_dir=tmp_path / "journal", gate_timeout=90)
    confirmed: list[str] = []
    shot = False
    async with app.run_test(size=SIZE) as pilot:
        run = await to_run(app, pilot)
        deadline = time.monotonic() + 150
        while run.phase is not Phase.ENDED:
            assert time.monotonic() < deadline, "recovery did not finish"
            assert run.phase is not Phase.FAILED, run.record.error
            if isinstance(app.screen, ConfirmScreen):
                confirmed.append(app.screen.question)
                await pilot.press("y")
            elif (not shot and run.gate_report is not None
                  and run.gate_report.gate == run.plan.step("join-master03.lab.example").gate):
                # docs/tui-run.svg: the Run screen while the last joiner's health gate is polled
                svg = app.export_screenshot(title="etcdrescue tui")
                (tmp_path / "tui-run.svg").write_text(svg, encoding="utf-8")
                if os.environ.get("UPDATE_DOCS") == "1":
                    DOCS_SVG.write_text(svg, encoding="utf-8")
                shot = True
            await pilot.pause(0.05)
        assert run.record.status is RunOutcome.RECOVERED, run.record.error
        assert len(confirmed) == sum(bool(s.destructive) for s in run.plan.steps)
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, SummaryScreen), what="summary")
        assert "RECOVERED lab: 3/3 members healthy" in static_text(app, "#verdict")
        facts = static_text(app, "#facts")
        assert f"member.etcdrescue-{run.plan.ctx.stamp}" in facts
        await pilot.press("q")
    assert app.return_code == 0
    assert len(lab.read_prefix("/pre/")) == 500
    assert lab.read_prefix("/post/") == {}
    assert all(lab.healthy(h) for h in lab.hosts)
    journal = run.record.journal
    assert journal is not None and read_journal(journal)[-1]["event"] == "run_end"
    assert read_journal(journal)[-1]["ok"] is True
    preflight = [e for e in read_journal(journal) if e["event"] == "preflight"]
    assert len(preflight) == 1 and "recovery can start" in preflight[0]["verdict"]
    assert [h["name"] for h in preflight[0]["hosts"]] == [h.name for h in lab.hosts]


@sync
async def test_healthy_cluster_is_refused(lab_factory: LabFactory) -> None:
    """A healthy cluster: the diagnosis offers nothing, the recovery's own pre-flight refuses. Before it, a lock a
    dead run left on one member: the wizard names it stale and, asked to, breaks it (kept aside) and goes on."""
    lab = lab_factory(3, subnet=61)
    done = subprocess.Popen(["true"])
    done.wait()
    left = (json.dumps({"user": "root", "machine": socket.gethostname(), "pid": done.pid, "pid_start": "1",
                        "since": "2026-01-01T00:00:00Z", "stamp": "20260101T000000Z", "renewed": time.time()})
            + "\n").encode()
    lab.host_path(lab.hosts[1], LOCK_PATH).write_bytes(left)
    app = RescueApp(lab.inventory_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DiagnoseScreen) and app.screen.diagnosis is not None,
                         timeout=60, what="the diagnosis")
        assert isinstance(app.screen, DiagnoseScreen) and app.screen.diagnosis is not None
        assert app.screen.diagnosis.procedure.value == "none"
        assert "verdict: none" in static_text(app, "#verdict")
        assert app.screen.query_one("#next", Button).disabled, "nothing to go on to"
        await pilot.press("n")
        await pilot.pause(0.2)
        assert isinstance(app.screen, DiagnoseScreen)
        await pilot.press("r")  # the recovery anyway: its own pre-flight refuses
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=30, what="the stale lock")
        assert "A stale lock holds this cluster" in screen_text(app) and "is not running" in screen_text(app)
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, PreflightScreen) and app.screen.report is not None,
                         timeout=60, what="pre-flight verdict")
        (aside,) = lab.host_path(lab.hosts[1], LOCK_PATH).parent.glob("lock.broken-*")
        assert aside.read_bytes() == left, "the stale lock, moved aside whole"
        assert "healthy quorum" in static_text(app, "#verdict")
        assert app.screen.query_one("#next", Button).disabled
        await pilot.press("n")
        await pilot.pause(0.2)
        assert isinstance(app.screen, PreflightScreen), "a healthy cluster must not get to the plan"
        await pilot.press("r")  # refresh: same verdict from a new survey
        await wait_until(pilot, lambda: isinstance(app.screen, PreflightScreen) and app.screen.report is not None,
                         timeout=60, what="refreshed verdict")
        assert "healthy quorum" in static_text(app, "#verdict")
    assert all(lab.healthy(h) for h in lab.hosts)


@sync
async def test_gate_timeout_then_retry_then_abort(lab_factory: LabFactory, tmp_path: Path) -> None:
    lab, backup = broken_lab(lab_factory, 62)
    joiner = lab.hosts[2]
    # master03's etcd can never start again: its peer certificate is gone (the recovery does not touch that line).
    res = lab.exec(joiner, "sed -i 's|^ETCD_PEER_CERT_FILE=.*|ETCD_PEER_CERT_FILE=/etc/etcd/gone.crt|' "
                           "/etc/etcd/etcd.conf")
    assert res.returncode == 0, res.stderr
    # 30 s, not less: master02 joins first and may need ~15 s (NOTES: publish/heartbeat race)
    app = RescueApp(lab.inventory_path, backup, journal_dir=tmp_path / "journal", gate_timeout=30, yes=True)
    key = f"join-{joiner.name}"
    async with app.run_test(size=SIZE) as pilot:
        run = await to_run(app, pilot)
        await wait_until(pilot, lambda: run.phase is Phase.FAILED, timeout=120, what="the gate to time out")
        assert run.failed_step == key
        status = static_text(app, "#status")
        assert "FAILED" in status and "not met after 30s" in status and "r: retry" in status
        assert run.status[key] is StepStatus.FAILED
        log = run.query_one(Log)
        await wait_until(pilot, lambda: any("to undo" in line for line in log.lines), what="undo hint in the log")
        assert any(line.startswith("last etcd log lines on") for line in log.lines)
        await pilot.press("r")
        await wait_until(pilot, lambda: run.phase is Phase.RUNNING and run.gate_report is not None
                         and run.bridge.current is not None and run.bridge.current.key == key
                         and run.status[key] is StepStatus.RUNNING, timeout=30, what="the retried gate")
        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="abort question")
        await pilot.press("y")
        await wait_until(pilot, lambda: run.phase is Phase.ENDED, timeout=30, what="abort")
        assert run.record.status is RunOutcome.ABORTED
        assert "ABORTED" in static_text(app, "#status")
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, SummaryScreen), what="summary")
        await pilot.press("q")
    stamp = run.plan.ctx.stamp
    for h in (lab.hosts[0], joiner):
        assert lab.host_path(h, f"/var/lib/etcd/member.etcdrescue-{stamp}").exists(), f"{h.name}: old data gone"
    assert len(lab.read_prefix("/pre/", host=lab.hosts[0])) == 500  # the seed and master02 still serve


@sync
async def test_abort_mid_run_keeps_everything(lab_factory: LabFactory, tmp_path: Path) -> None:
    lab, backup = broken_lab(lab_factory, 63)
    app = RescueApp(lab.inventory_path, backup, journal_dir=tmp_path / "journal", yes=True)
    async with app.run_test(size=SIZE) as pilot:
        run = await to_run(app, pilot)
        await wait_until(pilot, lambda: run.status["seed-data"] is StepStatus.DONE, timeout=60, what="seed data")
        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="abort question")
        await pilot.press("y")
        await wait_until(pilot, lambda: run.phase is Phase.ENDED, timeout=60, what="abort")
        assert run.record.status is RunOutcome.ABORTED
        done = [k for k, o in run.record.outcomes.items() if o.status in (StepStatus.DONE, StepStatus.SKIPPED)]
        assert done[:2] == ["stop-etcd", "seed-data"]
        assert len(done) < len(run.plan.steps)
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, SummaryScreen), what="summary")
        assert "ABORTED" in static_text(app, "#verdict")
        stamp = run.plan.ctx.stamp
        assert f"/var/lib/etcd/member.etcdrescue-{stamp}" in static_text(app, "#facts")
        await pilot.press("q")
    assert app.return_code == 130
    seed_old = lab.host_path(lab.hosts[0], f"/var/lib/etcd/member.etcdrescue-{stamp}")
    assert (seed_old / "snap").is_dir(), "the seed's old data must be kept aside, not deleted"
    journal = run.record.journal
    assert journal is not None
    end = read_journal(journal)[-1]
    assert end["event"] == "run_end" and end["ok"] is False


@sync
async def test_a_cluster_healed_at_the_stop_dialog_goes_back_to_the_preflight(lab_factory: LabFactory,
                                                                              tmp_path: Path) -> None:
    """The stale-confirmation race in the wizard: the plan was built while the quorum was lost; the cluster heals
    while the stop dialog waits; yes changes nothing, says what changed and shows the pre-flight again."""
    lab = lab_factory(3, subnet=66)
    for h in lab.hosts[1:]:
        lab.stop_etcd(h)
    app = RescueApp(lab.inventory_path, journal_dir=tmp_path / "journal", gate_timeout=90)
    async with app.run_test(size=SIZE) as pilot:
        await to_run(app, pilot)
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the stop dialog")
        assert all(lab.host_path(h, LOCK_PATH).exists() for h in lab.hosts), "held through the confirmation"
        for h in lab.hosts[1:]:
            lab.start_etcd(h, wait=False)
        await asyncio.to_thread(lab.wait_healthy, None, 60)
        before = tree_digest(lab)
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen)
                         and "changed since the pre-flight" in app.screen.question, timeout=60, what="the refusal")
        notice = app.screen
        assert isinstance(notice, ConfirmScreen)
        assert "healthy no -> yes" in notice.detail, notice.detail
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, PreflightScreen) and app.screen.report is not None,
                         timeout=60, what="the pre-flight again")
        assert "healthy quorum" in static_text(app, "#verdict"), static_text(app, "#verdict")
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, InventoryScreen), what="back to the inventory")
        assert not any(lab.host_path(h, LOCK_PATH).exists() for h in lab.hosts), "backing out releases the locks"
        await pilot.press("ctrl+c")
    assert tree_digest(lab) == before
    assert all(lab.healthy(h) for h in lab.hosts)
