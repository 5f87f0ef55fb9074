"""One recovery of one cluster, for every front end: the CLI's `recover`, the wizard and `rehearse`.

The order is fixed here: this machine's lock → find an unfinished journal (resume) → every member's
lock → pre-flight → plan → (confirmations) → journal → engine run, whose first change waits for a fresh
look → release. A dry run, `check` and `runbook` take no lock. Front ends keep only their UI policy
(refusing without a terminal, typing the cluster name, asking whether to resume) and call these methods
in order.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from .backups.bastion import BastionBackup, is_bastion
from .backups.bastion import check as check_bastion
from .engine import Callbacks, Engine, Guard, RunResult
from .errors import InputError, RescueError, StalePicture
from .inventory.model import Inventory, load_inventory
from .journal import Journal, default_dir
from .locks import HostLocks, LocalLock
from .model import BackupKind, Context, Method, Revisions, Step, new_stamp
from .plan import Plan, build_plan
from .platform.release import FlagRewrite
from .platform.tools import EtcdTools
from .preflight.options import RecoveryOptions, RevisionOptions
from .preflight.picture import Picture, changes, drift
from .preflight.survey import PreflightProgress, Uploaded, run_preflight
from .preflight.verdict import BackupFacts, PreflightReport, SeedChoice
from .procedures import DEFAULT, QUORUM_RECOVERY, named
from .procedures.base import Procedure
from .resume import Unfinished, find_unfinished
from .ssh.hosts import Hosts
from .upload import LocalTools, find_local, install

if TYPE_CHECKING:
    from .diagnose.verdict import Diagnosis

SUDO_PASSWORD_ENV = "ETCDRESCUE_SUDO_PASSWORD"
PASSPHRASE_ENV = "ETCDRESCUE_KEY_PASSPHRASE"


@dataclass(frozen=True)
class Secrets:
    """Secrets come from the environment only: never a command-line argument, which `ps` shows."""

    sudo_password: str | None = None
    passphrase: str | None = None

    @classmethod
    def from_env(cls) -> Secrets:
        return cls(os.environ.get(SUDO_PASSWORD_ENV) or None, os.environ.get(PASSPHRASE_ENV) or None)

    @property
    def values(self) -> tuple[str, ...]:
        """What the journal masks."""
        return tuple(v for v in (self.sudo_password, self.passphrase) if v)


def check_options(inv: Inventory, backup: str | None, method: str | None) -> tuple[str | None, Method]:
    """The backup and method as given (a `bastion:` file is checked by `open`, it takes a while)."""
    if method and not backup:
        raise InputError("--method applies to a backup; without --backup the seed's own data is used "
                         "(quorum restore with --force-new-cluster)")
    if is_bastion(backup):
        if method == Method.FORCE_NEW_CLUSTER.value:
            raise InputError("--method force-new-cluster needs a data-dir copy on the seed; a bastion: backup is a "
                             "snapshot file (restored with snapshot-restore)")
        return backup, Method.SNAPSHOT_RESTORE
    if backup and not backup.startswith("/"):
        raise InputError(f"--backup must be an absolute path on {inv.seed.name} (or bastion:PATH for a file on this "
                         f"machine), got {backup!r}")
    chosen = Method(method) if method else Method.SNAPSHOT_RESTORE if backup else Method.FORCE_NEW_CLUSTER
    return backup or None, chosen


def plan_commands(plan: Plan) -> list[tuple[str, list[tuple[str, str]]]]:
    """What a plan would do, step by step: the same for two plans that change the same things."""
    return [(s.key, [(c.host, str(c.script)) for c in s.commands]) for s in plan.steps]


class RecoverySession(Guard):
    """One recovery of one cluster. Front ends get one from `open` only."""

    @classmethod
    def open(cls, options: RecoveryOptions, *, secrets: Secrets | None = None) -> RecoverySession:
        """The session of `options`, checked before any connection: the inventory (seed first), the backup and
        the method, `--etcd-tools`, a fixed stamp."""
        inv = options.inventory if isinstance(options.inventory, Inventory) else load_inventory(options.inventory)
        inv = inv.with_seed(options.seed)
        backup, method = check_options(inv, options.backup, options.method)
        bastion = check_bastion(backup, inv, any_cluster=options.any_cluster) if is_bastion(backup) else None
        if bastion is not None:
            backup = bastion.seed_path
        tools = find_local(options.etcd_tools) if options.etcd_tools else None
        if options.target is not None and options.target not in {m.name for m in inv.members}:
            raise InputError(f"no member {options.target!r} in the inventory: its members are "
                             f"{', '.join(m.name for m in inv.members)}")
        if options.stamp is not None and not all(ch.isalnum() or ch in "-_." for ch in options.stamp):
            raise InputError(f"--stamp may hold letters, digits, '-', '_' and '.', got {options.stamp!r}")
        procedure = named(options.procedure)
        if procedure.platforms and inv.platform.name not in procedure.platforms:
            raise InputError(f"{procedure.name} is for {' and '.join(procedure.platforms)} control planes; this "
                             f"inventory's profile is {inv.platform.name}")
        session = cls(inv, backup=backup, method=method, journal_dir=options.journal_dir,
                      procedure=procedure,
                      gate_timeout=options.gate_timeout, secrets=secrets, etcd_tools=tools, learners=options.learners,
                      seed=SeedChoice(explicit=options.seed is not None, accept_older=options.accept_older_seed),
                      revisions=options.revisions, target=options.target, quota=options.quota, force=options.force)
        if options.fix_flags and procedure.name != DEFAULT:
            raise InputError(f"--fix-flags goes with the quorum recovery, not {procedure.name}")
        session.fix_flags = options.fix_flags
        session.any_cluster = options.any_cluster
        session.bastion = bastion
        if options.stamp is not None:
            session.stamp = options.stamp
        if not isinstance(options.inventory, Inventory):
            session.inventory_file = str(options.inventory)
        return session

    def __init__(self, inv: Inventory, *, backup: str | None, method: Method, journal_dir: Path | None = None,
                 gate_timeout: float = 120.0, secrets: Secrets | None = None, etcd_tools: LocalTools | None = None,
                 learners: bool = True, seed: SeedChoice | None = None,
                 revisions: RevisionOptions | None = None, procedure: Procedure = QUORUM_RECOVERY,
                 target: str | None = None, quota: int | None = None, force: bool = False) -> None:
        self.inv = inv
        self.procedure = procedure
        self.backup = backup
        self.method = method
        self.journal_dir = journal_dir or default_dir()
        self.gate_timeout = gate_timeout
        self.secrets = secrets or Secrets.from_env()
        self.etcd_tools = etcd_tools
        self.learners = learners
        self.seed_choice = seed or SeedChoice()
        self.revision_options = revisions or RevisionOptions()
        self.target = target
        self.inventory_file = "INV"
        """The inventory's file as the operator named it, for the commands a diagnosis suggests."""
        """The member the procedure acts on (`replace MEMBER`); None for the quorum recovery."""
        self.quota = quota
        self.force = force
        self.fix_flags = False
        """`recover --fix-flags`: the quorum recovery's rules warn about (and its plan rewrites) refused flags."""
        self.any_cluster = False
        """The backup's own member list is not checked against the inventory (a drill's lab)."""
        self.bastion: BastionBackup | None = None
        """`--backup bastion:PATH`: the file on this machine, checked; the plan copies it to `backup` first."""
        self.uploaded: Uploaded | None = None
        """The tools `prepare` put on every host (`--etcd-tools`)."""
        self.unfinished: Unfinished | None = None
        """Set by `resume`: the interrupted run this session continues."""
        self._hosts: Hosts | None = None
        self.journal: Journal | None = None
        self.stamp = new_stamp()
        """This run's stamp: its locks, its journal and the names of what it moves aside."""
        self.local_lock = LocalLock(self.journal_dir / "locks", inv.cluster)
        self.host_locks: HostLocks | None = None
        self.report: PreflightReport | None = None
        """The pre-flight the plan rests on; the fresh look compares a new survey with it."""
        self.planned: Plan | None = None
        self._engine: Engine | None = None
        self._changed_before = False
        """An earlier engine of this session (before a retry) changed a host."""
        self._waits: list[tuple[str, float]] = []
        """Operator waits before the journal opened (`operator_waited`)."""

    # -- resume -----------------------------------------------------------------------
    def find_unfinished(self) -> Unfinished | None:
        return find_unfinished(self.journal_dir, self.inv.cluster)

    def resume(self, unfinished: Unfinished) -> None:
        """Continue `unfinished`, in its own journal (of the same procedure). Everything that names what it
        did comes from its journal, not from the options now: the stamp ("aside" names), the seed, the backup,
        the method, the backup kind, learners and the revision path."""
        if unfinished.procedure != self.procedure.name:
            raise InputError(f"the unfinished run in {unfinished.path} is a {unfinished.procedure}, not a "
                             f"{self.procedure.name}: resume it with the command that started it")
        self.inv = self.inv.with_seed(unfinished.seed)
        self.backup, self.method = unfinished.backup, Method(unfinished.method)
        self.learners, self.stamp = unfinished.learners, unfinished.stamp
        if self.bastion is not None and self.backup != self.bastion.seed_path:
            self.bastion = None
        self.unfinished = unfinished

    # -- locks ------------------------------------------------------------------------
    def lock_here(self) -> None:
        """This machine's lock of the cluster: first of all, so a second run here is refused before it reads
        anything (its journals included: a live run is never offered for resuming)."""
        if not self.local_lock.held:
            self.local_lock.acquire(self.stamp)

    def lock_hosts(self, *, break_lock: bool = False) -> list[str]:
        """Every member's lock (this machine's first); one line per lock broken. Before the pre-flight."""
        self.lock_here()
        if self.host_locks is not None:
            return []
        locks = HostLocks(self.hosts, self.stamp)
        try:
            broken = locks.acquire(break_lock=break_lock, resume_stamp=self.stamp if self.resuming else None)
        except BaseException:
            self.local_lock.release()
            raise
        self.host_locks = locks
        return broken

    def again(self) -> None:
        """After a run refused before its first change (locks released): the next attempt is a new run."""
        if not self.resuming:
            self.stamp = new_stamp()
        self.report = self.planned = self._engine = None
        self._changed_before = False

    @property
    def locked(self) -> bool:
        return self.host_locks is not None

    def release(self) -> None:
        """Every lock goes: for a run that changed nothing (refused, declined, interrupted before its first change)."""
        if self.host_locks is not None:
            locks, self.host_locks = self.host_locks, None
            locks.release()
        self.local_lock.release()

    @property
    def resuming(self) -> bool:
        return self.unfinished is not None

    @property
    def start_at(self) -> str | None:
        return self.unfinished.next_step if self.unfinished else None

    # -- hosts, pre-flight, plan -------------------------------------------------------
    @property
    def hosts(self) -> Hosts:
        """The inventory's hosts (each connects on its first command), reopened when the seed changes."""
        if self._hosts is not None and self._hosts.inv != self.inv:
            self._hosts.close()
            self._hosts = None
        if self._hosts is None:
            self._hosts = Hosts(self.inv, sudo_password=self.secrets.sudo_password,
                                passphrase=self.secrets.passphrase)
        return self._hosts

    def reseed(self, name: str, *, accept_older: bool = False) -> None:
        """The operator's own seed (the wizard's seed selector, as `--seed`)."""
        if self.resuming:
            raise InputError("a resumed recovery keeps the seed of the run it continues")
        self.rebind(self.inv.with_seed(name))
        self.seed_choice = SeedChoice(explicit=True, accept_older=accept_older)

    def prepare(self) -> None:
        """Upload `--etcd-tools` to every host (once per session): the survey then runs with them."""
        if self.etcd_tools is not None and self.uploaded is None:
            self.uploaded = install(self.hosts, self.etcd_tools)
            self.use_tools(self.uploaded.tools)

    def use_tools(self, tools: EtcdTools) -> None:
        """The inventory with the etcd tools every command line uses."""
        self.rebind(replace(self.inv, platform=replace(self.inv.platform, tools=tools)))

    def rebind(self, inv: Inventory) -> None:
        """Another view of the same members (seed first, tools): the hosts stay connected."""
        self.inv = inv
        if self._hosts is not None:
            self._hosts.inv = inv

    def preflight(self, progress: PreflightProgress | None = None) -> PreflightReport:
        """The read-only survey and its verdict (`progress` hears each host and the backup as they answer)."""
        self.report = self.survey(progress)
        return self.report

    def diagnose(self, inventory_file: str | None = None) -> Diagnosis:
        """What is wrong with each member and which procedure fits: read-only, no lock (`etcdrescue diagnose`,
        the wizard's first look)."""
        from .diagnose.run import run_diagnosis

        try:
            self.prepare()
        except RescueError as exc:
            raise InputError(f"cannot put the etcd tools on the hosts: {exc}") from None
        return run_diagnosis(self.hosts, uploaded=self.uploaded, inventory_file=inventory_file or self.inventory_file)

    def advice(self) -> list[str]:
        """After a refused pre-flight: the procedure the diagnosis names instead, and how to run it ([] when it
        names this one, or for a resumed run, which finishes what it started)."""
        if self.resuming:
            return []
        try:
            found = self.diagnose()
        except RescueError:
            return []
        if found.procedure.value == self.procedure.name:
            return []
        members = f" ({', '.join(found.members)})" if found.members else ""
        return [f"diagnose says: {found.procedure.value}{members}", *(f"next: {s}" for s in found.next_steps)]

    def survey(self, progress: PreflightProgress | None = None) -> PreflightReport:
        started = time.time()
        try:
            self.prepare()
        except RescueError as exc:
            raise InputError(f"cannot put the etcd tools on the hosts: {exc}") from None
        return replace(run_preflight(self.hosts, backup=self.backup, method=self.method, resuming=self.resuming,
                                     uploaded=self.uploaded, seed=self.seed_choice, revisions=self.revision_options,
                                     progress=progress, rules=self.rules,
                                     cluster=self.procedure.needs_cluster, target=self.target,
                                     identity=not self.any_cluster, staged=self.staged_facts()),
                       started=started)

    @property
    def rules(self) -> Callable[..., PreflightReport]:
        """The procedure's pre-flight rules, with the operator's `force` and `quota` where it takes them."""
        judge = self.procedure.judge
        if self.fix_flags:
            return partial(judge, fix_flags=True)
        return partial(judge, force=self.force, quota=self.quota) if self.procedure.takes_options else judge

    def staged_facts(self) -> BackupFacts | None:
        """The bastion file as the pre-flight sees a backup: at its place on the seed, a snapshot file."""
        b = self.bastion
        if b is None or self.backup is None:
            return None
        return BackupFacts(self.backup, kind=BackupKind.FILE, size_kb=b.size // 1024, mtime=int(b.mtime),
                           snapshot=b.snapshot)

    def plan(self, report: PreflightReport) -> Plan:
        """The plan for a report that passed: with the tools it chose, on every host. The fresh look compares
        with this report."""
        self.report = report
        if report.seed != self.inv.seed.name:
            self.rebind(self.inv.with_seed(report.seed))
        if report.tools is not None:
            self.use_tools(report.tools)
        self.planned = build_plan(self.context(report.backup_kind, report.revisions, fixes=report.fixes,
                                               etcd=report.seed_etcd), self.procedure)
        return self.planned

    def context(self, backup_kind: BackupKind, revisions: Revisions, *,
                fixes: tuple[tuple[str, FlagRewrite], ...] = (), etcd: str | None = None) -> Context:
        """The only place a Context is built: a resumed run's comes from its journal. `fixes` and `etcd` (the
        version the seed's manifest runs; the member add's retries fit it) as the pre-flight read them."""
        u = self.unfinished
        return Context(self.inv, self.backup, self.method, self.stamp, gate_timeout=self.gate_timeout,
                       backup_kind=u.backup_kind if u else backup_kind, learners=self.learners,
                       revisions=u.revisions if u else revisions, target=self.target, quota=self.quota,
                       bastion=self.bastion.copy if self.bastion else None,
                       fixes=u.fixes if u and u.fixes else fixes, etcd=etcd)

    # -- the fresh look ---------------------------------------------------------------
    def before_step(self) -> None:
        if self.host_locks is not None:
            self.host_locks.renew()

    def before_first_change(self) -> None:
        """The session's first change only: after it (a retried step) the cluster is as this run left it."""
        if not self._changed_before:
            self.fresh_look()

    def fresh_look(self) -> None:
        """Survey again and refuse (`StalePicture`, nothing changed) when the verdict or the plan would differ.

        Runs immediately before the first change, so every confirmation before it (the cluster name, the
        stop dialog) and however long it waited is covered: what the operator agreed to is what still holds.
        """
        before, planned = self.report, self.planned
        if before is None or planned is None:
            raise InputError("no pre-flight to compare with: run the pre-flight first")
        age = time.time() - (before.started or time.time())
        again = self.survey()
        was, now = Picture.of(before, resuming=self.resuming), Picture.of(again, resuming=self.resuming)
        diff, drifted = changes(was, now), drift(was, now)
        if not diff and not self.resuming and again.ok:
            rebuilt = build_plan(self.context(again.backup_kind, again.revisions, fixes=again.fixes,
                                              etcd=again.seed_etcd), self.procedure)
            if plan_commands(rebuilt) != plan_commands(planned):
                diff = ["the plan built from it differs"]
        if self.journal is not None:
            self.journal.write("fresh_look", age=round(age, 1), changes=diff, drift=drifted)
        if diff:
            raise StalePicture(f"the cluster changed since the pre-flight {age:.0f}s ago: "
                               f"{'; '.join(diff + drifted)}; nothing changed: look again")

    # -- the run ----------------------------------------------------------------------
    def start(self, plan: Plan, report: PreflightReport) -> Journal:
        """Open the journal (the locks are held since before the pre-flight) and record the pre-flight in it."""
        if not self.locked:
            raise InputError("the recovery's locks are not held: take them before the pre-flight")
        secrets = self.secrets.values
        self.journal = (Journal(self.unfinished.path, secrets) if self.unfinished is not None
                        else Journal.create(self.journal_dir, self.inv.cluster, plan.ctx.stamp, secrets))
        self.journal.write("preflight", **report.journal_fields())
        for what, seconds in self._waits:
            self.journal.write("operator_wait", what=what, seconds=round(seconds, 3))
        self._waits = []
        return self.journal

    def operator_waited(self, what: str, seconds: float) -> None:
        """A front end held the run for the operator (a prompt, a dialog): journaled, so the report can tell the
        operator's time from the tool's; kept until the journal opens when it came before."""
        if self.journal is not None:
            self.journal.write("operator_wait", what=what, seconds=round(seconds, 3))
        else:
            self._waits.append((what, seconds))

    def engine(self, plan: Plan, callbacks: Callbacks, *, dry_run: bool = False,
               cancel: threading.Event | None = None) -> Engine:
        """A real run's engine checks the locks before each step and looks again before its first change."""
        self._changed_before = self.changed
        self._engine = Engine(plan, self.hosts, journal=None if dry_run else self.journal, callbacks=callbacks,
                              dry_run=dry_run, cancel=cancel, guard=None if dry_run else self)
        return self._engine

    def run(self, engine: Engine) -> RunResult:
        return engine.run(start_at=self.start_at)

    @property
    def changed(self) -> bool:
        """This session changed a host (a mutating command was sent)."""
        return self._changed_before or (self._engine is not None and self._engine.changed)

    def finish(self, ok: bool) -> bool:
        """The journal closes and the local lock goes; the members' locks after a recovery, or after a run that
        changed nothing. After a failure or an abort mid-way they stay, naming this run's stamp, so only a resume
        of this run takes them over. True when the members' locks were released."""
        if self.journal is not None:
            self.journal.close()
            self.journal = None
        if ok or self.unchanged:
            self.release()
            return True
        self.local_lock.release()
        return False

    @property
    def unchanged(self) -> bool:
        """Nothing on any host is this session's doing, nor an earlier run's it resumes: the locks may go."""
        return not self.changed and not self.resuming

    def close(self) -> None:
        """The end of the session: a lock still held here changed nothing (else `finish` kept it) and goes."""
        if self.journal is not None:
            self.journal.close()
            self.journal = None
        if self.unchanged:
            with contextlib.suppress(RescueError):  # a host gone: its lock names this run, and shows stale
                self.release()
        self.local_lock.release()
        if self._hosts is not None:
            self._hosts.close()
            self._hosts = None


def failure_lines(exc: RescueError, step: Step | None, log_lines: int = 20) -> list[str]:
    """After a failed step: the members' last etcd log lines and how to undo the step by hand."""
    out = []
    for name, log in getattr(exc, "logs", {}).items():
        out.append(f"last etcd log lines on {name}:")
        out += [f"  | {line}" for line in str(log).splitlines()[-log_lines:]]
    if step is not None and (step.undo or step.undo_note):
        out.append(f"to undo step {step.key} instead:")
        out += [f"  {c.host}$ {c.script}   # {c.purpose}" for c in step.undo]
        if step.undo_note:
            out.append(f"  {step.undo_note}")
    return out
