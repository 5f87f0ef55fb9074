"""End-to-end: break a real lab cluster, run `etcdrescue recover --yes`, check every promise of the recovery."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from etcdrescue.engine import DryRunMark
from etcdrescue.lab import Lab
from etcdrescue.plan import Plan

from .conftest import requires_lab
from .helpers import POST, PRE, Broken, break_lab, etcdrescue, host_file, tree_digest
from .revisions import assert_control_plane_restarted, done_steps, journal_events

pytestmark = [pytest.mark.lab, requires_lab, pytest.mark.timeout(400)]

LabFactory = Callable[..., Lab]
MANIFEST = "/etc/origin/node/pod/etcd.yaml"
DISABLED = "/etc/origin/node/pod/disabled/etcd.yaml"


def assert_recovered(b: Broken, journal_dir: Path, *, keys: int, post: int) -> None:
    lab = b.lab
    members = lab.member_list()
    assert sorted((m["name"], tuple(m["peer_urls"])) for m in members) == sorted(
        (h.name, (h.peer_url,)) for h in lab.hosts)
    assert not any("localhost" in u for m in members for u in m["peer_urls"])
    for h in lab.hosts:
        assert lab.healthy(h), f"{h.name} not healthy"
    leaders = set()
    for h in lab.hosts:
        with lab.client(h) as c:
            leaders.add(c.status().leader.id)
    assert len(leaders) == 1
    assert len(lab.read_prefix(PRE, host=lab.hosts[2])) == keys
    assert len(lab.read_prefix(POST, host=lab.hosts[1])) == post
    for i, h in enumerate(lab.hosts):
        manifest = host_file(lab, i, MANIFEST)
        assert manifest.exists() and "--force-new-cluster" not in manifest.read_text()
        assert not host_file(lab, i, DISABLED).exists()
        data = host_file(lab, i, "/var/lib/etcd")
        kept = [p for p in data.iterdir() if p.name.startswith("member.etcdrescue-")]
        assert kept, f"{h.name}: old data not kept aside"
        conf = host_file(lab, i, "/etc/etcd/etcd.conf").read_text()
        assert [p for p in host_file(lab, i, "/etc/etcd").iterdir() if p.name.startswith("etcd.conf.etcdrescue-")]
        state = "new" if i == 0 else "existing"
        assert f"ETCD_INITIAL_CLUSTER_STATE={state}\n" in conf
    journals = list(journal_dir.glob("*.jsonl"))
    assert len(journals) == 1
    events = [json.loads(line) for line in journals[0].read_text().splitlines()]
    assert events[-1]["event"] == "run_end" and events[-1]["ok"] is True


@pytest.mark.parametrize(("backup", "method", "keys", "post", "subnet"), [
    ("openshift", "snapshot-restore", 500, 0, 21),
    ("copy", "force-new-cluster", 500, 0, 22),
    (None, None, 500, 100, 23),
], ids=["openshift-backup-snapshot-restore", "data-dir-copy-force-new-cluster", "quorum-restore-no-backup"])
def test_recover(lab_factory: LabFactory, tmp_path: Path, backup: str | None, method: str | None, keys: int,
                 post: int, subnet: int) -> None:
    b = break_lab(lab_factory(3, subnet=subnet), backup)
    uses_flag = method != "snapshot-restore"
    if uses_flag:  # the seed's kubelet acts on a changed manifest 3 s late, as a real one may
        host_file(b.lab, 0, "/run/etcdlab/sync-delay").write_text("3")
    args = ["recover", "-i", str(b.lab.inventory_path), "--yes", "--journal", str(tmp_path / "j")]
    if b.backup:
        assert method is not None
        args += ["--backup", b.backup, "--method", method]
    res = etcdrescue(*args)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "recovered lab" in res.stdout
    assert_recovered(b, tmp_path / "j", keys=keys, post=post)
    assert_revision_path(b, tmp_path / "j")
    if uses_flag:  # the restart gate waited for the kubelet, not for the old process's health
        (journal,) = (tmp_path / "j").glob("*.jsonl")
        events = [json.loads(line) for line in journal.read_text().splitlines()]
        put_back = next(e["ts"] for e in events if e["event"] == "command" and e["step"] == "seed-drop-flag"
                        and e["script"].startswith("cp -p") and ".etcd.yaml.etcdrescue" in e["script"])
        passed = next(e["ts"] for e in events if e["event"] == "gate" and e["ok"] and "after the restart" in e["title"])
        assert passed - put_back >= 2.5, (put_back, passed)
    if method == "force-new-cluster":
        pristine = [p for p in host_file(b.lab, 0, "/etc/origin/node/pod/disabled").iterdir()
                    if p.name.startswith("etcd.yaml.etcdrescue-")]
        assert len(pristine) == 1
        assert pristine[0].read_bytes() == host_file(b.lab, 0, MANIFEST).read_bytes()


def assert_revision_path(b: Broken, journal: Path) -> None:
    """3.4.23's etcdctl cannot bump: a restore from a backup restarts the control plane; a quorum restore
    from the freshest member keeps its revisions and restarts nothing."""
    if b.backup:
        assert_control_plane_restarted(b.lab, journal)
    else:
        assert not [s for s in done_steps(journal_events(journal)) if s.startswith("restart-")]


def test_recover_five_members(lab_factory: LabFactory, tmp_path: Path) -> None:
    b = break_lab(lab_factory(5, subnet=24), "openshift")
    res = etcdrescue("recover", "-i", str(b.lab.inventory_path), "--backup", str(b.backup), "--yes",
                     "--journal", str(tmp_path / "j"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert_recovered(b, tmp_path / "j", keys=500, post=0)


def dry_run(b: Broken, journal: Path) -> tuple[Plan, list[DryRunMark]]:
    """`recover --dry-run`: nothing changed on any host, no journal, every step title, command and gate
    printed in plan order. Returns the plan printed and each command's mark, in plan order."""
    from etcdrescue.inventory import load_inventory
    from etcdrescue.model import Context, Method, RevisionPath, Revisions
    from etcdrescue.plan import build_plan

    before = tree_digest(b.lab)
    assert b.backup
    res = etcdrescue("recover", "-i", str(b.lab.inventory_path), "--backup", b.backup, "--dry-run",
                     "--journal", str(journal))
    assert res.returncode == 0, res.stdout + res.stderr
    assert tree_digest(b.lab) == before
    assert not journal.exists()
    stamp = next(line.rsplit(" ", 1)[1] for line in res.stdout.splitlines() if line.startswith("Plan for"))
    # etcdctl 3.4.23 cannot bump revisions: the plan restarts the control plane after the verify
    revisions = Revisions(RevisionPath.BACKWARDS, restart_control_plane=True)
    plan = build_plan(Context(load_inventory(b.lab.inventory_path), b.backup, Method.SNAPSHOT_RESTORE, stamp,
                              revisions=revisions))
    printed = [line.strip() for line in res.stdout.splitlines()]
    words = {m.value: m for m in DryRunMark}
    marks: list[DryRunMark] = []
    position = 0
    for i, step in enumerate(plan.steps, 1):  # title, every command per host and its mark, then the gate
        lines = [(f"[{i}/{len(plan.steps)}] {step.title}", False)]
        lines += [(f"{cmd.host}$ {cmd.script}", True) for cmd in step.commands]
        lines += [(f"gate: {step.gate.summary}", False)] if step.gate is not None else []
        for line, is_command in lines:
            assert line in printed[position:], f"missing or out of order: {line}"
            position = printed.index(line, position)
            if is_command:
                assert printed[position + 1] in words, f"no mark after {line}: {printed[position + 1]}"
                marks.append(words[printed[position + 1]])
    assert "gate: etcd is down everywhere (no process, ports closed), for 1s in a row (up to 60s)" in printed
    return plan, marks


def expected_marks(plan: Plan, in_place: int) -> list[DryRunMark]:
    """The first `in_place` mutating commands are in place, the next would run, every later mutating one
    depends on it (its probe would read a state the dry run did not produce); read-only ones never run."""
    out: list[DryRunMark] = []
    mutating = 0
    for cmd in plan.commands():
        if not cmd.mutates:
            out.append(DryRunMark.NOT_PROBED)
            continue
        mutating += 1
        out.append(DryRunMark.IN_PLACE if mutating <= in_place else DryRunMark.WOULD_RUN if mutating == in_place + 1
                   else DryRunMark.AFTER_EARLIER_CHANGE)
    return out


def test_dry_run_changes_nothing(lab_factory: LabFactory, tmp_path: Path) -> None:
    b = break_lab(lab_factory(3, subnet=25), "openshift")
    plan, marks = dry_run(b, tmp_path / "j")
    stops = [c for c in plan.steps[0].commands if not c.while_gate]
    assert [c.host for c in stops] == [h.name for h in b.lab.hosts]
    assert marks == expected_marks(plan, in_place=0)
    assert marks[0] is DryRunMark.WOULD_RUN and DryRunMark.IN_PLACE not in marks

    for h in b.lab.hosts:  # the stop step done for real: what the tool's commands do, then etcd is down
        b.lab.stop_etcd(h)
    plan, marks = dry_run(b, tmp_path / "j")
    assert marks[:len(stops)] == [DryRunMark.IN_PLACE] * len(stops)
    assert marks == expected_marks(plan, in_place=len(stops))
    (restore,) = [c for c in plan.steps[0].commands if c.while_gate]  # run while the stop gate settles
    assert "snapshot restore" in restore.script and plan.commands()[len(stops)] is restore
    assert marks[len(stops)] is DryRunMark.WOULD_RUN
