"""The wizard: one coroutine walking typed screens, the engine doing all the work.

Each screen is a `Screen[T]` that ends in `dismiss(value)`; `wizard` awaits them
in order with `push_screen_wait`, so the whole procedure reads top to bottom
here and no screen knows which one comes next. Everything the procedure is
(pre-flight verdict, plan, steps, gates, journal) comes from the core; this
module only decides which screen to show with it.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from textual import work
from textual.app import App
from textual.binding import Binding

from ..errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_REFUSED, RescueError
from ..hosts import Hosts
from ..inventory import Inventory
from ..journal import Journal, default_dir
from ..locks import LocalLock, RemoteLock
from ..plan import build_plan
from ..resume import Unfinished, find_unfinished, resumed_context
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
        self.local_lock: LocalLock | None = None

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
        """Pre-flight, plan, run, summary. False: the operator went back to the inventory.

        An unfinished run of this cluster in the journal dir is offered first: resuming it is
        the CLI's `--resume` (the journal's stamp, seed, backup and method, from its next step,
        in the same journal); declining it is `--fresh`.
        """
        inv, backup, method = choice.inventory, choice.backup, choice.method
        journal_dir = self.journal_dir or default_dir()
        unfinished = find_unfinished(journal_dir, inv.cluster)
        resumed: Context | None = None
        if unfinished is not None and await self.push_screen_wait(resume_question(unfinished, inv.cluster)):
            inv, resumed = resumed_context(unfinished, inv, self.gate_timeout)
            backup, method = resumed.backup, resumed.method
        else:
            unfinished = None
        while True:
            self.open_hosts(inv)
            assert self.hosts is not None
            report = await self.push_screen_wait(PreflightScreen(inv, self.hosts, backup, method,
                                                                 resuming=resumed is not None))
            if report is None:
                return False
            ctx = resumed or Context(inv, backup, method, new_stamp(), gate_timeout=self.gate_timeout,
                                     backup_kind=report.backup.kind if report.backup else "dir")
            plan = build_plan(ctx)
            picked = await self.push_screen_wait(PlanScreen(plan, dry_run=self.status.dry_run, ask=not self.yes,
                                                            fixed_seed=resumed is not None))
            self.status.dry_run = picked.dry_run
            if picked.action == "reseed" and resumed is None:
                inv = inv.with_seed(picked.seed)
                continue
            if picked.action != "start":
                continue
            remote_lock: RemoteLock | None = None
            if not picked.dry_run:
                remote_lock = await self.take_locks(inv.cluster, ctx.stamp, resuming=unfinished is not None)
                if remote_lock is None:
                    continue
                found = tuple(v for v in secrets().values() if v)
                self.journal = (Journal(unfinished.path, found) if unfinished is not None
                                else Journal.create(journal_dir, inv.cluster, ctx.stamp, found))
                self.journal.write("preflight", **report.journal_fields())
            update_status(self, connection="ssh: connected" if not picked.dry_run else "dry run: read-only")
            self.record = await self.push_screen_wait(RunScreen(
                plan, self.hosts, self.journal, dry_run=picked.dry_run, ask=not self.yes,
                confirm_once=picked.confirm_once, start_at=unfinished.next_step if unfinished else None,
                done=unfinished.done if unfinished else ()))
            self.close_journal()
            await self.release_locks(remote_lock, self.record.status == "recovered")
            await self.push_screen_wait(SummaryScreen(self.record))
            self.exit_with(EXIT_CODES.get(self.record.status, EXIT_FAILED))
            return True

    async def take_locks(self, cluster: str, stamp: str, *, resuming: bool) -> RemoteLock | None:
        """The CLI's locks: a local flock per cluster, and the lock file on the seed (a resumed run
        takes over the lock its own stamp left). None, after telling the operator, if either is held."""
        assert self.hosts is not None
        local = LocalLock((self.journal_dir or default_dir()) / "locks", cluster)
        remote = RemoteLock(self.hosts, stamp)
        try:
            local.acquire(stamp)
            self.local_lock = local
            await asyncio.to_thread(remote.acquire, resume_stamp=stamp if resuming else None)
        except RescueError as exc:
            self.release_local_lock()
            await self.push_screen_wait(ConfirmScreen(
                "Cannot start the recovery", f"{exc}\nNothing was changed.", yes="OK (y)", no="Back (n)"))
            return None
        return remote

    async def release_locks(self, remote: RemoteLock | None, ok: bool) -> None:
        """The local lock always goes; the seed's lock only after a recovery (as the CLI): after a failure
        or an abort it stays, naming this run's stamp, so only a resume of this run can take it over."""
        self.release_local_lock()
        if remote is not None and ok:
            try:
                await asyncio.to_thread(remote.release)
            except RescueError as exc:
                self.notify(f"could not release {remote.path} on {remote.host}: {exc}", severity="warning")

    def release_local_lock(self) -> None:
        if self.local_lock is not None:
            self.local_lock.release()
            self.local_lock = None

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
        self.release_local_lock()
        if self.hosts is not None:
            self.hosts.close()


def resume_question(u: Unfinished, cluster: str) -> ConfirmScreen:
    """Yes: resume the unfinished run (the CLI's --resume); No: a fresh run (--fresh)."""
    return ConfirmScreen(
        f"An unfinished recovery of {cluster} from {u.stamp} stopped at step {u.next_step} "
        f"({u.last_error}). Resume it?",
        f"Journal: {u.path}\nSteps done: {len(u.done)} of {len(u.steps)}; seed {u.seed}, "
        f"backup {u.backup or 'none'}, {u.method}.\nResuming re-checks every command before it runs, so "
        "nothing done is done again. No starts a fresh recovery and ignores this journal.",
        yes="Resume (y)", no="Fresh run (n)")
