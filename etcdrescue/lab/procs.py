"""Finding and ending a lab host's processes from outside its namespaces.

`down()` must work even from a fresh process after a crashed test, so nothing here
relies on in-memory handles: processes are found through /proc by their command line
(which names the host directory) and by the PID namespace they live in.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterable
from pathlib import Path

MODULE = "etcdrescue.lab.host"


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def alive(pid: int) -> bool:
    """True unless the process is gone or a zombie (a zombie can no longer do anything)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def all_pids() -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit()]


def host_processes(hostdir: Path) -> list[int]:
    """The unshare wrapper and the supervisor of one host (both carry `--hostdir <dir>`)."""
    want = str(hostdir)
    out = []
    for pid in all_pids():
        args = cmdline(pid)
        if MODULE in args and want in args and alive(pid):
            out.append(pid)
    return out


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def pid_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def ns_members(ns: str) -> list[int]:
    return [p for p in all_pids() if pid_ns(p) == ns and alive(p)]


def is_supervisor(pid: int, hostdir: Path) -> bool:
    args = cmdline(pid)
    return MODULE in args and str(hostdir) in args and "unshare" not in Path(args[0]).name and alive(pid)


def kill_and_wait(pids: Iterable[int], timeout: float = 15.0) -> None:
    """SIGKILL namespace inits first: the kernel then kills everything inside their namespaces."""
    pids = list(pids)
    namespaces = {ns for p in pids if (ns := pid_ns(p)) is not None and ns != pid_ns(os.getpid())}
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pids)
        if not any(alive(p) for p in pids) and not any(ns_members(ns) for ns in namespaces):
            return
        time.sleep(0.05)
    raise TimeoutError(f"processes still alive after SIGKILL: {[p for p in pids if alive(p)]}")


def _reap(pids: list[int]) -> None:
    """Collect zombies of wrappers this process started (only those: other code owns the rest)."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def port_open(ip: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except OSError:
        return False
