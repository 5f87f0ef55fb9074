"""Break a lab with etcd's NOSPACE alarm: a small `--quota-backend-bytes` on every member, then writes until
etcd refuses them (`mvcc: database space exceeded`) and raises the alarm.

Two ways to fill the quota, as clusters do in the field:
- `history`: the same few keys written over and over. Every old revision stays until a compaction, so the space
  in use is history: compaction and defragmentation give it back.
- `data`: new keys until the quota is full. The space in use is live data: defragmenting cannot help, only a
  larger quota.

The quota is written the way the tool's own platform layer writes a flag (`Platform.settings`), with etcd stopped:
`etcd.conf` on okd3, the manifest's command list on kubeadm.
"""

from __future__ import annotations

import time

from ..platform.kinds import PLATFORMS
from .base import LabError
from .lab import Lab

FILL_PREFIX = "/nospace/"
VALUE = "x" * 3000
HISTORY_KEYS = 8
"""The keys `history` overwrites: their old revisions are what a compaction gives back."""
MARGIN = 512 * 1024
"""How far above the largest member's db the quota is set: room for a few hundred 3 KB writes."""
SPACE_EXCEEDED = "database space exceeded"


def set_quota(lab: Lab, quota: int) -> None:
    """`--quota-backend-bytes` set to `quota` on every member, one at a time (stopped, edited, started and healthy
    again: the quorum holds throughout)."""
    settings = PLATFORMS[lab.profile].build(lab.shape.paths).settings
    for h in lab.hosts:
        lab.stop_etcd(h)
        for cmd in settings.set(h.name, {"quota-backend-bytes": str(quota)}):
            res = lab.exec(h, cmd.script)
            if res.returncode != 0:
                raise LabError(f"{h.name}: {cmd.purpose} failed: {res.stderr.strip()}")
        lab.start_etcd(h)


def db_sizes(lab: Lab) -> dict[str, int]:
    """Every member's db file size in bytes, as its own `status` reports it."""
    out = {}
    for h in lab.hosts:
        c = lab.client(h)
        try:
            out[h.name] = int(c.status().db_size)
        finally:
            c.close()
    return out


def fill(lab: Lab, *, history: bool, limit: int = 20000) -> int:
    """Write until etcd refuses for lack of space; returns how many writes it took."""
    c = lab.client()
    try:
        for n in range(limit):
            key = f"{FILL_PREFIX}{n % HISTORY_KEYS if history else n:05d}"
            try:
                c.put(key, VALUE)
            except Exception as exc:  # the etcd3 client wraps the gRPC error; its text names the reason
                if SPACE_EXCEEDED in f"{exc} {exc.__context__!r}":
                    return n
                raise
    finally:
        c.close()
    raise LabError(f"no NOSPACE after {limit} writes of {len(VALUE)} bytes")


def break_nospace(lab: Lab, *, history: bool = True) -> int:
    """A quota just above the largest member's db, then writes until the NOSPACE alarm; returns the quota."""
    quota = max(db_sizes(lab).values()) + MARGIN
    set_quota(lab, quota)
    fill(lab, history=history)
    time.sleep(0.3)  # the alarm is a raft proposal: let every member apply it
    return quota
