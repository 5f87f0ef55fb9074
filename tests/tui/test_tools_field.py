"""The inventory form's `--etcd-tools` field: checked as the CLI checks it (before any connection), its tools'
version shown, and the directory handed to the session, which uploads it before the pre-flight."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from textual.widgets import Input, Static

from etcdrescue.preflight.survey import Uploaded
from etcdrescue.screens.app import RescueApp
from etcdrescue.screens.inventory import InventoryScreen
from etcdrescue.screens.preflight import PreflightScreen
from etcdrescue.ssh.hosts import Hosts
from etcdrescue.upload import LocalTools

from .conftest import BACKUP, SIZE, CannedPreflight, sync, wait_until


def fake_tools(directory: Path, version: str) -> Path:
    """Programs that answer `version` as etcd's do (enough for the local check; nothing runs them on a host)."""
    directory.mkdir()
    for name in ("etcdctl", "etcdutl"):
        (directory / name).write_text(f"#!/bin/sh\necho '{name} version: {version}'\necho 'API version: 3.6'\n")
        (directory / name).chmod(0o755)
    return directory


def shown(app: RescueApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


@sync
async def test_a_bad_tools_directory_is_refused_on_its_field(offline_inventory: Path, tmp_path: Path) -> None:
    app = RescueApp(offline_inventory, BACKUP)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, InventoryScreen), what="inventory screen")
        app.screen.query_one("#etcd-tools", Input).value = str(tmp_path / "nowhere")
        app.screen.query_one("#inventory", Input).focus()
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert isinstance(app.screen, InventoryScreen), "bad tools never get past the first screen"
        assert f"--etcd-tools: {tmp_path / 'nowhere'} is not a directory" in shown(app, "#tools-error")


@sync
async def test_the_tools_field_names_its_version_and_reaches_the_session(
        offline_inventory: Path, tmp_path: Path, canned_preflight: CannedPreflight,
        monkeypatch: pytest.MonkeyPatch) -> None:
    canned_preflight(False)
    tools = fake_tools(tmp_path / "etcd-v3.6.17", "3.6.17")
    uploaded: list[LocalTools] = []

    def install(hosts: Hosts, local: LocalTools) -> Uploaded:
        uploaded.append(local)
        return Uploaded(local.tools(hosts.inv.platform.tools), local.version)

    monkeypatch.setattr("etcdrescue.session.install", install)
    app = RescueApp(offline_inventory, BACKUP, journal_dir=tmp_path / "journal")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, InventoryScreen), what="inventory screen")
        app.screen.query_one("#etcd-tools", Input).value = str(tools)
        app.screen.query_one("#inventory", Input).focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PreflightScreen) and app.screen.report is not None,
                         what="verdict")
        assert [(u.directory, u.version) for u in uploaded] == [(tools, "3.6.17")]
        assert app.session is not None and app.session.etcd_tools is not None
        screen = app.screen
        assert isinstance(screen, PreflightScreen)
        report = screen.report
        assert report is not None and report.tools is not None
        assert report.tools.etcdctl == "/var/lib/etcdrescue/tools/3.6.17/etcdctl"
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, InventoryScreen), what="back to the form")
        assert app.screen.query_one("#etcd-tools", Input).value == str(tools), "the field keeps its answer"
        assert shown(app, "#tools-found") == "etcdctl and etcdutl 3.6.17: for masters where etcd 3.6 runs"


@sync
async def test_the_preflight_says_which_tools_version_a_master_needs(
        offline_inventory: Path, canned_preflight: CannedPreflight, monkeypatch: pytest.MonkeyPatch) -> None:
    """A master without etcdctl whose image layers hold another version than its etcd: the verdict names the
    version etcd runs there and the minor `--etcd-tools` must be of."""
    from etcdrescue.inventory.model import Member
    from etcdrescue.platform.tools import ImageBinaries
    from etcdrescue.preflight.verdict import HostFacts

    from .conftest import broken_facts

    canned_preflight(False)
    layer = ImageBinaries("/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/9/fs/usr/local/bin",
                          "3.5.36", "3.5.36")

    def survey_host(hosts: Hosts, member: Member, *, uploaded: bool = False) -> HostFacts:
        facts = broken_facts(member)
        assert facts.survey is not None
        return replace(facts, server_version="3.6.17",
                       survey=replace(facts.survey, etcdctl=None, etcdutl=None, images=(layer,)))

    monkeypatch.setattr("etcdrescue.preflight.survey.survey_host", survey_host)
    app = RescueApp(offline_inventory, BACKUP)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PreflightScreen) and app.screen.report is not None,
                         what="verdict")
        said = shown(app, "#verdict") + shown(app, "#problems")
        assert ("etcd 3.6.17 runs there, its image layers hold etcdctl 3.5.36: give --etcd-tools DIR with etcdctl "
                "and etcdutl of 3.6") in " ".join(said.split()), said
