"""Two operators must not recover the same cluster at once: the seed's lock file and the local flock."""

from __future__ import annotations

import fcntl
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from etcdrescue.lab import Lab

from .audit import audit, snapshot
from .conftest import requires_lab
from .helpers import break_lab, etcdrescue, host_file, tree_digest
from .test_recover import assert_recovered

pytestmark = [pytest.mark.lab, requires_lab, pytest.mark.timeout(400)]

LabFactory = Callable[..., Lab]
LOCK = "/var/lib/etcd/.etcdrescue.lock"
OTHER = {"user": "alice", "host": "bastion-2.example", "pid": 4242, "since": "2024-05-01T10:00:00Z",
         "stamp": "20240501T100000Z"}


def test_locks(lab_factory: LabFactory, tmp_path: Path) -> None:
    b = break_lab(lab_factory(3, subnet=84), "openshift")
    lab = b.lab
    assert b.backup
    journal = tmp_path / "j"
    args = ["recover", "-i", str(lab.inventory_path), "--backup", b.backup, "--yes", "--journal", str(journal)]

    # another operator's run holds the seed
    planted = (json.dumps(OTHER) + "\n").encode()
    lock = host_file(lab, 0, LOCK)
    lock.write_bytes(planted)
    before = tree_digest(lab)
    files_before = snapshot(lab)
    res = etcdrescue(*args, timeout=90)
    assert res.returncode == 2, res.stdout + res.stderr
    msg = res.stderr.strip().splitlines()[-1]
    assert (f"master01.lab.example: {LOCK} says alice@bastion-2.example (pid 4242) has been recovering this "
            "cluster since 2024-05-01T10:00:00Z; if that run is dead, rerun with --break-lock") in msg, msg
    assert tree_digest(lab) == before
    assert not list(journal.glob("*.jsonl"))

    # another etcdrescue on this machine holds the local lock (checked before the seed's)
    (journal / "locks").mkdir(parents=True, exist_ok=True)
    with open(journal / "locks" / "lab.lock", "a+", encoding="utf-8") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.seek(0)
        held.truncate()
        held.write('{"user": "bob", "host": "here", "pid": 1}')
        held.flush()
        local = etcdrescue(*args, "--break-lock", timeout=90)
    assert local.returncode == 2, local.stdout + local.stderr
    assert "another etcdrescue on this machine is recovering this cluster:" in local.stderr
    assert local.stderr.strip().endswith('recovering this cluster: {"user": "bob", "host": "here", "pid": 1}')
    assert tree_digest(lab) == before
    assert not list(journal.glob("*.jsonl"))

    # the stale seed lock is broken on request, kept aside, and the recovery finishes
    broke = etcdrescue(*args, "--break-lock")
    assert broke.returncode == 0, broke.stdout + broke.stderr
    assert_recovered(b, journal, keys=500, post=0)
    data = host_file(lab, 0, "/var/lib/etcd")
    (stamp,) = [p.name.rsplit("-", 1)[1] for p in data.iterdir() if p.name.startswith("member.etcdrescue-")]
    assert (data / f".etcdrescue.lock.broken-{stamp}").read_bytes() == planted
    released = json.loads((data / f".etcdrescue.lock.released-{stamp}").read_text())
    assert released["stamp"] == stamp and released["user"] != "alice"
    assert not lock.exists()
    assert audit(lab, files_before) == []
    (tmp_path.parent / "lock-messages.json").write_text(json.dumps({"remote": msg, "local": local.stderr.strip()}))
