"""Platforms: what differs between static-pod control planes, asked by every other part.

`profiles` names them (the inventory's `profile:`); `PLATFORMS` maps each name to its default paths
and the factory that builds it. Importing the package loads only the names: the command line's parser
lists them, and must not pay for YAML. Everything else below loads on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .profiles import DEFAULT_PROFILE, KUBEADM, OKD3, PROFILES

if TYPE_CHECKING:
    from .base import FlagEdit, ManifestProblem, Platform, Settings, Severity
    from .kinds import PLATFORMS, PlatformKind
    from .paths import Paths
else:  # at run time the same names, imported when first asked for (a checker sees the imports above)
    _HOMES = {"FlagEdit": "base", "ManifestProblem": "base", "Platform": "base", "Settings": "base",
              "Severity": "base", "PLATFORMS": "kinds", "PlatformKind": "kinds", "Paths": "paths"}

    def __getattr__(name: str) -> object:
        if name not in _HOMES:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)


__all__ = ["DEFAULT_PROFILE", "KUBEADM", "OKD3", "PLATFORMS", "PROFILES", "FlagEdit", "ManifestProblem", "Paths",
           "Platform", "PlatformKind", "Settings", "Severity"]
