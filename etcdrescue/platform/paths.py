"""Where a platform keeps etcd's files on a master; the inventory's `paths:` overrides any of them."""

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
    def manifest_name(self) -> str:
        return self.manifest.rsplit("/", 1)[1]

    @property
    def disabled_manifest(self) -> str:
        return f"{self.disabled_dir}/{self.manifest_name}"

    @property
    def member_dir(self) -> str:
        return f"{self.data_dir.rstrip('/')}/member"
