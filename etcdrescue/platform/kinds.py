"""`PLATFORMS`: each inventory `profile:` with its default paths and a factory that builds the platform
for the paths in effect (defaults with the inventory's `paths:` overrides)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import kubeadm, okd3
from .base import Platform
from .paths import Paths


@dataclass(frozen=True)
class PlatformKind:
    name: str
    default_paths: Paths
    build: Callable[[Paths], Platform]


PLATFORMS: dict[str, PlatformKind] = {
    okd3.NAME: PlatformKind(okd3.NAME, okd3.DEFAULT_PATHS, okd3.platform),
    kubeadm.NAME: PlatformKind(kubeadm.NAME, kubeadm.DEFAULT_PATHS, kubeadm.platform),
}
