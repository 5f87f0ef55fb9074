"""Two operators must never recover the same cluster at once.

Locally: an flock on a file per cluster (released by the kernel if we die).
On the seed: a lock file created with noclobber, naming who holds it since when;
released (or broken, with --break-lock) by moving it aside, never deleting it.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import socket
import time
from pathlib import Path
from typing import IO

from .command import Raw, q
from .errors import InputError
from .hosts import Hosts


def holder(stamp: str) -> str:
    return json.dumps({"user": getpass.getuser(), "host": socket.gethostname(), "pid": os.getpid(),
                       "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "stamp": stamp})


class LocalLock:
    def __init__(self, directory: Path, cluster: str) -> None:
        self.path = directory / f"{cluster}.lock"
        self._file: IO[str] | None = None

    def acquire(self, stamp: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        f = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole run
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            info = f.read().strip() or "unknown"
            f.close()
            raise InputError(f"another etcdrescue on this machine is recovering this cluster: {info}") from None
        f.seek(0)
        f.truncate()
        f.write(holder(stamp))
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class RemoteLock:
    def __init__(self, hosts: Hosts, stamp: str) -> None:
        self.hosts = hosts
        self.stamp = stamp
        seed = hosts.inv.seed
        self.host = seed.name
        self.path = f"{hosts.inv.paths.data_dir.rstrip('/')}/.etcdrescue.lock"

    def acquire(self, *, break_lock: bool = False, resume_stamp: str | None = None) -> None:
        p = q(self.path)
        current = self.hosts.run(self.host, f"cat {p} 2>/dev/null", timeout=15).stdout.strip()
        if current:
            try:
                held = json.loads(current)
            except ValueError:
                held = {"raw": current}
            if resume_stamp and held.get("stamp") == resume_stamp:
                self._write(overwrite=True)
                return
            if not break_lock:
                who = f"{held.get('user', '?')}@{held.get('host', '?')} (pid {held.get('pid', '?')})"
                raise InputError(f"{self.host}: {self.path} says {who} has been recovering this cluster since "
                                 f"{held.get('since', '?')}; if that run is dead, rerun with --break-lock")
            self.hosts.run(self.host, f"mv {p} {q(self.path + '.broken-' + self.stamp)}", timeout=15)
        self._write(overwrite=False)

    def _write(self, *, overwrite: bool) -> None:
        info = holder(self.stamp)
        noclobber = "" if overwrite else "set -C; "
        res = self.hosts.run(self.host, Raw(f"{noclobber}printf '%s\\n' {q(info)} > {q(self.path)}"), timeout=15)
        if not res.ok:
            raise InputError(f"{self.host}: cannot take the lock {self.path}: {res.stderr.strip()}")

    def release(self) -> None:
        self.hosts.run(self.host, f"mv {q(self.path)} {q(self.path + '.released-' + self.stamp)}", timeout=15)
