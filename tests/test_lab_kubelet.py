"""The lab's kubelet stand-in (PID 1 of each fake master) on races that once killed it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from etcdrescue.lab import host

MANIFEST = b"apiVersion: v1\nkind: Pod\nmetadata: {name: master-etcd}\nspec: {containers: [{args: ['exec etcd']}]}\n"


@pytest.fixture
def supervisor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> host.Supervisor:
    pod_dir, run = tmp_path / "pod", tmp_path / "run"
    pod_dir.mkdir()
    run.mkdir()
    monkeypatch.setattr(host, "POD_DIR", pod_dir)
    monkeypatch.setattr(host, "RUN", run)
    return host.Supervisor(tmp_path, "127.0.0.1", 2222)


def test_manifest_moved_between_listing_and_reading(supervisor: host.Supervisor, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's `mv` lands after the kubelet listed the pod dir but before it read the file."""
    (host.POD_DIR / "etcd.yaml").write_bytes(MANIFEST)
    assert supervisor.find_manifest() == MANIFEST
    real_scandir = os.scandir

    def listing_then_move(path: Any) -> list[os.DirEntry[str]]:
        with real_scandir(path) as it:
            entries = list(it)
        shutil.move(str(host.POD_DIR / "etcd.yaml"), str(tmp_path / "etcd.yaml"))
        return entries

    monkeypatch.setattr(host.os, "scandir", listing_then_move)
    assert supervisor.find_manifest() is None
    assert supervisor.manifest_file is None


def test_a_failing_tick_does_not_end_the_supervisor(supervisor: host.Supervisor,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ticks = []

    def tick() -> None:
        ticks.append(1)
        if len(ticks) == 1:
            raise RuntimeError("boom")
        supervisor.terminating = True

    monkeypatch.setattr(host, "POLL", 0.01)
    monkeypatch.setattr(host.signal, "signal", lambda *a: None)  # keep pytest's own SIGINT/SIGTERM handlers
    monkeypatch.setattr(supervisor, "tick", tick)
    assert supervisor.run() == 0
    assert len(ticks) == 2
    log = (host.RUN / "kubelet.log").read_text()
    assert "tick failed" in log and "RuntimeError: boom" in log


def test_sync_delay_holds_a_changed_manifest_back(supervisor: host.Supervisor) -> None:
    old, new = MANIFEST, MANIFEST.replace(b"exec etcd", b"exec etcd --force-new-cluster")
    supervisor.manifest = old
    assert supervisor.synced_view(new, 100.0) == new  # no delay file: seen at once
    (host.RUN / "sync-delay").write_text("3")
    assert supervisor.synced_view(new, 200.0) == old
    assert supervisor.synced_view(new, 202.9) == old
    assert supervisor.synced_view(new, 203.0) == new
    assert supervisor.synced_view(None, 204.0) is None  # removal is never delayed
    assert "syncing it in 3s" in (host.RUN / "kubelet.log").read_text()
