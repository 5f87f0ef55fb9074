"""A backup file on this machine (the bastion): its checksum and what its bbolt database says, read offline.

Nothing here starts etcd or needs its tools: the pure-Python bbolt reader gives the revision, the member list
and (3.6+) the storage version, which is enough to tell an etcd snapshot of this cluster from a corrupt file,
another cluster's snapshot, or something that is not an etcd snapshot at all.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..etcddata.backup_identity import BackupIdentityError, BackupMember, backup_members, identity_problem
from ..etcddata.bbolt import DB, MAGIC, PAGE_HEADER, BboltError, Reader
from ..etcddata.freshness import FreshnessError, db_state

CHUNK = 1 << 20
HASH_SIZE = 32


class NotASnapshot(ValueError):
    """The file does not even start like a bbolt database: not an etcd snapshot (bad input)."""


class CorruptSnapshot(ValueError):
    """It starts like one but cannot be read through: corrupt or truncated."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def sha256_line(digest: str, path: Path) -> str:
    """`sha256sum`'s format, naming the file by its base name so `sha256sum -c` works in its directory."""
    return f"{digest}  {path.name}\n"


def recorded_sha256(path: Path) -> str | None:
    """The digest `<path>.sha256` records for `path`, if that file exists (None without one)."""
    sums = path.with_name(path.name + ".sha256")
    if not sums.is_file():
        return None
    for line in sums.read_text(encoding="utf-8", errors="replace").splitlines():
        digest, _, name = line.strip().partition(" ")
        if name.lstrip(" *") in (path.name, str(path)) and len(digest) == 64:
            return digest.lower()
    raise CorruptSnapshot(f"{sums} names no sha256 of {path.name}")


@dataclass(frozen=True)
class SnapshotFacts:
    """What an etcd snapshot file says about itself."""

    revision: int
    consistent_index: int
    members: tuple[BackupMember, ...]
    storage_version: str = ""
    """`meta/storageVersion` (written by etcd 3.6+); "" before."""
    total_keys: int = 0
    """Entries of the `key` bucket (every revision of every key), as `etcdutl snapshot status` counts them."""
    hashed: bool = True
    """It carries the integrity hash `snapshot save` appends (a plain copy of `member/snap/db` does not)."""

    @property
    def peer_urls(self) -> tuple[str, ...]:
        return tuple(sorted({u for m in self.members for u in m.peer_urls}))


def _reader(f: BinaryIO) -> Reader:
    def read(offset: int, length: int) -> bytes:
        f.seek(offset)
        return f.read(length)

    return read


def integrity_problem(f: BinaryIO, size: int) -> str | None:
    """`etcdctl snapshot save` appends the sha256 of the db to it (the file is then 32 bytes past a multiple of
    512): checked here as `snapshot restore` checks it. None when it matches, or when the file has none (a plain
    copy of `member/snap/db`, which `restore` takes with `--skip-hash-check`)."""
    if size % 512 != HASH_SIZE:
        return None
    h = hashlib.sha256()
    f.seek(0)
    left = size - HASH_SIZE
    while left > 0:
        chunk = f.read(min(CHUNK, left))
        if not chunk:
            return "shorter than it was a moment ago"
        h.update(chunk)
        left -= len(chunk)
    if f.read(HASH_SIZE) != h.digest():
        return "its integrity hash (the sha256 `snapshot save` appends) does not match its contents"
    return None


def inspect(path: Path) -> SnapshotFacts:
    """The snapshot's revision, members and storage version; `NotASnapshot` or `CorruptSnapshot` else."""
    with path.open("rb") as f:
        head = f.read(PAGE_HEADER + 8)
        if len(head) < PAGE_HEADER + 4 or struct.unpack_from("<I", head, PAGE_HEADER)[0] != MAGIC:
            raise NotASnapshot(f"{path} is not an etcd snapshot (no bbolt header)")
        damaged = integrity_problem(f, path.stat().st_size)
        if damaged:
            raise CorruptSnapshot(damaged)
        read = _reader(f)
        try:
            state = db_state(read)
            members = backup_members(read)
            db = DB(read)
            meta = db.bucket(db.root(), b"meta")
            found = db.lookup(meta, b"storageVersion") if meta is not None else None
            revisions = db.bucket(db.root(), b"key")
            total = sum(1 for _ in db.items(revisions)) if revisions is not None else 0
        except (FreshnessError, BackupIdentityError, BboltError) as exc:
            raise CorruptSnapshot(str(exc)) from None
    storage = found[1].decode("ascii", errors="replace") if found else ""
    return SnapshotFacts(state.revision, state.consistent_index, members, storage, total,
                         path.stat().st_size % 512 == HASH_SIZE)


UNHASHED = ("a copy of a member's db, not a `snapshot save` file (it has no integrity hash, and a snapshot "
            "file's restore checks one): restore it from the seed as a data-dir backup (`--backup DIR` holding "
            "member/snap/db)")


def foreign_problem(facts: SnapshotFacts, peer_urls: Iterable[str], hosts: Iterable[str] = ()) -> str | None:
    """None when the snapshot's members overlap these peer URLs (or host names); else why it is another's."""
    return identity_problem(facts.members, peer_urls, hosts)


def writable_dir(path: Path) -> str | None:
    """Why `path` cannot take a backup (None when it can): missing, not a directory, not writable."""
    if not path.exists():
        return f"{path} does not exist"
    if not path.is_dir():
        return f"{path} is not a directory"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"{path} is not writable"
    return None
