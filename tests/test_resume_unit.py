"""A resumed session plans with what its journal says, not with today's options."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from etcdrescue.model import BackupKind, Context, Method, RevisionPath, Revisions
from etcdrescue.plan import build_plan
from etcdrescue.preflight.options import RecoveryOptions
from etcdrescue.resume import Unfinished, find_unfinished
from etcdrescue.session import RecoverySession


def inventory(tmp_path: Path) -> Path:
    data = {"cluster": "unit", "profile": "okd3", "ssh": {"user": "root"},
            "members": [{"name": f"m{i}.test", "host": f"10.0.0.{i}", "peer_url": f"https://10.0.0.{i}:2380",
                         "client_url": f"https://10.0.0.{i}:2379"} for i in (1, 2, 3)]}
    p = tmp_path / "inv.yaml"
    p.write_text(yaml.safe_dump(data), encoding="utf-8")
    return p


def unfinished(**over: object) -> Unfinished:
    base: dict[str, object] = dict(path=Path("/j/unit-x.jsonl"), stamp="20260101T000000Z", seed="m2.test",
                                   backup="/var/lib/etcd/backup-1", method="snapshot-restore",
                                   backup_kind=BackupKind.FILE, learners=True,
                                   revisions=Revisions(RevisionPath.BUMPED, "asked", bump=77),
                                   done=("stop-etcd",), steps=("stop-etcd", "seed-data"), last_error="killed")
    base.update(over)
    return Unfinished(**base)  # type: ignore[arg-type]


def resumed(u: Unfinished, tmp_path: Path, **options: object) -> tuple[RecoverySession, Context]:
    """A session of today's options resuming `u`, and the Context it plans with (today's kind and path ignored)."""
    session = RecoverySession.open(RecoveryOptions(inventory(tmp_path), **options))  # type: ignore[arg-type]
    assert session.inv.seed.name == "m1.test"
    session.resume(u)
    return session, session.context(BackupKind.DIR, Revisions())


def test_a_resumed_session_takes_everything_from_the_journal(tmp_path: Path) -> None:
    session, ctx = resumed(unfinished(), tmp_path, backup="/other", gate_timeout=33)
    assert session.inv.seed.name == "m2.test" and session.inv.members[0].name == "m2.test"
    assert ctx.inv == session.inv
    assert (ctx.stamp, ctx.backup, ctx.method, ctx.backup_kind, ctx.gate_timeout) == (
        "20260101T000000Z", "/var/lib/etcd/backup-1", Method.SNAPSHOT_RESTORE, BackupKind.FILE, 33)
    assert ctx.revisions == Revisions(RevisionPath.BUMPED, "asked", bump=77)
    assert build_plan(ctx).ctx.seed.name == "m2.test"


def test_a_resumed_session_without_backup(tmp_path: Path) -> None:
    _, ctx = resumed(unfinished(backup=None, method="force-new-cluster", backup_kind=BackupKind.DIR), tmp_path)
    assert ctx.backup is None and ctx.method is Method.FORCE_NEW_CLUSTER and ctx.gate_timeout == 120


def test_find_unfinished_then_resume(tmp_path: Path) -> None:
    journal = tmp_path / "j"
    journal.mkdir()
    events = [{"event": "run_start", "cluster": "unit", "dry_run": False, "steps": ["stop-etcd", "seed-data"],
               "seed": "m3.test", "stamp": "20260102T000000Z", "backup": None, "method": "force-new-cluster",
               "backup_kind": "dir", "learners": True},
              {"event": "step_end", "step": "stop-etcd", "status": "done"}]
    (journal / "unit-20260102T000000Z.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    found = find_unfinished(journal, "unit")
    assert found is not None and found.next_step == "seed-data"
    session, ctx = resumed(found, tmp_path)
    assert session.inv.seed.name == "m3.test" and ctx.stamp == "20260102T000000Z"
