"""Which cluster a backup belongs to: the member list stored in its etcd database.

etcd 3.4 keeps its membership in the bbolt backend (bucket `members`: key = member ID
in hex, value = JSON `{"peerURLs": [...]}` — the raft attributes). That file is what
every backup the tool accepts carries (`member/snap/db` of a data-dir backup, or a
`etcdctl snapshot save` file), so reading that bucket tells which cluster a backup
came from without starting etcd.

The pages are read by the shared read-only bbolt reader (`_bbolt`): it follows the
newest valid meta page to the root bucket, finds `members`, and returns the peer URLs.
It reads the file through `read(offset, length)`, so pre-flight can fetch only the few
pages it needs over SSH (`remote_reader`: `tail -c | head -c | base64`) instead of
copying a multi-GB database. `Reader`, `read_script` and `remote_reader` stay importable
from here.

`identity_problem` compares those peer URLs with the inventory's: a backup none of
whose members the inventory names was taken from another cluster.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from .bbolt import BUCKET_LEAF, DB, BboltError
from .bbolt import Reader as Reader
from .bbolt import read_script as read_script
from .bbolt import remote_reader as remote_reader


class BackupIdentityError(ValueError):
    """The file is not a readable bbolt database, or has no `members` bucket."""


@dataclass(frozen=True)
class BackupMember:
    id: str
    peer_urls: tuple[str, ...]


def backup_members(read: Reader) -> tuple[BackupMember, ...]:
    """The members recorded in an etcd 3.x backend database, read through `read(offset, length)`.

    Raises BackupIdentityError if the file is not a bbolt db or has no `members` bucket.
    """
    try:
        return _members(DB(read))
    except BboltError as exc:
        raise BackupIdentityError(str(exc)) from None


def _members(db: DB) -> tuple[BackupMember, ...]:
    bucket = db.bucket(db.root(), b"members")
    if bucket is None:
        raise BackupIdentityError("no `members` bucket: not an etcd 3.x database")
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
