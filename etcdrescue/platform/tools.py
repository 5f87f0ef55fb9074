"""The etcd command-line tools on a host: the one place that spells an etcdctl command line."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..command import Raw, q, sh
from .paths import Paths


@dataclass(frozen=True)
class EtcdTools:
    """Builds every etcdctl call a step, probe, gate or runbook shows.

    `etcdctl` is the command as the host runs it (a name on PATH, or a full path); the TLS client
    identity is the platform's (`paths.ca/cert/key`).
    """

    paths: Paths
    etcdctl: str = "etcdctl"

    def ctl(self, endpoints: Iterable[str], *args: object) -> Raw:
        """An etcdctl v3 call authenticated with the host's own TLS material."""
        p = self.paths
        return sh(Raw("ETCDCTL_API=3"), self.etcdctl, "--cacert", p.ca, "--cert", p.cert, "--key", p.key,
                  "--endpoints", ",".join(endpoints), *args)

    def snapshot_restore(self, db: str, *args: object) -> Raw:
        """Offline: `snapshot restore` needs no endpoint and no TLS."""
        return sh(Raw("ETCDCTL_API=3"), self.etcdctl, "snapshot", "restore", db, *args)

    def snapshot_status(self, db: str) -> Raw:
        return sh(Raw("ETCDCTL_API=3"), self.etcdctl, "snapshot", "status", db, "-w", "json")

    @property
    def survey(self) -> str:
        """Shell that prints where the client tool is (empty when the host has none)."""
        return f"command -v {q(self.etcdctl)} || true"
