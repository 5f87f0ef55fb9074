"""The wizard: one coroutine walking typed screens, the engine doing all the work.

Each screen is a `Screen[T]` that ends in `dismiss(value)`; `wizard` awaits them
in order with `push_screen_wait`, so the whole procedure reads top to bottom
here and no screen knows which one comes next. Everything the procedure is
(pre-flight verdict, plan, steps, gates, journal) comes from the core; this
module only decides which screen to show with it.
"""

from __future__ import annotations

import os
from pathlib import Path

from textual import work
from textual.app import App
from textual.binding import Binding

from ..errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_REFUSED
from ..hosts import Hosts
from ..inventory import Inventory
from ..journal import Journal, default_dir
from ..plan import build_plan
from ..steps.base import Context, new_stamp
from .inventory import InventoryChoice, InventoryScreen
from .plan import PlanScreen
from .preflight import PreflightScreen
from .run import RunRecord, RunScreen
from .summary import SummaryScreen
from .widgets import ConfirmScreen, WizardStatus, update_status

EXIT_CODES = {"recovered": EXIT_OK, "planned": EXIT_OK, "aborted": EXIT_INTERRUPTED, "failed": EXIT_FAILED}


def secrets() -> dict[str, str | None]:
    """The same environment variables as the CLI: secrets never go on a command line."""
    return {"sudo_password": os.environ.get("ETCDRESCUE_SUDO_PASSWORD"),
            "passphrase": os.environ.get("ETCDRESCUE_KEY_PASSPHRASE")}


class RescueApp(App[int]):
    TITLE = "etcdrescue"
    BINDINGS = [Binding("ctrl+c", "request_quit", "Quit", priority=True),
                Binding("ctrl+q", "request_quit", "Quit", priority=True, show=False)]

    def __init__(self, inventory_path: str | Path | None = None, backup: str | None = None, rehearsal: bool = False,
                 journal_dir: Path | None = None, gate_timeout: float = 120, yes: bool = False, *,
                 method: str | None = None, seed: str | None = None, dry_run: bool = False) -> None:
        super().__init__()
        self.inventory_path = str(inventory_path or "")
        self.backup = backup or ""
        self.journal_dir = journal_dir
        self.gate_timeout = gate_timeout
        self.yes = yes
        self.method = method
        self.seed = seed
        self.status = WizardStatus(rehearsal=rehearsal, dry_run=dry_run)
        self.hosts: Hosts | None = None
        self.journal: Journal | None = None
        self.record: RunRecord | None = None

    def on_mount(self) -> None:
        self.wizard()

    @work(exclusive=True, group="wizard", exit_on_error=True)
    async def wizard(self) -> None:
        while True:
            choice = await self.push_screen_wait(
                InventoryScreen(self.inventory_path, self.backup, self.method, self.seed))
            if choice is None:
                self.exit_with(EXIT_REFUSED)
                return
            self.inventory_path, self.backup = choice.path, choice.backup or ""
            if await self.recover(choice):
                return

    async def recover(self, choice: InventoryChoice) -> bool:
        """Pre-flight, plan, run, summary. False: the operator went back to the inventory."""
        inv = choice.inventory
        while True:
            self.open_hosts(inv)
            assert self.hosts is not None
            report = await self.push_screen_wait(PreflightScreen(inv, self.hosts, choice.backup, choice.method))
            if report is None:
                return False
            ctx = Context(inv, choice.backup, choice.method, new_stamp(), gate_timeout=self.gate_timeout,
                          backup_kind=report.backup.kind if report.backup else "dir")
            plan = build_plan(ctx)
            picked = await self.push_screen_wait(PlanScreen(plan, dry_run=self.status.dry_run, ask=not self.yes))
            self.status.dry_run = picked.dry_run
            if picked.action == "reseed":
                inv = inv.with_seed(picked.seed)
                continue
            if picked.action != "start":
                continue
            if not picked.dry_run:
                found = tuple(v for v in secrets().values() if v)
                self.journal = Journal.create(self.journal_dir or default_dir(), inv.cluster, ctx.stamp, found)
            update_status(self, connection="ssh: connected" if not picked.dry_run else "dry run: read-only")
            self.record = await self.push_screen_wait(RunScreen(
                plan, self.hosts, self.journal, dry_run=picked.dry_run, ask=not self.yes,
                confirm_once=picked.confirm_once))
            self.close_journal()
            await self.push_screen_wait(SummaryScreen(self.record))
            self.exit_with(EXIT_CODES.get(self.record.status, EXIT_FAILED))
            return True

    def exit_with(self, code: int) -> None:
        """The process exit code is the CLI's: 0 recovered, 2 refused, 3 failed, 130 aborted."""
        self.exit(code, return_code=code)

    def open_hosts(self, inv: Inventory) -> None:
        """Hosts follow the inventory (seed first): gates query through `hosts.inv.seed`."""
        if self.hosts is not None and self.hosts.inv == inv:
            return
        if self.hosts is not None:
            self.hosts.close()
        self.hosts = Hosts(inv, **secrets())
        update_status(self, cluster=inv.cluster, profile=inv.profile.name, connection="ssh: not connected")

    def close_journal(self) -> None:
        if self.journal is not None:
            self.journal.close()
            self.journal = None

    def running_screen(self) -> RunScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, RunScreen) and screen.running:
                return screen
        return None

    def action_request_quit(self) -> None:
        run = self.running_screen()
        if run is None:
            self.exit_with(EXIT_INTERRUPTED if self.record is None else EXIT_CODES.get(self.record.status, EXIT_FAILED))
            return
        if any(isinstance(s, ConfirmScreen) and s.question.startswith("Quit") for s in self.screen_stack):
            return

        def answer(ok: bool | None) -> None:
            if ok:
                run.cancel.set()
                run.bridge.pause_requested.clear()
                self.exit_with(EXIT_INTERRUPTED)

        self.push_screen(ConfirmScreen(
            "Quit while the recovery is running?",
            "The engine stops after the current command and the journal records how far it got. Nothing is "
            "deleted; running the recovery again skips every step already done."), callback=answer)

    def on_unmount(self) -> None:
        self.close_journal()
        if self.hosts is not None:
            self.hosts.close()
