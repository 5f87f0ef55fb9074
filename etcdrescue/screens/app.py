"""The wizard: one coroutine walking typed screens, the engine doing all the work.

Each screen is a `Screen[T]` that ends in `dismiss(value)`; `wizard` awaits them
in order with `push_screen_wait`, so the whole procedure reads top to bottom
here and no screen knows which one comes next. Everything the procedure is
(pre-flight verdict, plan, steps, gates, journal) comes from the core; this
module only decides which screen to show with it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.app import App
from textual.binding import Binding

from ..errors import EXIT_INTERRUPTED, EXIT_REFUSED, RescueError
from ..preflight.options import RecoveryOptions, RevisionOptions
from .inventory import InventoryChoice, InventoryScreen
from .widgets import ConfirmScreen, WizardStatus, update_status

if TYPE_CHECKING:
    from ..preflight.verdict import PreflightReport
    from ..resume import Unfinished
    from ..session import RecoverySession
    from .diagnose import DiagnoseChoice
    from .run import RunScreen, WizardRun


class RescueApp(App[int]):
    TITLE = "etcdrescue"
    BINDINGS = [Binding("ctrl+c", "request_quit", "Quit", priority=True),
                Binding("ctrl+q", "request_quit", "Quit", priority=True, show=False),
                Binding("f1", "toggle_keys", "Keys")]

    def __init__(self, inventory_path: str | Path | None = None, backup: str | None = None, rehearsal: bool = False,
                 journal_dir: Path | None = None, gate_timeout: float = 120, yes: bool = False, *,
                 method: str | None = None, seed: str | None = None, dry_run: bool = False,
                 etcd_tools: str | Path | None = None, revisions: RevisionOptions | None = None,
                 accept_older_seed: bool = False, procedure: str | None = None, target: str | None = None) -> None:
        super().__init__()
        self.inventory_path = str(inventory_path or "")
        self.backup = backup or ""
        self.yes = yes
        self.options = RecoveryOptions(self.inventory_path, backup=backup, method=method, seed=seed,
                                       accept_older_seed=accept_older_seed, etcd_tools=etcd_tools,
                                       revisions=revisions or RevisionOptions(), journal_dir=journal_dir,
                                       gate_timeout=gate_timeout, target=target)
        """The command line's options; the inventory form's answers replace its inventory, backup and method."""
        if procedure is not None:
            self.options = replace(self.options, procedure=procedure)
        self.diagnosed = procedure is not None or seed is not None
        """The procedure is the operator's own (`tui --procedure`, or `--seed`, a recovery's option): no diagnosis
        screen before its pre-flight. A backup, given here or in the inventory form, means a recovery too."""
        self.status = WizardStatus(rehearsal=rehearsal, dry_run=dry_run)
        self.session: RecoverySession | None = None
        self.record: WizardRun | None = None

    def on_mount(self) -> None:
        self.wizard()

    @work(exclusive=True, group="wizard", exit_on_error=True)
    async def wizard(self) -> None:
        while True:
            choice = await self.push_screen_wait(
                InventoryScreen(self.inventory_path, self.backup, self.options.method, self.options.seed,
                                str(self.options.etcd_tools or "")))
            if choice is None:
                self.exit_with(EXIT_REFUSED)
                return
            self.inventory_path, self.backup = choice.path, choice.backup or ""
            self.options = replace(self.options, etcd_tools=choice.etcd_tools)
            if await self.recover(choice):
                return

    async def recover(self, choice: InventoryChoice) -> bool:
        """Pre-flight, plan, run, summary. False: the operator went back to the inventory.

        An unfinished run of this cluster in the journal dir is offered first: resuming it is
        the CLI's `--resume` (the journal's stamp, seed, backup and method, from its next step,
        in the same journal); declining it is `--fresh`.
        """
        from ..procedures.quorum import QUORUM_RECOVERY
        from ..session import RecoverySession
        from .plan import PlanScreen
        from .preflight import PreflightScreen
        from .run import RunOutcome, RunScreen
        from .summary import SummaryScreen

        if self.session is not None:
            self.session.close()
        options = replace(self.options, inventory=choice.inventory, backup=choice.backup,
                          method=choice.method.value if choice.backup else None)
        try:
            session = self.session = RecoverySession.open(options)
            if not self.diagnosed and not choice.backup:
                chosen = await self.diagnose(session, choice)
                if chosen is None:
                    return False
                if (chosen.procedure, chosen.target) != (options.procedure, options.target):
                    session.close()
                    session = self.session = RecoverySession.open(
                        replace(options, procedure=chosen.procedure, target=chosen.target))
        except RescueError as exc:
            await self.push_screen_wait(ConfirmScreen(
                "Cannot start", f"{exc}\nNothing was changed.", yes="OK (y)", no="Back (n)"))
            return False
        if not self.status.dry_run and not await self.locked(session.lock_here):
            return False
        unfinished = session.find_unfinished()
        if unfinished is not None and await self.push_screen_wait(resume_question(unfinished, session.inv.cluster)):
            session.resume(unfinished)
        while True:
            inv = session.inv
            update_status(self, cluster=inv.cluster, profile=inv.platform.name, connection="ssh: not connected")
            if not self.status.dry_run and not await self.locked(
                    session.lock_hosts, breaking=partial(session.lock_hosts, break_lock=True)):
                return False
            if not await self.prepare(session):
                await asyncio.to_thread(session.release)
                return False
            report = await self.push_screen_wait(PreflightScreen(session))
            if report is None:
                await asyncio.to_thread(session.release)
                return False
            plan = session.plan(report)
            shown = time.monotonic()
            fixed = session.resuming or session.procedure is not QUORUM_RECOVERY
            picked = await self.push_screen_wait(PlanScreen(plan, dry_run=self.status.dry_run, ask=not self.yes,
                                                            fixed_seed=fixed, documents=session.journal_dir))
            if picked.action == "start" and not picked.dry_run:
                session.operator_waited("plan screen (reading the plan, then start)", time.monotonic() - shown)
            self.status.dry_run = picked.dry_run
            if picked.action == "reseed" and not session.resuming:
                older = behind(report, picked.seed)
                if older and not await self.push_screen_wait(ConfirmScreen(
                        f"{picked.seed}'s data is older than {older}", f"A quorum restore from {picked.seed} loses "
                        f"the writes only {older} holds. Restore from {picked.seed} anyway?")):
                    continue
                session.reseed(picked.seed, accept_older=bool(older))
                continue
            if picked.action != "start":
                continue
            if not picked.dry_run and not (await self.locked(session.lock_hosts,
                                                             breaking=partial(session.lock_hosts, break_lock=True))
                                           and await self.locked(partial(session.start, plan, report))):
                continue
            update_status(self, connection="ssh: connected" if not picked.dry_run else "dry run: read-only")
            self.record = await self.push_screen_wait(RunScreen(
                session, plan, dry_run=picked.dry_run, ask=not self.yes, confirm_once=picked.confirm_once,
                done=unfinished.done if session.resuming and unfinished else ()))
            await self.finish(session, self.record.status is RunOutcome.RECOVERED)
            if self.record.status is RunOutcome.REFUSED:
                await self.push_screen_wait(ConfirmScreen(
                    "The cluster changed since the pre-flight", f"{self.record.error}\nNothing was changed. The "
                    "pre-flight runs again.", yes="OK (y)", no="OK (n)"))
                session.again()
                continue
            await self.push_screen_wait(SummaryScreen(self.record))
            self.exit_with(self.record.exit_code)
            return True

    async def diagnose(self, session: RecoverySession, choice: InventoryChoice) -> DiagnoseChoice | None:
        """The diagnosis first, unless a backup was given (that is a recovery's): it picks the procedure."""
        from .diagnose import DiagnoseScreen

        update_status(self, cluster=session.inv.cluster, profile=session.inv.platform.name,
                      connection="ssh: not connected")
        if not await self.prepare(session):
            return None
        return await self.push_screen_wait(DiagnoseScreen(session, str(choice.path or session.inv.cluster)))

    async def prepare(self, session: RecoverySession) -> bool:
        """`--etcd-tools` onto the hosts before the survey; False, after telling the operator, if it failed."""
        try:
            await asyncio.to_thread(session.prepare)
        except RescueError as exc:
            await self.push_screen_wait(ConfirmScreen(
                "Cannot put the etcd tools on the hosts", f"{exc}", yes="OK (y)", no="Back (n)"))
            return False
        return True

    async def locked(self, take: Callable[[], object], *,
                     breaking: Callable[[], list[str]] | None = None) -> bool:
        """`take` a lock (or open the journal) off the event loop; False, after telling the operator, if refused.
        Where every holder is gone (`LockHeld.stale`) and `breaking` takes the locks over, the operator may break
        them here: the wizard has no `--break-lock` to rerun with."""
        from ..locks import LockHeld

        what = self.session.procedure.name if self.session else "the run"
        try:
            await asyncio.to_thread(take)
            return True
        except RescueError as exc:
            refused: RescueError = exc
        if isinstance(refused, LockHeld) and refused.stale and breaking is not None and await self.push_screen_wait(
                ConfirmScreen("A stale lock holds this cluster", f"{refused}\nBreak it and go on? Each lock file is "
                              "moved aside (lock.broken-<stamp>), not removed.", yes="Break it (y)", no="Back (n)")):
            try:
                said = await asyncio.to_thread(breaking)
            except RescueError as exc:
                refused = exc
            else:
                for line in said:
                    self.notify(line, title="lock broken", timeout=10)
                return True
        await self.push_screen_wait(ConfirmScreen(
            f"Cannot start {what}", f"{refused}\nNothing was changed.", yes="OK (y)", no="Back (n)"))
        return False

    async def finish(self, session: RecoverySession, ok: bool) -> None:
        try:
            await asyncio.to_thread(session.finish, ok)
        except RescueError as exc:
            self.notify(f"could not release the seed's lock: {exc}", severity="warning")

    def exit_with(self, code: int) -> None:
        """The process exit code is the CLI's: 0 recovered, 2 refused, 3 failed, 130 aborted."""
        self.exit(code, return_code=code)

    def running_screen(self) -> RunScreen | None:
        if self.session is None:
            return None
        from .run import RunScreen

        for screen in self.screen_stack:
            if isinstance(screen, RunScreen) and screen.running:
                return screen
        return None

    def action_toggle_keys(self) -> None:
        """Every key of the current screen with what it does: the footer has room for the keys, not more."""
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def action_request_quit(self) -> None:
        run = self.running_screen()
        if run is None:
            self.exit_with(EXIT_INTERRUPTED if self.record is None else self.record.exit_code)
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
        if self.session is not None:
            self.session.close()


def behind(report: PreflightReport, seed: str) -> str:
    """The member whose data is newer than `seed`'s, for a quorum restore ("" when none is, or a backup is used)."""
    from ..etcddata.freshness import freshest

    if report.backup is not None:
        return ""
    fresh = {h.name: h.freshness for h in report.hosts if h.freshness is not None}
    top = freshest(fresh)
    return top[0] if top and seed in fresh and seed not in top else ""


def resume_question(u: Unfinished, cluster: str) -> ConfirmScreen:
    """Yes: resume the unfinished run (the CLI's --resume); No: a fresh run (--fresh)."""
    return ConfirmScreen(
        f"An unfinished recovery of {cluster} from {u.stamp} stopped at step {u.next_step} "
        f"({u.last_error}). Resume it?",
        f"Journal: {u.path}\nSteps done: {len(u.done)} of {len(u.steps)}; seed {u.seed}, "
        f"backup {u.backup or 'none'}, {u.method}.\nResuming re-checks every command before it runs, so "
        "nothing done is done again. No starts a fresh recovery and ignores this journal.",
        yes="Resume (y)", no="Fresh run (n)")
