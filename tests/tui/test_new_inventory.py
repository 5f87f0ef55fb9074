"""The first screen's two other ways to an inventory: import an Ansible file, discover from a host.

Import runs the real converter on tests/data/ansible; discover's SSH side is replaced by the core's
`discover_with` on canned host answers (the real SSH path is tests/e2e/test_inventory_lab.py). Each
flow ends with the written file picked on the inventory screen, as if typed in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from etcdrescue.discover import Discovery, Target, discover_with
from etcdrescue.errors import HostKeyError
from etcdrescue.inventory import load_inventory
from etcdrescue.screens.app import RescueApp
from etcdrescue.screens.inventory import InventoryScreen
from etcdrescue.screens.new_inventory import DiscoverScreen, ImportScreen
from etcdrescue.screens.recent import load_recent, remember

from .conftest import sync, wait_until

DATA = Path(__file__).resolve().parents[1] / "data" / "ansible"
Snapshot = Callable[[Pilot[Any], str], Awaitable[None]]


def shown(app: RescueApp, selector: str) -> str:
    return str(app.screen.query_one(selector).render())


async def type_into(pilot: Pilot[Any], app: RescueApp, selector: str, text: str) -> None:
    app.screen.query_one(selector, Input).value = text
    await pilot.pause()


@sync
async def test_import_writes_shows_and_picks_the_inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           snapshot: Snapshot) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_STATE_HOME", "state")  # relative: the same picture in every tmp dir
    monkeypatch.setattr("etcdrescue.screens.new_inventory.new_stamp", lambda: "20260101T000000Z")
    (tmp_path / "hosts").write_bytes((DATA / "field-report.hosts").read_bytes())
    app = RescueApp()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, InventoryScreen), what="inventory")
        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(app.screen, ImportScreen), what="import form")
        await type_into(pilot, app, "#file", "hosts")
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen.has_class("written"), what="written inventory")
        assert "node01.okd.example.com (OSEv3, nodes): not an etcd member: left out" in shown(app, "#text")
        await snapshot(pilot, "import-written")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, InventoryScreen), what="back on the inventory")
        value = app.screen.query_one("#inventory", Input).value
        assert value == "state/etcdrescue/inventories/okd.example.com-20260101T000000Z.yaml"
        assert load_inventory(value).cluster == "okd.example.com"
        assert app.screen.query_one("#backup").has_focus, "the backup is the next thing to give"
        assert not app.screen.query_one("#inventory-error").has_class("shown")


@sync
async def test_import_error_stays_on_the_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = RescueApp()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, InventoryScreen), what="inventory")
        await pilot.click("#import")
        await wait_until(pilot, lambda: isinstance(app.screen, ImportScreen), what="import form")
        await type_into(pilot, app, "#file", "nope")
        await pilot.press("enter")
        await wait_until(pilot, lambda: "nope: no such file" in shown(app, "#error"), what="error")
        assert isinstance(app.screen, ImportScreen)
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, InventoryScreen), what="back")
        assert app.screen.query_one("#inventory", Input).value == ""
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").rglob("*.yaml"))


@sync
async def test_discover_passes_the_form_to_the_core(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_discover import host, okd3

    seen: list[tuple[Target, str | None]] = []

    def fake(target: Target, profile: str | None = None, cluster: str | None = None,
             passphrase: str | None = None) -> Discovery:
        seen.append((target, profile))
        if target.host == "10.9.9.9":
            raise HostKeyError("10.9.9.9: host key not in /k (offered ssh-ed25519 SHA256:x): refusing")
        return discover_with(host(okd3()), target, profile, cluster)

    monkeypatch.setattr("etcdrescue.discover.discover", fake)
    app = RescueApp()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, InventoryScreen), what="inventory")
        await pilot.press("f2")
        await wait_until(pilot, lambda: isinstance(app.screen, DiscoverScreen), what="discover form")
        for selector, value in (("#host", "10.9.9.9"), ("#port", "2222"), ("#known_hosts", "/k"),
                                ("#profile", "okd3")):
            await type_into(pilot, app, selector, value)
        await pilot.press("enter")
        await wait_until(pilot, lambda: "host key not in /k" in shown(app, "#error"), what="refusal shown")
        await type_into(pilot, app, "#host", "10.0.0.12")
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen.has_class("written"), what="written inventory")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, InventoryScreen), what="back on the inventory")
        inv = load_inventory(app.screen.query_one("#inventory", Input).value)
    assert [m.name for m in inv.members] == [f"master0{i}.example.com" for i in (1, 2, 3)]
    assert (inv.ssh.port, inv.ssh.known_hosts) == (2222, "/k")
    assert [(t.host, t.port, t.known_hosts, p) for t, p in seen] == [
        ("10.9.9.9", 2222, "/k", "okd3"), ("10.0.0.12", 2222, "/k", "okd3")]


def test_recent_drops_inventories_that_are_gone(tmp_path: Path) -> None:
    kept, gone = tmp_path / "kept.yaml", tmp_path / "gone.yaml"
    kept.write_text("x", encoding="utf-8")
    gone.write_text("x", encoding="utf-8")
    remember(str(kept), None)
    remember(str(gone), "/var/lib/etcd/b")
    assert [d["inventory"] for d in load_recent()] == [str(gone), str(kept)]
    gone.unlink()
    assert load_recent() == [{"inventory": str(kept), "backup": ""}]
