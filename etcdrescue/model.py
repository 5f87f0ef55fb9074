"""The domain model: what a recovery step is (commands per host, a gate, its undo) and the
context every step declares its commands from.

A step holds no behaviour of its own. "Already done" is derived by the engine
from the commands' `skip_if` probes, so a rerun or resume never repeats a move.
"""

from __future__ import annotations

import enum
import os
import time
from dataclasses import dataclass, field
from typing import Any

from .checks import GateCheck
from .command import Command
from .inventory.model import Inventory, Member
from .platform import Paths, Platform
from .platform.release import EtcdRelease, FlagRewrite


class BackupKind(enum.Enum):
    DIR = "dir"
    """A data-dir backup: `member/snap/db` (and the WAL) inside."""
    FILE = "file"
    """A v3 snapshot file (`etcdctl snapshot save`)."""


class Method(enum.Enum):
    SNAPSHOT_RESTORE = "snapshot-restore"
    FORCE_NEW_CLUSTER = "force-new-cluster"


class RevisionPath(enum.Enum):
    CONTINUES = "continues"
    """The seed's own data: the revisions the watchers saw are still there."""
    BUMPED = "bumped"
    """Restored with `--bump-revision N --mark-compacted`: revisions jump ahead and every watch ends."""
    BACKWARDS = "backwards"
    """Revisions go back to the backup's (or an older seed's): the watchers must relist."""


DEFAULT_BUMP = 1_000_000_000
"""etcd's documented value for a week-old snapshot written at under 1500 revisions a second."""


@dataclass(frozen=True)
class Revisions:
    """What the recovery does to etcd's revision counter, which every Kubernetes watcher remembers."""

    path: RevisionPath = RevisionPath.CONTINUES
    why: str = ""
    bump: int = 0
    """`--bump-revision` of the snapshot restore; 0: no bump."""
    restart_control_plane: bool = False
    """Restart the API servers, then the controllers, on every master after the final verify."""

    @property
    def summary(self) -> str:
        """A few words for the plan's mode line (the Plan screen, the console, the report)."""
        if self.path is RevisionPath.BUMPED:
            return f"revisions bumped by {self.bump:,} with --mark-compacted"
        if self.path is RevisionPath.CONTINUES:
            return "revisions continue from the seed's own data"
        if self.restart_control_plane:
            return "revisions go back: control-plane restart after the verify"
        return "revisions go back: restart the control plane by hand"

    @property
    def explained(self) -> str:
        """The summary and why: for the pre-flight, the runbook and the journal."""
        return self.summary + (f" ({self.why})" if self.why else "")

    def record(self) -> dict[str, object]:
        """The journal's form (a resumed run and the report read it back with `from_record`)."""
        return {"path": self.path.value, "why": self.why, "bump": self.bump,
                "restart_control_plane": self.restart_control_plane}

    @classmethod
    def from_record(cls, raw: dict[str, Any] | None) -> Revisions:
        """A journal from before the path was recorded: nothing bumped, nothing restarted."""
        if not raw:
            return cls()
        return cls(RevisionPath(raw["path"]), str(raw.get("why", "")), int(raw.get("bump", 0)),
                   bool(raw.get("restart_control_plane")))

    @property
    def restart_by_hand(self) -> tuple[str, ...]:
        """What still remembers the old revisions after the run, for the operator to restart."""
        if self.path is not RevisionPath.BACKWARDS:
            return ()
        own = () if self.restart_control_plane else (
            "the API servers, then the controller managers and schedulers, one master at a time",)
        return (*own, "the kubelet on every node", "kube-proxy (or the network plugin's agents) on every node",
                "operators and other controllers that watch the API (their informers hold the old revisions)")


@dataclass(frozen=True)
class Gate:
    """A condition polled until it holds or `timeout` runs out; the run never moves on past a failed gate."""

    title: str
    members: tuple[str, ...]
    timeout: float
    checks: tuple[GateCheck, ...]
    learners: tuple[str, ...] = ()
    """Members the gate waits for that are not in `members`: a learner answers status, not health or
    member list. Their etcd logs are the first shown when the gate fails."""
    settle: float = 0.0
    """The gate passes only after its checks held this long without a break: a kubelet that read the
    manifest just before it moved can still start etcd once, right after the first "down" was seen."""

    @property
    def summary(self) -> str:
        """One line for the dry run, the console, the Plan screen and the run log alike."""
        settle = f", for {self.settle:g}s in a row" if self.settle > 0 else ""
        return f"{self.title}{settle} (up to {self.timeout:.0f}s)"


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    phase: str
    why: str
    commands: tuple[Command, ...]
    gate: Gate | None = None
    undo: tuple[Command, ...] = ()
    undo_note: str = ""
    destructive: str = ""
    """Non-empty: the confirmation question asked before this step runs."""

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.host for c in self.commands))


@dataclass(frozen=True)
class BastionCopy:
    """A backup on this machine that the plan copies to the seed first (`--backup bastion:PATH`); `backup` is
    then where the copy goes."""

    local: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Context:
    """Everything a step needs to declare its commands; built once per run, before any step."""

    inv: Inventory
    backup: str | None
    method: Method
    stamp: str
    backup_kind: BackupKind = BackupKind.DIR
    gate_timeout: float = 120.0
    down_timeout: float = 60.0
    down_settle: float = field(default_factory=lambda: default_down_settle())
    learners: bool = True
    """Joins add each member as a learner and promote it once it caught up (etcd 3.4+); False: voting joins."""
    revisions: Revisions = field(default_factory=Revisions)
    target: str | None = None
    """The member a procedure acts on (`replace MEMBER`); None for the quorum recovery."""
    quota: int | None = None
    """The backend quota (`--quota-backend-bytes`) `reclaim-space --quota` raises every member to."""
    bastion: BastionCopy | None = None
    fixes: tuple[tuple[str, FlagRewrite], ...] = ()
    """Member -> the rewrite of its manifest's flags (`fix-flags`), as the pre-flight found it (a resumed run: as
    its journal recorded it, since by then the edit may be made)."""
    etcd: str | None = None
    """The etcd version the seed's manifest runs, where the platform can tell (kubeadm's image tag); None: unknown."""

    @property
    def release(self) -> EtcdRelease:
        return EtcdRelease(self.etcd or "")

    @property
    def paths(self) -> Paths:
        return self.inv.paths

    @property
    def platform(self) -> Platform:
        return self.inv.platform

    @property
    def seed(self) -> Member:
        return self.inv.seed

    @property
    def joiners(self) -> tuple[Member, ...]:
        return self.inv.members[1:]

    @property
    def quorum_restore(self) -> bool:
        """No backup: the seed keeps its own surviving data and is forced into a new cluster."""
        return self.backup is None

    @property
    def uses_flag(self) -> bool:
        return self.method is Method.FORCE_NEW_CLUSTER

    @property
    def backup_db(self) -> str:
        assert self.backup is not None
        if self.backup_kind is BackupKind.FILE:
            return self.backup
        return self.backup.rstrip("/") + "/member/snap/db"

    @property
    def cluster_token(self) -> str:
        return f"{self.inv.cluster}-{self.stamp}"

    def aside(self, path: str, tag: str = "etcdrescue") -> str:
        return f"{path.rstrip('/')}.{tag}-{self.stamp}"

    def initial_cluster(self, upto: int) -> str:
        """ETCD_INITIAL_CLUSTER once members[0..upto] are in, in inventory order."""
        return ",".join(f"{m.name}={m.peer_url}" for m in self.inv.members[: upto + 1])


DOWN_SETTLE_ENV = "ETCDRESCUE_DOWN_SETTLE"


def default_down_settle() -> float:
    """Seconds etcd must stay down before the stop gate passes: 5, or $ETCDRESCUE_DOWN_SETTLE.

    Five seconds covers a kubelet that notices a removed static pod by inotify and a container
    start already under way; the lab's kubelet stand-in polls every 0.2 s, so tests use less.
    """
    raw = os.environ.get(DOWN_SETTLE_ENV, "")
    try:
        value = float(raw) if raw else 5.0
    except ValueError:
        value = 5.0
    return max(0.0, value)


def new_stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
