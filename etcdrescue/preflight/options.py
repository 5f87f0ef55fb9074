"""The operator's revision options, apart from the verdict's rules: the wizard takes them before its first
screen, which needs none of the pre-flight (model, platform, probes)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RevisionOptions:
    bump: int | None = None
    """`--bump-revision N`: None, the default (1,000,000,000 where the restore tool can); 0, never bump."""
    restart_control_plane: bool = True
    """False: `--no-control-plane-restart` (the summary then lists the control plane under "by hand")."""
