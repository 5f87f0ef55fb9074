"""Two operators must never recover the same cluster at once.

Locally: an flock on a file per cluster (released by the kernel if we die), taken first, so a second run on
this machine is refused before it reads anything. On every member: a lock file in the tool's own state
directory, created with noclobber in one fixed order (two bastions racing meet on the same first host),
naming who holds it. It is taken before the pre-flight and held through every confirmation; released (or
broken, with --break-lock) by moving it aside, never by deleting it. A run that changed nothing releases it;
a run that stopped after changing something leaves it, naming its stamp, so that only a resume of that run
takes it over.

Liveness: a holder on this machine is alive while its pid runs with the start time it recorded; one
elsewhere renews a lease before every step, and a lease older than `LEASE` seconds is stale.
"""

from __future__ import annotations

import concurrent.futures as cf
import fcntl
import getpass
import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from .command import Raw, q
from .errors import InputError, RescueError
from .platform.tools import STATE_ROOT
from .ssh.hosts import Hosts

LOCK_PATH = f"{STATE_ROOT}/lock"
LEASE = 600.0
"""Seconds a lock stays fresh without renewal; a run renews it before every step (none takes this long)."""


def _start_time(pid: int) -> str:
    """The process's start (clock ticks since boot): a pid reused by another process has another one."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


class LockHeld(InputError):
    """Another run holds a member's lock. `stale`: every holder is gone (a dead pid on this machine, an expired
    lease), so breaking the locks (`--break-lock`, or the wizard's question) is safe."""

    def __init__(self, message: str, *, stale: bool) -> None:
        super().__init__(message)
        self.stale = stale

@dataclass(frozen=True)
class Holder:
    """Who holds a lock: the bastion (`machine`), its user and pid, since when, for which run."""

    user: str
    machine: str
    pid: int
    since: str
    stamp: str
    renewed: float = 0.0
    pid_start: str = ""

    @classmethod
    def me(cls, stamp: str) -> Holder:
        now = time.time()
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        return cls(getpass.getuser(), socket.gethostname(), os.getpid(), since, stamp, round(now, 1),
                   _start_time(os.getpid()))

    @classmethod
    def parse(cls, text: str) -> Holder:
        try:
            raw = json.loads(text)
        except ValueError:
            raw = None
        if not isinstance(raw, dict):
            return cls("?", "?", 0, "?", "", 0.0)
        return cls(str(raw.get("user", "?")), str(raw.get("machine", raw.get("host", "?"))), int(raw.get("pid") or 0),
                   str(raw.get("since", "?")), str(raw.get("stamp", "")), float(raw.get("renewed") or 0.0),
                   str(raw.get("pid_start", "")))

    def json(self) -> str:
        return json.dumps(asdict(self))

    def renewed_now(self) -> Holder:
        return Holder(**{**asdict(self), "renewed": round(time.time(), 1)})

    def liveness(self, now: float | None = None) -> str:
        """"alive ..." or "stale: ..." (a dead pid on this machine, or an expired lease)."""
        if self.machine == socket.gethostname() and self.pid:
            start = _start_time(self.pid)
            if not start or (self.pid_start and start != self.pid_start):
                return f"stale: pid {self.pid} is not running on this machine"
            return f"alive: pid {self.pid} runs on this machine"
        if not self.renewed:
            return "alive or not: it records no lease"
        age = (now or time.time()) - self.renewed
        if age > LEASE:
            return f"stale: its lease expired {age - LEASE:.0f}s ago (last renewed {age:.0f}s ago)"
        return f"alive as far as can be told: lease renewed {age:.0f}s ago"

    def describe(self) -> str:
        return f"{self.user}@{self.machine} (pid {self.pid}, run {self.stamp or '?'}) since {self.since}"


class LocalLock:
    def __init__(self, directory: Path, cluster: str) -> None:
        self.path = directory / f"{cluster}.lock"
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self, stamp: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        f = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole run
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            info = f.read().strip()
            f.close()
            who = Holder.parse(info).describe() if info else "unknown"
            raise InputError(f"another etcdrescue on this machine holds the lock of this cluster: {who} "
                             f"(alive: it holds {self.path}); nothing changed") from None
        f.seek(0)
        f.truncate()
        f.write(Holder.me(stamp).json())
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class HostLocks:
    """The lock file on every member, taken in member-name order."""

    def __init__(self, hosts: Hosts, stamp: str) -> None:
        self.hosts = hosts
        self.stamp = stamp
        self.names = sorted(m.name for m in hosts.inv.members)
        self.path = LOCK_PATH
        self.me = Holder.me(stamp)
        self.taken: list[str] = []

    @property
    def held(self) -> bool:
        return bool(self.taken)

    def _each(self, script: str) -> dict[str, str]:
        """`script` on every member side by side: its output per member. An unreachable member is bad input."""
        def one(name: str) -> str:
            try:
                return self.hosts.run(name, script, timeout=15).stdout.strip()
            except RescueError as exc:
                raise InputError(f"{name}: cannot take the lock {self.path}: {exc}") from None

        with cf.ThreadPoolExecutor(len(self.names)) as pool:
            futures = {n: pool.submit(one, n) for n in self.names}
            return {n: f.result() for n, f in futures.items()}

    def read(self) -> dict[str, Holder]:
        return {n: Holder.parse(t) for n, t in self._each(f"cat {q(self.path)} 2>/dev/null; true").items() if t}

    def acquire(self, *, break_lock: bool = False, resume_stamp: str | None = None) -> list[str]:
        """Take every member's lock; returns one line per lock broken. Refuses (InputError) while another holds one.

        A lock naming `resume_stamp` is this run's own, left when it stopped: a resume takes it over.
        """
        held = self.read()
        others = {n: h for n, h in held.items() if not (resume_stamp and h.stamp == resume_stamp)}
        if others and not break_lock:
            raise self.refusal(others)
        broken = []
        for name in self.names:
            if name in others:
                aside = f"{self.path}.broken-{self.stamp}"
                self.hosts.run(name, f"mv {q(self.path)} {q(aside)}", timeout=15)
                broken.append(f"{name}: broke the lock of {others[name].describe()} ({others[name].liveness()}); "
                              f"kept as {aside}")
            if not self._write(name, overwrite=name in held and name not in others):
                self.release()
                raced = {n: h for n, h in self.read().items() if n == name}
                raise self.refusal(raced) if raced else InputError(f"{name}: cannot write the lock {self.path}")
            self.taken.append(name)
        return broken

    def refusal(self, others: dict[str, Holder]) -> LockHeld:
        name, h = next(iter(others.items()))
        more = f" (and on {len(others) - 1} more member(s))" if len(others) > 1 else ""
        return LockHeld(f"{name}: {self.path} says {h.describe()} holds the lock of this cluster{more}; "
                        f"{h.liveness()}; nothing changed; if that run is gone, rerun with --break-lock",
                        stale=all(o.liveness().startswith("stale") for o in others.values()))

    def _write(self, name: str, *, overwrite: bool) -> bool:
        noclobber = "" if overwrite else "set -C; "
        script = Raw(f"mkdir -p -m 0700 {q(STATE_ROOT)} && {noclobber}printf '%s\\n' {q(self.me.json())} "
                     f"> {q(self.path)}")
        return self.hosts.run(name, script, timeout=15).ok

    def renew(self) -> None:
        """A fresh lease on every member, only where the lock is still this run's: else refuse (InputError)."""
        self.me = self.me.renewed_now()
        new = f"{self.path}.renew-{self.stamp}"
        mark = f'"stamp": {json.dumps(self.stamp)}'
        script = Raw(f"grep -qF {q(mark)} {q(self.path)} 2>/dev/null || {{ cat {q(self.path)} "
                     f"2>/dev/null; echo; exit 3; }}; printf '%s\\n' {q(self.me.json())} > {q(new)} && "
                     f"mv {q(new)} {q(self.path)} && echo ok")
        lost = {n: out for n, out in self._each(script).items() if out != "ok"}
        if lost:
            name, text = next(iter(lost.items()))
            who = Holder.parse(text).describe() if text else "nobody"
            raise InputError(f"{name}: this run's lock {self.path} was taken over (now held by {who}): "
                             "stopped before changing anything more")

    def release(self) -> None:
        aside = q(f"{self.path}.released-{self.stamp}")
        for name in self.taken:
            self.hosts.run(name, f"mv {q(self.path)} {aside}", timeout=15)
        self.taken = []
