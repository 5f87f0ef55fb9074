"""The procedure home: a session runs a named procedure whose rules, plan and words are its own; the engine,
journal and resume carry its name."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from test_resume_unit import inventory, unfinished

from etcdrescue.documents.report import parse_runs, render_markdown
from etcdrescue.errors import InputError
from etcdrescue.model import BackupKind, Revisions, Step
from etcdrescue.plan import build_plan
from etcdrescue.preflight.options import RecoveryOptions
from etcdrescue.procedures import PROCEDURES, QUORUM_RECOVERY, named
from etcdrescue.procedures.base import Procedure
from etcdrescue.session import RecoverySession


def test_the_quorum_recovery_is_the_default_procedure(tmp_path: Path) -> None:
    session = RecoverySession.open(RecoveryOptions(inventory(tmp_path)))
    assert session.procedure is QUORUM_RECOVERY and PROCEDURES["recover"] is QUORUM_RECOVERY
    plan = build_plan(session.context(BackupKind.DIR, Revisions()), session.procedure)
    assert plan.procedure == "recover" and plan.mode.startswith("quorum restore from the seed's own data")
    assert plan.steps[0].key == "stop-etcd"


def test_an_unknown_procedure_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no procedure 'defrag': known are recover, "):
        RecoverySession.open(RecoveryOptions(inventory(tmp_path), procedure="defrag"))
    with pytest.raises(InputError):
        named("defrag")


def test_a_plan_is_what_its_procedure_declares(tmp_path: Path) -> None:
    """Another procedure plugs in without the engine: its own steps and words reach the plan."""
    session = RecoverySession.open(RecoveryOptions(inventory(tmp_path)))
    only = Step("look", "Look", "verify", "nothing else", ())
    other = Procedure("look", "etcd look", "LOOKED", judge=QUORUM_RECOVERY.judge, steps=lambda ctx: (only,),
                      mode=lambda ctx: f"look at {ctx.inv.cluster}")
    plan = build_plan(session.context(BackupKind.DIR, Revisions()), other)
    assert (plan.procedure, plan.mode, plan.steps) == ("look", "look at unit", (only,))


def test_a_resume_continues_only_its_own_procedure(tmp_path: Path) -> None:
    session = RecoverySession.open(RecoveryOptions(inventory(tmp_path)))
    with pytest.raises(InputError, match="is a replace, not a recover"):
        session.resume(replace(unfinished(), procedure="replace"))
    session.resume(unfinished())
    assert session.resuming


def test_the_report_reads_a_run_with_its_procedures_words(tmp_path: Path) -> None:
    start = {"event": "run_start", "cluster": "c", "dry_run": False, "steps": ["a"], "seed": "m1", "stamp": "s",
             "backup": None, "method": "force-new-cluster", "backup_kind": "dir", "learners": True}
    end = {"event": "run_end", "ok": True, "duration": 1.0}
    old = parse_runs([start, end])  # written before procedures had names: a quorum recovery
    assert old[0].procedure is QUORUM_RECOVERY and old[0].result == "RECOVERED"
    named_run = parse_runs([{**start, "procedure": "recover"}, end])
    assert named_run[0].result == "RECOVERED"
    assert render_markdown([start, end], "c-s.jsonl").startswith("# etcd recovery report: c-s.jsonl")
