"""Which etcd a lab runs, and where its binaries are on this machine.

Why several: OKD 3.10 masters ran etcd 3.2-3.4; kubeadm 1.31-1.33 control planes run 3.5, 1.34-1.36
run 3.6 and 1.37 runs 3.7; and the tools differ between them (3.5 has `etcdutl`, 3.6 restores and reads
snapshots only with it, 3.7 refuses the `--experimental-*` flags). 3.4 is Debian's etcd-server and
etcd-client (3.4.23, /usr/bin). 3.5, 3.6 and 3.7 are the newest patch of each, built from etcd's own Go
modules by `scripts/build-etcd` into `cache_dir()/v<version>/`; the versions are pinned in
`etcd-versions.txt` beside this file, which the script reads too. The lab runs the binaries where they
are; nothing is copied into a lab.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .base import NSENV, LabError

TOOLS = ("etcd", "etcdctl", "etcdutl")
"""The etcd programs a host may have on its PATH; `host_tools` shows or hides all of them together."""

PINS = Path(__file__).with_name("etcd-versions.txt")
"""`<minor> <version>` per line: the releases `scripts/build-etcd` builds (one source for both)."""
CACHE_ENV = "ETCDRESCUE_ETCD_CACHE"
DEFAULT_CACHE = Path("/var/cache/etcdrescue/etcd")
DEBIAN = "3.4.23"

RELEASES = ("3.4", "3.5", "3.6", "3.7")
"""Every minor the lab runs: Debian's 3.4, and the pinned builds (a test keeps this equal to the pins)."""


def cache_dir() -> Path:
    """Where `scripts/build-etcd` puts its builds (the same variable and default as the script's)."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def pinned(text: str | None = None) -> dict[str, str]:
    """minor -> pinned version, read from `etcd-versions.txt` (or `text`)."""
    found: dict[str, str] = {}
    for line in (PINS.read_text() if text is None else text).splitlines():
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[1].startswith(fields[0] + "."):
            raise LabError(f"{PINS.name}: expected `<minor> <version>` with the version of that minor, "
                           f"not {line.strip()!r}")
        found[fields[0]] = fields[1]
    return found


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("-", 1)[0].split("."))


@dataclass(frozen=True)
class EtcdRelease:
    """One etcd release the lab can run: `minor` ("3.6"), `full` ("3.6.17"), where it comes from."""

    minor: str
    full: str
    source: str

    @property
    def at_least(self) -> tuple[int, ...]:
        return version_tuple(self.full)

    def binaries(self) -> dict[str, Path]:
        """Program name -> executable, for the programs this release has (3.4 has no etcdutl)."""
        if self.minor == "3.4":
            found = {name: shutil.which(name, path=NSENV["PATH"]) for name in ("etcd", "etcdctl")}
            missing = [n for n, p in found.items() if p is None]
            if missing:
                raise LabError(f"etcd 3.4: {', '.join(missing)} not found (Debian packages etcd-server, etcd-client)")
            return {n: Path(p) for n, p in found.items() if p is not None}
        bindir = cache_dir() / f"v{self.full}"
        if not all(os.access(bindir / n, os.X_OK) for n in TOOLS):
            raise LabError(f"etcd {self.full} is not built in {bindir}: run ./scripts/build-etcd "
                           "(needs Go and the Go module proxy)")
        return {n: bindir / n for n in TOOLS}

    def available(self) -> bool:
        try:
            self.binaries()
        except LabError:
            return False
        return True

    @property
    def image(self) -> str:
        """The etcd image tag a kubeadm manifest names for this release (kubeadm's own tag scheme)."""
        return f"registry.k8s.io/etcd:{self.full}-0"


def release(minor: str) -> EtcdRelease:
    if minor == "3.4":
        return EtcdRelease("3.4", DEBIAN, "Debian etcd-server")
    pins = pinned()
    if minor in pins and minor in RELEASES:
        return EtcdRelease(minor, pins[minor], "scripts/build-etcd")
    raise LabError(f"etcd must be one of {', '.join(RELEASES)}, not {minor!r}")
