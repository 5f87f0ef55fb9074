"""Fixtures for the wizard's tests: an offline inventory, canned pre-flight facts, SVG snapshots.

Offline tests point the inventory at loopback addresses of the lab range where nothing
listens and replace the pre-flight probes with canned facts, so every screen can be
driven deterministically; lab tests use the real lab on subnets 60-69.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from textual.app import App
from textual.pilot import Pilot

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conftest_lab import lab_factory, requires_lab

from etcdrescue.inventory.model import Member
from etcdrescue.locks import LOCK_PATH
from etcdrescue.model import BackupKind
from etcdrescue.platform.tools import Tool
from etcdrescue.preflight.verdict import BackupFacts, HostFacts
from etcdrescue.probes import HostSurvey, SnapshotInfo
from etcdrescue.ssh.hosts import Hosts
from etcdrescue.ssh.transport import Result

__all__ = ["lab_factory", "requires_lab"]

SNAPSHOTS = Path(__file__).parent / "snapshots"
SIZE = (120, 40)
BACKUP = "/var/lib/etcd/openshift-backup-1"


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Recent inventories and journals go to tmp, never to the real ~/.local/state."""
    d = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(d))
    return d


def inventory_data(subnet: int = 61, port: int = 2299) -> dict[str, Any]:
    return {
        "cluster": "offline", "profile": "okd3",
        "ssh": {"user": "root", "port": port, "known_hosts": "/nonexistent/known_hosts"},
        "members": [{"name": f"master0{i}.test", "host": f"127.0.{subnet}.{i}",
                     "peer_url": f"https://127.0.{subnet}.{i}:2380",
                     "client_url": f"https://127.0.{subnet}.{i}:2379"} for i in (1, 2, 3)],
    }


@pytest.fixture
def offline_inventory(tmp_path: Path) -> Path:
    p = tmp_path / "inventory.yaml"
    p.write_text(yaml.safe_dump(inventory_data(), sort_keys=False), encoding="utf-8")
    return p


def broken_facts(member: Member, healthy: bool = False) -> HostFacts:
    survey = HostSurvey(manifest=True, disabled=False, conf=True, data_dir=True, member=True, member_kb=20480,
                        free_kb=10485760, etcd_pid=42 if healthy else None, client_port_open=healthy,
                        peer_port_open=healthy, etcdctl=Tool("/usr/bin/etcdctl", "3.4.23"), etcdutl=None,
                        bash="5.2", tls=True)
    return HostFacts(member.name, reachable=True, survey=survey, manifest_path="/etc/origin/node/pod/etcd.yaml",
                     healthy=healthy, member_id=f"8e9e05c5216469{member.name[7:8]}d" if healthy else "")


CannedPreflight = Callable[[bool], list[str]]


@pytest.fixture
def canned_preflight(monkeypatch: pytest.MonkeyPatch) -> CannedPreflight:
    """Replace the SSH probes of the pre-flight screen with canned facts, and every other script (the dry
    run's `skip_if` probes) with "exit 1, not in place", as on a broken cluster: no connection at all.
    `install` returns the list the scripts are recorded in."""

    def install(healthy: bool = False) -> list[str]:
        ran: list[str] = []

        def survey_host(hosts: Hosts, member: Member, *, uploaded: bool = False) -> HostFacts:
            time.sleep(0.05)
            return broken_facts(member, healthy=healthy)

        def locate_backup(hosts: Hosts, seed: str, path: str) -> BackupFacts:
            return BackupFacts(path, kind=BackupKind.DIR, size_kb=20480, mtime=0)

        def check_backup(hosts: Hosts, seed: str, found: BackupFacts, tools: object, *, identity: bool = True
                         ) -> BackupFacts:
            return replace(found, snapshot=SnapshotInfo(hash=1, revision=1234, total_keys=600, total_size=20971520))

        def run(hosts: Hosts, name: str, script: str, timeout: float = 60.0, on_output: object = None) -> Result:
            ran.append(f"{name}$ {script}")
            if LOCK_PATH in script:  # the run's lock on every member: taken (nobody holds it)
                return Result(name, script, 0, "ok" if ".renew-" in script else "", "", 0.0)
            return Result(name, script, 1, "", "", 0.0)

        monkeypatch.setattr("etcdrescue.preflight.survey.survey_host", survey_host)
        monkeypatch.setattr("etcdrescue.preflight.survey.locate_backup", locate_backup)
        monkeypatch.setattr("etcdrescue.preflight.survey.check_backup", check_backup)
        monkeypatch.setattr(Hosts, "run", run)
        return ran

    return install


async def wait_until(pilot: Pilot[Any], cond: Callable[[], object], timeout: float = 30,
                     what: str = "condition") -> None:
    """Poll app state with short pauses: `pilot.press` would wait for idle while a worker streams."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.05)


async def resume_question(app: App[Any], pilot: Pilot[Any]) -> str:
    """Inventory screen, enter, then the resume offer an unfinished journal brings: its question."""
    from etcdrescue.screens.inventory import InventoryScreen
    from etcdrescue.screens.widgets import ConfirmScreen

    await wait_until(pilot, lambda: isinstance(app.screen, InventoryScreen), what="inventory screen")
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="resume question")
    assert isinstance(app.screen, ConfirmScreen)
    return app.screen.question


def screen_text(app: App[Any]) -> str:
    """Everything visible on the current screen as plain text (for assertions)."""
    update = app.screen._compositor.render_full_update()
    return "\n".join("".join(strip.text for strip in line) for line in update.strips)


BOX = re.compile(r"[│╭╮╰╯─█▀▄▔▁▎▊▌▐▏▂▃▅▆▇▉]")


def flat(text: str) -> str:
    """The words of a screen in order, borders and line breaks gone: a wrapped title reads whole again."""
    return " ".join(BOX.sub(" ", text).split())


VOLATILE = [
    (re.compile(r"terminal-\d+-"), "terminal-X-"),
    (re.compile(r"\d{8}T\d{6}Z"), "STAMP"),
    (re.compile(r"\d+\.\d+(?:s|&#160;s)"), "N.Ns"),
    (re.compile(r"/tmp/pytest-of-[^/]+/pytest-\d+/[^/]+"), "/TMP"),
    (re.compile(r"\d+(?:&#160;)*s&#160;left"), "Ns&#160;left"),
]


def normalise(svg: str) -> str:
    for pattern, repl in VOLATILE:
        svg = pattern.sub(repl, svg)
    return svg


async def compare_snapshot(pilot: Pilot[Any], name: str, settle: float = 3.0) -> None:
    """Compare the current screen with tests/tui/snapshots/NAME.svg; UPDATE_SNAPSHOTS=1 rewrites it.

    A loaded machine may paint the footer or a table a little later, so a mismatch is retried
    for `settle` seconds before it counts.
    """
    app = pilot.app
    path = SNAPSHOTS / f"{name}.svg"
    expected = path.read_text(encoding="utf-8") if path.exists() else None
    deadline = time.monotonic() + settle
    if os.environ.get("UPDATE_SNAPSHOTS") == "1" or expected is None:
        await pilot.pause(0.5)
    while True:
        svg = normalise(app.export_screenshot(title=name))
        if svg == expected or time.monotonic() > deadline or expected is None:
            break
        await pilot.pause(0.1)
    if os.environ.get("UPDATE_SNAPSHOTS") == "1" or expected is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(svg, encoding="utf-8")
        if os.environ.get("UPDATE_SNAPSHOTS") != "1":
            pytest.fail(f"new snapshot {path.name} written; rerun (or set UPDATE_SNAPSHOTS=1 to regenerate)")
        return
    if svg != expected:
        (path.parent / f"{name}.actual.svg").write_text(svg, encoding="utf-8")
        pytest.fail(f"screen differs from {path} (see {name}.actual.svg; UPDATE_SNAPSHOTS=1 to accept)")


@pytest.fixture
def snapshot() -> Iterator[Callable[[Pilot[Any], str], Awaitable[None]]]:
    yield compare_snapshot


def sync(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run an async test body with asyncio.run (no async pytest plugin is installed here)."""
    import asyncio
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(fn(*args, **kwargs))

    return wrapper
