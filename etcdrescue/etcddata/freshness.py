"""How far a stopped (or crash-looping) member's own data goes, read offline and read-only.

A quorum restore seeds the new cluster from one survivor's data dir, and every write the others had but the
seed lacks is lost. The seed should therefore be the freshest survivor: vmware/etcd-recovery picks the member
with the highest commit index, max(WAL HardState commit, bbolt consistent index); OpenShift's docs say the
highest raft index. Both can be read from the files without starting etcd (which might change them):

Source paths below are etcd v3.4's; v3.5 moved them under server/.

- the bbolt db (`member/snap/db`): the `meta` bucket's `consistent_index` (index of the last raft entry
  applied to the db, 8 bytes big-endian) and, from etcd 3.5, `term` (3.5 etcdserver/cindex/cindex.go);
  the store's revision is the highest key of the `key` bucket, a 17-byte revision encoding (8-byte main
  revision big-endian, `_`, 8-byte sub revision; 18 with a trailing `t` for a tombstone: mvcc/revision.go),
  or `finishedCompactRev` when compaction removed every key past it (mvcc/kvstore.go `restore`). Only the
  rightmost path of the `key` bucket's B+tree is read, and of its last leaf only the header and last key.
- the newest WAL segment (`member/wal/<seq>-<index>.wal`): its last HardState (term, vote, commit) and its last
  entry's index. Every segment starts with a crc record, the metadata and the current HardState
  (wal/wal.go `cut`), so the newest one alone holds the latest state.

WAL framing (wal/encoder.go, wal/decoder.go): a little-endian u64 length field (low 56 bits: record length;
top bit set: the low 3 bits of the top byte are padding to 8-byte alignment), then a protobuf
`walpb.Record{type=1, crc=2, data=3}` (wal/walpb/record.proto). Types: 1 metadata, 2 entry
(raftpb.Entry: Type=1, Term=2, Index=3, Data=4), 3 state (raftpb.HardState: term=1, vote=2, commit=3),
4 crc, 5 snapshot (walpb.Snapshot: index=1, term=2). A segment is preallocated with zeros (64 MB), so a zero
length field ends it. The record CRC is CRC-32C chained over every record's data: a record's crc field is
crc32c(previous record's crc, its data), so any one record can be checked on its own.

A crash mid-write leaves a torn last record. Like etcd's decoder (which then truncates it in `wal.Repair`),
the reader stops at the last complete record and says so in `notes`: a record cut short by the end of the file,
or one that fails to decode or its CRC and has an all-zero 512-byte sector (`isTornEntry`). One that fails
without a zero sector is corruption, which etcd refuses to start from: noted the same way. The CRC costs
pure-Python time (~0.15 s/MiB), so it is checked over the last `CRC_TAIL` bytes of records, where a crash
can tear them; the framing and protobuf of every record are checked.

Remotely (`read_freshness`) the reads are shell scripts through `run` (one SSH host): `freshness_script`
returns in one round trip the db's first 8 KiB (both meta pages), the newest WAL name and its first MiB; then
one round trip per db page on the path root bucket, `key` bucket root, ..., last leaf (3 for a small db, one
more per B+tree level), plus one when the last key lies past the leaf's first 4 KiB; then the rest of the WAL
in doubling chunks (2, 4, 8, 16, 16... MiB) until its zero-length terminator: none for a WAL under 1 MiB, 6
for a full 64 MB segment.
"""

from __future__ import annotations

import base64
import re
import shlex
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .bbolt import DB, BboltError, Reader, read_script, remote_reader

WAL_NAME = re.compile(r"[0-9a-f]{16}-[0-9a-f]{16}\.wal")
DB_HEAD = 8192
FIRST_CHUNK = 1 << 20
MAX_CHUNK = 16 << 20
CRC_TAIL = 1 << 20
MAX_RECORD = 10 * 1024 * 1024
"""wal/decoder.go maxWALEntrySizeLimit: etcd refuses a longer record."""
SECTOR = 512
"""wal/wal.go minSectorSize: the unit a torn write leaves zeroed."""

METADATA, ENTRY, STATE, CRC, SNAPSHOT = 1, 2, 3, 4, 5


class FreshnessError(ValueError):
    """The member's data cannot be read at all: no db, not a bbolt file, not an etcd db, no WAL."""


@dataclass(frozen=True)
class Freshness:
    """How far one member's data goes.

    `index` is what decides the seed: a member restarted from these files (with `--force-new-cluster` too)
    replays its WAL up to the commit on top of the db, so its data reaches max(consistent_index, wal_commit).
    Ties go to the higher revision, then to the longer log (`wal_last_index`: the newest segment's last entry,
    or the index before the one its name says it starts at when it holds none yet).

    Measured on stopped 3.4.23 and 3.5.1 members against `endpoint status` taken just before: `wal_commit`
    and `wal_last_index` are the raftIndex (one more when a stopped leader handed leadership over). 3.5 saves
    every applied index in the db (cindex at each backend commit), so `consistent_index` is the raftIndex as
    well; 3.4 saves it only in a transaction that changes keys (mvcc/kvstore_txn.go `End`), so after entries
    that change none (a new leader's empty entry, the member's attribute publish, ...: 4 entries per idle
    restart of a one-member 3.4.23 cluster) it lags.
    """

    consistent_index: int
    revision: int
    db_term: int | None
    wal_commit: int | None
    wal_term: int | None
    wal_last_index: int | None
    notes: tuple[str, ...] = ()

    @property
    def index(self) -> int:
        return max(self.consistent_index, self.wal_commit or 0)

    @property
    def sort_key(self) -> tuple[int, int, int]:
        return self.index, self.revision, self.wal_last_index or 0

    def fresher_than(self, other: Freshness) -> bool:
        return self.sort_key > other.sort_key


def freshest(members: Mapping[str, Freshness]) -> tuple[str, ...]:
    """The names sharing the highest `sort_key` (several on a tie, none for no members), in the given order."""
    if not members:
        return ()
    top = max(f.sort_key for f in members.values())
    return tuple(name for name, f in members.items() if f.sort_key == top)


@dataclass(frozen=True)
class DbState:
    """What the bbolt db says: the last applied raft index, its term (3.5+) and the store's revision."""

    consistent_index: int
    revision: int
    term: int | None


@dataclass(frozen=True)
class WalState:
    """The newest WAL segment as etcd would recover it: up to `end` (bytes of whole, valid records)."""

    name: str
    term: int | None
    vote: int | None
    commit: int | None
    last_index: int
    records: int
    end: int
    notes: tuple[str, ...] = ()


def db_state(read: Reader) -> DbState:
    """consistent_index, term and revision of the etcd db read through `read(offset, length)`."""
    try:
        db = DB(read)
        root = db.root()
        meta = db.bucket(root, b"meta")
        keys = db.bucket(root, b"key")
        if meta is None or keys is None:
            raise FreshnessError("no `meta` or `key` bucket: not an etcd 3 database")
        index = _u64(db.lookup(meta, b"consistent_index"), "consistent_index")
        term = _u64(db.lookup(meta, b"term"), "term")
        compacted = db.lookup(meta, b"finishedCompactRev")
        last = db.last_key(keys)
    except BboltError as exc:
        raise FreshnessError(str(exc)) from None
    revision = 1
    if last is not None:
        revision = _main_revision(last)
    if compacted is not None:
        revision = max(revision, _main_revision(compacted[1]))
    return DbState(index or 0, revision, term)


def _u64(found: tuple[int, bytes] | None, name: str) -> int | None:
    if found is None:
        return None
    if len(found[1]) != 8:
        raise FreshnessError(f"meta {name} is {len(found[1])} bytes, not 8: corrupt?")
    return int.from_bytes(found[1], "big")


def _main_revision(key: bytes) -> int:
    if len(key) not in (17, 18) or key[8:9] != b"_" or key[17:] not in (b"", b"t"):
        raise FreshnessError(f"{key[:24]!r} is not a revision (8 bytes, '_', 8 bytes[, 't']): corrupt?")
    return int.from_bytes(key[:8], "big")


class _Malformed(Exception):
    pass


def _varint(buf: bytes | bytearray, i: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while shift < 70:
        if i >= end:
            raise _Malformed
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value & 0xFFFFFFFFFFFFFFFF, i
        shift += 7
    raise _Malformed


def _fields(buf: bytes | bytearray, i: int, end: int) -> dict[int, int | tuple[int, int]]:
    """The protobuf fields in buf[i:end]: varints as ints, length-delimited ones as (start, end) spans.

    A repeated scalar keeps its last value, as protobuf decoders do; fixed32/64 fields are skipped.
    """
    out: dict[int, int | tuple[int, int]] = {}
    while i < end:
        tag, i = _varint(buf, i, end)
        field, wire = tag >> 3, tag & 7
        if field == 0:
            raise _Malformed
        if wire == 0:
            out[field], i = _varint(buf, i, end)
        elif wire == 2:
            n, i = _varint(buf, i, end)
            if i + n > end:
                raise _Malformed
            out[field] = (i, i + n)
            i += n
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
            if i > end:
                raise _Malformed
        else:
            raise _Malformed
    return out


def _int(fields: dict[int, int | tuple[int, int]], n: int) -> int:
    v = fields.get(n, 0)
    if not isinstance(v, int):
        raise _Malformed
    return v


def _span(fields: dict[int, int | tuple[int, int]], n: int, at: int) -> tuple[int, int]:
    v = fields.get(n, (at, at))
    if isinstance(v, int):
        raise _Malformed
    return v


def _crc32c_table() -> tuple[list[int], ...]:
    base = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        base.append(c)
    tables = [base]
    for _ in range(3):
        prev = tables[-1]
        tables.append([(prev[i] >> 8) ^ base[prev[i] & 0xFF] for i in range(256)])
    return tuple(tables)


_CRC32C = _crc32c_table()


def crc32c(crc: int, data: bytes) -> int:
    """Go's crc32.Update(crc, crc32.MakeTable(crc32.Castagnoli), data), four bytes a step."""
    t0, t1, t2, t3 = _CRC32C
    crc ^= 0xFFFFFFFF
    whole = len(data) & ~3
    for (w,) in struct.iter_unpack("<I", data[:whole]):
        crc ^= w
        crc = t3[crc & 0xFF] ^ t2[(crc >> 8) & 0xFF] ^ t1[(crc >> 16) & 0xFF] ^ t0[crc >> 24]
    for b in data[whole:]:
        crc = t0[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


class _Stream:
    """The WAL segment's bytes from its start, fetched on demand in growing chunks (the framing needs a
    sequential scan; most segments end in zeros long before 64 MB)."""

    def __init__(self, read: Reader, first: bytes = b"", asked: int = 0) -> None:
        self.read = read
        self.buf = bytearray(first)
        self.eof = asked > 0 and len(first) < asked
        self.chunk = min(2 * asked, MAX_CHUNK) if asked else FIRST_CHUNK

    def have(self, end: int) -> bool:
        while len(self.buf) < end and not self.eof:
            want = max(self.chunk, end - len(self.buf))
            data = self.read(len(self.buf), want)
            self.buf += data
            self.eof = len(data) < want
            self.chunk = min(self.chunk * 2, MAX_CHUNK)
        return len(self.buf) >= end


@dataclass(frozen=True)
class _Record:
    offset: int
    size: int
    type: int
    crc: int
    data: tuple[int, int]
    value: tuple[int, ...]


def _torn(buf: bytes | bytearray, start: int, end: int) -> bool:
    """wal/decoder.go isTornEntry: some sector-aligned piece of the record's frame is all zeros."""
    i = start
    while i < end:
        j = min(end, (i // SECTOR + 1) * SECTOR)
        if not any(buf[i:j]):
            return True
        i = j
    return False


def _decode(buf: bytes | bytearray, offset: int, size: int, pad: int) -> _Record:
    start, end = offset + 8, offset + 8 + size
    rec = _fields(buf, start, end)
    kind, crc, data = _int(rec, 1), _int(rec, 2), _span(rec, 3, end)
    if kind == ENTRY:
        e = _fields(buf, *data)
        value: tuple[int, ...] = (_int(e, 3), _int(e, 2))
    elif kind == STATE:
        s = _fields(buf, *data)
        value = (_int(s, 1), _int(s, 2), _int(s, 3))
    elif kind == SNAPSHOT:
        s = _fields(buf, *data)
        value = (_int(s, 1), _int(s, 2))
    elif kind in (METADATA, CRC):
        value = ()
    else:
        raise _Malformed
    return _Record(offset, 8 + size + pad, kind, crc, data, value)


def wal_state(read: Reader, name: str, *, first: bytes = b"", asked: int = 0) -> WalState:
    """The last HardState and entry index of WAL segment `name`, read through `read(offset, length)`.

    `first`, when given, is the segment's first `asked` bytes already fetched. Never raises on a torn or
    corrupt tail: it stops at the last good record and says why in `notes`.
    """
    if not WAL_NAME.fullmatch(name):
        raise FreshnessError(f"{name!r} is not a WAL segment name (<seq>-<index>.wal, 16 hex digits each)")
    s = _Stream(read, first, asked)
    records: list[_Record] = []
    notes: list[str] = []
    pos = 0
    while True:
        if not s.have(pos + 8):
            if any(s.buf[pos:]):
                notes.append(f"WAL {name}: ends inside a length field at offset {pos} (torn write): "
                             f"read up to the record before it, as etcd's repair does")
            break
        (length,) = struct.unpack_from("<Q", s.buf, pos)
        if length == 0:
            break
        size = length & ~(0xFF << 56)
        pad = (length >> 56) & 0x7 if length >> 63 else 0
        if size >= MAX_RECORD - pad:
            notes.append(f"WAL {name}: record at offset {pos} claims {size} bytes, over etcd's 10 MiB limit: "
                         f"corrupt, etcd will refuse this WAL; read up to the record before it")
            break
        if not s.have(pos + 8 + size + pad):
            notes.append(f"WAL {name}: the last record (offset {pos}) is cut short by the end of the file "
                         f"(torn write): read up to the record before it, as etcd's repair does")
            break
        try:
            records.append(_decode(s.buf, pos, size, pad))
        except _Malformed:
            notes.append(_bad(name, pos, "does not decode", _torn(s.buf, pos + 8, pos + 8 + size + pad)))
            break
        pos += 8 + size + pad
    records = _check_crc(s.buf, records, name, notes)
    return _summary(name, records, tuple(notes))


def _bad(name: str, pos: int, what: str, torn: bool) -> str:
    if torn:
        return (f"WAL {name}: the record at offset {pos} {what} and has a zeroed sector (torn write): "
                f"read up to the record before it, as etcd's repair does")
    return (f"WAL {name}: the record at offset {pos} {what} and is not a torn write: corrupt, etcd will refuse "
            f"this WAL; read up to the record before it")


def _check_crc(buf: bytes | bytearray, records: list[_Record], name: str, notes: list[str]) -> list[_Record]:
    """The records up to the first one in the last CRC_TAIL bytes whose CRC does not chain on."""
    if not records:
        return records
    tail = records[-1].offset + records[-1].size - CRC_TAIL
    for i in range(1, len(records)):
        rec = records[i]
        if rec.offset < tail:
            continue
        prev = records[i - 1].crc
        ok = rec.crc == prev if rec.type == CRC else crc32c(prev, bytes(buf[rec.data[0]:rec.data[1]])) == rec.crc
        if not ok:
            notes.append(_bad(name, rec.offset, "fails its CRC", _torn(buf, rec.offset + 8, rec.offset + rec.size)))
            return records[:i]
    return records


def _summary(name: str, records: list[_Record], notes: tuple[str, ...]) -> WalState:
    state: tuple[int, ...] | None = None
    last_entry: int | None = None
    snapshot = 0
    for rec in records:
        if rec.type == STATE:
            state = rec.value
        elif rec.type == ENTRY:
            last_entry = rec.value[0]
        elif rec.type == SNAPSHOT:
            snapshot = rec.value[0]
    if last_entry is None:
        # No entry yet in this segment: the name's index is the first one it will hold (wal.go `cut`).
        last_entry = max(snapshot, int(name[17:33], 16) - 1, 0)
    if state is None:
        notes = (*notes, f"WAL {name}: no HardState record in the readable part")
    end = records[-1].offset + records[-1].size if records else 0
    term, vote, commit = state if state else (None, None, None)
    return WalState(name, term, vote, commit, last_entry, len(records), end, notes)


def combine(db: DbState, wal: WalState) -> Freshness:
    """One member's Freshness; a db that applied past the WAL's end gets a note (a torn WAL tail, or a db
    copied in from elsewhere, as openshift-ansible backups do)."""
    notes = list(wal.notes)
    if wal.commit is not None and db.consistent_index > max(wal.commit, wal.last_index):
        notes.append(f"the db has applied index {db.consistent_index}, past the WAL's last index "
                     f"{max(wal.commit, wal.last_index)}: the WAL lost its tail, or is not this db's (a copied "
                     f"or restored db?)")
    return Freshness(db.consistent_index, db.revision, db.term, wal.commit, wal.term, wal.last_index, tuple(notes))


def _file_reader(f: BinaryIO) -> Reader:
    def read(offset: int, length: int) -> bytes:
        f.seek(offset)
        return f.read(length)

    return read


def freshness_from_files(member_dir: Path) -> Freshness:
    """Freshness of the etcd `member` directory `member_dir` (holding snap/db and wal/) on this machine."""
    member_dir = Path(member_dir)
    if not member_dir.is_dir():
        raise FreshnessError(f"{member_dir}: no such directory")
    db_path = member_dir / "snap" / "db"
    if not db_path.is_file():
        raise FreshnessError(f"{db_path}: missing (not an etcd member dir?)")
    names = sorted(p.name for p in (member_dir / "wal").glob("*.wal") if WAL_NAME.fullmatch(p.name))
    if not names:
        raise FreshnessError(f"{member_dir / 'wal'}: no WAL segment (*.wal)")
    with db_path.open("rb") as f:
        db = _db_state(_file_reader(f), str(db_path))
    with (member_dir / "wal" / names[-1]).open("rb") as f:
        wal = wal_state(_file_reader(f), names[-1])
    return combine(db, wal)


def _db_state(read: Reader, path: str) -> DbState:
    try:
        return db_state(read)
    except FreshnessError as exc:
        raise FreshnessError(f"{path}: {exc}") from None


def freshness_script(member_dir: str) -> str:
    """Read-only shell printing, for the `member` dir: `db` and the db's first DB_HEAD bytes in base64 (or
    `db missing`), `wal <newest segment>` and its first FIRST_CHUNK bytes in base64 (or `wal missing`), or
    only `dir missing`."""
    return (
        f"cd {shlex.quote(member_dir)} 2>/dev/null || {{ echo 'dir missing'; exit 0; }}; "
        f"if [ -f snap/db ] && [ -r snap/db ]; then echo db; head -c {DB_HEAD} snap/db | base64 -w0; echo; "
        "else echo 'db missing'; fi; "
        "w=$(ls -1 wal 2>/dev/null | LC_ALL=C grep -E '^[0-9a-f]{16}-[0-9a-f]{16}[.]wal$' | LC_ALL=C sort "
        "| tail -n 1); "
        f"if [ -n \"$w\" ] && [ -r \"wal/$w\" ]; then echo \"wal $w\"; head -c {FIRST_CHUNK} \"wal/$w\" "
        "| base64 -w0; echo; else echo 'wal missing'; fi"
    )


@dataclass(frozen=True)
class Survey:
    """What `freshness_script` printed."""

    dir: bool
    db_head: bytes | None
    wal_name: str | None
    wal_head: bytes


def parse_survey(text: str) -> Survey:
    """The output of `freshness_script` (base64 never holds a space or is two characters long, so the
    `db`/`wal NAME` marker lines cannot be mistaken for data)."""
    lines = text.splitlines()
    if lines[:1] == ["dir missing"]:
        return Survey(False, None, None, b"")
    db_head: bytes | None = None
    wal_name: str | None = None
    wal_head = b""
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line == "db":
            db_head = base64.b64decode(nxt)
        elif line.startswith("wal ") and line != "wal missing":
            wal_name = line[4:]
            wal_head = base64.b64decode(nxt)
    return Survey(True, db_head, wal_name, wal_head)


def read_freshness(run: Callable[[str], str], member_dir: str) -> Freshness:
    """Freshness of the `member` dir on the host behind `run(script) -> stdout` (scripts only read)."""
    survey = parse_survey(run(freshness_script(member_dir)))
    base = member_dir.rstrip("/") or "/"
    db_path = f"{base}/snap/db"
    if not survey.dir:
        raise FreshnessError(f"{member_dir}: no such directory")
    if survey.db_head is None:
        raise FreshnessError(f"{db_path}: missing (not an etcd member dir?)")
    if survey.wal_name is None:
        raise FreshnessError(f"{base}/wal: no WAL segment (*.wal)")
    db = _db_state(remote_reader(run, db_path, known=survey.db_head), db_path)
    wal_path = f"{base}/wal/{survey.wal_name}"

    def read_wal(offset: int, length: int) -> bytes:
        return base64.b64decode(run(read_script(wal_path, offset, length)).strip() or b"")

    wal = wal_state(read_wal, survey.wal_name, first=survey.wal_head, asked=FIRST_CHUNK)
    return combine(db, wal)
