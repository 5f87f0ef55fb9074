"""The sidecar JSON beside every backup (`<name>.db.json`): where and when it was taken, of which cluster, at
which revision and etcd version, and the drills it passed. `drill` reads it to build the right lab; `recover`
reads its sha256 when there is no `.sha256`; rotation reads it to tell this cluster's backups from anyone else's.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

FORMAT = "etcdrescue-backup/1"
STAMP = re.compile(r"[0-9]{8}T[0-9]{6}Z")


@dataclass(frozen=True)
class SidecarMember:
    id: str
    """Hex, as `etcdctl member list` prints it."""
    name: str
    peer_urls: tuple[str, ...]


@dataclass(frozen=True)
class Drill:
    """A drill the backup passed: restored in a lab of this platform and etcd version, every member equal."""

    at: str
    profile: str
    etcd: str
    revision: int
    hashkv: int
    hash_revision: int
    members: int


@dataclass(frozen=True)
class Sidecar:
    cluster: str
    cluster_id: str
    profile: str
    members: tuple[SidecarMember, ...]
    revision: int
    etcd_version: str
    storage_version: str
    taken_at: str
    """UTC, ISO 8601 (`2026-12-07T19:30:00Z`)."""
    taken_epoch: float
    seconds: float
    """How long the backup took, snapshot to verified file."""
    taken_from: str
    """The member the snapshot came from."""
    taken_from_leader: bool
    size: int
    sha256: str
    host_copy: str
    """Where the newest snapshot stays on that member (`STATE_ROOT/backups/`)."""
    drills: tuple[Drill, ...] = field(default=())
    format: str = FORMAT

    def with_drill(self, drill: Drill) -> Sidecar:
        return replace(self, drills=(*self.drills, drill))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Sidecar:
        if raw.get("format") != FORMAT:
            raise ValueError(f"not an etcdrescue backup sidecar (format {raw.get('format')!r})")
        members = tuple(SidecarMember(str(m["id"]), str(m["name"]), tuple(m["peer_urls"])) for m in raw["members"])
        drills = tuple(Drill(**d) for d in raw.get("drills", ()))
        plain = {k: v for k, v in raw.items() if k not in ("members", "drills")}
        return cls(**{**plain, "members": members, "drills": drills})


def sidecar_path(db: Path) -> Path:
    return db.with_name(db.name + ".json")


def sums_path(db: Path) -> Path:
    return db.with_name(db.name + ".sha256")


def load(db: Path) -> Sidecar | None:
    """The sidecar of backup `db`; None when it has none. A sidecar that is not ours raises ValueError."""
    path = sidecar_path(db)
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return Sidecar.from_dict(raw)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: unreadable sidecar ({exc})") from None


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(db: Path, sidecar: Sidecar) -> None:
    write_atomic(sidecar_path(db), sidecar.to_json())


def backup_name(cluster: str, stamp: str) -> str:
    return f"{cluster}-{stamp}.db"
