"""The revision path on the real lab: a restore whose tool can bump revisions does, on both platforms; one that
cannot restarts the control plane (asserted where the other e2e tests restore without a bump, see
`revisions.assert_control_plane_restarted`), or leaves it to the operator with --no-control-plane-restart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from etcdrescue.lab import Lab

from .conftest import requires_lab
from .helpers import break_lab, etcdrescue
from .revisions import (
    assert_control_plane_restarted,
    assert_really_bumped,
    bumping_tools,
    done_steps,
    journal_events,
    restore_flags,
    snapshot_revision,
)

pytestmark = [pytest.mark.lab, requires_lab, pytest.mark.timeout(400)]

LabFactory = Callable[..., Lab]


@pytest.mark.parametrize(("profile", "etcd", "backup", "bump", "subnet"), [
    ("okd3", "3.4", "openshift", None, 180),
    ("kubeadm", "3.5", "snapshot", "5000", 181),
    ("okd3", "3.5", "openshift", None, 225),
], ids=["okd3-etcd34-default-bump-stand-in", "kubeadm-etcd35-bump-5000", "okd3-etcd35-default-bump"])
def test_a_restore_bumps_revisions_where_the_tool_can(lab_factory: LabFactory, tmp_path: Path, profile: str,
                                                      etcd: str, backup: str, bump: str | None, subnet: int) -> None:
    """etcd 3.5.10+ etcdutl bumps for real: the kubeadm hosts get the lab's via --etcd-tools, the okd3 hosts use
    their own. Debian's etcdctl 3.4.23 cannot (3.4.27+ can): there a stand-in takes the flags and records them."""
    b = break_lab(lab_factory(3, subnet=subnet, profile=profile, etcd=etcd), backup)
    assert b.backup
    stand_in = etcd == "3.4"
    tools = (["--etcd-tools", str(bumping_tools(b.lab, tmp_path / "tools"))] if stand_in
             else [] if b.lab.host_tools else ["--etcd-tools", str(b.lab.bin_dir)])
    backup_revision = 0 if stand_in else snapshot_revision(b.lab, b.backup)
    journal = tmp_path / "j"
    res = etcdrescue("recover", "-i", str(b.lab.inventory_path), "--backup", b.backup, "--yes", "--journal",
                     str(journal), *tools, *(["--bump-revision", bump] if bump else []))
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    amount = int(bump or 1_000_000_000)
    if stand_in:
        assert restore_flags(b.lab) == [f"--bump-revision {amount} --mark-compacted"]
    else:
        assert_really_bumped(b.lab, journal, backup_revision, amount, prefix="/pre/")
    assert f"revisions bumped by {amount:,} with --mark-compacted" in out
    events = journal_events(journal)
    start = next(e for e in events if e["event"] == "run_start")
    why = start["revisions"].pop("why")
    assert start["revisions"] == {"path": "bumped", "bump": amount, "restart_control_plane": False}
    assert why.startswith(f"{'etcdctl' if etcd == '3.4' else 'etcdutl'} snapshot restore takes --bump-revision; "
                          "every member comes from the restore; compared: backup at revision "), why
    assert not [s for s in done_steps(events) if s.startswith("restart-")]
    assert "restart by hand" not in out
    assert len(b.lab.read_prefix("/pre/", host=b.lab.hosts[2])) == 500
    (path,) = journal.glob("*.jsonl")
    report = etcdrescue("report", str(path))
    assert f"Revisions: revisions bumped by {amount:,} with --mark-compacted" in report.stdout, report.stdout


def test_an_asked_for_bump_the_tool_lacks_is_refused(lab_factory: LabFactory, tmp_path: Path) -> None:
    b = break_lab(lab_factory(3, subnet=182), "openshift")
    assert b.backup
    res = etcdrescue("recover", "-i", str(b.lab.inventory_path), "--backup", b.backup, "--yes", "--journal",
                     str(tmp_path / "j"), "--bump-revision", "1000")
    assert res.returncode == 2, res.stdout + res.stderr
    assert ("--bump-revision 1000: etcdctl snapshot restore has no --bump-revision (etcdctl >= 3.4.27, "
            "etcdutl >= 3.5.10)") in res.stdout + res.stderr
    assert not (tmp_path / "j").exists() or not list((tmp_path / "j").glob("*.jsonl"))
    res = etcdrescue("recover", "-i", str(b.lab.inventory_path), "--backup", b.backup, "--yes", "--journal",
                     str(tmp_path / "j"), "--no-control-plane-restart")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert not [s for s in done_steps(journal_events(tmp_path / "j")) if s.startswith("restart-")]
    assert ("etcd's revisions went backwards: restart by hand, in this order:\n"
            "  - the API servers, then the controller managers and schedulers, one master at a time\n") in out


def test_okd3_on_crio_restarts_its_control_plane_through_crictl(lab_factory: LabFactory, tmp_path: Path) -> None:
    """OKD 3 masters on CRI-O have no docker: the restart's "running again" check asks crictl (as openshift-ansible's
    own master-restart for CRI-O does), else it would fail after a recovery that otherwise worked."""
    b = break_lab(lab_factory(3, subnet=230, runtime="crio"), "openshift")
    assert b.backup
    assert b.lab.exec(0, "command -v docker crictl").stdout.split() == ["/usr/local/bin/crictl"]
    journal = tmp_path / "j"
    res = etcdrescue("recover", "-i", str(b.lab.inventory_path), "--backup", b.backup, "--yes", "--journal",
                     str(journal))
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    assert_control_plane_restarted(b.lab, journal)
    assert len(b.lab.read_prefix("/pre/", host=b.lab.hosts[2])) == 500
