"""A member's freshness (db consistent index and revision, WAL HardState and last index), read from the data of
real etcd 3.4 (Debian's /usr/bin/etcd), 3.5, 3.6 and 3.7 (scripts/build-etcd) members after they stopped, against what
`etcdctl endpoint status` reported just before."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from etcdrescue.etcddata import freshness
from etcdrescue.etcddata.bbolt import DB, read_script
from etcdrescue.etcddata.freshness import (
    Freshness,
    FreshnessError,
    crc32c,
    freshest,
    freshness_from_files,
    read_freshness,
    wal_state,
)
from etcdrescue.lab.base import LabError
from etcdrescue.lab.versions import RELEASES, release

ROOT = Path(__file__).resolve().parents[1]
CLIENT_PORT, PEER_PORT = 24790, 24800


def _etcd_pair(version: str) -> tuple[str, str]:
    """(etcd, etcdctl) of the lab's release of `version`: Debian's 3.4, or a scripts/build-etcd build."""
    try:
        binaries = release(version).binaries()
    except LabError as exc:
        pytest.fail(str(exc))
    return str(binaries["etcd"]), str(binaries["etcdctl"])


VERSIONS = list(RELEASES)
# 3.4 and 3.5 on 127.0.99.24x (the lab's hosts use .1-.7, backup_identity .250); 3.6 and 3.7 on 127.0.220.24x
SINGLE_IP = {"3.4": "127.0.99.240", "3.5": "127.0.99.241", "3.6": "127.0.220.240", "3.7": "127.0.220.241"}
CLUSTER_IPS = {"3.4": ("127.0.99.242", "127.0.99.243", "127.0.99.244"),
               "3.5": ("127.0.99.245", "127.0.99.246", "127.0.99.247"),
               "3.6": ("127.0.220.242", "127.0.220.243", "127.0.220.244"),
               "3.7": ("127.0.220.245", "127.0.220.246", "127.0.220.247")}
COMPACTED_IP = {"3.4": "127.0.99.248", "3.5": "127.0.99.248", "3.6": "127.0.220.248", "3.7": "127.0.220.248"}
SMALL, BIG = 20, 25


@dataclass
class Etcd:
    """One real etcd member on a 127.0.99.24x address."""

    version: str
    name: str
    ip: str
    data_dir: Path
    cluster: str
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def client(self) -> str:
        return f"http://{self.ip}:{CLIENT_PORT}"

    @property
    def peer(self) -> str:
        return f"http://{self.ip}:{PEER_PORT}"

    @property
    def member_dir(self) -> Path:
        return self.data_dir / "member"

    def start(self) -> Etcd:
        binaries = _etcd_pair(self.version)
        self.proc = subprocess.Popen(
            [binaries[0], "--name", self.name, "--data-dir", str(self.data_dir), "--listen-client-urls", self.client,
             "--advertise-client-urls", self.client, "--listen-peer-urls", self.peer,
             "--initial-advertise-peer-urls", self.peer, "--initial-cluster", self.cluster],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.client}/health", timeout=1) as r:
                    if b"true" in r.read():
                        return
            except OSError:
                pass
            assert self.proc and self.proc.poll() is None, f"etcd {self.name} exited"
            assert time.monotonic() < deadline, f"etcd {self.name} did not become healthy"
            time.sleep(0.1)

    def ctl(self, *args: str, stdin: str | None = None) -> str:
        binaries = _etcd_pair(self.version)
        return subprocess.run([binaries[1], "--endpoints", self.client, *args], input=stdin, text=True, check=True,
                              capture_output=True, env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"}).stdout

    def put_keys(self, prefix: str, small: int, big: int = 0) -> None:
        for i in range(small):
            self.ctl("put", f"/{prefix}/small/{i}", f"value {i}")
        for i in range(big):
            self.ctl("put", f"/{prefix}/big/{i}", stdin=os.urandom(60_000).hex())

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = json.loads(self.ctl("endpoint", "status", "-w", "json"))[0]["Status"]
        return status

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def single(version: str, ip: str, data_dir: Path) -> Etcd:
    return Etcd(version, "solo", ip, data_dir, f"solo=http://{ip}:{PEER_PORT}")


@dataclass(frozen=True)
class Stopped:
    """A copy of a member dir taken after etcd stopped, with the endpoint status taken just before."""

    version: str
    member_dir: Path
    status: dict[str, Any]

    @property
    def raft_index(self) -> int:
        return int(self.status["raftIndex"])

    @property
    def revision(self) -> int:
        return int(self.status["header"]["revision"])


def stop_and_keep(member: Etcd, dest: Path) -> Stopped:
    status = member.status()
    member.stop()
    shutil.copytree(member.member_dir, dest / "member")
    return Stopped(member.version, dest / "member", status)


@pytest.fixture(scope="module", params=VERSIONS)
def solo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stopped, Stopped]]:
    """One member: SMALL small and BIG 120 KB values written (a WAL of ~3 MB), stopped; then restarted, left idle
    and stopped again."""
    version = request.param
    base = tmp_path_factory.mktemp(f"solo-{version}")
    member = single(version, SINGLE_IP[version], base / "data").start()
    try:
        member.wait_healthy()
        member.put_keys("k", SMALL, BIG)
        written = stop_and_keep(member, base / "written")
        member.start().wait_healthy()
        restarted = stop_and_keep(member, base / "restarted")
    finally:
        member.stop()
    yield written, restarted


@pytest.mark.parametrize("phase", ["written", "restarted"])
def test_reads_what_etcd_reported(solo: tuple[Stopped, Stopped], phase: str) -> None:
    """The WAL's commit and last index are etcd's raftIndex; the revision is etcd's. After writes the db's
    consistent index is the raftIndex too. An idle restart appends entries that change no key (a new term's
    empty entry, the member's attribute publish, ...): 3.5 still saves every applied index to the db (cindex at
    each backend commit), while 3.4 saves it only in a transaction that changes keys (mvcc/kvstore_txn.go
    `End`), so its db stays at the last write."""
    written, restarted = solo
    stopped = written if phase == "written" else restarted
    f = freshness_from_files(stopped.member_dir)
    st = stopped.status
    assert f.revision == stopped.revision == SMALL + BIG + 1
    assert f.wal_commit == f.wal_last_index == stopped.raft_index
    assert f.wal_term == st["raftTerm"]
    assert f.index == stopped.raft_index
    assert f.notes == ()
    if stopped.version == "3.4":
        assert f.db_term is None
        assert f.consistent_index == written.raft_index
        if phase == "restarted":
            assert f.consistent_index < stopped.raft_index
    else:
        assert f.db_term == st["raftTerm"]
        assert f.consistent_index == stopped.raft_index
    if phase == "restarted":
        assert restarted.raft_index > written.raft_index
        assert f.wal_term is not None and f.wal_term > written.status["raftTerm"]


@pytest.fixture(scope="module", params=VERSIONS)
def trio(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Stopped]]:
    """Three members; c is stopped after the first keys, more keys are written to a and b (still a quorum)."""
    version = request.param
    base = tmp_path_factory.mktemp(f"trio-{version}")
    ips = CLUSTER_IPS[version]
    cluster = ",".join(f"{n}=http://{ip}:{PEER_PORT}" for n, ip in zip("abc", ips, strict=True))
    members = {n: Etcd(version, n, ip, base / f"data-{n}", cluster) for n, ip in zip("abc", ips, strict=True)}
    try:
        for m in members.values():
            m.start()
        for m in members.values():
            m.wait_healthy()
        members["a"].put_keys("first", 10)
        members["c"].ctl("get", "/first/small/9")  # a linearizable read: c has applied every write before it stops
        out = {"c": stop_and_keep(members["c"], base / "c")}
        members["a"].put_keys("second", 10)
        members["b"].ctl("get", "/second/small/9")
        out["a"] = stop_and_keep(members["a"], base / "a")
        out["b"] = stop_and_keep(members["b"], base / "b")
    finally:
        for m in members.values():
            m.stop()
    yield out


def test_the_member_stopped_early_is_the_stalest(trio: dict[str, Stopped]) -> None:
    f = {name: freshness_from_files(s.member_dir) for name, s in trio.items()}
    assert f["c"].revision == trio["c"].revision == 11
    assert f["a"].revision == f["b"].revision == trio["a"].revision == 21
    for fresher in ("a", "b"):
        assert f[fresher].fresher_than(f["c"]) and not f["c"].fresher_than(f[fresher])
        assert f[fresher].index > f["c"].index
        assert f[fresher].consistent_index > f["c"].consistent_index
        assert (f[fresher].wal_commit or 0) > (f["c"].wal_commit or 0) > 0
        assert f[fresher].revision > f["c"].revision
    assert "c" not in freshest(f) and set(freshest(f)) <= {"a", "b"}
    for name, stopped in trio.items():
        x = f[name]
        assert x.notes == () and x.revision == stopped.revision
        assert x.wal_commit is not None and x.wal_commit == x.wal_last_index
        # A leader stopped by SIGTERM hands leadership over: the new leader's empty entry may follow the status.
        assert stopped.raft_index <= x.wal_commit <= stopped.raft_index + 1, (name, x, stopped.raft_index)
        if stopped.version == "3.4":
            assert x.consistent_index <= x.wal_commit  # that empty entry changes no key: not saved in the db
        else:
            assert x.consistent_index == x.wal_commit


def newest_wal(member_dir: Path) -> Path:
    return sorted((member_dir / "wal").glob("*.wal"))[-1]


def frames(wal: Path) -> list[tuple[int, int]]:
    """(offset, length with the 8-byte length field and padding) of each record, by the framing alone."""
    data, out, pos = wal.read_bytes(), [], 0
    while pos + 8 <= len(data):
        (n,) = struct.unpack_from("<Q", data, pos)
        if n == 0:
            break
        size = 8 + (n & ((1 << 56) - 1)) + ((n >> 56) & 7 if n >> 63 else 0)
        out.append((pos, size))
        pos += size
    return out


def damaged_copy(stopped: Stopped, dest: Path, damage: Callable[[Path], int]) -> tuple[str, Freshness]:
    """After `damage` hit the newest WAL, the reader's note about it, and what it read: all as if the WAL had
    been cut cleanly at the offset `damage` returns (the db may have applied the lost entry: a note says so)."""
    shutil.copytree(stopped.member_dir, dest / "damaged")
    shutil.copytree(stopped.member_dir, dest / "clean")
    cut = damage(newest_wal(dest / "damaged"))
    os.truncate(newest_wal(dest / "clean"), cut)
    damaged, clean = freshness_from_files(dest / "damaged"), freshness_from_files(dest / "clean")
    assert replace(damaged, notes=()) == replace(clean, notes=())
    assert all("lost its tail" in n for n in clean.notes)
    note, *rest = damaged.notes
    assert tuple(rest) == clean.notes and "\n" not in note
    return note, clean


@pytest.mark.parametrize("where", ["record", "length field"])
def test_a_wal_cut_mid_record_reads_to_the_last_whole_record(solo: tuple[Stopped, Stopped], tmp_path: Path,
                                                              where: str) -> None:
    written, _ = solo

    def cut(wal: Path) -> int:
        offset, size = frames(wal)[-1]
        os.truncate(wal, offset + (size // 2 if where == "record" else 3))
        return offset

    note, clean = damaged_copy(written, tmp_path, cut)
    assert "torn write" in note
    assert clean.wal_commit is not None and clean.wal_commit <= written.raft_index


def big_record(wal: Path) -> tuple[int, int]:
    """The last record spanning several sectors: one of the 120 KB values."""
    return next((o, s) for o, s in reversed(frames(wal)) if s > 8 * 512)


def test_a_zeroed_sector_inside_the_last_big_entry_is_a_torn_write(solo: tuple[Stopped, Stopped],
                                                                   tmp_path: Path) -> None:
    """The entry still decodes (the zeros sit inside its data): only the CRC shows the tear."""
    written, _ = solo

    def zero(wal: Path) -> int:
        offset, size = big_record(wal)
        sector = (offset + size // 2) // 512 * 512
        with wal.open("r+b") as f:
            f.seek(sector)
            f.write(bytes(512))
        return offset

    note, clean = damaged_copy(written, tmp_path, zero)
    assert clean.wal_last_index is not None and clean.wal_last_index < written.raft_index
    assert "fails its CRC" in note and "torn write" in note


def test_a_flipped_byte_is_corruption_noted_not_raised(solo: tuple[Stopped, Stopped], tmp_path: Path) -> None:
    written, _ = solo

    def flip(wal: Path) -> int:
        offset, size = big_record(wal)
        with wal.open("r+b") as f:
            f.seek(offset + size // 2)
            b = f.read(1)
            f.seek(offset + size // 2)
            f.write(bytes([b[0] ^ 0x01]))
        return offset

    note, _ = damaged_copy(written, tmp_path, flip)
    assert "fails its CRC" in note and "corrupt" in note and "etcd will refuse" in note


@pytest.mark.parametrize("phase", ["written", "restarted"])
def test_every_record_chains_its_crc(solo: tuple[Stopped, Stopped], monkeypatch: pytest.MonkeyPatch,
                                     phase: str) -> None:
    """The CRC check, stretched from the WAL's last MiB to all of it, passes every record of etcd's WAL."""
    stopped = solo[0] if phase == "written" else solo[1]
    monkeypatch.setattr(freshness, "CRC_TAIL", 1 << 40)
    assert freshness_from_files(stopped.member_dir).notes == ()


def bash(calls: list[str]) -> Callable[[str], str]:
    def run(script: str) -> str:
        calls.append(script)
        return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout

    return run


@pytest.mark.parametrize("phase", ["written", "restarted"])
def test_the_remote_scripts_read_the_same_in_a_few_round_trips(solo: tuple[Stopped, Stopped], tmp_path: Path,
                                                                phase: str) -> None:
    stopped = solo[0] if phase == "written" else solo[1]
    member = tmp_path / "data dir's" / "member"
    shutil.copytree(stopped.member_dir, member)
    calls: list[str] = []
    assert read_freshness(bash(calls), str(member)) == freshness_from_files(member)
    offset, size = frames(newest_wal(member))[-1]
    need, have, chunk, chunks = offset + size + 8, 1 << 20, 2 << 20, 0
    while have < need:
        have, chunk, chunks = have + chunk, min(2 * chunk, 16 << 20), chunks + 1
    assert chunks >= 1  # ~3 MB of WAL: the survey's first MiB, then 2 MiB
    assert len([c for c in calls if ".wal" in c and "tail -c" in c]) == chunks
    db_calls = [c for c in calls if "snap/db" in c and "tail -c" in c]
    assert all("head -c 4096 " in c for c in db_calls)  # the last leaf's overflow pages (its values) stay behind
    assert len(calls) == 1 + chunks + len(db_calls) <= 6, calls


def test_the_remote_read_of_a_torn_wal_matches_the_local_one(solo: tuple[Stopped, Stopped], tmp_path: Path) -> None:
    member = tmp_path / "member"
    shutil.copytree(solo[0].member_dir, member)
    offset, size = frames(newest_wal(member))[-1]
    os.truncate(newest_wal(member), offset + size - 1)
    remote = read_freshness(bash([]), str(member))
    assert remote == freshness_from_files(member) and remote.notes


def fingerprint(tree: Path) -> dict[str, tuple[str, int, int]]:
    """Every file's and directory's content hash (files), mtime and size: a write or a new file shows."""
    return {str(p.relative_to(tree)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir",
                                       p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted([tree, *tree.rglob("*")])}


def test_reading_changes_nothing(solo: tuple[Stopped, Stopped], tmp_path: Path) -> None:
    member = tmp_path / "member"
    shutil.copytree(solo[1].member_dir, member)
    before = fingerprint(member)
    freshness_from_files(member)
    read_freshness(bash([]), str(member))
    assert fingerprint(member) == before


CHILD = """
import subprocess, sys
from pathlib import Path
from etcdrescue.etcddata.freshness import freshness_from_files, read_freshness
member = Path(sys.argv[1])
try:
    (member / "probe").write_bytes(b"")
    print("writable")
except OSError:
    print("read-only")
run = lambda s: subprocess.run(["bash", "-c", s], capture_output=True, text=True, check=True).stdout
print(repr(freshness_from_files(member)))
print(repr(read_freshness(run, str(member))))
"""


def test_reads_from_a_read_only_bind_mount(solo: tuple[Stopped, Stopped], tmp_path: Path) -> None:
    """Both readers on a private read-only bind mount of the member dir (a mount namespace of their own)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare for a private read-only bind mount")
    ro, child = tmp_path / "ro", tmp_path / "child.py"
    ro.mkdir()
    child.write_text(CHILD)
    src = solo[1].member_dir
    q = shlex.quote
    script = (f"mount --bind {q(str(src))} {q(str(ro))} && mount -o remount,bind,ro {q(str(ro))} && "
              f"exec {q(sys.executable)} {q(str(child))} {q(str(ro))}")
    res = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    if res.returncode and "mount" in res.stderr:
        pytest.skip(f"cannot bind-mount here: {res.stderr.strip()}")
    assert res.returncode == 0, res.stderr
    expected = repr(freshness_from_files(src))
    assert res.stdout.splitlines() == ["read-only", expected, expected]


@pytest.mark.parametrize("version", VERSIONS)
def test_revision_after_a_compaction_that_emptied_the_key_bucket(version: str, tmp_path: Path) -> None:
    """Put, delete, compact at the delete: on 3.4 the key bucket is then empty and etcd takes its revision from
    the finished compaction (mvcc/kvstore.go `restore`); 3.5.36, 3.6 and 3.7 keep the tombstone at the compacted
    revision, and the revision read is the same."""
    member = single(version, COMPACTED_IP[version], tmp_path / "data").start()
    try:
        member.wait_healthy()
        member.ctl("put", "/only", "x")
        member.ctl("del", "/only")
        member.ctl("compact", "--physical", "3")
        stopped = stop_and_keep(member, tmp_path / "copy")
    finally:
        member.stop()
    data = (stopped.member_dir / "snap" / "db").read_bytes()
    db = DB(lambda offset, length: data[offset:offset + length])
    keys = db.bucket(db.root(), b"key")
    assert keys is not None and (db.last_key(keys) is None) == (version == "3.4")
    f = freshness_from_files(stopped.member_dir)
    assert f.revision == stopped.revision == 3
    assert f.wal_commit == stopped.raft_index


@pytest.fixture(scope="module")
def segments(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stopped]:
    """Enough 1 MB values that etcd cuts a second 64 MB WAL segment."""
    version = "3.5"
    base = tmp_path_factory.mktemp("segments")
    member = single(version, "127.0.99.249", base / "data").start()
    try:
        member.wait_healthy()
        value = os.urandom(500_000).hex()
        for i in range(70):
            member.ctl("put", f"/big/{i}", stdin=value)
        stopped = stop_and_keep(member, base / "copy")
    finally:
        member.stop()
    yield stopped


def test_the_newest_of_several_segments_holds_the_state(segments: Stopped) -> None:
    wals = sorted((segments.member_dir / "wal").glob("*.wal"))
    assert len(wals) >= 2
    f = freshness_from_files(segments.member_dir)
    assert f.wal_commit == f.wal_last_index == segments.raft_index
    assert f.revision == segments.revision == 71
    assert f.notes == ()


def test_a_full_segment_is_read_remotely_in_six_chunks_after_the_surveys(segments: Stopped) -> None:
    """The survey's first MiB, then 2, 4, 8, 16, 16, 16 MiB: 63 MiB covers a 64 MB segment."""
    full = sorted((segments.member_dir / "wal").glob("*.wal"))[-2]
    calls: list[str] = []
    run = bash(calls)
    local = full.read_bytes()

    def read(offset: int, length: int) -> bytes:
        return base64.b64decode(run(read_script(str(full), offset, length)))

    remote = wal_state(read, full.name, first=local[:1 << 20], asked=1 << 20)
    assert remote == wal_state(lambda o, n: local[o:o + n], full.name)
    assert remote.end > 64_000_000 - (1 << 20) and remote.notes == ()
    assert len(calls) == 6
    nxt = int(sorted((segments.member_dir / "wal").glob("*.wal"))[-1].name[17:33], 16)
    assert remote.last_index == nxt - 1


def test_not_an_etcd_member_dir_is_a_one_line_error(solo: tuple[Stopped, Stopped], tmp_path: Path) -> None:
    src = solo[0].member_dir
    cases: dict[str, tuple[Path, str]] = {}
    cases["missing"] = (tmp_path / "nowhere", "no such directory")
    no_db = tmp_path / "no-db"
    shutil.copytree(src / "wal", no_db / "wal")
    cases["no db"] = (no_db, "snap/db: missing")
    garbage = tmp_path / "garbage"
    shutil.copytree(src, garbage)
    (garbage / "snap" / "db").write_bytes(os.urandom(16384))
    cases["garbage"] = (garbage, "not a bbolt database")
    no_wal = tmp_path / "no-wal"
    shutil.copytree(src / "snap", no_wal / "snap")
    (no_wal / "wal").mkdir()
    (no_wal / "wal" / "0.tmp").write_bytes(bytes(4096))
    cases["no wal"] = (no_wal, "no WAL segment")
    for name, (member, message) in cases.items():
        for read in (freshness_from_files, lambda m: read_freshness(bash([]), str(m))):
            with pytest.raises(FreshnessError, match=message) as exc:
                read(member)
            assert "\n" not in str(exc.value), name


def test_ordering_helpers() -> None:
    def fresh(ci: int, rev: int, commit: int | None, last: int | None = None) -> Freshness:
        return Freshness(ci, rev, None, commit, 2 if commit else None, last, ())

    assert fresh(10, 5, 14).index == 14 and fresh(10, 5, None).index == 10 and fresh(20, 5, 14).index == 20
    a, b = fresh(15, 11, 23, 23), fresh(22, 11, 22, 22)
    assert a.fresher_than(b) and not b.fresher_than(a) and not a.fresher_than(a)
    assert fresh(10, 6, 10).fresher_than(fresh(10, 5, 10))
    assert fresh(10, 5, 10, 12).fresher_than(fresh(10, 5, 10, 10))
    assert freshest({"x": a, "y": b}) == ("x",)
    assert freshest({"x": a, "y": b, "z": a}) == ("x", "z")
    assert freshest({}) == ()


def test_crc32c_is_castagnoli() -> None:
    assert crc32c(0, b"123456789") == 0xE3069283
    assert crc32c(crc32c(0, b"12345"), b"6789") == 0xE3069283
    assert crc32c(0, b"") == 0
