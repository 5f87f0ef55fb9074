"""A pre-flight worker that raises (a bug, an unwrapped paramiko error, an OSError) must not leave the
screen at "Surveying…": the verdict names the member or the backup and the exception, Next stays
disabled, and a refresh after the cause is gone reaches the normal verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import Button, DataTable, Static

import etcdrescue.preflight.survey as survey
from etcdrescue.inventory.model import Member
from etcdrescue.platform.tools import EtcdTools
from etcdrescue.preflight.verdict import BackupFacts, HostFacts
from etcdrescue.screens.app import RescueApp
from etcdrescue.screens.inventory import InventoryScreen
from etcdrescue.screens.preflight import PreflightScreen
from etcdrescue.ssh.hosts import Hosts

from .conftest import BACKUP, SIZE, sync, wait_until


def verdict(app: RescueApp) -> str:
    return str(app.screen.query_one("#verdict", Static).render())


def install_failure(monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    """Make the canned survey of `target` (a member name, or "backup") raise, as a bug would."""
    canned_host, canned_backup = survey.survey_host, survey.check_backup

    def survey_host(hosts: Hosts, member: Member, *, uploaded: bool = False) -> HostFacts:
        if member.name == target:
            raise RuntimeError("probe exploded\nsecond line of the traceback text")
        return canned_host(hosts, member, uploaded=uploaded)

    def check_backup(hosts: Hosts, seed: str, found: BackupFacts, tools: EtcdTools, *, identity: bool = True
                     ) -> BackupFacts:
        if target == "backup":
            raise RuntimeError("probe exploded")
        return canned_backup(hosts, seed, found, tools, identity=identity)

    monkeypatch.setattr("etcdrescue.preflight.survey.survey_host", survey_host)
    monkeypatch.setattr("etcdrescue.preflight.survey.check_backup", check_backup)


@pytest.mark.parametrize(("target", "label"), [("master02.test", "master02.test"), ("backup", f"backup {BACKUP}")],
                         ids=["member", "backup"])
@sync
async def test_failed_survey_is_shown_blocks_next_and_refresh_retries(
        offline_inventory: Path, canned_preflight: Callable[[bool], None], monkeypatch: pytest.MonkeyPatch,
        target: str, label: str) -> None:
    canned_preflight(False)
    canned_host, canned_backup = survey.survey_host, survey.check_backup
    install_failure(monkeypatch, target)
    app = RescueApp(offline_inventory, BACKUP)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, InventoryScreen), what="inventory screen")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PreflightScreen) and "failed" in verdict(app),
                         timeout=5, what="the failure in the verdict (not 'Surveying…' forever)")
        assert isinstance(app.screen, PreflightScreen)
        screen: PreflightScreen = app.screen
        assert verdict(app) == f"Survey failed: {label}: RuntimeError: probe exploded", verdict(app)
        assert "\n" not in verdict(app)
        table = screen.query_one("#members", DataTable)
        if target == "backup":
            assert "RuntimeError: probe exploded" in str(screen.query_one("#backup-line", Static).render())
        else:
            assert str(table.get_cell(target, "ssh")) == "ERROR"
        await pilot.pause(0.3)
        assert screen.report is None
        assert screen.query_one("#next", Button).disabled
        await pilot.press("n")
        await pilot.pause(0.1)
        assert app.screen is screen, "no recovery may start on an incomplete survey"

        monkeypatch.setattr("etcdrescue.preflight.survey.survey_host", canned_host)
        monkeypatch.setattr("etcdrescue.preflight.survey.check_backup", canned_backup)
        await pilot.press("r")
        await wait_until(pilot, lambda: screen.report is not None, timeout=5, what="the verdict after a refresh")
        assert "recovery can start" in verdict(app)
        assert not screen.query_one("#next", Button).disabled
        assert str(table.get_cell("master02.test", "ssh")) == "ok"
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, InventoryScreen), what="back to the inventory")
