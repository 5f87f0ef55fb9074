"""The wizard end to end without hosts: canned pre-flight facts, a dry run, the summary.

Also the refusals that must happen before any connection: an invalid inventory is shown
inline with its field named and no `Hosts` is ever created.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from textual.widgets import Button, DataTable, Log, Static, Tree

from etcdrescue.engine import DryRunMark, StepStatus
from etcdrescue.inventory.model import Member
from etcdrescue.locks import LOCK_PATH
from etcdrescue.preflight.verdict import HostFacts
from etcdrescue.screens.app import RescueApp
from etcdrescue.screens.inventory import InventoryScreen
from etcdrescue.screens.plan import PlanScreen
from etcdrescue.screens.preflight import PreflightScreen
from etcdrescue.screens.recent import load_recent
from etcdrescue.screens.run import Phase, RunOutcome, RunScreen
from etcdrescue.screens.summary import SummaryScreen
from etcdrescue.screens.widgets import ConfirmScreen

from .conftest import BACKUP, SIZE, CannedPreflight, broken_facts, inventory_data, resume_question, sync, wait_until


def text_of(app: RescueApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


@sync
async def test_dry_run_walks_every_screen(offline_inventory: Path, canned_preflight: CannedPreflight) -> None:
    ran = canned_preflight(False)
    app = RescueApp(offline_inventory, BACKUP, journal_dir=offline_inventory.parent / "journal")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, InventoryScreen), what="inventory screen")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PreflightScreen) and app.screen.report is not None,
                         what="verdict")
        assert "recovery can start" in text_of(app, "#verdict")
        assert app.status.cluster == "offline"
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, PlanScreen), what="plan screen")
        plan_screen = app.screen
        assert isinstance(plan_screen, PlanScreen)
        assert [n.data is not None for n in plan_screen.query_one("Tree", Tree).root.children]
        await pilot.press("w")
        written = list((offline_inventory.parent / "journal").glob("*-runbook.md"))
        assert len(written) == 1 and plan_screen.plan.commands()[0].script in written[0].read_text()
        written[0].unlink()
        await pilot.press("d")
        assert app.status.dry_run
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.phase is Phase.ENDED,
                         what="dry run to end")
        run = app.screen
        assert isinstance(run, RunScreen)
        assert run.record.status is RunOutcome.PLANNED
        assert all(o.status.name == "PLANNED" for o in run.record.outcomes.values())
        first = run.plan.steps[0].commands[0]
        probes = [r for r in ran if LOCK_PATH not in r]  # the run's locks: taken before the pre-flight
        assert probes == [f"{first.host}$ {first.skip_if}"], "one probe: every later command waits for the stop"
        log = [line.strip() for line in run.query_one(Log).lines]
        assert log[log.index(f"{first.host}$ {first.script}") + 1] == DryRunMark.WOULD_RUN.value
        assert DryRunMark.AFTER_EARLIER_CHANGE.value in log
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, SummaryScreen), what="summary")
        assert "DRY RUN" in text_of(app, "#verdict")
        await pilot.press("q")
    assert app.return_code == 0
    assert load_recent()[0]["inventory"] == str(offline_inventory)
    assert not list((offline_inventory.parent / "journal").glob("*.jsonl")), "a dry run writes no journal"


@pytest.mark.parametrize(("edit", "field"), [
    (lambda d: d["members"][1].update(peer_url="ftp://127.0.61.2"), "members[1].peer_url"),
    (lambda d: d["ssh"].update(port=70000), "ssh.port"),
    (lambda d: d.pop("cluster"), "cluster"),
])
@sync
async def test_invalid_inventory_is_refused_inline_without_ssh(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: Callable[[dict[str, object]], None],
        field: str) -> None:
    created: list[object] = []
    monkeypatch.setattr("etcdrescue.session.Hosts", lambda *a, **k: created.append(a))
    data = inventory_data(port=2299)  # nothing listens there: a connection attempt would show as SSH errors
    edit(data)
    inv = tmp_path / "bad.yaml"
    inv.write_text(yaml.safe_dump(data), encoding="utf-8")
    app = RescueApp(inv, BACKUP)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, InventoryScreen), what="inventory screen")
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert isinstance(app.screen, InventoryScreen), "an invalid inventory must not get past the first screen"
        error = text_of(app, "#inventory-error")
        assert field in error and str(inv) in error
        assert "cannot reach" not in error and "SSH" not in error
    assert created == []


@sync
async def test_relative_backup_is_refused_on_its_field(offline_inventory: Path) -> None:
    app = RescueApp(offline_inventory, "backups/etcd")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, InventoryScreen), what="inventory screen")
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert isinstance(app.screen, InventoryScreen)
        assert "must be an absolute path on master01.test" in text_of(app, "#backup-error")


@sync
async def test_healthy_cluster_cannot_proceed_offline(offline_inventory: Path,
                                                      canned_preflight: CannedPreflight) -> None:
    canned_preflight(True)
    app = RescueApp(offline_inventory, BACKUP)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PreflightScreen) and app.screen.report is not None,
                         what="verdict")
        assert "healthy quorum" in text_of(app, "#verdict")
        table = app.screen.query_one("#members", DataTable)
        assert [table.get_cell(f"master0{i}.test", "ID") for i in (1, 2, 3)] == [
            f"8e9e05c5216469{i}d" for i in (1, 2, 3)], "the member ID column shows each running member's ID"
        assert app.screen.query_one("#next", Button).disabled
        await pilot.press("n")
        await pilot.pause(0.1)
        assert isinstance(app.screen, PreflightScreen)


def fake_unfinished_journal(directory: Path, cluster: str = "offline") -> Path:
    """What a SIGKILLed `recover` leaves: a run_start, two finished steps, no run_end."""
    from etcdrescue.inventory.model import load_inventory
    from etcdrescue.model import Context, Method
    from etcdrescue.plan import build_plan

    directory.mkdir(parents=True, exist_ok=True)
    inv = load_inventory(directory.parent / "inventory.yaml").with_seed("master02.test")
    steps = [s.key for s in build_plan(Context(inv, BACKUP, Method.SNAPSHOT_RESTORE, "20250505T050505Z")).steps]
    events = [{"event": "run_start", "cluster": cluster, "dry_run": False, "steps": steps, "seed": "master02.test",
               "stamp": "20250505T050505Z", "backup": BACKUP, "method": "snapshot-restore",
               "backup_kind": "dir", "learners": True},
              *({"event": "step_end", "step": k, "status": "done"} for k in steps[:2])]
    path = directory / f"{cluster}-20250505T050505Z.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


def fake_next_step(journal: Path) -> str | None:
    from etcdrescue.resume import find_unfinished

    found = find_unfinished(journal, "offline")
    assert found is not None
    return found.next_step


@sync
async def test_unfinished_journal_offers_resume_and_no_goes_on_fresh(
        offline_inventory: Path, canned_preflight: CannedPreflight) -> None:
    canned_preflight(False)
    journal = offline_inventory.parent / "journal"
    fake_unfinished_journal(journal)
    app = RescueApp(offline_inventory, BACKUP, journal_dir=journal)
    async with app.run_test(size=SIZE) as pilot:
        question = await resume_question(app, pilot)
        assert question == (f"An unfinished recovery of offline from 20250505T050505Z stopped at step "
                            f"{fake_next_step(journal)} (killed). Resume it?"), question
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, PreflightScreen) and app.screen.report is not None,
                         what="verdict")
        assert not app.screen.session.resuming  # type: ignore[attr-defined]
        assert app.screen.inv.seed.name == "master01.test"  # type: ignore[attr-defined]
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, PlanScreen), what="plan screen")
        plan = app.screen.plan  # type: ignore[attr-defined]
        assert plan.ctx.stamp != "20250505T050505Z" and plan.ctx.seed.name == "master01.test"


@sync
async def test_unfinished_journal_yes_resumes_with_the_journals_plan(
        offline_inventory: Path, canned_preflight: CannedPreflight) -> None:
    canned_preflight(False)
    journal = offline_inventory.parent / "journal"
    path = fake_unfinished_journal(journal)
    before = path.read_text(encoding="utf-8")
    app = RescueApp(offline_inventory, BACKUP, journal_dir=journal, dry_run=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="resume question")
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, PreflightScreen) and app.screen.report is not None,
                         what="verdict")
        assert app.screen.session.resuming  # type: ignore[attr-defined]
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, PlanScreen), what="plan screen")
        plan_screen = app.screen
        assert isinstance(plan_screen, PlanScreen)
        assert plan_screen.plan.ctx.stamp == "20250505T050505Z"
        assert plan_screen.plan.ctx.seed.name == "master02.test"
        assert plan_screen.query_one("#seed").disabled
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.phase is Phase.ENDED,
                         what="dry run to end")
        run = app.screen
        assert isinstance(run, RunScreen)
        keys = [s.key for s in run.plan.steps]
        assert list(run.record.outcomes) == keys[2:], "the resumed run starts at the journal's next step"
        assert [run.status[k] for k in keys[:2]] == [StepStatus.DONE, StepStatus.DONE]
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, SummaryScreen), what="summary")
        await pilot.press("q")
    assert path.read_text(encoding="utf-8") == before, "a dry run writes nothing to the journal"


FRESHNESS = {"master01.test": (100, 50), "master02.test": (180, 90), "master03.test": (120, 60)}


@pytest.mark.parametrize("accept_older", [True, False], ids=["accepted", "refused"])
@sync
async def test_the_wizard_keeps_the_seed_the_operator_named(
        offline_inventory: Path, canned_preflight: CannedPreflight, monkeypatch: pytest.MonkeyPatch,
        accept_older: bool) -> None:
    """`tui --seed` (and `--accept-older-seed`) reach the pre-flight's seed rule as they do from the CLI: an older
    seed is refused unless accepted, and never silently replaced by the freshest member."""
    from dataclasses import replace

    from etcdrescue.etcddata.freshness import Freshness

    canned_preflight(False)

    def survey_host(hosts: object, member: Member, *, uploaded: bool = False) -> HostFacts:
        index, revision = FRESHNESS[member.name]
        fresh = Freshness(consistent_index=index, revision=revision, db_term=None, wal_commit=index, wal_term=None,
                          wal_last_index=index)
        return replace(broken_facts(member), freshness=fresh)

    monkeypatch.setattr("etcdrescue.preflight.survey.survey_host", survey_host)
    app = RescueApp(offline_inventory, journal_dir=offline_inventory.parent / "journal", dry_run=True,
                    seed="master03.test", accept_older_seed=accept_older)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, InventoryScreen), what="inventory screen")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PreflightScreen) and app.screen.report is not None,
                         what="verdict")
        report = app.screen.report  # type: ignore[attr-defined]
        if not accept_older:
            assert not report.ok and "master03.test: its data is behind master02.test" in report.verdict
            return
        assert report.ok and report.seed == "master03.test", report.seed
        assert "accepted although" in report.seed_reason
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, PlanScreen), what="plan screen")
        assert app.screen.plan.ctx.seed.name == "master03.test"  # type: ignore[attr-defined]
