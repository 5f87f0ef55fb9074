"""`etcdrescue runbook`: the recovery plan as a printable Markdown or HTML document.

The only SSH is read-only: what `--backup` is (a data-dir backup or a snapshot file, asked of the seed), which
decides the restore command, and on the same connections which etcd tools each host has (on kubeadm nodes
without tools, the etcd image's binaries a run copies into place). `--backup-kind` answers the first instead,
without any connection; the commands then name the hosts' etcdctl (or `--etcd-tools`' copies).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import EXIT_OK, InputError, RescueError
from . import write_document
from .reclaim import quota_bytes

if TYPE_CHECKING:
    from ..documents.runbook import Runbook
    from ..inventory.model import Inventory
    from ..model import BackupKind, Method, Revisions
    from ..platform.release import FlagRewrite
    from ..platform.tools import EtcdTools
    from ..session import RecoverySession


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from .options import add_common

    p = subparsers.add_parser("runbook", help="render the recovery plan as a printable runbook (read-only; SSH "
                                              "only to ask the seed what --backup is, unless --backup-kind)")
    add_common(p)
    p.add_argument("--backup-kind", choices=["dir", "file"],
                   help="what --backup is: a data-dir backup (dir) or a snapshot file (file); default: ask the seed "
                        "over SSH (read-only); give it to render without any connection")
    p.add_argument("--format", choices=["md", "html", "pdf"], default="md",
                   help="output format (default md; pdf prints the HTML with headless Chromium, needs -o)")
    p.add_argument("-o", "--output", type=Path, help="write to FILE instead of stdout")
    p.add_argument("--stamp", help="fixed stamp (suffix of everything moved aside) for reproducible output; "
                                   "a recovery run later uses its own stamp")
    p.add_argument("--date", help="date printed on the runbook (default: today, or the stamp's date)")
    p.add_argument("--procedure", choices=["recover", "reclaim-space", "replace", "fix-flags"], default="recover",
                   help="the procedure to render (default recover; reclaim-space: --seed names the leader, "
                        "defragmented last; replace: --member names the member rebuilt; fix-flags: the hosts' "
                        "manifests are read, read-only, for the flags to rewrite)")
    p.add_argument("--quota", type=quota_bytes, metavar="BYTES", help="reclaim-space: raise the quota to BYTES")
    p.add_argument("--member", help="replace: the member rebuilt while the others keep the quorum")
    p.set_defaults(func=cmd_runbook)


def stamp_date(stamp: str) -> str | None:
    """`20240102T030405Z` -> `2024-01-02`; None when the stamp is not in new_stamp()'s format."""
    try:
        return time.strftime("%Y-%m-%d", time.strptime(stamp, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        return None


def helpers_dir(output: Path | None) -> str:
    """The directory beside `-o` that holds the runbook's helper files; none on stdout (they go in an appendix)."""
    return f"{output.stem}-helpers" if output else ""


def build(args: argparse.Namespace) -> tuple[str, Runbook]:
    """(document in its format, the rendered runbook) for the parsed options; shared with tests."""
    from ..documents.runbook import render, to_html
    from ..plan import build_plan
    from ..procedures.replace_rules import NO_RESTORE
    from ..session import RecoverySession
    from .options import recovery_options

    replacing = args.procedure == "replace"
    if replacing != (args.member is not None) or (replacing and args.backup):
        raise InputError("--procedure replace takes --member MEMBER (and no --backup); --member only goes with it")
    session = RecoverySession.open(recovery_options(args, stamp=args.stamp, procedure=args.procedure,
                                                    quota=args.quota, target=args.member))
    try:
        if session.etcd_tools is not None:
            session.use_tools(session.etcd_tools.tools(session.inv.platform.tools))
        if replacing and session.inv.seed.name == args.member:
            session.rebind(session.inv.with_seed(next(m.name for m in session.inv.members if m.name != args.member)))
        kind = backup_kind(args, session)
        if session.etcd_tools is None and args.backup and not args.backup_kind:
            session.use_tools(hosts_tools(session))
        inv = session.inv
        path = NO_RESTORE if replacing else revisions(args, inv, session.backup, session.method)
        fixes = flag_fixes(session) if args.procedure == "fix-flags" else ()
        plan = build_plan(session.context(kind, path, fixes=fixes), session.procedure)
    finally:
        session.close()
    date = args.date or stamp_date(session.stamp) or time.strftime("%Y-%m-%d")
    book = render(plan, date=date, helpers_dir=helpers_dir(args.output))
    return (book.markdown if args.format == "md" else to_html(plan, book.markdown)), book


def flag_fixes(session: RecoverySession) -> tuple[tuple[str, FlagRewrite], ...]:
    """fix-flags' rewrites are each manifest's own: the pre-flight's survey and rules (read-only) find them, and the
    tools the run would use with them; a cluster that procedure refuses has no runbook either."""
    report = session.survey()
    if not report.ok:
        raise InputError(report.problems[0])
    if report.tools is not None:
        session.use_tools(report.tools)
    return report.fixes


def hosts_tools(session: RecoverySession) -> EtcdTools:
    """The tools a run would use, asked of the hosts (read-only) when the runbook connects anyway: on kubeadm
    nodes without tools, the copies of their etcd image's binaries (and the step making them). Where the hosts
    give no usable choice, their etcdctl by name, as without a connection."""
    from ..preflight.survey import survey_tools

    chosen = survey_tools(session.hosts, restores=session.backup is not None).tools
    return chosen or session.inv.platform.tools


def revisions(args: argparse.Namespace, inv: Inventory, backup: str | None, method: Method) -> Revisions:
    """The revision path of a run with these options. The runbook does not ask the restore tool what it can:
    `--bump-revision N` says it can (the runbook then has the operator check it), else revisions go back."""
    from dataclasses import replace

    from ..model import Method as MethodType
    from ..model import RevisionPath
    from ..preflight.verdict import BackupFacts, choose_revisions
    from .options import revision_options

    options = revision_options(args)
    facts = BackupFacts(backup, can_bump=bool(options.bump)) if backup else None
    chosen, problems, _ = choose_revisions(backup=facts, method=method, older_seed=False,
                                           tool=inv.platform.tools.restore_tool, options=options)
    if problems:
        raise InputError(problems[0])
    if chosen.path is RevisionPath.BUMPED:
        return replace(chosen, why="--bump-revision given: the runbook has the operator check the restore tool; "
                                   "every member comes from the restore")
    if options.bump is None and chosen.path is RevisionPath.BACKWARDS and method is MethodType.SNAPSHOT_RESTORE:
        return replace(chosen, why="the runbook does not ask the restore tool: give --bump-revision N where "
                                   "`snapshot restore --help` lists it")
    return chosen


def backup_kind(args: argparse.Namespace, session: RecoverySession) -> BackupKind:
    """The kind a run would find at `--backup`: as given, else probed on the seed; never guessed from the name.

    The kind picks the restore command (a data-dir's db needs `--skip-hash-check`, a snapshot file must keep
    its hash check), and nothing in a path like `/var/lib/etcd/snapshot-latest` tells which it is.
    """
    from ..model import BackupKind as BackupKindType

    if not args.backup:
        if args.backup_kind:
            raise InputError("--backup-kind describes a backup: give --backup PATH too, or drop --backup-kind")
        return BackupKindType.DIR
    if session.bastion is not None:  # checked on this machine already: a snapshot file, copied to the seed first
        return BackupKindType.FILE
    return BackupKindType(args.backup_kind) if args.backup_kind else probe_backup_kind(session, args.backup)


def probe_backup_kind(session: RecoverySession, path: str) -> BackupKind:
    """Ask the seed (read-only) what sits at `path`; refuse what a run would refuse."""
    from ..preflight.survey import backup_kind_problem
    from ..probes import ParseError, backup_survey

    seed = session.inv.seed.name
    try:
        survey = session.hosts.fact(seed, backup_survey(path))
    except (RescueError, ParseError) as exc:
        why = str(exc).removeprefix(f"{seed}: ")
        raise InputError(f"cannot probe the backup {path} on {seed} ({why}): give --backup-kind dir|file") from None
    problem = backup_kind_problem(survey, seed, path)
    if problem and survey.get("kind") == "missing":
        raise InputError(f"{problem}: check the path, or give --backup-kind dir|file if it is not there yet")
    if problem:
        raise InputError(problem)
    from ..model import BackupKind as BackupKindType

    return BackupKindType(survey["kind"])


def print_pdf(html: str, output: Path) -> None:
    """Chromium prints the self-contained HTML with its print stylesheet (A4, "page N of M" in each footer)."""
    import shutil
    import subprocess
    import tempfile

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise InputError("--format pdf needs Chromium: apt-get install chromium (or use --format html and print it)")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "runbook.html"
        src.write_text(html, encoding="utf-8")
        res = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
             "--disable-background-networking", "--disable-component-update", f"--user-data-dir={tmp}/profile",
             "--no-pdf-header-footer", f"--print-to-pdf={output.resolve()}", src.as_uri()],
            capture_output=True, text=True, timeout=120, check=False)
    if res.returncode != 0 or not output.exists():
        raise InputError(f"Chromium could not print {output}: {res.stderr.strip().splitlines()[-1:] or 'no output'}")


def cmd_runbook(args: argparse.Namespace) -> int:
    if args.format == "pdf" and not args.output:
        raise InputError("--format pdf writes a file: give -o FILE.pdf")
    text, book = build(args)
    if args.format == "pdf":
        print_pdf(text, args.output)
        print(f"runbook written to {args.output}", file=sys.stderr)
    else:
        write_document(text, args.output, "runbook")
    if book.helpers:
        write_helpers(args.output.parent / book.helpers_dir, book.helpers)
    return EXIT_OK


def write_helpers(directory: Path, files: dict[str, str]) -> None:
    """The helper files beside the document (rewritten on each render: they are generated, like the document)."""
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    print(f"helper files written to {directory}/ (copy them to every master as the runbook says)", file=sys.stderr)
