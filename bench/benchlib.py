"""What the bench scripts share: a lab kept for many rounds, breaking it again, timing, an outside health watch.

Every figure is measured from outside the tool: wall time of its process, each member's etcd start as
the lab's kubelet records it (`run/state`), and each member's own `/health` over TLS with the lab CA.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from etcdrescue.lab import Lab, LabHost  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(REPO), "GRPC_VERBOSITY": "NONE"}


def load() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` shows them: every figure is published with it."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def stats(values: Sequence[float]) -> str:
    return (f"min {min(values):.2f}s  median {statistics.median(values):.2f}s  max {max(values):.2f}s"
            f"  (n={len(values)})")


def open_lab(root: Path, members: int, subnet: int, profile: str, etcd: str | None = None) -> Lab:
    """The lab for one size, created or reopened, up and healthy. kubeadm runs etcd 3.5 (or `etcd`) with the tools
    on the hosts' PATH, so the hand-written script and the tool both use the hosts' own etcdctl/etcdutl."""
    kubeadm = profile == "kubeadm"
    etcd = etcd or ("3.5" if kubeadm else "3.4")
    if (root / "lab.json").exists():
        lab = Lab.load(root)
        if (len(lab.hosts) != members or lab.profile != profile or lab.subnet != subnet
                or lab.release.minor != etcd):
            raise SystemExit(f"{root} holds another lab ({len(lab.hosts)} {lab.profile} members on etcd "
                             f"{lab.release.minor}, subnet {lab.subnet}); give another --root")
    else:
        lab = Lab(root, members, subnet=subnet, profile=profile, etcd=etcd, host_tools=True if kubeadm else None)
    if all(lab.supervisor_pid(h) is not None for h in lab.hosts) and not all(lab.healthy(h) for h in lab.hosts):
        repair(lab)
    else:
        lab.up(timeout=120)
    return lab


def repair(lab: Lab) -> None:
    """A running lab left broken (by preflight.py) is recovered from its own data, untimed."""
    print(f"{lab.root}: running but not healthy; recovering it first (untimed)", flush=True)
    journal = lab.root / "bench" / f"repair-{time.strftime('%Y%m%dT%H%M%S')}"
    _, res, _ = timed([sys.executable, "-m", "etcdrescue", "recover", "-i", str(lab.inventory_path), "--yes",
                       "--no-control-plane-restart", "--journal", str(journal)])
    if res.returncode != 0:
        raise SystemExit(f"{lab.root}: repair failed ({res.returncode}): {res.stdout[-2000:]} {res.stderr[-2000:]}")
    lab.wait_healthy(timeout=60)


def break_again(lab: Lab, tag: str) -> str:
    """As tests/e2e/helpers.py `break_lab`: keys, a backup on the seed, more keys, a majority's data destroyed.

    Returns the backup's path on the seed. The lab must be healthy (after `up` or a recovery).
    """
    lab.wait_healthy(timeout=60)
    lab.put_keys(f"/bench/{tag}/pre/", 500)
    time.sleep(0.6)  # etcd flushes its db about every 100 ms; a copy taken at once can miss writes
    backup = lab.backup_openshift(lab.hosts[0]) if lab.profile == "okd3" else lab.snapshot_save(lab.hosts[0])
    lab.put_keys(f"/bench/{tag}/post/", 100)
    lab.break_quorum(lab.hosts[1:len(lab.hosts) // 2 + 2])
    return backup


DATA_PREFIX = "/bench-data/"
DATA_VALUE = 1 << 20  # 1 MiB of random bytes per key: under etcd's default --max-request-bytes (1.5 MiB)


def data_count(lab: Lab) -> int:
    """How many keys of the extra data the lab holds (a count-only range: no values travel)."""
    c = lab.client(timeout=60)
    try:
        return int(c.get_prefix_response(DATA_PREFIX, count_only=True).count)
    finally:
        c.close()


def fill_data(lab: Lab, mib: int) -> int:
    """About `mib` MiB of extra data: keys `/bench-data/<i:05d>` of 1 MiB random values, only those the lab
    lacks (once per lab: every backup holds them and every recovery restores them). Returns the key count.

    etcd's default --quota-backend-bytes is 2 GiB and the lab sets none, so up to about 1.5 GiB fits."""
    have = data_count(lab)
    if have >= mib:
        return mib
    t = time.monotonic()
    c = lab.client(timeout=120)
    try:
        for i in range(have, mib):
            c.put(f"{DATA_PREFIX}{i:05d}", os.urandom(DATA_VALUE))
    finally:
        c.close()
    print(f"filled {mib - have} MiB of extra data ({mib} keys of 1 MiB) in {time.monotonic() - t:.1f}s; "
          f"load {load()}", flush=True)
    return mib


def db_file(lab: Lab, backup: str) -> Path:
    """The bbolt db of a backup on the seed, as the bench machine sees it."""
    path = f"{backup}/member/snap/db" if lab.profile == "okd3" else backup
    return lab.host_path(lab.hosts[0], path)


def time_copy(src: Path, work: Path) -> tuple[float, float]:
    """One copy of `src` on the same disk (into the bench's own dir under the lab root), as `cp` and then
    `sync` of the new file; the copy is deleted. Returns (cp seconds, cp + fsync seconds)."""
    work.mkdir(parents=True, exist_ok=True)
    dest = work / "copy-of-db"
    t = time.monotonic()
    subprocess.run(["cp", str(src), str(dest)], check=True)
    cp = time.monotonic() - t
    subprocess.run(["sync", str(dest)], check=True)
    total = time.monotonic() - t
    dest.unlink()
    return cp, total


def accepted_logins(lab: Lab) -> dict[str, int]:
    """sshd's "Accepted publickey" lines so far, per host (sshd logs at INFO to the host's run/sshd.log)."""
    out = {}
    for h in lab.hosts:
        try:
            text = (h.dir / "run" / "sshd.log").read_text(errors="replace")
        except OSError:
            text = ""
        out[h.name] = text.count("Accepted publickey")
    return out


@dataclass
class MemberTrace:
    """One member's etcd starts and the first `/health` true after each (None: never healthy before the next)."""
    starts: list[float] = field(default_factory=list)
    healthy: list[float | None] = field(default_factory=list)
    down: list[float] = field(default_factory=list)


class HealthWatch:
    """Polls, from outside, each member's etcd start counter (every 50 ms, a file read) and, after a start
    until the first success, its `/health` (every 100 ms: a TLS handshake each, so only while it matters).

    Times are wall clock (`time.time()`) so they compare with the journal's `ts`.
    """

    def __init__(self, lab: Lab, period: float = 0.05, health_period: float = 0.1) -> None:
        self.lab = lab
        self.period = period
        self.health_period = health_period
        self.traces = {h.name: MemberTrace() for h in lab.hosts}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._watch, args=(h,), daemon=True) for h in lab.hosts]

    def __enter__(self) -> HealthWatch:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    def _watch(self, h: LabHost) -> None:
        trace = self.traces[h.name]
        state = self.lab.state(h)
        restarts, running = int(state.get("restarts") or 0), bool(state.get("etcd_pid"))
        probing, next_probe = False, 0.0
        while not self._stop.is_set():
            state = self.lab.state(h)
            now = time.time()
            if state:
                n, pid = int(state.get("restarts") or 0), bool(state.get("etcd_pid"))
                if n > restarts:
                    trace.starts.append(now)
                    trace.healthy.append(None)
                    probing, next_probe = True, now
                elif running and not pid:
                    trace.down.append(now)
                restarts, running = n, pid
            if probing and now >= next_probe:
                next_probe = now + self.health_period
                if self.lab.healthy(h, timeout=1):
                    trace.healthy[-1] = time.time()
                    probing = False
            self._stop.wait(self.period)

    def etcd_seconds(self, t0: float, t1: float) -> tuple[float, list[str]]:
        """Sum over the starts in [t0, t1] that became healthy of start -> /health true (etcd's own time),
        and one line per such start."""
        total, lines = 0.0, []
        for name, tr in self.traces.items():
            for start, ok in zip(tr.starts, tr.healthy, strict=True):
                if t0 <= start <= t1 and ok is not None:
                    total += ok - start
                    lines.append(f"{name.split('.')[0]}: start +{start - t0:.2f}s, healthy after {ok - start:.2f}s")
        return total, lines

    def health_at(self, name: str, before: float) -> float | None:
        """The last time `name` turned healthy before `before`."""
        times = [t for t in self.traces[name].healthy if t is not None and t <= before]
        return max(times) if times else None


def timed(cmd: Sequence[str], *, timeout: float = 600, env: dict[str, str] | None = None,
          ) -> tuple[float, subprocess.CompletedProcess[str], float]:
    """Run `cmd`; returns its start (wall clock), the result and its wall time in seconds."""
    start, t = time.time(), time.monotonic()
    res = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                         env=env or ENV, cwd=REPO)
    return start, res, time.monotonic() - t
