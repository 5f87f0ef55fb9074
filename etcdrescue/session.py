"""One recovery of one cluster, for every front end: the CLI's `recover`, the wizard and `rehearse`.

The order is fixed here: open hosts → find an unfinished journal (resume) → pre-flight → plan →
locks → journal → engine run → release. Front ends keep only their UI policy (refusing without a
terminal, typing the cluster name, asking whether to resume) and call these methods in order.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from .engine import Callbacks, Engine, RunResult
from .errors import InputError, RescueError
from .hosts import Hosts
from .inventory import Inventory, load_inventory
from .journal import Journal, default_dir
from .locks import LocalLock, RemoteLock
from .model import Context, Method, Step, new_stamp
from .plan import Plan, build_plan
from .platform.tools import EtcdTools
from .preflight.options import RevisionOptions
from .preflight.survey import Uploaded, run_preflight
from .preflight.verdict import PreflightReport, SeedChoice
from .resume import Unfinished, find_unfinished, resumed_context
from .upload import LocalTools, install

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


def choose(inventory: str | Path, backup: str | None, method: str | None, seed: str | None
           ) -> tuple[Inventory, str | None, Method]:
    """The common options, checked before any connection: inventory (seed first), backup, method."""
    inv = load_inventory(inventory).with_seed(seed)
    return (inv, *check_options(inv, backup, method))


def check_options(inv: Inventory, backup: str | None, method: str | None) -> tuple[str | None, Method]:
    if method and not backup:
        raise InputError("--method applies to a backup; without --backup the seed's own data is used "
                         "(quorum restore with --force-new-cluster)")
    if backup and not backup.startswith("/"):
        raise InputError(f"--backup must be an absolute path on {inv.seed.name}, got {backup!r}")
    chosen = Method(method) if method else Method.SNAPSHOT_RESTORE if backup else Method.FORCE_NEW_CLUSTER
    return backup or None, chosen


class RecoverySession:
    def __init__(self, inv: Inventory, *, backup: str | None, method: Method, journal_dir: Path | None = None,
                 gate_timeout: float = 120.0, secrets: Secrets | None = None, etcd_tools: LocalTools | None = None,
                 learners: bool = True, seed: SeedChoice | None = None,
                 revisions: RevisionOptions | None = None) -> None:
        self.inv = inv
        self.backup = backup
        self.method = method
        self.journal_dir = journal_dir or default_dir()
        self.gate_timeout = gate_timeout
        self.secrets = secrets or Secrets.from_env()
        self.etcd_tools = etcd_tools
        self.learners = learners
        self.seed_choice = seed or SeedChoice()
        self.revision_options = revisions or RevisionOptions()
        self.uploaded: Uploaded | None = None
        """The tools `prepare` put on every host (`--etcd-tools`)."""
        self.unfinished: Unfinished | None = None
        """Set by `resume`: the interrupted run this session continues."""
        self.resumed: Context | None = None
        self._hosts: Hosts | None = None
        self.journal: Journal | None = None
        self.local_lock: LocalLock | None = None
        self.remote_lock: RemoteLock | None = None

    # -- resume -----------------------------------------------------------------------
    def find_unfinished(self) -> Unfinished | None:
        return find_unfinished(self.journal_dir, self.inv.cluster)

    def resume(self, unfinished: Unfinished) -> None:
        """Continue `unfinished`: its stamp, seed, backup and method, in its own journal."""
        self.inv, self.resumed = resumed_context(unfinished, self.inv, self.gate_timeout)
        self.backup, self.method = self.resumed.backup, self.resumed.method
        self.unfinished = unfinished

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
        if self.resumed is not None:
            self.resumed = replace(self.resumed, inv=inv)

    def preflight(self) -> PreflightReport:
        started = time.time()
        self.prepare()
        return replace(run_preflight(self.hosts, backup=self.backup, method=self.method, resuming=self.resuming,
                             uploaded=self.uploaded, seed=self.seed_choice, revisions=self.revision_options),
                       started=started)

    def plan(self, report: PreflightReport) -> Plan:
        """The plan for a report that passed: with the tools it chose, on every host."""
        if report.seed != self.inv.seed.name:
            self.rebind(self.inv.with_seed(report.seed))
        if report.tools is not None:
            self.use_tools(report.tools)
        ctx = self.resumed or Context(self.inv, self.backup, self.method, new_stamp(), gate_timeout=self.gate_timeout,
                                      backup_kind=report.backup_kind, learners=self.learners,
                                      revisions=report.revisions)
        return build_plan(ctx)

    # -- the run ----------------------------------------------------------------------
    def start(self, plan: Plan, report: PreflightReport, *, break_lock: bool = False) -> Journal:
        """Take the local and the seed's lock, open the journal and record the pre-flight in it."""
        stamp = plan.ctx.stamp
        local = LocalLock(self.journal_dir / "locks", self.inv.cluster)
        local.acquire(stamp)
        self.local_lock = local
        try:
            remote = RemoteLock(self.hosts, stamp)
            remote.acquire(break_lock=break_lock, resume_stamp=stamp if self.resuming else None)
        except BaseException:
            self.release_local_lock()
            raise
        self.remote_lock = remote
        secrets = self.secrets.values
        self.journal = (Journal(self.unfinished.path, secrets) if self.unfinished is not None
                        else Journal.create(self.journal_dir, self.inv.cluster, stamp, secrets))
        self.journal.write("preflight", **report.journal_fields())
        return self.journal

    def engine(self, plan: Plan, callbacks: Callbacks, *, dry_run: bool = False,
               cancel: threading.Event | None = None) -> Engine:
        return Engine(plan, self.hosts, journal=None if dry_run else self.journal, callbacks=callbacks,
                      dry_run=dry_run, cancel=cancel)

    def run(self, engine: Engine) -> RunResult:
        return engine.run(start_at=self.start_at)

    def finish(self, ok: bool) -> None:
        """The journal closes and the local lock goes; the seed's lock only after a recovery. After a
        failure or an abort it stays, naming this run's stamp, so only a resume of this run takes it over."""
        if self.journal is not None:
            self.journal.close()
            self.journal = None
        self.release_local_lock()
        if ok and self.remote_lock is not None:
            remote, self.remote_lock = self.remote_lock, None
            remote.release()

    def release_local_lock(self) -> None:
        if self.local_lock is not None:
            self.local_lock.release()
            self.local_lock = None

    def close(self) -> None:
        if self.journal is not None:
            self.journal.close()
            self.journal = None
        self.release_local_lock()
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
