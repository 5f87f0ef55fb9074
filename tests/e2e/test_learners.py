"""Learner joins on the real lab: killed after the add, after the start and after the promote, a resume
completes each half-finished join; a learner left in the data by `--force-new-cluster` is removed first."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from etcdrescue.inventory.model import load_inventory
from etcdrescue.lab import Lab
from etcdrescue.model import BackupKind, Context, Method
from etcdrescue.plan import build_plan

from .conftest import requires_lab
from .helpers import break_lab, etcdrescue
from .test_kubeadm import assert_kubeadm_recovered, originals
from .test_recover import assert_recovered
from .test_resume import assert_nothing_redone

pytestmark = [pytest.mark.lab, requires_lab, pytest.mark.timeout(500)]

LabFactory = Callable[..., Lab]


def events(journal: Path) -> list[dict[str, Any]]:
    (path,) = journal.glob("*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(("profile", "etcd", "subnet"), [("okd3", "3.4", 110), ("kubeadm", "3.6", 231)])
def test_kill_inside_a_learner_join_then_resume(lab_factory: LabFactory, tmp_path: Path, profile: str, etcd: str,
                                                subnet: int) -> None:
    """Killed after the learner is added, after it started, and inside its promotion; each resume goes on. On
    kubeadm 3.6 too: learners, restore and membership as etcd 3.6 keeps them (v3 backend), tools uploaded."""
    kubeadm = profile == "kubeadm"
    lab = lab_factory(3, subnet=subnet, profile=profile, etcd=etcd)
    before = originals(lab) if kubeadm else {}
    b = break_lab(lab, "snapshot" if kubeadm else "openshift")
    assert b.backup
    tools = ["--etcd-tools", str(lab.bin_dir)] if kubeadm else []
    joiner = lab.hosts[1].name
    plan = build_plan(Context(load_inventory(lab.inventory_path), b.backup, Method.SNAPSHOT_RESTORE, "x",
                              backup_kind=BackupKind.FILE if kubeadm else BackupKind.DIR))
    join = plan.step(f"join-{joiner}")
    assert "--learner" in join.commands[0].script
    started = len(join.commands)  # the last command moves the manifest back: the learner starts
    faults = [f"after-command:join-{joiner}:1", f"after-command:join-{joiner}:{started}",
              f"after-command:promote-{joiner}:1"]
    journal = tmp_path / "j"
    for i, fault in enumerate(faults):
        res = etcdrescue("recover", "-i", str(lab.inventory_path), "--backup", b.backup, "--yes", "--journal",
                         str(journal), *tools, *(["--resume"] if i else []), env={"ETCDRESCUE_FAULT": fault})
        assert res.returncode == -9, (fault, res.stdout[-1500:], res.stderr)
        listed = [u for m in lab.member_list() for u in m["peer_urls"]]
        if i == 0:
            assert lab.hosts[1].peer_url in listed, "added, never started: no name yet"
    res = etcdrescue("recover", "-i", str(lab.inventory_path), "--backup", b.backup, "--yes", "--journal",
                     str(journal), *tools, "--resume")
    assert res.returncode == 0, res.stdout + res.stderr
    if kubeadm:
        assert_kubeadm_recovered(b, before, keys=500, post=0, forced=False)
        assert events(journal)[-1]["event"] == "run_end" and events(journal)[-1]["ok"] is True
    else:
        assert_recovered(b, journal, keys=500, post=0)
    assert_nothing_redone(journal)
    ran = [(e["step"], e["script"]) for e in events(journal) if e["event"] == "command" and e.get("exit") == 0
           and not e.get("skipped")]
    adds = [s for _, s in ran if " member add " in s]
    promotes = [s for _, s in ran if " member promote " in s]
    assert len(adds) == 2 and all("--learner" in s for s in adds)
    assert len(promotes) == 2


@pytest.mark.parametrize(("etcd", "subnet"), [("3.4", 111), ("3.5", 228)])
def test_a_stray_learner_kept_by_force_new_cluster_is_removed(lab_factory: LabFactory, tmp_path: Path, etcd: str,
                                                              subnet: int) -> None:
    """The lab's data carries a learner that never started, in a raft snapshot (what `--force-new-cluster` keeps
    of the membership on etcd <= 3.5.24: the snapshot's, not the WAL's), and a quorum restore starts from it.
    3.4 keeps it and the tool removes it; 3.5.25+ drops it itself, and the removal finds nothing to do."""
    lab = lab_factory(3, subnet=subnet, etcd=etcd)
    for h in lab.hosts:  # snapshots every 50 entries instead of 10000: the learner lands in one
        assert lab.exec(h, "echo ETCD_SNAPSHOT_COUNT=50 >> /etc/etcd/etcd.conf && "
                           "/usr/local/bin/master-restart etcd").returncode == 0
    time.sleep(1)
    lab.wait_healthy(timeout=60)
    ghost = f"https://127.0.{lab.subnet}.9:2380"
    script = ("ETCDCTL_API=3 etcdctl --cacert /etc/etcd/ca.crt --cert /etc/etcd/peer.crt --key /etc/etcd/peer.key "
              f"--endpoints {lab.hosts[0].client_url} member add ghost --peer-urls={ghost} --learner")
    deadline = time.monotonic() + 30
    while (add := lab.exec(0, script)).returncode != 0:  # refused for a few seconds after the cluster formed
        assert "unhealthy cluster" in add.stderr and time.monotonic() < deadline, add.stderr
        time.sleep(1)
    b = break_lab(lab, None)  # no backup: the seed's own data, which records the learner
    journal = tmp_path / "j"
    res = etcdrescue("recover", "-i", str(lab.inventory_path), "--yes", "--journal", str(journal))
    assert res.returncode == 0, res.stdout + res.stderr
    assert_recovered(b, journal, keys=500, post=100)
    assert all(ghost not in m["peer_urls"] for m in lab.member_list())
    removed = [e for e in events(journal) if e["event"] == "command" and e["step"] == "seed-strays"
               and not e.get("skipped")]
    if etcd == "3.4":
        assert len(removed) == 1 and removed[0]["exit"] == 0
    else:
        assert removed == [], "etcd 3.5.25+ removes the learner at --force-new-cluster itself"
