"""The operator's revision options, apart from the verdict's rules: the wizard takes them before its first
screen, which needs none of the pre-flight (model, platform, probes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..inventory.model import Inventory


@dataclass(frozen=True)
class RevisionOptions:
    bump: int | None = None
    """`--bump-revision N`: None, the default (1,000,000,000 where the restore tool can); 0, never bump."""
    restart_control_plane: bool = True
    """False: `--no-control-plane-restart` (the summary then lists the control plane under "by hand")."""


@dataclass(frozen=True)
class RecoveryOptions:
    """What a front end asks of a recovery (the CLI's options, the wizard's fields, a rehearsal's lab).

    `RecoverySession.open` is the one door: it checks these before any connection and builds the session.
    """

    inventory: str | Path | Inventory
    """A file, or an inventory the front end already loaded (the wizard's form)."""
    backup: str | None = None
    method: str | None = None
    seed: str | None = None
    accept_older_seed: bool = False
    etcd_tools: str | Path | None = None
    """`--etcd-tools DIR`: a directory on this machine, copied to every master."""
    revisions: RevisionOptions = field(default_factory=RevisionOptions)
    journal_dir: Path | None = None
    gate_timeout: float = 120.0
    learners: bool = True
    stamp: str | None = None
    """A fixed stamp (the runbook's `--stamp`); by default each session makes its own."""
    procedure: str = "recover"
    """The procedure the session runs (`procedures.PROCEDURES`)."""
    target: str | None = None
    """The member a procedure acts on (`replace MEMBER`); the quorum recovery acts on all."""
    quota: int | None = None
    """`reclaim-space --quota BYTES`: the backend quota to raise every member to; None: leave it."""
    force: bool = False
    """`reclaim-space --force`: run although there is no alarm and little to give back."""
    fix_flags: bool = False
    """`recover --fix-flags`: members whose manifest's flags their etcd refuses get them rewritten by the recovery's
    own settings edits (a warning at pre-flight, not a refusal)."""
    any_cluster: bool = False
    """Restore a backup of another cluster (`drill`: its lab is another cluster by design); never for a recovery."""
