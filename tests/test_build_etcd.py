"""scripts/build-etcd builds each pinned version once per machine: a cache whose binaries report the pinned
version is left alone (the test gives it a `go` that fails: a build attempt would fail at once)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from etcdrescue.lab.versions import CACHE_ENV, pinned

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "build-etcd"


def fake(directory: Path, version: str) -> None:
    """etcd, etcdctl and etcdutl that print what the real ones print for `version`."""
    directory.mkdir(parents=True)
    for name, line in (("etcd", f"etcd Version: {version}"), ("etcdctl", f"etcdctl version: {version}"),
                       ("etcdutl", f"etcdutl version: {version}")):
        (directory / name).write_text(f"#!/bin/sh\necho '{line}'\necho 'API version: x'\n")
        (directory / name).chmod(0o755)


def test_a_built_version_is_not_built_again(tmp_path: Path) -> None:
    pins = pinned()
    for version in pins.values():
        fake(tmp_path / f"v{version}", version)
    res = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, CACHE_ENV: str(tmp_path), "ETCDRESCUE_GO": "/bin/false"})
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [f"etcd {v} (for {m}): already built in {tmp_path}/v{v}" for m, v in pins.items()]


def test_a_wrong_build_is_built_again(tmp_path: Path) -> None:
    pins = pinned()
    for version in pins.values():
        fake(tmp_path / f"v{version}", version)
    wrong = pins["3.6"]
    (tmp_path / f"v{wrong}" / "etcdutl").write_text("#!/bin/sh\necho 'etcdutl version: 3.6.0'\n")
    res = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, CACHE_ENV: str(tmp_path), "ETCDRESCUE_GO": "/bin/false"})
    assert res.returncode != 0
    assert res.stdout.splitlines()[-1] == f"etcd {wrong} (for 3.6): building into {tmp_path}/v{wrong} ..."


def test_the_lab_uses_the_same_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from etcdrescue.lab.versions import release

    version = pinned()["3.6"]
    fake(tmp_path / f"v{version}", version)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert release("3.6").binaries() == {n: tmp_path / f"v{version}" / n for n in ("etcd", "etcdctl", "etcdutl")}
