"""Kill the tool (SIGKILL) at every step boundary and inside every mutating step; `--resume` must finish
the job without redoing anything, ending in the same state as an uninterrupted run."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from etcdrescue.inventory import load_inventory
from etcdrescue.lab import Lab
from etcdrescue.model import Context, Method
from etcdrescue.plan import build_plan

from .conftest import requires_lab
from .helpers import break_lab, etcdrescue, tree_digest
from .test_recover import assert_recovered

pytestmark = [pytest.mark.lab, requires_lab, pytest.mark.timeout(600)]

LabFactory = Callable[..., Lab]


def plan_for(lab: Lab, backup: str) -> list[tuple[str, int, bool, bool]]:
    """(key, number of commands, mutates, has a gate) for each step of the lab's recovery."""
    plan = build_plan(Context(load_inventory(lab.inventory_path), backup, Method.SNAPSHOT_RESTORE, "x"))
    return [(s.key, len(s.commands), any(c.mutates for c in s.commands), s.gate is not None) for s in plan.steps]


def run(lab: Lab, backup: str, journal: Path, *extra: str,
        fault: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"ETCDRESCUE_FAULT": fault} if fault else {}
    return etcdrescue("recover", "-i", str(lab.inventory_path), "--backup", backup, "--yes",
                      "--journal", str(journal), *extra, env=env)


def assert_nothing_redone(journal: Path) -> None:
    (path,) = list(journal.glob("*.jsonl"))
    events = [json.loads(line) for line in path.read_text().splitlines()]
    ran = Counter((e["step"], e["host"], e["script"]) for e in events
                  if e["event"] == "command" and e.get("mutates") and not e.get("skipped") and e.get("exit") == 0)
    assert ran and max(ran.values()) == 1, [k for k, n in ran.items() if n > 1]
    starts = [e for e in events if e["event"] == "run_start"]
    assert len({e["stamp"] for e in starts}) == 1


def test_kill_at_every_step_boundary(lab_factory: LabFactory, tmp_path: Path) -> None:
    b = break_lab(lab_factory(3, subnet=28), "openshift")
    assert b.backup
    journal = tmp_path / "j"
    steps = plan_for(b.lab, b.backup)
    for i, (key, *_) in enumerate(steps[:-1]):
        res = run(b.lab, b.backup, journal, *(["--resume"] if i else []), fault=f"after-step:{key}")
        assert res.returncode == -9, (key, res.stdout, res.stderr)
    refused = run(b.lab, b.backup, journal)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    res = run(b.lab, b.backup, journal, "--resume")
    assert res.returncode == 0, res.stdout + res.stderr
    assert_recovered(b, journal, keys=500, post=0)
    assert_nothing_redone(journal)
    before = tree_digest(b.lab)
    again = run(b.lab, b.backup, journal)
    assert again.returncode == 2 and "healthy quorum" in again.stderr
    assert tree_digest(b.lab) == before


def test_kill_inside_every_mutating_step(lab_factory: LabFactory, tmp_path: Path) -> None:
    b = break_lab(lab_factory(3, subnet=29), "openshift")
    assert b.backup
    journal = tmp_path / "j"
    first = True
    inside = [key for key, n_commands, mutates, gated in plan_for(b.lab, b.backup)
              if mutates and (n_commands > 1 or gated)]  # "inside": after a command, before the rest or the gate
    assert len(inside) == 9, inside  # stop, seed data/conf/start/peer-url, two joins, two promotions
    for key in inside:
        res = run(b.lab, b.backup, journal, *([] if first else ["--resume"]), fault=f"after-command:{key}:1")
        assert res.returncode == -9, (key, res.stdout, res.stderr)
        first = False
    res = run(b.lab, b.backup, journal, "--resume")
    assert res.returncode == 0, res.stdout + res.stderr
    assert_recovered(b, journal, keys=500, post=0)
    assert_nothing_redone(journal)
