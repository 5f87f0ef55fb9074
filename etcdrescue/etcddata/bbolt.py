"""A small read-only reader of bbolt files (etcd's backend, `member/snap/db`), shared by the modules that
look inside a database without starting etcd (`backup_identity`, `freshness`).

It follows the newest valid meta page to the root bucket and walks B+tree pages, reading the file only
through `read(offset, length)`, so a caller on the bastion fetches the few pages it needs over SSH
(`remote_reader`) instead of copying a multi-GB database. Layouts follow bbolt's page.go (page header:
id u64, flags u16, count u16, overflow u32), node.go (branch element: pos u32, ksize u32, pgid u64; leaf
element: flags u32, pos u32, ksize u32, vsize u32; `pos` counts from the element itself), db.go (meta:
magic, version, pageSize, flags, root bucket {root pgid, sequence}, freelist, pgid, txid, checksum = FNV-1a
64 of the 56 bytes before it) and bucket.go (a bucket value is {root pgid u64, sequence u64}, followed by
the bucket's own leaf page when root is 0, i.e. an inline bucket).
"""

from __future__ import annotations

import base64
import shlex
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

MAGIC = 0xED0CDAED
VERSION = 2
PAGE_HEADER = 16
BRANCH, LEAF, META = 0x01, 0x02, 0x04
BUCKET_LEAF = 0x01
MAX_DEPTH = 64
BLOCK = 4096

Reader = Callable[[int, int], bytes]
"""read(offset, length) -> bytes of the db file (fewer at the end of the file)."""


class BboltError(ValueError):
    """The file is not a readable bbolt database: bad meta pages, a page out of range or cut short."""


def _fnv64a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


@dataclass(frozen=True)
class Meta:
    page_size: int
    root: int
    high_water: int
    txid: int


def _meta(page: bytes) -> Meta | None:
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
    return Meta(page_size, root, pgid, txid)


class DB:
    """One bbolt file as of its newest valid meta page (the other one is a transaction older)."""

    def __init__(self, read: Reader) -> None:
        self.read = read
        m0 = _meta(read(0, PAGE_HEADER + 64))
        # Meta page 1 sits one page in; if meta 0 is damaged, try bbolt's usual page size (4 KiB).
        m1 = _meta(read(m0.page_size if m0 else 4096, PAGE_HEADER + 64))
        metas = [m for m in (m0, m1) if m is not None]
        if not metas:
            raise BboltError("not a bbolt database (no valid meta page): corrupt or truncated?")
        self.meta = max(metas, key=lambda m: m.txid)
        self.page_size = self.meta.page_size

    def page(self, pgid: int) -> bytes:
        if not 2 <= pgid < self.meta.high_water:
            raise BboltError(f"page {pgid} out of range (high water {self.meta.high_water})")
        ps = self.page_size
        head = self.read(pgid * ps, ps)
        if len(head) < PAGE_HEADER:
            raise BboltError(f"page {pgid} beyond the end of the file: truncated?")
        overflow = struct.unpack_from("<I", head, 12)[0]
        data = head if not overflow else head + self.read((pgid + 1) * ps, overflow * ps)
        if len(data) < (overflow + 1) * ps:
            raise BboltError(f"page {pgid} cut short: truncated?")
        return data

    def root(self) -> bytes:
        """The root bucket's node: its leaf elements are the top-level buckets."""
        if not self.meta.root:
            raise BboltError("empty database: no buckets")
        return self.page(self.meta.root)

    def bucket(self, parent: bytes, name: bytes) -> bytes | None:
        """The root node of bucket `name` inside the bucket whose root node is `parent`; None when absent."""
        found = self.lookup(parent, name)
        if found is None or not found[0] & BUCKET_LEAF:
            return None
        return self.bucket_root(found[1])

    def lookup(self, page: bytes, key: bytes, depth: int = 0) -> tuple[int, bytes] | None:
        """(flags, value) of `key` in the B+tree whose root node is `page`."""
        if depth > MAX_DEPTH:
            raise BboltError("bucket tree too deep: corrupt?")
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
            for k, v, f in leaf_items(page, count):
                if k == key:
                    return f, v
            return None
        raise BboltError(f"unexpected page flags {flags:#x}: corrupt?")

    def items(self, page: bytes, depth: int = 0) -> Iterable[tuple[bytes, bytes, int]]:
        if depth > MAX_DEPTH:
            raise BboltError("bucket tree too deep: corrupt?")
        _, flags, count, _ = struct.unpack_from("<QHHI", page, 0)
        if flags & BRANCH:
            for i in range(count):
                _, _, pgid = struct.unpack_from("<IIQ", page, PAGE_HEADER + i * 16)
                yield from self.items(self.page(pgid), depth + 1)
        elif flags & LEAF:
            yield from leaf_items(page, count)
        else:
            raise BboltError(f"unexpected page flags {flags:#x}: corrupt?")

    def last_key(self, node: bytes) -> bytes | None:
        """The highest key of the B+tree whose root node is `node` (None for an empty tree), reading only the
        rightmost path, and of each page only its header, its last element and that element's key: a leaf
        of large values (Kubernetes objects) spans many overflow pages that need not be fetched."""
        def in_node(offset: int, length: int) -> bytes:
            return node[offset:offset + length]

        read: Reader = in_node
        limit = len(node)
        for _ in range(MAX_DEPTH + 1):
            header = read(0, PAGE_HEADER)
            if len(header) < PAGE_HEADER:
                raise BboltError("page header cut short: truncated?")
            _, flags, count, _ = struct.unpack("<QHHI", header)
            if count == 0:
                return None
            off = PAGE_HEADER + (count - 1) * 16
            element = read(off, 16)
            if off + 16 > limit or len(element) < 16:
                raise BboltError("element beyond its page: corrupt or truncated?")
            if flags & BRANCH:
                _, _, pgid = struct.unpack("<IIQ", element)
                read, limit = self._page_reader(pgid)
            elif flags & LEAF:
                _, pos, ksize, vsize = struct.unpack("<IIII", element)
                key = read(off + pos, ksize)
                if off + pos + ksize + vsize > limit or len(key) < ksize:
                    raise BboltError("leaf value beyond its page: corrupt or truncated?")
                return key
            else:
                raise BboltError(f"unexpected page flags {flags:#x}: corrupt?")
        raise BboltError("bucket tree too deep: corrupt?")

    def _page_reader(self, pgid: int) -> tuple[Reader, int]:
        """read(offset, length) within page `pgid` (and its overflow pages), and the page's length."""
        if not 2 <= pgid < self.meta.high_water:
            raise BboltError(f"page {pgid} out of range (high water {self.meta.high_water})")
        start = pgid * self.page_size
        head = self.read(start, PAGE_HEADER)
        if len(head) < PAGE_HEADER:
            raise BboltError(f"page {pgid} beyond the end of the file: truncated?")
        overflow = struct.unpack_from("<I", head, 12)[0]

        def read(offset: int, length: int) -> bytes:
            return self.read(start + offset, length)

        return read, (overflow + 1) * self.page_size

    def bucket_root(self, value: bytes) -> bytes:
        """The root node of a bucket from its 16-byte header (+ inline page when root is 0)."""
        if len(value) < 16:
            raise BboltError("bucket header cut short: corrupt?")
        root = struct.unpack_from("<Q", value, 0)[0]
        return value[16:] if root == 0 else self.page(root)


def leaf_items(page: bytes, count: int) -> Iterable[tuple[bytes, bytes, int]]:
    for i in range(count):
        off = PAGE_HEADER + i * 16
        if off + 16 > len(page):
            raise BboltError("leaf element beyond its page: corrupt?")
        flags, pos, ksize, vsize = struct.unpack_from("<IIII", page, off)
        start = off + pos
        if start + ksize + vsize > len(page):
            raise BboltError("leaf value beyond its page: corrupt?")
        yield page[start:start + ksize], page[start + ksize:start + ksize + vsize], flags


def read_script(path: str, offset: int, length: int) -> str:
    """Read-only shell that prints `length` bytes of `path` from `offset`, base64-encoded on one line
    (`tail -c +N` seeks in a regular file, so only the asked-for bytes are read)."""
    return f"tail -c +{int(offset) + 1} {shlex.quote(path)} | head -c {int(length)} | base64 -w0"


def remote_reader(run: Callable[[str], str], path: str, *, known: bytes = b"") -> Reader:
    """A Reader over `run(script) -> stdout` (e.g. one SSH host), fetching and caching whole 4 KiB blocks.

    `known` is the file's first bytes when the caller already has them (fetched in an earlier, combined
    round trip): its whole blocks seed the cache.
    """
    cache: dict[int, bytes] = {b: known[b * BLOCK:(b + 1) * BLOCK] for b in range(len(known) // BLOCK)}

    def read(offset: int, length: int) -> bytes:
        first, last = offset // BLOCK, (offset + length - 1) // BLOCK
        missing = [b for b in range(first, last + 1) if b not in cache]
        if missing:
            lo, hi = missing[0], missing[-1]
            data = base64.b64decode(run(read_script(path, lo * BLOCK, (hi - lo + 1) * BLOCK)).strip() or b"")
            for b in range(lo, hi + 1):
                cache[b] = data[(b - lo) * BLOCK:(b - lo + 1) * BLOCK]
        data = b"".join(cache[b] for b in range(first, last + 1))
        return data[offset - first * BLOCK:offset - first * BLOCK + length]

    return read
