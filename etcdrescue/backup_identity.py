"""Which cluster a backup belongs to: the member list stored in its etcd database.

etcd 3.4 keeps its membership in the bbolt backend (bucket `members`: key = member ID
in hex, value = JSON `{"peerURLs": [...]}` — the raft attributes). That file is what
every backup the tool accepts carries (`member/snap/db` of a data-dir backup, or a
`etcdctl snapshot save` file), so reading that bucket tells which cluster a backup
came from without starting etcd.

This is a small read-only bbolt page reader: it follows the newest valid meta page
to the root bucket, finds `members`, and returns the peer URLs. It reads the file
through `read(offset, length)`, so pre-flight can fetch only the few pages it needs
over SSH (`dd ... | base64`) instead of copying a multi-GB database.

`identity_problem` compares those peer URLs with the inventory's: a backup none of
whose members the inventory names was taken from another cluster.
"""

from __future__ import annotations

import base64
import json
import shlex
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

MAGIC = 0xED0CDAED
VERSION = 2
PAGE_HEADER = 16
BRANCH, LEAF, META = 0x01, 0x02, 0x04
BUCKET_LEAF = 0x01
MAX_DEPTH = 64

Reader = Callable[[int, int], bytes]
"""read(offset, length) -> bytes of the db file (fewer at the end of the file)."""


class BackupIdentityError(ValueError):
    """The file is not a readable bbolt database, or has no `members` bucket."""


@dataclass(frozen=True)
class BackupMember:
    id: str
    peer_urls: tuple[str, ...]


def _fnv64a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


@dataclass(frozen=True)
class _Meta:
    page_size: int
    root: int
    high_water: int
    txid: int


def _meta(page: bytes) -> _Meta | None:
    if len(page) < PAGE_HEADER + 64:
        return None
    _, flags, _, _ = struct.unpack_from("<QHHI", page, 0)
    magic, version, page_size, _, root, _, _, pgid, txid, checksum = struct.unpack_from("<IIIIQQQQQQ", page,
                                                                                         PAGE_HEADER)
    if flags != META or magic != MAGIC or version != VERSION:
        return None
    if _fnv64a(page[PAGE_HEADER:PAGE_HEADER + 56]) != checksum:
        return None
    if page_size < 512 or page_size & (page_size - 1):
        return None
    return _Meta(page_size, root, pgid, txid)


class _DB:
    def __init__(self, read: Reader) -> None:
        self.read = read
        m0 = _meta(read(0, PAGE_HEADER + 64))
        # Meta page 1 sits one page in; if meta 0 is damaged, try bbolt's usual page size (4 KiB).
        m1 = _meta(read(m0.page_size if m0 else 4096, PAGE_HEADER + 64))
        metas = [m for m in (m0, m1) if m is not None]
        if not metas:
            raise BackupIdentityError("not a bbolt database (no valid meta page): corrupt or truncated?")
        self.meta = max(metas, key=lambda m: m.txid)
        self.page_size = self.meta.page_size

    def page(self, pgid: int) -> bytes:
        if not 2 <= pgid < self.meta.high_water:
            raise BackupIdentityError(f"page {pgid} out of range (high water {self.meta.high_water})")
        ps = self.page_size
        head = self.read(pgid * ps, ps)
        if len(head) < PAGE_HEADER:
            raise BackupIdentityError(f"page {pgid} beyond the end of the file: truncated?")
        overflow = struct.unpack_from("<I", head, 12)[0]
        data = head if not overflow else head + self.read((pgid + 1) * ps, overflow * ps)
        if len(data) < (overflow + 1) * ps:
            raise BackupIdentityError(f"page {pgid} cut short: truncated?")
        return data

    def lookup(self, page: bytes, key: bytes, depth: int = 0) -> tuple[int, bytes] | None:
        """(flags, value) of `key` in the B+tree whose root node is `page`."""
        if depth > MAX_DEPTH:
            raise BackupIdentityError("bucket tree too deep: corrupt?")
        _, flags, count, _ = struct.unpack_from("<QHHI", page, 0)
        if flags & BRANCH:
            child = None
            for i in range(count):
                off = PAGE_HEADER + i * 16
                pos, ksize, pgid = struct.unpack_from("<IIQ", page, off)
                k = page[off + pos: off + pos + ksize]
                if i == 0 or k <= key:
                    child = pgid
                else:
                    break
            if child is None:
                return None
            return self.lookup(self.page(child), key, depth + 1)
        if flags & LEAF:
            for k, v, f in _leaf_items(page, count):
                if k == key:
                    return f, v
            return None
        raise BackupIdentityError(f"unexpected page flags {flags:#x}: corrupt?")

    def items(self, page: bytes, depth: int = 0) -> Iterable[tuple[bytes, bytes, int]]:
        if depth > MAX_DEPTH:
            raise BackupIdentityError("bucket tree too deep: corrupt?")
        _, flags, count, _ = struct.unpack_from("<QHHI", page, 0)
        if flags & BRANCH:
            for i in range(count):
                _, _, pgid = struct.unpack_from("<IIQ", page, PAGE_HEADER + i * 16)
                yield from self.items(self.page(pgid), depth + 1)
        elif flags & LEAF:
            yield from _leaf_items(page, count)
        else:
            raise BackupIdentityError(f"unexpected page flags {flags:#x}: corrupt?")

    def bucket_root(self, value: bytes) -> bytes:
        """The root node of a bucket from its 16-byte header (+ inline page when root is 0)."""
        if len(value) < 16:
            raise BackupIdentityError("bucket header cut short: corrupt?")
        root = struct.unpack_from("<Q", value, 0)[0]
        return value[16:] if root == 0 else self.page(root)


def _leaf_items(page: bytes, count: int) -> Iterable[tuple[bytes, bytes, int]]:
    for i in range(count):
        off = PAGE_HEADER + i * 16
        if off + 16 > len(page):
            raise BackupIdentityError("leaf element beyond its page: corrupt?")
        flags, pos, ksize, vsize = struct.unpack_from("<IIII", page, off)
        start = off + pos
        if start + ksize + vsize > len(page):
            raise BackupIdentityError("leaf value beyond its page: corrupt?")
        yield page[start:start + ksize], page[start + ksize:start + ksize + vsize], flags


def backup_members(read: Reader) -> tuple[BackupMember, ...]:
    """The members recorded in an etcd 3.x backend database, read through `read(offset, length)`.

    Raises BackupIdentityError if the file is not a bbolt db or has no `members` bucket.
    """
    db = _DB(read)
    root = db.page(db.meta.root) if db.meta.root else None
    if root is None:
        raise BackupIdentityError("empty database: no buckets")
    found = db.lookup(root, b"members")
    if found is None or not found[0] & BUCKET_LEAF:
        raise BackupIdentityError("no `members` bucket: not an etcd 3.x database")
    bucket = db.bucket_root(found[1])
    out = []
    for key, value, flags in db.items(bucket):
        if flags & BUCKET_LEAF:
            continue
        try:
            attrs = json.loads(value)
        except ValueError:
            raise BackupIdentityError(f"member {key!r}: value is not JSON: corrupt?") from None
        urls = attrs.get("peerURLs") if isinstance(attrs, dict) else None
        if not isinstance(urls, list):
            raise BackupIdentityError(f"member {key!r}: no peerURLs")
        out.append(BackupMember(key.decode("ascii", errors="replace"), tuple(str(u) for u in urls)))
    return tuple(out)


def read_script(path: str, offset: int, length: int) -> str:
    """Read-only shell that prints `length` bytes of `path` from `offset`, base64-encoded on one line
    (`tail -c +N` seeks in a regular file, so only the asked-for pages are read)."""
    return f"tail -c +{int(offset) + 1} {shlex.quote(path)} | head -c {int(length)} | base64 -w0"


def remote_reader(run: Callable[[str], str], path: str) -> Reader:
    """A Reader over `run(script) -> stdout` (e.g. one SSH host), fetching and caching whole 4 KiB blocks."""
    block = 4096
    cache: dict[int, bytes] = {}

    def read(offset: int, length: int) -> bytes:
        first, last = offset // block, (offset + length - 1) // block
        missing = [b for b in range(first, last + 1) if b not in cache]
        if missing:
            lo, hi = missing[0], missing[-1]
            data = base64.b64decode(run(read_script(path, lo * block, (hi - lo + 1) * block)).strip() or b"")
            for b in range(lo, hi + 1):
                cache[b] = data[(b - lo) * block:(b - lo + 1) * block]
        data = b"".join(cache[b] for b in range(first, last + 1))
        return data[offset - first * block:offset - first * block + length]

    return read


def identity_problem(members: Iterable[BackupMember], inventory_peer_urls: Iterable[str],
                     inventory_hosts: Iterable[str] = ()) -> str | None:
    """None when the backup's members overlap the inventory's; else why the backup is from another cluster.

    A backup member matches when one of its peer URLs is an inventory peer URL (scheme and host
    lower-cased, trailing '/' dropped) or its host part is one of `inventory_hosts` (give the members'
    `host` and `name`, so an inventory written with names still matches a cluster that used IPs, or the
    reverse, when they are the same machines). One match is enough: a cluster that replaced some
    members since the backup is still the same cluster.
    """
    def norm(u: str) -> str:
        return u.strip().rstrip("/").lower()

    backup_urls = sorted({norm(u) for m in members for u in m.peer_urls})
    inventory = {norm(u) for u in inventory_peer_urls}
    hosts = {h.strip().strip("[]").lower() for h in inventory_hosts if h}
    hosts |= {(urlsplit(u).hostname or "") for u in inventory}
    if not backup_urls:
        return "the backup's database lists no members: not an etcd backup of this cluster?"
    for u in backup_urls:
        try:
            host = urlsplit(u).hostname or ""
        except ValueError:
            host = ""
        if u in inventory or (host and host in hosts):
            return None
    return (f"the backup was taken from another cluster: its members' peer URLs are {', '.join(backup_urls)}; "
            f"the inventory's are {', '.join(sorted(inventory))}")
