"""End-to-end: `backup` to a directory here, `drill` it in a second lab, break the first lab's quorum and
`recover --backup bastion:FILE`; corrupt and foreign backups fail the drill and are refused by `recover` with
every host unchanged; a cluster without quorum gets no backup. okd3 on Debian's etcd 3.4 (the hosts' own
etcdctl) and kubeadm on 3.6 (no tools on the hosts: `--etcd-tools`), one shared lab per shape."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from solo_etcd import solo_etcd

from etcdrescue.backups.files import inspect, sha256_file, sha256_line
from etcdrescue.backups.sidecar import load, sidecar_path, sums_path
from etcdrescue.lab import Lab, procs
from etcdrescue.lab.nospace import break_nospace

from .conftest import requires_lab
from .helpers import POST, PRE, etcdrescue, host_file, tree_digest
from .test_sudo import requires_sudo, sudo_user

__all__ = ["sudo_user"]  # a fixture, used by name

pytestmark = [pytest.mark.lab, requires_lab, pytest.mark.timeout(600)]

SHAPES = {"okd3-3.4": ("okd3", "3.4", 208), "kubeadm-3.6": ("kubeadm", "3.6", 209)}
"""shape -> (profile, etcd minor, subnet of its module-scoped lab)."""
DRILL_SUBNET = 210
FOREIGN_IP = "127.0.213.250"
"""A one-member etcd of another cluster (subnet 213, a host number no lab uses)."""


@pytest.fixture(scope="module", params=list(SHAPES))
def shaped(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    profile, minor, subnet = SHAPES[request.param]
    lab = Lab(tmp_path_factory.mktemp(request.param) / "lab", 3, subnet=subnet, profile=profile, etcd=minor)
    try:
        lab.up(timeout=90)
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another cluster's `etcdctl snapshot save` file."""
    d = tmp_path_factory.mktemp("foreign")
    with solo_etcd(d / "data", FOREIGN_IP, "other") as ctl:
        ctl("put", "/foreign", "x")
        ctl("snapshot", "save", str(d / "other.db"))
    return d / "other.db"


def ready(lab: Lab) -> Lab:
    """Every member healthy and listed, none of the keys an earlier test wrote; a broken lab is built anew."""
    try:
        fine = (all(lab.healthy(h) for h in lab.hosts)
                and sorted(m["name"] for m in lab.member_list()) == sorted(h.name for h in lab.hosts))
    except Exception:  # grpc errors of every kind: a lab that cannot answer is rebuilt
        fine = False
    if not fine:
        lab.destroy()
        vars(lab).pop("_ssl_context", None)  # cached for the CA that `destroy` removed; `up` makes a new one
        lab.up(timeout=90)
    c = lab.client()
    try:
        for prefix in (PRE, POST):
            c.delete_prefix(prefix)
    finally:
        c.close()
    return lab


def tools(lab: Lab) -> list[str]:
    return [] if lab.host_tools else ["--etcd-tools", str(lab.bin_dir)]


def backup(lab: Lab, out: Path, journal: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return etcdrescue("backup", "-i", str(lab.inventory_path), "-o", str(out), "--journal", str(journal),
                      *tools(lab), *extra)


def recover(lab: Lab, spec: str, journal: Path) -> subprocess.CompletedProcess[str]:
    return etcdrescue("recover", "-i", str(lab.inventory_path), "--backup", spec, "--yes", "--journal", str(journal),
                      *tools(lab))


def drill(path: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    tmp.mkdir(exist_ok=True)
    return etcdrescue("drill", "--backup", str(path), "--subnet", str(DRILL_SUBNET), "--tmp", str(tmp), timeout=500)


def only_backup(out: Path) -> Path:
    (db,) = [p for p in out.glob("*.db") if not p.name.startswith(".")]
    return db


def no_drill_lab_left(tmp: Path) -> None:
    assert list(tmp.iterdir()) == [], "the drill's temp dir is removed"
    for i in range(1, 6):
        assert not procs.port_open(f"127.0.{DRILL_SUBNET}.{i}", 2379, 0.2), "the drill lab is down"


def test_backup_drill_break_then_recover_from_the_bastion(shaped: Lab, tmp_path: Path) -> None:
    lab = ready(shaped)
    out, journal = tmp_path / "backups", tmp_path / "j"
    out.mkdir()
    (out / "notes.txt").write_text("not a backup")
    lab.put_keys(PRE, 200)
    before = tree_digest(lab)
    first = backup(lab, out, journal)
    assert first.returncode == 0, first.stdout + first.stderr
    assert tree_digest(lab) == before, "etcd's manifests, settings, certificates and data untouched by a backup"
    time.sleep(1.1)  # the next backup's stamp is a second later
    res = backup(lab, out, journal, "--keep", "1")
    assert res.returncode == 0, res.stdout + res.stderr
    db = only_backup(out)
    assert f"rotated out (--keep 1): {out}" in res.stdout
    assert (out / "notes.txt").read_text() == "not a backup", "rotation touches only this cluster's backups"
    assert subprocess.run(["sha256sum", "-c", sums_path(db).name], cwd=out, capture_output=True).returncode == 0
    side = load(db)
    assert side is not None
    leader = lab.leader()
    assert leader is not None and side.taken_from != leader.name, "a follower's snapshot"
    assert side.profile == lab.profile and side.etcd_version == lab.release.full and side.cluster == "lab"
    assert side.revision == inspect(db).revision and side.sha256 == sha256_file(db) and side.size == db.stat().st_size
    assert sorted(m.name for m in side.members) == sorted(h.name for h in lab.hosts)
    assert {m.id for m in side.members} == {f"{m['id']:x}" for m in lab.member_list()}
    assert side.cluster_id and side.taken_at.endswith("Z") and side.seconds > 0
    (journaled,) = [p for p in journal.glob("lab-backup-*.jsonl") if p.name.endswith(f"{db.name[4:-3]}.jsonl")]
    events = [json.loads(line) for line in journaled.read_text().splitlines()]
    assert events[-1]["event"] == "backup_end" and events[-1]["ok"] and events[-1]["sha256"] == side.sha256
    host = next(h for h in lab.hosts if h.name == side.taken_from)
    assert host_file(lab, lab.hosts.index(host), side.host_copy).read_bytes() == db.read_bytes()

    drilled = drill(db, tmp_path / "drill")
    assert drilled.returncode == 0, drilled.stdout + drilled.stderr
    assert "DRILL PASSED" in drilled.stdout and "every member: hashkv" in drilled.stdout
    assert "/pre" in drilled.stdout and " 200" in drilled.stdout.split("/pre", 1)[1].splitlines()[0]
    no_drill_lab_left(tmp_path / "drill")
    side = load(db)
    assert side is not None
    (passed,) = side.drills
    assert (passed.profile, passed.etcd, passed.revision, passed.members) == (
        lab.profile, lab.release.full, side.revision, 3)

    lab.put_keys(POST, 50)
    lab.break_quorum(lab.hosts[1:])
    dry = etcdrescue("recover", "-i", str(lab.inventory_path), "--backup", f"bastion:{db}", "--dry-run", "--journal",
                     str(journal), *tools(lab))
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "[1/" in dry.stdout and f"Copy the backup from this machine to {lab.hosts[0].name}" in dry.stdout
    assert f"over SFTP; by hand: scp -P 2222 {db} {lab.hosts[0].ip}:/tmp/.etcdrescue-backup-" in dry.stdout
    assert "sha256 ok (matches its .sha256)" in dry.stdout
    rec = recover(lab, f"bastion:{db}", journal)
    assert rec.returncode == 0, rec.stdout + rec.stderr
    for h in lab.hosts:
        assert lab.healthy(h), h.name
    assert len(lab.read_prefix(PRE, host=lab.hosts[-1])) == 200, "the data written before the backup is back"
    assert lab.read_prefix(POST) == {}, "a restore goes back to the backup"
    copied = host_file(lab, 0, f"/var/lib/etcdrescue/backups/from-bastion/{side.sha256[:16]}-{db.name}")
    assert sha256_file(copied) == side.sha256, "the seed's copy, checked, kept in the tool's state dir"


@requires_sudo
@pytest.mark.parametrize("sudo_user", ["nopasswd"], indirect=True)
def test_backup_and_bastion_restore_through_sudo(shaped: Lab, sudo_user: str, tmp_path: Path) -> None:
    """A login that is not root: the snapshot comes back through the root shell (SFTP cannot read the tool's
    root-only state dir), and the copy to the seed goes through /tmp. okd3 only: the transfer is the same on
    every platform."""
    if shaped.profile != "okd3":
        pytest.skip("the sudo transfer does not depend on the platform: run once, on okd3")
    lab = ready(shaped)
    with traversable(lab.root):
        sudo_round_trip(lab, sudo_user, tmp_path)


@contextlib.contextmanager
def traversable(root: Path) -> Iterator[None]:
    """sshd reads the lab's AuthorizedKeysFile as the logging-in user: o+x (traverse, not list) on the root-owned
    directories down to it, and the public keys readable, for the test only."""
    chain = [p for p in (root, *root.parents) if p != Path("/") and p.stat().st_uid == 0]
    keys = root / "authorized_keys"
    modes = {p: p.stat().st_mode & 0o7777 for p in (*chain, keys)}
    for p in chain:
        p.chmod(modes[p] | 0o001)
    keys.chmod(0o644)
    try:
        yield
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


def sudo_round_trip(lab: Lab, sudo_user: str, tmp_path: Path) -> None:
    data = yaml.safe_load(lab.inventory_path.read_text())
    data["ssh"].update(user=sudo_user, sudo=True)
    inv = tmp_path / "inventory.yaml"
    inv.write_text(yaml.safe_dump(data))
    out = tmp_path / "backups"
    out.mkdir()
    lab.put_keys(PRE, 30)
    res = etcdrescue("backup", "-i", str(inv), "-o", str(out), "--journal", str(tmp_path / "j"))
    assert res.returncode == 0, res.stdout + res.stderr
    db = only_backup(out)
    side = load(db)
    assert side is not None and side.sha256 == sha256_file(db) and inspect(db).revision == side.revision
    lab.put_keys(POST, 10)
    lab.break_quorum(lab.hosts[1:])
    rec = etcdrescue("recover", "-i", str(inv), "--backup", f"bastion:{db}", "--yes", "--journal",
                     str(tmp_path / "j"))
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert len(lab.read_prefix(PRE, host=lab.hosts[2])) == 30 and lab.read_prefix(POST) == {}


def test_backup_of_a_cluster_under_the_nospace_alarm(shaped: Lab, tmp_path: Path) -> None:
    """etcdctl 3.5+ calls a member with an active alarm unhealthy, yet it serves reads: the backup before a
    reclaim-space must still be possible. (etcdctl 3.4 does not look at alarms: nothing to show on okd3 3.4.)"""
    if shaped.release.minor == "3.4":
        pytest.skip("etcdctl 3.4's health ignores alarms")
    lab = ready(shaped)
    lab.put_keys(PRE, 10)
    break_nospace(lab)
    out = tmp_path / "backups"
    out.mkdir()
    res = backup(lab, out, tmp_path / "j")
    assert res.returncode == 0, res.stdout + res.stderr
    db = only_backup(out)
    side = load(db)
    assert side is not None and side.revision == inspect(db).revision and not side.taken_from_leader


def state_dirs(lab: Lab) -> dict[str, str]:
    """Every file in the tool's own state dir on every host (its lock, uploaded tools, backups), by digest."""
    return {f"{h.name}:{p}": sha256_file(p) for i, h in enumerate(lab.hosts)
            for p in sorted(host_file(lab, i, "/var/lib/etcdrescue").rglob("*")) if p.is_file()}


def damaged(good: Path, where: Path) -> dict[str, tuple[Path, int, str]]:
    """Bad backups beside a good one's .sha256 and sidecar: name -> (file, drill's exit code, its message)."""
    data = good.read_bytes()
    mid = len(data) // 2

    def like_good(name: str, content: bytes, *, keep_sums: bool = True) -> Path:
        d = where / name
        d.mkdir()
        p = d / good.name
        p.write_bytes(content)
        if keep_sums:
            shutil.copyfile(sums_path(good), sums_path(p))
            shutil.copyfile(sidecar_path(good), sidecar_path(p))
        return p

    flipped = data[:mid] + bytes([data[mid] ^ 0x55]) + data[mid + 1:]
    return {
        "truncated": (like_good("truncated", data[:mid]), 3, "corrupt"),
        "flipped": (like_good("flipped", flipped), 3, "corrupt"),
        "flipped, no .sha256 nor sidecar": (like_good("bare", flipped, keep_sums=False), 3, "integrity hash"),
        "not a snapshot": (like_good("text", b"hello\n" * 4096), 2, "not an etcd snapshot"),
    }


def test_corrupt_and_foreign_backups_fail_the_drill_and_are_refused(shaped: Lab, foreign: Path,
                                                                    tmp_path: Path) -> None:
    lab = ready(shaped)
    out = tmp_path / "backups"
    out.mkdir()
    lab.put_keys(PRE, 20)
    lock = host_file(lab, 1, "/var/lib/etcdrescue/lock")
    lock.write_text(json.dumps({"user": "ops", "machine": "bastion2", "pid": 1, "since": "now", "stamp": "S"}) + "\n")
    try:
        held = backup(lab, out, tmp_path / "j")
    finally:
        lock.unlink()
    assert held.returncode == 2 and "holds the lock of this cluster" in held.stderr, held.stdout + held.stderr
    assert list(out.iterdir()) == []
    res = backup(lab, out, tmp_path / "j")
    assert res.returncode == 0, res.stdout + res.stderr
    good = only_backup(out)
    cases = damaged(good, tmp_path)
    other = tmp_path / "foreign"
    other.mkdir()
    stranger = other / good.name
    shutil.copyfile(foreign, stranger)
    sums_path(stranger).write_text(sha256_line(sha256_file(stranger), stranger))
    shutil.copyfile(sidecar_path(good), sidecar_path(stranger))
    cases["foreign, under this cluster's name and sidecar"] = (stranger, 3, "another cluster's backup")
    for what, (path, code, words) in cases.items():
        sidecar_before = sidecar_path(path).read_bytes() if sidecar_path(path).exists() else b""
        d = drill(path, tmp_path / "drill")
        assert d.returncode == code, (what, d.stdout, d.stderr)
        assert words in d.stderr and len(d.stderr.strip().splitlines()) == 1, (what, d.stderr)
        assert "DRILL PASSED" not in d.stdout
        no_drill_lab_left(tmp_path / "drill")
        assert (sidecar_path(path).read_bytes() if sidecar_path(path).exists() else b"") == sidecar_before, \
            "a failed drill records nothing"

    if lab.release.minor != "3.4":
        # A backup that is fine but cannot restore where the drill is asked to: etcd 3.4 under a newer storage
        # version. The lab is built, the recovery's pre-flight refuses, and the lab still goes.
        older = etcdrescue("drill", "--backup", str(good), "--etcd", "3.4", "--subnet", str(DRILL_SUBNET), "--tmp",
                           str(tmp_path / "drill"), timeout=300)
        assert older.returncode == 3 and "the recovery from it failed" in older.stderr, older.stdout + older.stderr
        assert "storage version" in older.stderr and "DRILL: lab torn down" in older.stdout, older.stderr
        no_drill_lab_left(tmp_path / "drill")
    lab.break_quorum(lab.hosts[1:])
    foreign_plain = tmp_path / "foreign-plain.db"
    shutil.copyfile(foreign, foreign_plain)
    refusals = {"truncated": (cases["truncated"][0], "corrupt"), "flipped": (cases["flipped"][0], "corrupt"),
                "flipped, no .sha256 nor sidecar": (cases["flipped, no .sha256 nor sidecar"][0], "integrity hash"),
                "not a snapshot": (cases["not a snapshot"][0], "not an etcd snapshot"),
                "foreign": (foreign_plain, "taken from another cluster")}
    state_before = state_dirs(lab)
    for what, (path, words) in refusals.items():
        before = tree_digest(lab)
        journal = tmp_path / f"j-{len(what)}"
        r = recover(lab, f"bastion:{path}", journal)
        assert r.returncode == 2, (what, r.stdout, r.stderr)
        assert words in r.stderr and len(r.stderr.strip().splitlines()) == 1, (what, r.stderr)
        assert tree_digest(lab) == before, (what, "every host unchanged")
        assert not list(journal.glob("*.jsonl")), what
    assert state_dirs(lab) == state_before, "nothing copied to, nor locked on, any host"


def test_no_backup_of_a_cluster_without_quorum(shaped: Lab, tmp_path: Path) -> None:
    """Last in the module (the order is the file's): the lab is left broken; the previous test broke it already.
    The sudo test runs before the corrupt backups' test, on the lab the first test recovered."""
    lab = shaped
    if all(lab.healthy(h) for h in lab.hosts):
        lab.break_quorum(lab.hosts[1:])
    out = tmp_path / "backups"
    out.mkdir()
    before = tree_digest(lab)
    missing = backup(lab, tmp_path / "nowhere", tmp_path / "j")
    assert missing.returncode == 2 and "does not exist" in missing.stderr, missing.stderr
    data = yaml.safe_load(lab.inventory_path.read_text())
    ghost = f"127.0.{lab.subnet}.9"  # no host of this lab listens there
    data["members"].append({"name": "ghost.lab.example", "host": ghost, "peer_url": f"https://{ghost}:2380",
                            "client_url": f"https://{ghost}:2379"})
    with_ghost = tmp_path / "ghost.yaml"
    with_ghost.write_text(yaml.safe_dump(data))
    unreachable = etcdrescue("backup", "-i", str(with_ghost), "-o", str(out), "--journal", str(tmp_path / "j"),
                             *tools(lab))
    why = unreachable.stderr.strip()  # with --etcd-tools the upload is the first to find it
    assert unreachable.returncode == 2 and len(why.splitlines()) == 1, unreachable.stdout + why
    assert "ghost.lab.example is unreachable" in why or "ghost.lab.example: cannot reach" in why, why
    res = backup(lab, out, tmp_path / "j")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "has no quorum" in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert list(out.iterdir()) == []
    assert tree_digest(lab) == before
    assert not list((tmp_path / "j").glob("*.jsonl")), "a refused backup writes no journal"
