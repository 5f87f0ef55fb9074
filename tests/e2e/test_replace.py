"""`etcdrescue replace` on the real lab: one member broken while the quorum holds (its WAL lost, or its data
wiped and etcd restarted under its old identity: the `tocommit` panic), rebuilt and verified; refusals that
change nothing; a dry run; a kill and `--resume`."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from etcdrescue.inventory.model import load_inventory
from etcdrescue.lab import Lab
from etcdrescue.lab.base import NSENV, LabHost
from etcdrescue.lab.data_breaks import MODES
from etcdrescue.lab.shape import RUN_DIR
from etcdrescue.model import Context, Method
from etcdrescue.plan import build_plan
from etcdrescue.procedures.replace import REPLACE

from .conftest import requires_lab
from .helpers import PRE, etcdrescue, tree_digest

pytestmark = [pytest.mark.lab, requires_lab, pytest.mark.timeout(600)]

SHAPES = {"okd3-3.4": ("okd3", "3.4", 193, 3), "kubeadm-3.6": ("kubeadm", "3.6", 194, 3),
          "kubeadm-3.7": ("kubeadm", "3.7", 197, 3), "okd3-3.4-five": ("okd3", "3.4", 196, 5)}
"""shape -> (profile, etcd minor, subnet of its module-scoped lab, members)."""
BROKEN_MEMBER_SHAPES = ("okd3-3.4", "kubeadm-3.6", "kubeadm-3.7")
SIGNATURES = {"wiped": ("tocommit(",), "wal-lost": ("tocommit(", "has already been bootstrapped")}
"""What the broken member's etcd log says at every start, per break mode (okd3's `new` state: bootstrapped)."""


@pytest.fixture(scope="module")
def labs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Lab]]:
    """One lab per shape for the whole module, made when a test first asks for it."""
    made: dict[str, Lab] = {}

    def get(shape: str) -> Lab:
        if shape not in made:
            profile, etcd, subnet, size = SHAPES[shape]
            lab = Lab(tmp_path_factory.mktemp(shape) / "lab", size, subnet=subnet, profile=profile, etcd=etcd)
            made[shape] = lab
            lab.up(timeout=90)
        return ready(made[shape])

    yield get
    for lab in made.values():
        lab.down()


def ctl(lab: Lab, *args: str) -> Any:
    """etcdctl from outside the hosts (kubeadm hosts have none), through the first healthy member, JSON parsed.
    The lab's etcdctl is the test's hands: what an operator did before calling the tool."""
    h = next((h for h in lab.hosts if lab.healthy(h)), lab.hosts[0])
    res = subprocess.run([str(lab.etcdctl), "--endpoints", h.client_url, "--cacert", str(lab.pki / "ca.crt"),
                          "--cert", str(lab.pki / "client.crt"), "--key", str(lab.pki / "client.key"), *args,
                          "-w", "json"], capture_output=True, text=True, timeout=30,
                         env=dict(NSENV, ETCDCTL_API="3"), cwd="/")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def members(lab: Lab) -> list[dict[str, Any]]:
    return list(ctl(lab, "member", "list")["members"])


def ready(lab: Lab) -> Lab:
    """Every member a healthy voter, none of an earlier test's keys; a lab an earlier test left broken is
    built anew."""
    try:
        fine = (all(lab.healthy(h) for h in lab.hosts) and not any(m.get("isLearner") for m in members(lab))
                and sorted(m.get("name", "") for m in members(lab)) == sorted(h.name for h in lab.hosts))
    except Exception:  # grpc and etcdctl errors of every kind: a lab that cannot answer is rebuilt
        fine = False
    if not fine:
        lab.destroy()
        lab.up(timeout=90)
    c = lab.client()
    try:
        c.delete_prefix(PRE)
    finally:
        c.close()
    lab.put_keys(PRE, 500)
    return lab


def etcd_logs(lab: Lab, h: LabHost) -> str:
    return "".join(p.read_text(errors="replace") for p in lab.host_path(h, RUN_DIR).glob("etcd.log*"))


def break_member(lab: Lab, mode: str, h: LabHost, *, cli: bool = False) -> None:
    """The break (`cli`: by `etcdrescue lab break`, which breaks the last member), then its proof: the member's
    etcd fails again with the mode's signature, while the others keep the quorum."""
    seen = sum(etcd_logs(lab, h).count(s) for s in SIGNATURES[mode])
    if cli:
        assert h == lab.hosts[-1]
        res = etcdrescue("lab", "break", "--root", str(lab.root), "--mode", mode)
        assert res.returncode == 0 and f"broke {h.name} ({mode}); the others keep the quorum" in res.stderr, res
    else:
        MODES[mode](lab, h)
    deadline = time.monotonic() + 60
    while sum(etcd_logs(lab, h).count(s) for s in SIGNATURES[mode]) <= seen:
        assert time.monotonic() < deadline, f"{h.name}: no {SIGNATURES[mode]} in its etcd log"
        time.sleep(0.2)
    assert not lab.healthy(h) and sum(lab.healthy(o) for o in lab.hosts) >= len(lab.hosts) // 2 + 1


def replace(lab: Lab, member: str, journal: Path, *extra: str,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    tools = ["--etcd-tools", str(lab.bin_dir)] if lab.profile == "kubeadm" else []
    return etcdrescue("replace", "-i", str(lab.inventory_path), member, "--yes", "--journal", str(journal),
                      *tools, *extra, env=env)


def diagnose(lab: Lab) -> dict[str, Any]:
    tools = ["--etcd-tools", str(lab.bin_dir)] if lab.profile == "kubeadm" else []
    res = etcdrescue("diagnose", "-i", str(lab.inventory_path), "--json", *tools)
    assert res.returncode == 0, res.stdout + res.stderr
    return dict(json.loads(res.stdout)["procedure"])


def others_digest(lab: Lab, h: LabHost) -> dict[str, str]:
    return {k: v for k, v in tree_digest(lab).items() if not k.startswith(h.name + ":")}


def events(journal: Path) -> list[dict[str, Any]]:
    (path,) = list(journal.glob("*.jsonl"))
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_replaced(lab: Lab, h: LabHost, old_id: int, journal: Path, others_before: dict[str, str]) -> None:
    """Every member a healthy voter under the inventory's peer URL, one leader, no alarm, the keys written
    before readable through every member (the replaced one too), its old data kept aside, the others' files
    untouched, and the journal's run a replace that ended well."""
    listed = members(lab)
    assert sorted((m["name"], tuple(m["peerURLs"])) for m in listed) == sorted(
        (o.name, (o.peer_url,)) for o in lab.hosts)
    assert not any(m.get("isLearner") for m in listed), "the replaced member was promoted"
    new_id = next(int(m["ID"]) for m in listed if m["name"] == h.name)
    assert new_id != old_id, "a new member, not the old entry"
    for o in lab.hosts:
        assert lab.healthy(o), f"{o.name} not healthy"
        assert len(lab.read_prefix(PRE, host=o)) == 500, f"{o.name}: keys missing"
    assert len({lab.leader(o) for o in lab.hosts}) == 1
    assert not ctl(lab, "alarm", "list").get("alarms"), "no alarm"
    data = lab.host_path(h, lab.shape.paths.data_dir)
    assert [p for p in data.iterdir() if p.name.startswith("member.etcdrescue-")], "old data kept aside"
    assert not lab.host_path(h, lab.shape.paths.disabled_manifest).exists()
    assert others_digest(lab, h) == others_before, "the other masters' files untouched"
    run = events(journal)
    starts = [e for e in run if e["event"] == "run_start"]
    assert starts and all(e["procedure"] == "replace" for e in starts)
    assert run[-1]["event"] == "run_end" and run[-1]["ok"]


@pytest.mark.parametrize("mode", ["wal-lost", "wiped"])
@pytest.mark.parametrize("shape", BROKEN_MEMBER_SHAPES)
def test_replace_one_broken_member(labs: Callable[[str], Lab], tmp_path: Path, shape: str, mode: str) -> None:
    lab = labs(shape)
    h = lab.hosts[-1]
    old_id = next(int(m["ID"]) for m in members(lab) if m["name"] == h.name)
    before = others_digest(lab, h)
    break_member(lab, mode, h, cli=True)
    assert diagnose(lab) == {"name": "replace", "members": [h.name]}, "diagnose names this procedure and member"
    res = replace(lab, h.name, tmp_path / "j")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert f"verdict: {h.name}: voter {old_id:x}, not healthy (removed, then added back as a learner)" in out
    assert f"replaced {lab.cluster}: 3 members healthy" in out
    assert_replaced(lab, h, old_id, tmp_path / "j", before)
    assert diagnose(lab) == {"name": "none", "members": []}
    scripts = [e["script"] for e in events(tmp_path / "j") if e["event"] == "command" and e.get("exit") == 0]
    assert sum(f" member remove {old_id:x}" in s or "member remove \"$id\"" in s for s in scripts) == 1
    assert sum(" member add " in s and "--learner" in s for s in scripts) == 1
    assert sum(" member promote " in s for s in scripts) == 1


def test_refusals_change_nothing(labs: Callable[[str], Lab], tmp_path: Path) -> None:
    """Exit 2, one line naming the reason, no journal, and no file of etcd's changed on any master."""
    lab = labs("okd3-3.4")
    inv = str(lab.inventory_path)
    leader = lab.leader()
    assert leader is not None
    follower = next(h for h in lab.hosts if h != leader)
    down = next(h for h in lab.hosts if h not in (leader, follower))

    def refused(member: str, *extra: str, expect: str) -> None:
        before = tree_digest(lab)
        res = etcdrescue("replace", "-i", inv, member, "--yes", "--journal", str(tmp_path / "j"), *extra)
        assert res.returncode == 2, (member, extra, res.stdout, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and expect in lines[0], (expect, res.stderr)
        assert tree_digest(lab) == before
        assert not list((tmp_path / "j").glob("*.jsonl")), "no journal"

    refused("master09", expect="no member 'master09' in the inventory")
    c = lab.client(follower)
    try:
        c.create_alarm(member_id=0)  # NOSPACE on the member asked: what a full backend raises
        refused(down.name, "--force", expect="alarm NOSPACE on member")
    finally:
        c.disarm_alarm(member_id=0)
        c.close()
    assert not ctl(lab, "alarm", "list").get("alarms")
    refused(follower.name, expect=f"{follower.name} is a healthy voter: nothing to replace (--force")
    refused(leader.name, "--force", expect=f"{leader.name} is healthy and the leader")
    lab.stop_etcd(down)
    refused(follower.name, expect=f"replacing {follower.name} would cost the quorum: 1 healthy voters without it")
    refused(follower.name, "--force", expect="would cost the quorum")
    lab.stop_etcd(follower)
    refused(down.name, expect="no member is healthy: the cluster has lost its quorum, which is `etcdrescue recover`")
    no_tty = etcdrescue("replace", "-i", inv, down.name)
    assert no_tty.returncode == 2 and "pass --yes" in no_tty.stderr
    for h in (follower, down):
        lab.start_etcd(h)


def test_dry_run_changes_nothing_then_the_run_does_it(labs: Callable[[str], Lab], tmp_path: Path) -> None:
    lab = labs("okd3-3.4")
    h = lab.hosts[1]
    old_id = next(int(m["ID"]) for m in members(lab) if m["name"] == h.name)
    others_before = others_digest(lab, h)
    break_member(lab, "wiped", h)
    before = tree_digest(lab)
    res = replace(lab, h.name, tmp_path / "j", "--dry-run")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert tree_digest(lab) == before, "etcd's manifests, settings and data untouched"
    assert not (tmp_path / "j").exists() or not list((tmp_path / "j").glob("*.jsonl"))
    assert f"Plan for {lab.cluster}: replace {h.name}: stopped, its old entry removed" in out
    for title in (f"Stop etcd on {h.name}", f"Remove {h.name}'s old entry", f"Add {h.name} back as a learner",
                  f"Promote {h.name}", "Verify the whole cluster"):
        assert title in out
    assert f"{h.name}$ mkdir -p /etc/origin/node/pod/disabled" in out
    assert " member remove " in out and "member add" in out and "--learner" in out and " member promote " in out
    assert "would run" in out and "depends on an earlier change" in out and "DRY RUN done, nothing changed" in out
    real = replace(lab, h.name, tmp_path / "j")
    assert real.returncode == 0, real.stdout + real.stderr
    assert_replaced(lab, h, old_id, tmp_path / "j", others_before)


def test_kill_and_resume(labs: Callable[[str], Lab], tmp_path: Path) -> None:
    """Killed (SIGKILL) after the old entry went, then again right after the member add: `--resume` finishes
    the replace without running any change twice."""
    lab = labs("okd3-3.4")
    h = lab.hosts[0]
    old_id = next(int(m["ID"]) for m in members(lab) if m["name"] == h.name)
    others_before = others_digest(lab, h)
    break_member(lab, "wal-lost", h)
    journal = tmp_path / "j"
    first = replace(lab, h.name, journal, env={"ETCDRESCUE_FAULT": f"after-step:remove-{h.name}"})
    assert first.returncode == -9, first.stdout + first.stderr
    assert h.name not in {m.get("name") for m in members(lab)} and len(members(lab)) == 2
    again = replace(lab, h.name, journal)
    assert again.returncode == 2 and "--resume" in again.stderr
    other = replace(lab, lab.hosts[2].name, journal, "--resume")
    assert other.returncode == 2 and "is of another member" in other.stderr
    second = replace(lab, h.name, journal, "--resume", env={"ETCDRESCUE_FAULT": f"after-command:join-{h.name}:1"})
    assert second.returncode == -9, second.stdout + second.stderr
    assert any(not m.get("name") and m.get("isLearner") for m in members(lab)), "added, never started"
    last = replace(lab, h.name, journal, "--resume")
    assert last.returncode == 0, last.stdout + last.stderr
    assert "resuming" in last.stdout
    assert_replaced(lab, h, old_id, journal, others_before)
    assert_nothing_redone(journal)


def assert_nothing_redone(journal: Path) -> None:
    run = events(journal)
    ran = Counter((e["step"], e["host"], e["script"]) for e in run
                  if e["event"] == "command" and e.get("mutates") and not e.get("skipped") and e.get("exit") == 0)
    assert ran and max(ran.values()) == 1, [k for k, n in ran.items() if n > 1]
    assert len({e["stamp"] for e in run if e["event"] == "run_start"}) == 1


def test_a_half_added_learner_is_taken_over(labs: Callable[[str], Lab], tmp_path: Path) -> None:
    """The member was removed and added back as a learner by hand, but never started (a join that stopped half
    way): the replace keeps that entry (no remove, no add) and the new etcd starts as it."""
    lab = labs("kubeadm-3.6")
    h = lab.hosts[1]
    old_id = next(int(m["ID"]) for m in members(lab) if m["name"] == h.name)
    others_before = others_digest(lab, h)
    lab.stop_etcd(h)
    ctl(lab, "member", "remove", f"{old_id:x}")
    added = ctl(lab, "member", "add", h.name, f"--peer-urls={h.peer_url}", "--learner")
    learner = int(added["member"]["ID"])
    res = replace(lab, h.name, tmp_path / "j")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert f"verdict: {h.name}: an added, never started learner {learner:x} (taken over)" in out
    assert_replaced(lab, h, old_id, tmp_path / "j", others_before)
    assert next(int(m["ID"]) for m in members(lab) if m["name"] == h.name) == learner, "the entry taken over"
    ran = [e["script"] for e in events(tmp_path / "j") if e["event"] == "command" and e.get("exit") == 0]
    assert not any(" member remove " in s or " member add " in s for s in ran)
    assert sum(" member promote " in s for s in ran) == 1


def test_force_rebuilds_a_healthy_follower(labs: Callable[[str], Lab], tmp_path: Path) -> None:
    """A healthy member is rebuilt only when asked (`--force`), and never the leader."""
    lab = labs("okd3-3.4")
    leader = lab.leader()
    h = next(o for o in lab.hosts if o != leader)
    old_id = next(int(m["ID"]) for m in members(lab) if m["name"] == h.name)
    before = others_digest(lab, h)
    res = replace(lab, h.name, tmp_path / "j", "--force")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert f"warning: {h.name} is healthy: rebuilt anyway (--force)" in out
    assert f"verdict: {h.name}: voter {old_id:x}, healthy (removed, then added back as a learner)" in out
    assert_replaced(lab, h, old_id, tmp_path / "j", before)


def test_two_of_five_broken_is_refused(labs: Callable[[str], Lab], tmp_path: Path) -> None:
    """The quorum holds (3 of 5), but a replace rebuilds one member while all the others are healthy: its gates
    wait for them, and etcd 3.4 refuses the member add while a listed voter is down."""
    lab = labs("okd3-3.4-five")
    a, b = lab.hosts[3], lab.hosts[4]
    break_member(lab, "wal-lost", a)
    break_member(lab, "wal-lost", b)
    before = tree_digest(lab)
    res = etcdrescue("replace", "-i", str(lab.inventory_path), b.name, "--yes", "--journal", str(tmp_path / "j"))
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.strip() == (f"etcdrescue: {a.name} is not healthy either: a replace rebuilds one member while "
                                  "every other one is healthy (its gates wait for them, and etcd before 3.5.30/3.6.11 "
                                  f"refuses a member add while a listed voter is down): bring it back first")
    assert tree_digest(lab) == before


def test_kill_after_every_mutating_command(labs: Callable[[str], Lab], tmp_path: Path) -> None:
    """Killed after each change of the plan in turn (the wiped member's stop, its entry's removal, the member add,
    every settings edit, the data moved aside, the start, the promotion), each time resumed: the last resume
    finishes the replace and no change ever ran twice."""
    lab = labs("okd3-3.4")
    h = lab.hosts[1]
    old_id = next(int(m["ID"]) for m in members(lab) if m["name"] == h.name)
    others_before = others_digest(lab, h)
    break_member(lab, "wiped", h)
    inv = load_inventory(lab.inventory_path).with_seed(lab.hosts[0].name)
    plan = build_plan(Context(inv, None, Method.FORCE_NEW_CLUSTER, "x", target=h.name), REPLACE)
    points = [f"after-command:{s.key}:{n}" for s in plan.steps for n, c in enumerate(s.commands, 1) if c.mutates]
    assert len(points) >= 8, points
    journal = tmp_path / "j"
    for i, point in enumerate(points):
        res = replace(lab, h.name, journal, *(["--resume"] if i else []), env={"ETCDRESCUE_FAULT": point})
        assert res.returncode == -9, (point, res.stdout, res.stderr)
    last = replace(lab, h.name, journal, "--resume")
    assert last.returncode == 0, last.stdout + last.stderr
    assert_replaced(lab, h, old_id, journal, others_before)
    assert_nothing_redone(journal)
