"""`etcdrescue runbook` asks the seed what the backup is, and prints exactly what a run then executes.

A snapshot file named without `.db` (`/var/lib/etcd/snapshot-latest`) used to be rendered with the
data-dir restore (`.../member/snap/db --skip-hash-check`). On the real lab (subnet 150) the runbook
probes it over SSH, read-only, renders the file restore, and a recovery from that file runs the very
commands of the runbook; a seed it cannot log in to (unknown host key, key refused) or a missing
backup is refused in one line (exit 2).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from runbook_reader import read

from etcdrescue.documents.helpers import Shelf
from etcdrescue.documents.runbook import fence
from etcdrescue.inventory.model import load_inventory
from etcdrescue.lab import Lab
from etcdrescue.model import BackupKind, Context, Method, RevisionPath, Revisions
from etcdrescue.plan import build_plan
from etcdrescue.platform.tools import EtcdTools
from etcdrescue.probes import backup_survey

from .conftest import requires_lab
from .helpers import POST, PRE, Broken, etcdrescue, tree_digest
from .test_recover import assert_recovered

pytestmark = [pytest.mark.lab, requires_lab, pytest.mark.timeout(400)]

LabFactory = Callable[..., Lab]
SNAPSHOT = "/var/lib/etcd/snapshot-latest"
STAMP = "20240301T120000Z"


def break_with_snapshot_file(lab: Lab) -> Broken:
    """500 keys, an `etcdctl snapshot save` to a file without suffix on the seed, 100 more keys, quorum lost."""
    lab.put_keys(PRE, 500)
    time.sleep(0.6)
    inv = load_inventory(lab.inventory_path)
    save = lab.exec(0, f"{EtcdTools(inv.paths).ctl([inv.seed.client_url], 'snapshot', 'save', SNAPSHOT)} >/dev/null")
    assert save.returncode == 0, save.stderr
    lab.put_keys(POST, 100)
    lab.break_quorum(lab.hosts[1:3])
    return Broken(lab, SNAPSHOT)


def refusal(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 2, res.stdout + res.stderr
    (line,) = res.stderr.splitlines()
    return line


def test_runbook_probes_a_snapshot_file_and_matches_the_run(lab_factory: LabFactory, tmp_path: Path) -> None:
    b = break_with_snapshot_file(lab_factory(3, subnet=150))
    lab, inv = b.lab, str(b.lab.inventory_path)
    seed = lab.hosts[0].name
    before = tree_digest(lab)
    out = tmp_path / "runbook.md"
    res = etcdrescue("runbook", "-i", inv, "--backup", SNAPSHOT, "--stamp", STAMP, "-o", str(out), timeout=120)
    assert res.returncode == 0, res.stderr
    assert tree_digest(lab) == before, "the probe changed a host"
    doc = out.read_text()
    assert f"ETCDCTL_API=3 etcdctl snapshot restore {SNAPSHOT} --name {seed} " in doc
    assert "--skip-hash-check" not in doc
    assert "member/snap/db" not in doc.replace("\n".join(fence(backup_survey(SNAPSHOT).script)), "")

    # refusals, each one line and no file: a missing backup, an unknown host key, a key the seed refuses
    gone = tmp_path / "gone.md"
    assert refusal(etcdrescue("runbook", "-i", inv, "--backup", "/var/lib/etcd/no-such-backup", "-o", str(gone),
                              timeout=120)) == (
        f"etcdrescue: backup /var/lib/etcd/no-such-backup not found on {seed}: check the path, or give "
        "--backup-kind dir|file if it is not there yet")
    empty_known = tmp_path / "known_hosts"
    empty_known.write_text("")
    stranger = tmp_path / "id_stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    for label, ssh, expected in [
        ("unknown host key", {"known_hosts": str(empty_known)}, f": host key not in {empty_known} (offered ssh-"),
        ("authentication", {"identity_file": str(stranger)}, "(SSH authentication as root failed:"),
    ]:
        data = yaml.safe_load(lab.inventory_path.read_text())
        data["ssh"].update(ssh)
        other = tmp_path / f"{label.replace(' ', '-')}.yaml"
        other.write_text(yaml.safe_dump(data))
        line = refusal(etcdrescue("runbook", "-i", str(other), "--backup", SNAPSHOT, "-o", str(gone), timeout=120))
        assert line.startswith(f"etcdrescue: cannot probe the backup {SNAPSHOT} on {seed} ("), (label, line)
        assert expected in line and line.endswith("): give --backup-kind dir|file"), (label, line)
    assert not gone.exists()
    assert tree_digest(lab) == before

    # the recovery restores the snapshot file, running the runbook's commands in its order
    journal = tmp_path / "j"
    run = etcdrescue("recover", "-i", inv, "--backup", SNAPSHOT, "--yes", "--journal", str(journal))
    assert run.returncode == 0, run.stdout + run.stderr
    assert_recovered(b, journal, keys=500, post=0)
    (path,) = journal.glob("*.jsonl")
    events = [json.loads(line) for line in path.read_text().splitlines()]
    start = next(e for e in events if e["event"] == "run_start")
    assert start["backup_kind"] == "file"
    shelf = Shelf(STAMP)
    ran = [(e["host"], shelf.command(e["script"].replace(start["stamp"], STAMP))) for e in events
           if e["event"] == "command" and e.get("attempt", 1) == 1]  # a retried command is one runbook entry
    # etcdctl 3.4.23 cannot bump: the run, like the runbook, restarts the control plane after the verify
    plan = build_plan(Context(load_inventory(inv), SNAPSHOT, Method.SNAPSHOT_RESTORE, STAMP,
                              backup_kind=BackupKind.FILE,
                              revisions=Revisions(RevisionPath.BACKWARDS, restart_control_plane=True)))
    assert len(ran) == len(plan.commands())
    read_by_hand = [(e.host, e.script) for entries in read(doc).values() for e in entries]
    assert ran == read_by_hand, "the run's commands are not the runbook's, host for host and in order"
