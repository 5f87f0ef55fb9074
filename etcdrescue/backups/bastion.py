"""`recover --backup bastion:PATH`: a backup kept on this machine, checked here before anything changes.

`bastion:` names a file on the machine the tool runs on; a plain absolute path stays a path on the seed. The
file must match its recorded sha256 (`PATH.sha256`, else its sidecar's), be an etcd snapshot, and list at
least one of the inventory's members: else `InputError` (exit 2) before any connection. The plan's first
step then copies it to the seed, under the tool's own state dir (never etcd's data dir), named by its sha256,
and checks it there; the restore reads that copy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

from ..errors import InputError
from ..inventory.model import Inventory
from ..model import BastionCopy
from ..platform.tools import STATE_ROOT
from ..probes import SnapshotInfo
from .files import (
    UNHASHED,
    CorruptSnapshot,
    NotASnapshot,
    SnapshotFacts,
    foreign_problem,
    inspect,
    recorded_sha256,
    sha256_file,
)
from .sidecar import load

PREFIX = "bastion:"
FROM_BASTION = f"{STATE_ROOT}/backups/from-bastion"


@dataclass(frozen=True)
class BastionBackup:
    local: Path
    sha256: str
    recorded: str
    """Where the expected sha256 came from: `.sha256`, the sidecar, or "" (none recorded: computed here)."""
    size: int
    mtime: float
    facts: SnapshotFacts
    cluster_note: str
    """How it matched the inventory (or that the check was skipped, for a drill)."""

    @property
    def seed_path(self) -> str:
        return f"{FROM_BASTION}/{self.sha256[:16]}-{self.local.name}"

    @property
    def copy(self) -> BastionCopy:
        return BastionCopy(str(self.local), self.sha256, self.size)

    @property
    def snapshot(self) -> SnapshotInfo:
        """The pre-flight's view of it (no integrity hash: the sha256 stands for it)."""
        return SnapshotInfo(0, self.facts.revision, self.facts.total_keys, self.size, self.facts.storage_version)

    def lines(self) -> list[str]:
        """The pre-flight's lines about the file."""
        sha = f"sha256 ok (matches its {self.recorded})" if self.recorded else "sha256 computed here (none recorded)"
        return [f"  backup on this machine {self.local}: {self.size / 2**20:.1f} MiB, {sha}, revision "
                f"{self.facts.revision}" + (f", storage {self.facts.storage_version}" if self.facts.storage_version
                                            else ""),
                f"    {self.cluster_note}; copied to the seed as {self.seed_path} before the restore"]


def is_bastion(backup: str | None) -> TypeGuard[str]:
    return backup is not None and backup.startswith(PREFIX)


def check(spec: str, inv: Inventory, *, any_cluster: bool = False) -> BastionBackup:
    """The file named by `bastion:PATH`, checked; `InputError` naming the problem otherwise."""
    raw = spec[len(PREFIX):]
    if not raw:
        raise InputError("--backup bastion: needs a path on this machine, e.g. bastion:/backups/prod.db")
    path = Path(raw).expanduser().absolute()
    if not path.is_file():
        raise InputError(f"--backup {spec}: no such file on this machine")
    if not os.access(path, os.R_OK):
        raise InputError(f"--backup {spec}: not readable")
    try:
        side = load(path)
    except ValueError as exc:
        raise InputError(f"--backup {spec}: {exc}") from None
    try:
        from_sums = recorded_sha256(path)
    except CorruptSnapshot as exc:
        raise InputError(f"--backup {spec}: {exc}") from None
    try:
        facts = inspect(path)
    except NotASnapshot as exc:
        raise InputError(f"backup {exc}; nothing changed") from None
    except CorruptSnapshot as exc:
        raise InputError(f"backup {path} is corrupt or truncated ({exc}); nothing changed") from None
    if not facts.hashed:
        raise InputError(f"backup {path} is {UNHASHED}; nothing changed")
    if any_cluster:
        note = "cluster not checked (a drill's lab)"
    else:
        problem = foreign_problem(facts, [m.peer_url for m in inv.members],
                                  [h for m in inv.members for h in (m.host, m.name, m.peer_host)])
        if problem:
            raise InputError(f"backup {path}: {problem}; nothing changed")
        note = f"this cluster's: its members' peer URLs are {', '.join(facts.peer_urls)}"
    expected, source = (from_sums, ".sha256") if from_sums else (side.sha256, "sidecar") if side else (None, "")
    digest = sha256_file(path)
    if expected is not None and digest != expected:
        raise InputError(f"backup {path} is corrupt: its sha256 {digest[:16]}… differs from its {source}'s "
                         f"{expected[:16]}…; nothing changed")
    stat = path.stat()
    return BastionBackup(path, digest, source, stat.st_size, stat.st_mtime, facts, note)
