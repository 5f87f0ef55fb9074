"""Names, paths and facts shared by the lab's modules (no process or file side effects)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

NSENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
         "HOME": "/root"}
ROOT_MESSAGE = ("the lab needs root: it gives each master its own mount and PID namespace "
                "(run as root, e.g. in a container)")


class LabError(RuntimeError):
    pass


def missing_prerequisites() -> list[str]:
    """What the lab cannot run without, phrased so the operator knows what to apt-get."""
    need = [("etcd", "etcd-server"), ("etcdctl", "etcd-client"), ("sshd", "openssh-server"),
            ("unshare", "util-linux"), ("nsenter", "util-linux"), ("mount", "mount")]
    path = NSENV["PATH"] + ":" + os.environ.get("PATH", "")
    return [f"{prog} not found (Debian package {pkg})" for prog, pkg in need
            if shutil.which(prog, path=path) is None]


@dataclass(frozen=True)
class LabHost:
    name: str
    ip: str
    ssh_port: int
    dir: Path

    @property
    def peer_url(self) -> str:
        return f"https://{self.ip}:2380"

    @property
    def client_url(self) -> str:
        return f"https://{self.ip}:2379"


HostRef = LabHost | str | int
