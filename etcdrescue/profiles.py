"""Platform defaults: where each platform keeps etcd's files and how it restarts etcd."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Paths:
    manifest: str
    disabled_dir: str
    etcd_conf: str
    data_dir: str
    ca: str
    cert: str
    key: str

    @property
    def pod_dir(self) -> str:
        return self.manifest.rsplit("/", 1)[0] or "/"

    @property
    def disabled_manifest(self) -> str:
        return f"{self.disabled_dir}/{self.manifest.rsplit('/', 1)[1]}"

    @property
    def member_dir(self) -> str:
        return f"{self.data_dir.rstrip('/')}/member"


@dataclass(frozen=True)
class Profile:
    name: str
    paths: Paths
    restart: tuple[str, ...]
    logs: tuple[str, ...]


PROFILES: dict[str, Profile] = {
    "okd3": Profile(
        name="okd3",
        paths=Paths(
            manifest="/etc/origin/node/pod/etcd.yaml",
            disabled_dir="/etc/origin/node/pod/disabled",
            etcd_conf="/etc/etcd/etcd.conf",
            data_dir="/var/lib/etcd",
            ca="/etc/etcd/ca.crt",
            cert="/etc/etcd/peer.crt",
            key="/etc/etcd/peer.key",
        ),
        restart=("/usr/local/bin/master-restart", "etcd"),
        logs=("/usr/local/bin/master-logs", "etcd", "etcd"),
    ),
}
