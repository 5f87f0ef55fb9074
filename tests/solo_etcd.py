"""A real one-member etcd (the machine's own binary) on a loopback address, for tests that need a real db or
snapshot file without a lab."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

CLIENT_PORT, PEER_PORT = 23790, 23800
ENV = {"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"}


@contextmanager
def solo_etcd(data_dir: Path, ip: str, name: str = "solo") -> Iterator[Callable[..., None]]:
    """etcd serving on `ip` until the block ends (then stopped, its data left in `data_dir`); yields `ctl(*args)`,
    which runs `etcdctl ARGS` against it and fails the test on an error."""
    peer, client = f"http://{ip}:{PEER_PORT}", f"http://{ip}:{CLIENT_PORT}"
    proc = subprocess.Popen(
        ["etcd", "--name", name, "--data-dir", str(data_dir), "--listen-client-urls", client,
         "--advertise-client-urls", client, "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
         "--initial-cluster", f"{name}={peer}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ctl(*args: str) -> None:
        subprocess.run(["etcdctl", "--endpoints", client, *args], check=True, capture_output=True, env=ENV)

    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{client}/health", timeout=1) as r:
                    if b"true" in r.read():
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"the one-member etcd on {ip} did not become healthy"
            time.sleep(0.1)
        yield ctl
    finally:
        proc.terminate()
        proc.wait(timeout=20)
