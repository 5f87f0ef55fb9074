"""The backup's member list, read from a real etcd 3.4 database without starting etcd."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from solo_etcd import solo_etcd

from etcdrescue.etcddata.backup_identity import (
    BackupIdentityError,
    BackupMember,
    backup_members,
    identity_problem,
    remote_reader,
)

IP = "127.0.99.250"  # lab subnets 80-99; the lab's hosts use .1-.7, so .250 is free
PEER, CLIENT = f"http://{IP}:23800", f"http://{IP}:23790"

needs_etcd = pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd binary not installed")


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[bytes]:
    """A real etcd db: one member started, a few keys written, etcd stopped."""
    if shutil.which("etcd") is None:
        pytest.skip("etcd binary not installed")
    d = tmp_path_factory.mktemp("etcd")
    with solo_etcd(d / "data", IP) as ctl:
        for i in range(50):
            ctl("put", f"/k{i}", "v" * 100)
    yield (d / "data/member/snap/db").read_bytes()


@needs_etcd
def test_reads_the_member_list(db: bytes) -> None:
    (member,) = members_from_bytes(db)
    assert member.peer_urls == (PEER,)
    assert len(member.id) == 16 and int(member.id, 16)


@needs_etcd
def test_same_and_other_cluster(db: bytes) -> None:
    members = members_from_bytes(db)
    assert identity_problem(members, [PEER, "https://10.0.0.2:2380"]) is None
    assert identity_problem(members, [PEER.upper() + "/"]) is None
    problem = identity_problem(members, ["https://127.0.81.1:2380", "https://127.0.81.2:2380"])
    assert problem and "another cluster" in problem and PEER in problem and "127.0.81.1" in problem


@needs_etcd
def test_truncated_db_is_an_error(db: bytes) -> None:
    """Cut before every page the reader needs, the last one included (where etcd put the members bucket
    varies run to run: a fixed cut such as 12 KiB sometimes keeps all of it)."""
    reads: list[int] = []

    def reader(offset: int, length: int) -> bytes:
        reads.append(offset)
        return db[offset:offset + length]

    backup_members(reader)
    for cut in sorted({0, 100, 4096, *reads}):
        with pytest.raises(BackupIdentityError):
            members_from_bytes(db[:cut])


@needs_etcd
def test_garbage_is_an_error(db: bytes) -> None:
    with pytest.raises(BackupIdentityError, match="not a bbolt database"):
        members_from_bytes(b"\xde\xad\xbe\xef" * 4096)


@needs_etcd
def test_one_damaged_meta_page_falls_back_to_the_other(db: bytes) -> None:
    for offset in (16 + 40, 4096 + 16 + 40):  # inside each meta's root/freelist fields: checksum breaks
        damaged = bytearray(db)
        damaged[offset] ^= 0xFF
        assert members_from_bytes(bytes(damaged)) == members_from_bytes(db)
    both = bytearray(db)
    both[16 + 40] ^= 0xFF
    both[4096 + 16 + 40] ^= 0xFF
    with pytest.raises(BackupIdentityError):
        members_from_bytes(bytes(both))


@needs_etcd
def test_remote_reader_reads_only_a_few_pages_through_a_shell(db: bytes, tmp_path: Path) -> None:
    path = tmp_path / "db with space"
    path.write_bytes(db)
    calls: list[str] = []

    def run(script: str) -> str:
        calls.append(script)
        return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout

    assert members_from_bytes(db) == _via(run, str(path))
    assert 0 < len(calls) <= 8, calls


def members_from_bytes(data: bytes) -> tuple[BackupMember, ...]:
    return backup_members(lambda offset, length: data[offset:offset + length])


def _via(run: Callable[[str], str], path: str) -> tuple[BackupMember, ...]:
    from etcdrescue.etcddata.backup_identity import backup_members

    return backup_members(remote_reader(run, path))


def test_match_by_host_when_urls_differ() -> None:
    members = [BackupMember("1", ("https://10.0.0.1:2380",)), BackupMember("2", ("https://10.0.0.2:2380",))]
    assert identity_problem(members, ["https://m1.example:2380"], ["10.0.0.1", "m1.example"]) is None
    assert identity_problem(members, ["https://[fd00::1]:2380"], ["fd00::1"]) is not None
    assert identity_problem([BackupMember("1", ("https://[FD00::1]:2380",))], ["https://[fd00::1]:2380"]) is None
    assert identity_problem(members, ["https://10.0.0.3:2380"], ["10.0.0.3"]) is not None


def test_no_members_is_a_problem() -> None:
    assert identity_problem([], ["https://a:2380"]) is not None
