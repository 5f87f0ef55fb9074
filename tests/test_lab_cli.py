"""`etcdrescue lab`: refusals without the prerequisites, and up/status/break/down on a real lab (subnet 72)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest_lab import requires_lab

import etcdrescue.lab
from etcdrescue import cli
from etcdrescue.commands import lab as labcmd
from etcdrescue.lab import Lab


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "etcdrescue", *args], capture_output=True, text=True, timeout=120)


def test_missing_prerequisites_one_line_exit_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    monkeypatch.setattr(labcmd.os, "geteuid", lambda: 0)
    monkeypatch.setattr(etcdrescue.lab, "missing_prerequisites",
                        lambda: ["etcd not found (Debian package etcd-server)",
                                 "sshd not found (Debian package openssh-server)"])
    assert cli.main(["lab", "up", "--root", str(tmp_path / "l")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "etcd-server" in err and "apt-get install etcd-server openssh-server" in err
    assert not (tmp_path / "l").exists(), "nothing may be created before the refusal"


def test_not_root_one_line_exit_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                  tmp_path: Path) -> None:
    monkeypatch.setattr(labcmd.os, "geteuid", lambda: 1000)
    assert cli.main(["lab", "break", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs root" in err


def test_status_without_lab(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["lab", "status", "--root", str(tmp_path / "none")]) == 2
    assert "no lab at" in capsys.readouterr().err


def test_default_root_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert labcmd.default_root() == tmp_path / "etcdrescue" / "lab"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert labcmd.default_root() == tmp_path / "home" / ".local" / "state" / "etcdrescue" / "lab"


@pytest.mark.lab
@requires_lab
@pytest.mark.timeout(150)
def test_up_status_break_down(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    try:
        up = run_cli("lab", "up", "--root", str(root), "--members", "3", "--subnet", "72")
        assert up.returncode == 0, up.stderr
        assert up.stdout == f"{root / 'inventory.yaml'}\n"  # only the path: INV=$(etcdrescue lab up) works
        lab = Lab.load(root)
        assert [h.ip for h in lab.hosts] == ["127.0.72.1", "127.0.72.2", "127.0.72.3"]
        assert len(lab.read_prefix(labcmd.SAMPLE_PREFIX)) == labcmd.SAMPLE_KEYS
        backup = (root / labcmd.BACKUP_NOTE).read_text().strip()
        assert lab.host_path(0, backup + "/member/snap/db").is_file()
        assert backup in up.stderr

        again = run_cli("lab", "up", "--root", str(root))
        assert again.returncode == 0 and (root / labcmd.BACKUP_NOTE).read_text().strip() == backup
        wrong = run_cli("lab", "up", "--root", str(root), "--members", "5")
        assert wrong.returncode == 2 and "3-member lab" in wrong.stderr

        st = run_cli("lab", "status", "--root", str(root))
        assert st.returncode == 0 and st.stdout.count(" healthy ") == 3

        seed_db = lab.host_path(0, "/var/lib/etcd/member/snap/db")
        broke = run_cli("lab", "break", "--root", str(root), "--mode", "quorum")
        assert broke.returncode == 0, broke.stderr
        assert not any(lab.healthy(h) for h in lab.hosts)  # the seed alone has no quorum
        assert seed_db.read_bytes()[:8] != b"\x00etcdres"  # quorum mode leaves the seed's data alone
        assert lab.host_path(1, "/var/lib/etcd/member/wal/0000000000000000-0000000000000000.wal").read_bytes()[
            :4] == b"\xde\xad\xbe\xef"

        corrupt = run_cli("lab", "break", "--root", str(root), "--mode", "seed-corrupt")
        assert corrupt.returncode == 0, corrupt.stderr
        assert seed_db.read_bytes().startswith(b"\x00etcdrescue-lab-corrupt")

        down = run_cli("lab", "down", "--root", str(root))
        assert down.returncode == 0, down.stderr
        assert all(lab.supervisor_pid(h) is None for h in lab.hosts) and root.exists()
        assert run_cli("lab", "status", "--root", str(root)).stdout.count(" DOWN ") == 3

        gone = run_cli("lab", "down", "--root", str(root), "--destroy")
        assert gone.returncode == 0 and not root.exists()
    finally:
        if (root / "lab.json").exists():
            Lab.load(root).down()
