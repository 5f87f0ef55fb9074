"""Finding an unfinished run in the journals, and where to pick it up.

A resumed run reuses the interrupted run's stamp (so "aside" names match), seed,
backup and method, and starts at the first step the journal does not show as
finished. That step is re-run from its first command: every command's
`skip_if` probe re-checks the host, so what was done is not done again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .journal import read_journal
from .model import BackupKind, Revisions
from .platform.release import FlagRewrite

FINISHED = ("done", "skipped")


@dataclass(frozen=True)
class Unfinished:
    path: Path
    stamp: str
    seed: str
    backup: str | None
    method: str
    backup_kind: BackupKind
    learners: bool
    revisions: Revisions
    done: tuple[str, ...]
    steps: tuple[str, ...]
    last_error: str
    procedure: str = "recover"
    """The procedure it ran (journals before procedures had a name ran the quorum recovery)."""
    fixes: tuple[tuple[str, FlagRewrite], ...] = ()
    """`fix-flags`: the rewrites it planned (a resumed survey may see them half made)."""

    @property
    def next_step(self) -> str | None:
        return next((s for s in self.steps if s not in self.done), None)


def _runs(events: list[dict[str, Any]]) -> Unfinished | None:
    start = next((e for e in events if e["event"] == "run_start" and not e.get("dry_run")), None)
    if start is None:
        return None
    ends = [e for e in events if e["event"] == "run_end"]
    if ends and ends[-1].get("ok"):
        return None
    if not any(changed(e) for e in events) and not (ends and ends[-1].get("changed")):
        return None  # refused, declined or interrupted before its first change: nothing to resume
    done = tuple(dict.fromkeys(e["step"] for e in events
                               if e["event"] == "step_end" and e.get("status") in FINISHED))
    return Unfinished(
        path=Path(), stamp=start["stamp"], seed=start["seed"], backup=start.get("backup"),
        method=start["method"], backup_kind=BackupKind(start["backup_kind"]), learners=bool(start["learners"]),
        revisions=Revisions.from_record(start.get("revisions")),
        done=done, steps=tuple(start["steps"]), last_error=ends[-1].get("error", "") if ends else "killed",
        procedure=start.get("procedure", "recover"),
        fixes=tuple((m, FlagRewrite.from_record(r)) for m, r in (start.get("fixes") or {}).items()),
    )


def changed(event: dict[str, Any]) -> bool:
    """The journal line shows a change on a host: a mutating command sent, or a step done."""
    if event["event"] == "step_end":
        return event.get("status") == "done"
    return event["event"] == "command" and bool(event.get("mutates")) and (
        "exit" in event or bool(event.get("confirmed_after_reconnect")))


def find_unfinished(directory: Path, cluster: str) -> Unfinished | None:
    """The newest journal of `cluster` whose run changed something and did not end well, if any.

    A later run that finished does not hide it: what the unfinished one left (files moved aside, a member
    half-joined) is still on the hosts, and the fresh look before its next change judges the cluster now.
    """
    if not directory.is_dir():
        return None
    for path in sorted(directory.glob(f"{cluster}-*.jsonl"), reverse=True):
        run = _runs(read_journal(path))
        if run is not None:
            return Unfinished(**{**run.__dict__, "path": path})
    return None
