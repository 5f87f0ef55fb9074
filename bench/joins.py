"""The slow join: how often a joining member's etcd needs ~7 s instead of < 2 s to be healthy, and why.

Each round breaks the lab's majority (data destroyed, etcd crash-looping there), recovers it with
`etcdrescue recover --yes` from the surviving first member (its own data, or with --backup one backup
taken at the start, restored each round), then reads, per joined member:

- its etcd start -> its own `/health` true (from outside, as `bench/recovery.py` measures it);
- from the joiner's etcd log: its member ID, the index of the snapshot the leader sent it
  (3.4 "raft applied incoming snapshot at index N", 3.5 "applying snapshot" with its
  "incoming-leader-snapshot-index") and how many publish attempts timed out
  ("publish error" on 3.4, "failed to publish local member to cluster through raft" on 3.5);
- from the seed's WAL: the index of every normal entry publishing the joiner (its publish attempts:
  a v2 PUT of `/0/members/<id>/attributes` on 3.4 and 3.5.1; a `ClusterMemberAttrSet`, ID and name, later).

The race needs a joiner that is sent a snapshot, i.e. a seed whose raft log does not start at index 1:
always after a restore from a backup (`snapshot restore` writes the log from a snapshot); with the seed's
own data (`--force-new-cluster`) only when that data was itself restored or etcd took a snapshot (every
--snapshot-count entries). A kubeadm lab's first recovery without --backup sends no snapshot: use --backup.

"in snap" says whether the joiner's first publish entry is at or below the snapshot index: the
leader applied it before it built the snapshot, so the joiner never applies that entry itself and
the wait of its first publish only ends on etcd's request timeout (5 s + 2 election timeouts).

    python3 bench/joins.py [--rounds 10] [--members 3|5] [--profile okd3|kubeadm] [--subnet 200]
                           [--root DIR] [--down] [--backup] [-- <extra etcdrescue recover arguments, e.g. --no-learner>]

Run as root from a checkout (the lab needs it); the lab is kept in --root for reuse (default
/tmp/bench-joins-<profile>-<members>) unless --down. The stop gate's settle is 1 s here
(ETCDRESCUE_DOWN_SETTLE, as in the test suite): the figures are about the joins, not the stop.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from benchlib import ENV, HealthWatch, Lab, LabHost, load, open_lab, timed

SLOW = 4.0
"""Seconds from etcd start to /health above which a join counts as slow (fast < 2 s, slow ~7 s)."""


@dataclass(frozen=True)
class Join:
    round_no: int
    member: str
    order: int
    healthy_after: float | None
    publish_timeouts: int
    snapshot_index: int | None
    publish_indexes: tuple[int, ...]
    restarts: int

    @property
    def slow(self) -> bool:
        return self.healthy_after is None or self.healthy_after > SLOW

    @property
    def in_snapshot(self) -> bool | None:
        if self.snapshot_index is None or not self.publish_indexes:
            return None
        return self.publish_indexes[0] <= self.snapshot_index


def _varint(b: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        c = b[i]
        i += 1
        result |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return result, i


def _fields(b: bytes) -> dict[int, int | bytes]:
    """One protobuf message's fields (last wins): enough for walpb.Record and raftpb.Entry."""
    i, out = 0, {}
    while i < len(b):
        key, i = _varint(b, i)
        wire = key & 7
        value: int | bytes
        if wire == 0:
            value, i = _varint(b, i)
        elif wire == 2:
            n, i = _varint(b, i)
            value, i = b[i:i + n], i + n
        elif wire == 1:
            value, i = b[i:i + 8], i + 8
        elif wire == 5:
            value, i = b[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        out[key >> 3] = value
    return out


def wal_entries(path: Path) -> Iterator[tuple[int, bool, bytes]]:
    """(index, is a conf change, data) of each entry record of one WAL file (etcd's framing: a
    little-endian 64-bit length whose top byte flags padding, then a walpb.Record; type 2 = entry)."""
    data = path.read_bytes()
    i = 0
    while i + 8 <= len(data):
        (n,) = struct.unpack_from("<Q", data, i)
        i += 8
        if n == 0:
            return
        pad = (n >> 56) & 0x7 if n & (1 << 63) else 0
        length = n & ((1 << 56) - 1)
        record = _fields(data[i:i + length])
        i += length + pad
        if record.get(1) != 2:
            continue
        entry = _fields(record.get(3, b""))  # type: ignore[arg-type]
        payload = entry.get(4, b"")
        yield int(entry.get(3, 0)), bool(entry.get(1, 0)), payload if isinstance(payload, bytes) else b""


def join_log(lab: Lab, host: LabHost) -> str:
    """The etcd log of the member's join: the start that received a snapshot (a restart after it
    rotates it to etcd.log.1; the lab kubelet keeps one earlier container's log)."""
    run = host.dir / "run"
    for name in ("etcd.log", "etcd.log.1"):
        try:
            text = (run / name).read_text(errors="replace")
        except OSError:
            continue
        if "incoming snapshot at index" in text or "incoming-leader-snapshot-index" in text:
            return text
    return ""


def log_start(log: str) -> float | None:
    """Wall-clock time of a log's first timestamped line (3.4: `2026-12-02 06:59:06.336209`, 3.5: JSON
    `"ts":"2026-12-02T06:59:06.336Z"`), both UTC on the lab."""
    m = re.search(r"(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(\.\d+)?", log)
    if not m:
        return None
    whole = time.mktime(time.strptime(f"{m.group(1)} {m.group(2)}", "%Y-%m-%d %H:%M:%S")) - time.timezone
    return whole + float(m.group(3) or 0)


def member_id(log: str) -> int | None:
    m = re.search(r'starting member ([0-9a-f]+) in cluster|"local-member-id":"([0-9a-f]+)"', log)
    return None if m is None else int(m.group(1) or m.group(2), 16)


def encode_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish_indexes(lab: Lab, seed: LabHost, name: str, ident: int) -> tuple[int, ...]:
    """Indexes of the seed's normal WAL entries that publish member `ident` (3.4: the v2 path with its
    hex ID; 3.5: a ClusterMemberAttrSet with its ID as a varint and its name)."""
    wal_dir = lab.host_path(seed, f"{lab.shape.paths.member_dir}/wal")
    path, varint = f"members/{ident:x}/attributes".encode(), encode_varint(ident)
    found: set[int] = set()
    for wal in sorted(wal_dir.glob("*.wal")):
        found.update(i for i, conf, d in wal_entries(wal)
                     if not conf and (path in d or (varint in d and name.encode() in d)))
    return tuple(sorted(found))


def join_trace(watch: HealthWatch, name: str, started: float) -> tuple[float, float | None, int]:
    """The watched start nearest the join log's first line, the first /health true from it on
    (a restart in between included), and the starts after it."""
    trace = watch.traces[name]
    k = min(range(len(trace.starts)), key=lambda i: abs(trace.starts[i] - started))
    healthy = next((ok for ok in trace.healthy[k:] if ok is not None), None)
    return trace.starts[k], healthy, len(trace.starts) - k - 1


def analyse(lab: Lab, watch: HealthWatch, round_no: int) -> list[Join]:
    seed = lab.hosts[0]
    found = []
    for h in lab.hosts[1:]:
        log = join_log(lab, h)
        started, ident = log_start(log), member_id(log)
        if started is None or ident is None or not watch.traces[h.name].starts:
            continue
        start, healthy, restarts = join_trace(watch, h.name, started)
        snap = re.search(r'applied incoming snapshot at index (\d+)|"applying snapshot".*?'
                         r'"incoming-leader-snapshot-index":(\d+)', log)
        timeouts = len(re.findall(r"publish error|failed to publish local member", log))
        found.append((start, Join(round_no, h.name.split(".")[0], 0, None if healthy is None else healthy - start,
                                  timeouts, int(snap.group(1) or snap.group(2)) if snap else None,
                                  publish_indexes(lab, seed, h.name, ident), restarts)))
    found.sort(key=lambda x: x[0])
    return [Join(j.round_no, j.member, order, j.healthy_after, j.publish_timeouts, j.snapshot_index,
                 j.publish_indexes, j.restarts) for order, (_, j) in enumerate(found, start=1)]


def reopen(root: Path, members: int, subnet: int, profile: str) -> Lab:
    """The lab up and healthy. One left half-recovered (a bench interrupted mid-round: some members healthy,
    the rest stopped) is broken again and recovered from its first member, untimed, breaking the dead run's lock."""
    if (root / "lab.json").exists():
        lab = Lab.load(root)
        running = all(lab.supervisor_pid(h) is not None for h in lab.hosts)
        if running and not all(lab.healthy(h) for h in lab.hosts):
            print(f"{root}: not healthy; breaking and recovering it first (untimed)", flush=True)
            lab.break_quorum(lab.hosts[1:len(lab.hosts) // 2 + 2])
            _, res, _ = timed([sys.executable, "-m", "etcdrescue", "recover", "-i", str(lab.inventory_path), "--yes",
                               "--no-control-plane-restart", "--break-lock", "--journal",
                               str(root / "joins" / f"repair-{time.strftime('%Y%m%dT%H%M%S')}")],
                              env={**ENV, "ETCDRESCUE_DOWN_SETTLE": "1"})
            if res.returncode != 0:
                raise SystemExit(f"{root}: repair failed: {res.stdout[-2000:]} {res.stderr[-2000:]}")
    return open_lab(root, members, subnet, profile)


def one_round(lab: Lab, round_no: int, work: Path, tool_args: list[str]) -> tuple[float, list[Join]]:
    lab.wait_healthy(timeout=60)
    lab.break_quorum(lab.hosts[1:len(lab.hosts) // 2 + 2])
    cmd = [sys.executable, "-m", "etcdrescue", "recover", "-i", str(lab.inventory_path), "--yes",
           "--no-control-plane-restart", "--journal", str(work / f"journal-{round_no}"), *tool_args]
    with HealthWatch(lab) as watch:
        _, res, wall = timed(cmd, env={**ENV, "ETCDRESCUE_DOWN_SETTLE": os.environ.get(
            "ETCDRESCUE_DOWN_SETTLE", "1")})
    if res.returncode != 0:
        raise SystemExit(f"round {round_no} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    lab.wait_healthy(timeout=60)
    return wall, analyse(lab, watch, round_no)


def show(j: Join) -> None:
    after = "never" if j.healthy_after is None else f"{j.healthy_after:5.2f}s"
    snap = {None: "?", True: "yes", False: "no"}[j.in_snapshot]
    print(f"  round {j.round_no:2} join {j.order} {j.member}: healthy after {after} "
          f"{'SLOW' if j.slow else 'fast'}; publish timeouts {j.publish_timeouts}; snapshot index "
          f"{j.snapshot_index}; publish entries {list(j.publish_indexes)}; in snap {snap}; "
          f"restarts after the join's start {j.restarts}", flush=True)


def times(js: list[Join]) -> str:
    ts = [j.healthy_after for j in js if j.healthy_after is not None]
    if not ts:
        return "-"
    return f"min {min(ts):.2f}s  median {statistics.median(ts):.2f}s  max {max(ts):.2f}s"


def summary(joins: list[Join]) -> None:
    """Counted by what etcd did, not by a time threshold (a restart under load can take 4-5 s): the first
    publish covered by the snapshot (the trigger), a publish timeout in the joiner's log (it waited ~7 s),
    a restart (the tool's unstick command)."""
    print(f"\n== {len(joins)} joins; load at end {load()}")
    for order in sorted({j.order for j in joins}):
        js = [j for j in joins if j.order == order]
        print(f"join {order}: publish in the snapshot {sum(j.in_snapshot is True for j in js)} of {len(js)}, "
              f"publish timed out {sum(j.publish_timeouts > 0 for j in js)}, "
              f"restarted {sum(j.restarts > 0 for j in js)}")
    covered = [j for j in joins if j.in_snapshot is True]
    print(f"all: publish in the snapshot {len(covered)} of {len(joins)}; publish timed out "
          f"{sum(j.publish_timeouts > 0 for j in joins)} (of them in the snapshot "
          f"{sum(j.publish_timeouts > 0 and j.in_snapshot is True for j in joins)}); restarted "
          f"{sum(j.restarts > 0 for j in joins)}; slower than {SLOW:.0f}s {sum(j.slow for j in joins)}")
    print(f"start -> /health, all joins:               {times(joins)}; sum "
          f"{sum(j.healthy_after or 0 for j in joins):.2f}s")
    print(f"start -> /health, publish in the snapshot: {times(covered)}")
    print(f"start -> /health, the others:              {times([j for j in joins if j.in_snapshot is not True])}")


def main() -> int:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--members", type=int, choices=(3, 5), default=3)
    p.add_argument("--profile", choices=("okd3", "kubeadm"), default="okd3")
    p.add_argument("--subnet", type=int, default=200)
    p.add_argument("--root", type=Path)
    p.add_argument("--down", action="store_true", help="take the lab down at the end")
    p.add_argument("--backup", action="store_true",
                   help="restore the seed from one backup taken at the start (okd3: openshift-style, kubeadm: "
                        "snapshot save), as a recovery with a backup does; without it the seed keeps its own data")
    args = p.parse_args(argv)
    root = (args.root or Path(f"/tmp/bench-joins-{args.profile}-{args.members}")).absolute()
    print(f"joins bench: {args.rounds} rounds, {args.members} members, {args.profile}, lab {root}, "
          f"recover args {extra}; load {load()}; {time.strftime('%Y-%m-%d %H:%M:%S %Z')}", flush=True)
    lab = reopen(root, args.members, args.subnet, args.profile)
    work = root / "joins" / time.strftime("%Y%m%dT%H%M%S")
    if args.backup:
        backup = lab.backup_openshift(lab.hosts[0]) if lab.profile == "okd3" else lab.snapshot_save(lab.hosts[0])
        extra = ["--backup", backup, *extra]
        print(f"backup on {lab.hosts[0].name}: {backup}", flush=True)
    joins: list[Join] = []
    try:
        for n in range(1, args.rounds + 1):
            wall, js = one_round(lab, n, work, extra)
            print(f"round {n}: recover {wall:.2f}s, load {load()}", flush=True)
            for j in js:
                show(j)
            joins.extend(js)
    finally:
        if args.down:
            lab.down()
    summary(joins)
    return 0


if __name__ == "__main__":
    sys.exit(main())
