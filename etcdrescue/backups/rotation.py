"""`backup --keep N`: the newest N backups of this cluster stay in the directory; older ones go.

Only files this tool wrote for this cluster are candidates: `<cluster>-<stamp>.db` whose sidecar names the same
cluster (by name and cluster ID). Another cluster's backups, hand-made snapshots, a backup whose sidecar is
missing or unreadable, and every other file are never touched. A backup goes with its `.sha256` and sidecar.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .sidecar import STAMP, Sidecar, load, sidecar_path, sums_path

DEFAULT_KEEP = 7
"""A week of daily backups (or the last 7 hours of hourly ones): what `--keep` defaults to."""


@dataclass(frozen=True)
class Kept:
    db: Path
    stamp: str


def ours(directory: Path, cluster: str, cluster_id: str) -> list[Kept]:
    """This cluster's backups in `directory`, oldest first."""
    prefix = f"{cluster}-"
    found = []
    for db in directory.glob(f"{cluster}-*.db"):
        stamp = db.name[len(prefix):-len(".db")]
        if not STAMP.fullmatch(stamp) or not db.is_file():
            continue
        try:
            side: Sidecar | None = load(db)
        except ValueError:
            continue
        if side is None or side.cluster != cluster or side.cluster_id != cluster_id:
            continue
        found.append(Kept(db, stamp))
    return sorted(found, key=lambda k: k.stamp)


def to_remove(directory: Path, cluster: str, cluster_id: str, keep: int) -> list[Path]:
    """Every file of the backups past the newest `keep`: the db, its `.sha256` and its sidecar."""
    backups = ours(directory, cluster, cluster_id)
    old = backups[: max(0, len(backups) - keep)]
    return [p for k in old for p in (k.db, sums_path(k.db), sidecar_path(k.db)) if p.exists()]


def rotate(directory: Path, cluster: str, cluster_id: str, keep: int) -> list[Path]:
    """Remove the backups past the newest `keep` (on the bastion: the operator's own store); what went."""
    gone = to_remove(directory, cluster, cluster_id, keep)
    for p in gone:
        p.unlink(missing_ok=True)
    return gone
