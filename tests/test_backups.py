"""Backups on the bastion without a lab: the offline checks of a real snapshot file, the sidecar, rotation,
the drill's judgements, `bastion:` backups and the plan step that copies one to the seed."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from solo_etcd import solo_etcd

from etcdrescue.backups import bastion, rotation
from etcdrescue.backups.drill import (
    DrillFailed,
    MemberHash,
    agreement_problem,
    check_file,
    count_resources,
    parse_hashkv,
    parse_keys,
    resource_of,
)
from etcdrescue.backups.files import (
    CorruptSnapshot,
    NotASnapshot,
    inspect,
    recorded_sha256,
    sha256_file,
    sha256_line,
    writable_dir,
)
from etcdrescue.backups.sidecar import Drill, Sidecar, SidecarMember, load, save, sidecar_path, sums_path
from etcdrescue.backups.take import MemberStatus, choose_member, parse_cluster_status
from etcdrescue.command import Command
from etcdrescue.engine import Engine
from etcdrescue.errors import InputError
from etcdrescue.inventory.model import Inventory, parse_inventory
from etcdrescue.model import BackupKind, Context, Method, Revisions, Step
from etcdrescue.plan import Plan, build_plan
from etcdrescue.preflight.verdict import HostFacts
from etcdrescue.probes import ALARM_ERROR
from etcdrescue.screens.preflight import backup_text
from etcdrescue.ssh.transport import Result

IP = "127.0.212.250"  # this module's own address (subnet 212), not a lab host's (.1-.7)
PEER, CLIENT = f"http://{IP}:23800", f"http://{IP}:23790"
RELEASES = ("3.4", "3.5", "3.6", "3.7")
KEYS = ["/registry/pods/default/a", "/registry/pods/kube-system/b", "/registry/deployments/default/d",
        "/registry/apiregistration.k8s.io/apiservices/v1.apps", "/registry/services/specs/default/kubernetes",
        "/registry/services/endpoints/default/kubernetes", "/other/x"]


def inventory(host: str = IP) -> Inventory:
    return parse_inventory({"cluster": "solo", "members": [
        {"name": "solo", "host": host, "peer_url": f"http://{host}:23800", "client_url": f"http://{host}:23790"}]})


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real `etcdctl snapshot save` file of a one-member etcd 3.4 holding KEYS."""
    if shutil.which("etcd") is None or shutil.which("etcdctl") is None:
        pytest.skip("etcd and etcdctl not installed")
    d = tmp_path_factory.mktemp("etcd")
    path = d / "solo-20261207T100000Z.db"
    with solo_etcd(d / "data", IP) as ctl:
        for key in KEYS:
            ctl("put", key, "v")
        ctl("snapshot", "save", str(path))
    yield path


def copy(src: Path, dst_dir: Path, name: str | None = None) -> Path:
    dst = dst_dir / (name or src.name)
    shutil.copyfile(src, dst)
    return dst


def sidecar_for(db: Path, *, cluster: str = "solo", cluster_id: str = "abc", revision: int | None = None,
                peer: str = PEER, stamp: str = "2026-12-07T10:00:00Z") -> Sidecar:
    return Sidecar(cluster=cluster, cluster_id=cluster_id, profile="kubeadm",
                   members=(SidecarMember("1", "solo", (peer,)),),
                   revision=inspect(db).revision if revision is None else revision, etcd_version="3.6.17",
                   storage_version="", taken_at=stamp, taken_epoch=1.0, seconds=0.5, taken_from="solo",
                   taken_from_leader=True, size=db.stat().st_size, sha256=sha256_file(db),
                   host_copy="/var/lib/etcdrescue/backups/solo.db")


# -- the file itself -----------------------------------------------------------------------

def test_inspect_reads_a_real_snapshot(snapshot: Path) -> None:
    facts = inspect(snapshot)
    assert facts.revision == 1 + len(KEYS)
    assert facts.peer_urls == (PEER,)
    assert facts.total_keys == len(KEYS)


def test_not_a_snapshot_is_told_apart_from_a_corrupt_one(snapshot: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.db"
    text.write_text("hello\n" * 1000)
    with pytest.raises(NotASnapshot):
        inspect(text)
    (tmp_path / "empty.db").write_bytes(b"")
    with pytest.raises(NotASnapshot):
        inspect(tmp_path / "empty.db")
    data = snapshot.read_bytes()
    half = tmp_path / "half.db"
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptSnapshot):
        inspect(half)
    flipped = tmp_path / "flipped.db"
    mid = len(data) // 2
    flipped.write_bytes(data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1:])
    with pytest.raises(CorruptSnapshot, match="integrity hash"):
        inspect(flipped)


def test_a_plain_db_copy_has_no_integrity_hash_and_still_reads(snapshot: Path, tmp_path: Path) -> None:
    db = tmp_path / "db"
    db.write_bytes(snapshot.read_bytes()[:-32])
    assert inspect(db).revision == inspect(snapshot).revision
    assert inspect(snapshot).hashed and not inspect(db).hashed
    with pytest.raises(InputError, match="not a `snapshot save` file"):
        bastion.check(f"bastion:{db}", inventory())
    with pytest.raises(InputError, match="not a `snapshot save` file"):
        check_file(db, profile=None, etcd=None, releases=RELEASES)


def test_sha256_file_round_trip(snapshot: Path, tmp_path: Path) -> None:
    db = copy(snapshot, tmp_path)
    assert recorded_sha256(db) is None
    digest = sha256_file(db)
    sums_path(db).write_text(sha256_line(digest, db))
    assert recorded_sha256(db) == digest
    assert subprocess.run(["sha256sum", "-c", sums_path(db).name], cwd=tmp_path, capture_output=True).returncode == 0
    sums_path(db).write_text("nonsense\n")
    with pytest.raises(CorruptSnapshot):
        recorded_sha256(db)


def test_writable_dir(tmp_path: Path) -> None:
    assert writable_dir(tmp_path) is None
    assert "does not exist" in str(writable_dir(tmp_path / "nope"))
    (tmp_path / "f").write_text("")
    assert "not a directory" in str(writable_dir(tmp_path / "f"))


# -- sidecar and rotation ------------------------------------------------------------------

def test_sidecar_round_trip_with_drills(snapshot: Path, tmp_path: Path) -> None:
    db = copy(snapshot, tmp_path)
    assert load(db) is None
    side = sidecar_for(db).with_drill(Drill("2026-12-07T11:00:00Z", "okd3", "3.4.23", 8, 123, 8, 3))
    save(db, side)
    assert load(db) == side
    assert json.loads(sidecar_path(db).read_text())["drills"][0]["hashkv"] == 123
    sidecar_path(db).write_text(json.dumps({"format": "someone-else/2"}))
    with pytest.raises(ValueError, match="not an etcdrescue backup sidecar"):
        load(db)


def test_the_cli_default_is_rotations() -> None:
    from etcdrescue.commands import backup

    assert backup.DEFAULT_KEEP == rotation.DEFAULT_KEEP


def test_rotation_keeps_the_newest_n_of_this_cluster_and_touches_nothing_else(snapshot: Path, tmp_path: Path) -> None:
    ours = []
    for hour in range(5):
        db = copy(snapshot, tmp_path, f"solo-20261207T0{hour}0000Z.db")
        sums_path(db).write_text(sha256_line(sha256_file(db), db))
        save(db, sidecar_for(db))
        ours.append(db)
    other_id = copy(snapshot, tmp_path, "solo-20261201T000000Z.db")  # same name, another cluster ID: not ours
    save(other_id, sidecar_for(other_id, cluster_id="def"))
    other_name = copy(snapshot, tmp_path, "solo2-20261201T000000Z.db")
    save(other_name, sidecar_for(other_name, cluster="solo2"))
    no_sidecar = copy(snapshot, tmp_path, "solo-20261202T000000Z.db")
    by_hand = copy(snapshot, tmp_path, "solo-before-upgrade.db")
    unreadable = copy(snapshot, tmp_path, "solo-20261203T000000Z.db")
    sidecar_path(unreadable).write_text("{")
    before = set(tmp_path.iterdir())
    gone = rotation.rotate(tmp_path, "solo", "abc", 2)
    expected = {p for db in ours[:3] for p in (db, sums_path(db), sidecar_path(db))}
    assert set(gone) == expected
    assert set(tmp_path.iterdir()) == before - expected
    for kept in (*ours[3:], other_id, other_name, no_sidecar, by_hand, unreadable):
        assert kept.exists()
    assert rotation.rotate(tmp_path, "solo", "abc", 2) == []


# -- the drill's judgements ----------------------------------------------------------------

@pytest.mark.parametrize(("key", "resource"), [
    ("/registry/pods/default/a", "/registry/pods"),
    ("/registry/deployments/default/d", "/registry/deployments"),
    ("/registry/apiregistration.k8s.io/apiservices/v1.apps", "/registry/apiregistration.k8s.io/apiservices"),
    ("/registry/services/specs/default/kubernetes", "/registry/services/specs"),
    ("/registry/services/endpoints/default/kubernetes", "/registry/services/endpoints"),
    ("/registry/namespaces/default", "/registry/namespaces"),
    ("/kubernetes.io/pods/default/a", "/kubernetes.io/pods"),
    ("/openshift.io/routes/default/r", "/openshift.io/routes"),
    ("/openshift.io/oauth/accesstokens/t", "/openshift.io/oauth"),
    ("/pre/00001", "/pre"),
    ("no-slash", "(not a path)"),
])
def test_resource_of(key: str, resource: str) -> None:
    assert resource_of(key) == resource


def test_count_resources() -> None:
    assert count_resources(KEYS) == {
        "/other": 1, "/registry/apiregistration.k8s.io/apiservices": 1, "/registry/deployments": 1,
        "/registry/pods": 2, "/registry/services/endpoints": 1, "/registry/services/specs": 1}


def test_parse_keys_and_hashkv() -> None:
    assert parse_keys('{"kvs": [{"key": "L2E="}, {"key": "L2I="}]}') == ["/a", "/b"]
    assert parse_keys('{"header": {}}') == []
    v34 = ('[{"Endpoint":"https://a:2379","HashKV":{"header":{"revision":51},"hash":7,"compact_revision":-1}},'
           '{"Endpoint":"https://b:2379","HashKV":{"header":{"revision":51},"hash":7,"compact_revision":-1}}]')
    v36 = '[{"Endpoint":"https://a:2379","HashKV":{"header":{"revision":52},"hash":7,"hash_revision":51}}]'
    assert parse_hashkv(v34) == [MemberHash("https://a:2379", 7, 51), MemberHash("https://b:2379", 7, 51)]
    assert parse_hashkv(v36) == [MemberHash("https://a:2379", 7, 51)]
    assert agreement_problem(parse_hashkv(v34), 2) is None
    assert "1 of 2" in str(agreement_problem(parse_hashkv(v36), 2))
    assert "disagree" in str(agreement_problem([MemberHash("a", 7, 51), MemberHash("b", 8, 51)], 2))
    assert "disagree" in str(agreement_problem([MemberHash("a", 7, 51), MemberHash("b", 7, 52)], 2))


def test_check_file_chooses_the_lab_from_the_sidecar_and_the_flags_override(snapshot: Path, tmp_path: Path) -> None:
    db = copy(snapshot, tmp_path)
    bare = check_file(db, profile=None, etcd=None, releases=RELEASES)
    assert (bare.profile, bare.etcd, bare.members, bare.sha256_checked) == ("okd3", "3.4", 3, False)
    save(db, sidecar_for(db))
    side = check_file(db, profile=None, etcd=None, releases=RELEASES)
    assert (side.profile, side.etcd, side.sha256_checked) == ("kubeadm", "3.6", True)
    flags = check_file(db, profile="okd3", etcd="3.5", releases=RELEASES)
    assert (flags.profile, flags.etcd) == ("okd3", "3.5")
    with pytest.raises(InputError, match=r"no lab for etcd 3\.9"):
        check_file(db, profile=None, etcd="3.9", releases=RELEASES)


def test_check_file_failures_and_bad_input(snapshot: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a file"):
        check_file(tmp_path / "missing.db", profile=None, etcd=None, releases=RELEASES)
    text = tmp_path / "notes.db"
    text.write_text("not etcd")
    with pytest.raises(InputError, match="not an etcd snapshot"):
        check_file(text, profile=None, etcd=None, releases=RELEASES)
    db = copy(snapshot, tmp_path)
    save(db, sidecar_for(db, peer="https://10.9.9.9:2380"))
    with pytest.raises(DrillFailed, match="another cluster's backup than its sidecar says"):
        check_file(db, profile=None, etcd=None, releases=RELEASES)
    save(db, sidecar_for(db, revision=3))
    with pytest.raises(DrillFailed, match="its sidecar says 3"):
        check_file(db, profile=None, etcd=None, releases=RELEASES)
    save(db, sidecar_for(db))
    sums_path(db).write_text(sha256_line("0" * 64, db))
    with pytest.raises(DrillFailed, match="sha256 differs"):
        check_file(db, profile=None, etcd=None, releases=RELEASES)


# -- taking one ----------------------------------------------------------------------------

STATUS = ('[{"Endpoint":"https://10.0.0.1:2379","Status":{"header":{"cluster_id":255,"member_id":1,"revision":9},'
          '"version":"3.6.17","leader":2,"storageVersion":"3.6.0"}},'
          '{"Endpoint":"https://10.0.0.2:2379","Status":{"header":{"cluster_id":255,"member_id":2,"revision":9},'
          '"version":"3.6.17","leader":2}}]')
THREE = parse_inventory({"cluster": "c", "members": [
    {"name": f"m{i}", "host": f"10.0.0.{i}", "peer_url": f"https://10.0.0.{i}:2380",
     "client_url": f"https://10.0.0.{i}:2379"} for i in (1, 2, 3)]})


def test_parse_cluster_status() -> None:
    first, second = parse_cluster_status(STATUS)
    assert first == MemberStatus("https://10.0.0.1:2379", 1, 2, 255, "3.6.17", "3.6.0")
    assert second.storage_version == ""


def test_a_follower_is_chosen_before_the_leader() -> None:
    status = parse_cluster_status(STATUS)
    healthy = (HostFacts("m1", reachable=True, healthy=True), HostFacts("m2", reachable=True, healthy=True))
    member, st = choose_member(THREE.members, healthy, status)
    assert member.name == "m1" and st.member_id != st.leader
    alarmed = (HostFacts("m1", reachable=True, health_error=f"{ALARM_ERROR} NOSPACE"),
               HostFacts("m2", reachable=True, healthy=True))
    assert choose_member(THREE.members, alarmed, status)[0].name == "m1", "an alarm still serves a snapshot"
    only_leader = (HostFacts("m1", reachable=True), HostFacts("m2", reachable=True, healthy=True))
    member, st = choose_member(THREE.members, only_leader, status)
    assert member.name == "m2" and st.member_id == st.leader
    with pytest.raises(InputError):
        choose_member(THREE.members, (HostFacts("m3", reachable=True, healthy=True),), status)


# -- a backup kept on the bastion ----------------------------------------------------------

def test_bastion_backup_checked_here(snapshot: Path, tmp_path: Path) -> None:
    db = copy(snapshot, tmp_path)
    sums_path(db).write_text(sha256_line(sha256_file(db), db))
    b = bastion.check(f"bastion:{db}", inventory())
    assert b.recorded == ".sha256" and b.facts.revision == inspect(snapshot).revision
    assert b.seed_path == f"{bastion.FROM_BASTION}/{b.sha256[:16]}-{db.name}"
    assert "sha256 ok" in b.lines()[0] and "this cluster's" in b.lines()[1]
    with pytest.raises(InputError, match="another cluster"):
        bastion.check(f"bastion:{db}", inventory("10.9.9.9"))
    assert "not checked" in bastion.check(f"bastion:{db}", inventory("10.9.9.9"),
                                          any_cluster=True).cluster_note
    sums_path(db).write_text(sha256_line("0" * 64, db))
    with pytest.raises(InputError, match=r"differs from its \.sha256"):
        bastion.check(f"bastion:{db}", inventory())
    with pytest.raises(InputError, match="no such file"):
        bastion.check(f"bastion:{tmp_path / 'nope.db'}", inventory())
    text = tmp_path / "notes.db"
    text.write_text("not etcd")
    with pytest.raises(InputError, match="not an etcd snapshot"):
        bastion.check(f"bastion:{text}", inventory())


def test_the_wizards_backup_line_says_what_the_console_says_of_a_bastion_file(snapshot: Path, tmp_path: Path) -> None:
    db = copy(snapshot, tmp_path)
    b = bastion.check(f"bastion:{db}", inventory())
    for shown in (backup_text(None, b.seed_path, b.lines()), backup_text(None, b.seed_path)):
        assert shown.startswith(f"Backup {b.seed_path}: checking…")
    lines = backup_text(None, b.seed_path, b.lines()).splitlines()[1:]
    assert lines == [line.strip() for line in b.lines()]
    assert f"backup on this machine {db}: " in lines[0] and "sha256 computed here" in lines[0]
    assert lines[1].endswith(f"copied to the seed as {b.seed_path} before the restore")
    assert backup_text(None, None).startswith("Backup: none (quorum restore")
    assert backup_text(None, None, restores=False) == "", "a procedure that restores nothing says nothing of backups"


def test_the_copy_step_comes_first_and_declares_its_upload(snapshot: Path, tmp_path: Path) -> None:
    db = copy(snapshot, tmp_path)
    b = bastion.check(f"bastion:{db}", inventory())
    ctx = Context(inventory(), b.seed_path, Method.SNAPSHOT_RESTORE, "S", bastion=b.copy)
    plan = build_plan(ctx)
    step = plan.steps[0]
    assert step.key == "backup-copy" and plan.steps[1].key != "backup-copy"
    (cmd,) = step.commands
    assert cmd.upload is not None and cmd.upload[0] == str(db) and cmd.upload[1].startswith("/tmp/.etcdrescue-")
    assert cmd.mutates and cmd.skip_if is not None and b.sha256 in cmd.skip_if and b.seed_path in cmd.skip_if
    assert f"mv {cmd.upload[1]} {b.seed_path}" in cmd.script and str(db) in cmd.script.splitlines()[0]
    assert step.undo and "mv" in step.undo[0].script
    without = build_plan(Context(inventory(), b.seed_path, Method.SNAPSHOT_RESTORE, "S"))
    assert "backup-copy" not in [s.key for s in without.steps]


class Uploads:
    """A fake host set: every probe says "not there yet", every command succeeds; records what ran and was sent."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.inv = inventory()

    def run(self, name: str, script: str, timeout: float = 60.0, on_output: object = None) -> Result:
        self.events.append(f"run {script}")
        return Result(name, script, 1 if script.startswith("probe") else 0, "", "", 0.0)

    def __getitem__(self, name: str) -> Uploads:
        return self

    def put_file(self, local: Path, remote: str) -> None:
        self.events.append(f"put {local} {remote}")


def test_the_engine_sends_the_file_after_the_probe_and_before_the_script(tmp_path: Path) -> None:
    cmd = Command("solo", "check-and-move", "copy", skip_if="probe", upload=(str(tmp_path / "b.db"), "/tmp/x"))
    plan = Plan(Context(inventory(), None, Method.FORCE_NEW_CLUSTER, "s"), (Step("k", "t", "p", "w", (cmd,)),))
    hosts = Uploads()
    engine = Engine(plan, hosts)  # type: ignore[arg-type]
    engine.run()
    assert hosts.events == ["run probe", f"put {tmp_path / 'b.db'} /tmp/x", "run check-and-move"]
    assert engine.changed
    dry = Uploads()
    Engine(plan, dry, dry_run=True).run()  # type: ignore[arg-type]
    assert dry.events == ["run probe"], "a dry run sends nothing"


def test_nothing_is_deleted_on_a_host(snapshot: Path, tmp_path: Path) -> None:
    from test_no_rm import deletes

    from etcdrescue.backups.take import snapshot_script

    b = bastion.check(f"bastion:{copy(snapshot, tmp_path)}", inventory())
    step = build_plan(Context(inventory(), b.seed_path, Method.SNAPSHOT_RESTORE, "S", bastion=b.copy)).steps[0]
    scripts = [s for c in (*step.commands, *step.undo) for s in (c.script, c.skip_if or "")]
    inv = inventory()
    scripts.append(snapshot_script(inv.platform.tools, inv.members[0], inv.cluster))
    assert not [w for s in scripts for w in deletes(s)]


def test_a_session_opened_on_a_bastion_backup_restores_its_copy_on_the_seed(snapshot: Path, tmp_path: Path) -> None:
    from etcdrescue.preflight.options import RecoveryOptions
    from etcdrescue.session import RecoverySession, check_options

    db = copy(snapshot, tmp_path)
    assert check_options(inventory(), f"bastion:{db}", None) == (f"bastion:{db}", Method.SNAPSHOT_RESTORE)
    with pytest.raises(InputError, match="force-new-cluster"):
        check_options(inventory(), f"bastion:{db}", "force-new-cluster")
    session = RecoverySession.open(RecoveryOptions(inventory(), backup=f"bastion:{db}", journal_dir=tmp_path / "j"))
    try:
        assert session.bastion is not None and session.backup == session.bastion.seed_path
        staged = session.staged_facts()
        assert staged is not None and staged.path == session.backup and staged.snapshot is not None
        assert staged.snapshot.revision == inspect(db).revision
        ctx = session.context(BackupKind.FILE, Revisions())
        assert ctx.bastion == session.bastion.copy and ctx.backup_db == session.backup
    finally:
        session.close()
    with pytest.raises(InputError, match="another cluster"):
        RecoverySession.open(RecoveryOptions(inventory("10.9.9.9"), backup=f"bastion:{db}"))


def test_the_runbook_shows_the_copy_without_asking_the_seed(snapshot: Path, tmp_path: Path) -> None:
    import yaml

    from etcdrescue.cli import main

    db = copy(snapshot, tmp_path)
    inv = tmp_path / "inventory.yaml"
    inv.write_text(yaml.safe_dump({"cluster": "solo", "members": [
        {"name": "solo", "host": IP, "peer_url": PEER, "client_url": CLIENT}]}))
    out = tmp_path / "runbook.md"
    assert main(["runbook", "-i", str(inv), "--backup", f"bastion:{db}", "--format", "md", "-o", str(out)]) == 0
    text = out.read_text()
    assert "Copy the backup from this machine to solo" in text
    assert f"by hand: scp {db} {IP}:/tmp/.etcdrescue-backup-" in text
    assert f"{bastion.FROM_BASTION}/{sha256_file(db)[:16]}-{db.name}" in text
