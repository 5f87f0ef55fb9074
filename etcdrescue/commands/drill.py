"""`etcdrescue drill --backup FILE`: prove a backup restores, before the day it is needed.

The backup is checked here first (sha256, an etcd snapshot, the cluster its sidecar names); then a throwaway
local lab of its platform and etcd version (from the sidecar; `--profile`/`--etcd` override) is built, its
quorum broken, and the backup restored with the very recovery `recover --backup bastion:FILE` runs (the same
session, pre-flight, plan and engine, `rehearse`'s headless path: the copy to the seed and its check included).
The one difference: the backup's members are not the lab's, by design, so that match is not asked. Every
member must then be healthy and hash the same data (`endpoint hashkv`). The lab and its temp dir are removed
afterwards, whatever happened; a passed drill is recorded in the sidecar. Exit codes: `backups.drill`'s
docstring.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import EXIT_OK, InputError, RescueError
from ..platform.profiles import PROFILES
from .lab import ETCD_RELEASES

if TYPE_CHECKING:
    import subprocess

    from ..backups.drill import Checked, MemberHash
    from ..lab import Lab

DEFAULT_SUBNET = 250
AGREE_WITHIN = 30.0
"""Seconds the members get to agree after the recovery's final gate (a joiner may still apply the last entries)."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("drill", help="restore a backup in a throwaway local lab with the recovery's own steps and "
                                     "check every member serves the same data (root)")
    p.add_argument("--backup", required=True, type=Path, metavar="FILE", help="a snapshot file on this machine")
    p.add_argument("--profile", choices=PROFILES, help="platform of the lab (default: the sidecar's, else okd3)")
    p.add_argument("--etcd", choices=ETCD_RELEASES, help="etcd release of the lab (default: the sidecar's etcd "
                                                         "version, else 3.4)")
    p.add_argument("--subnet", type=int, default=DEFAULT_SUBNET,
                   help=f"the lab uses 127.0.<subnet>.x (default {DEFAULT_SUBNET})")
    p.add_argument("--tmp", type=Path, help="where the lab's temporary directory goes (default $TMPDIR or /tmp)")
    p.set_defaults(func=cmd_drill)


def say(text: str) -> None:
    print(text, flush=True)


def lab_ctl(lab: Lab, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The lab release's etcdctl from outside the hosts, with the lab's client certificate."""
    import subprocess

    from ..lab.base import NSENV

    pki = lab.pki
    return subprocess.run([str(lab.etcdctl), "--cacert", str(pki / "ca.crt"), "--cert", str(pki / "client.crt"),
                           "--key", str(pki / "client.key"), *args], capture_output=True, text=True,
                          timeout=timeout, env=NSENV, cwd="/", check=False)


def endpoints(lab: Lab) -> str:
    return ",".join(h.client_url for h in lab.hosts)


def hashes(lab: Lab) -> list[MemberHash]:
    """Every member's hash of its whole key space, retried until they agree (or `AGREE_WITHIN` passed)."""
    import time

    from ..backups.drill import DrillFailed, agreement_problem, parse_hashkv

    deadline = time.monotonic() + AGREE_WITHIN
    while True:
        res = lab_ctl(lab, "--endpoints", endpoints(lab), "endpoint", "hashkv", "-w", "json")
        got = parse_hashkv(res.stdout) if res.returncode == 0 else []
        problem = agreement_problem(got, len(lab.hosts)) if got else f"hashkv failed: {res.stderr.strip()[:200]}"
        if problem is None:
            return got
        if time.monotonic() > deadline:
            raise DrillFailed(f"after the restore, {problem}")
        time.sleep(0.5)


def keys(lab: Lab) -> list[str]:
    from ..backups.drill import DrillFailed, parse_keys

    res = lab_ctl(lab, "--endpoints", lab.hosts[0].client_url, "get", "", "--prefix", "--keys-only", "-w", "json",
                  timeout=300)
    if res.returncode != 0:
        raise DrillFailed(f"cannot list the restored keys: {res.stderr.strip()[:200]}")
    return parse_keys(res.stdout)


def restore(lab: Lab, backup: str, work: Path) -> str:
    """The recovery as `recover --yes` runs it, its console output kept (shown when it fails)."""
    import contextlib
    import io

    from ..backups.drill import DrillFailed
    from ..preflight.options import RecoveryOptions
    from ..session import RecoverySession
    from .recover import drive
    from .rehearse import lab_tools

    out = io.StringIO()
    session = RecoverySession.open(RecoveryOptions(lab.inventory_path, backup=backup, journal_dir=work / "journal",
                                                   etcd_tools=lab_tools(lab), any_cluster=True))
    try:
        with contextlib.redirect_stdout(out):
            session.lock_hosts()
            drive(session)
    except RescueError as exc:
        tail = "\n".join(f"  | {line}" for line in out.getvalue().splitlines()[-15:])
        raise DrillFailed(f"the recovery from it failed: {exc}" + (f"\n{tail}" if tail else "")) from None
    finally:
        session.close()
    return out.getvalue()


def cmd_drill(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    from ..backups.drill import check_file
    from .lab import check_prerequisites

    check_prerequisites()
    if not 1 <= args.subnet <= 254:
        raise InputError("--subnet must be 1..254")
    path = Path(args.backup).expanduser().absolute()
    checked = check_file(path, profile=args.profile, etcd=args.etcd, releases=ETCD_RELEASES)
    if args.tmp is not None and not Path(args.tmp).is_dir():
        raise InputError(f"--tmp: {args.tmp} is not a directory")
    work = Path(tempfile.mkdtemp(prefix="etcdrescue-drill-", dir=args.tmp))
    try:
        return run_drill(checked, work, args.subnet)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_drill(checked: Checked, work: Path, subnet: int) -> int:
    import contextlib
    import time

    from ..backups.drill import DrillFailed
    from ..lab import Lab, LabError

    started = time.monotonic()
    lab = Lab(work / "lab", checked.members, subnet=subnet, cluster="drill", profile=checked.profile,
              etcd=checked.etcd)
    try:
        say(f"DRILL: {checked.path.name}: revision {checked.facts.revision}, "
            f"{'sha256 ok' if checked.sha256_checked else 'no recorded sha256'}; building a {checked.members}-member "
            f"{checked.profile} lab on etcd {lab.release.full} (127.0.{subnet}.x) in {work} ...")
        try:
            lab.up(timeout=120)
        except LabError as exc:
            raise InputError(f"drill lab: {exc}") from None
        lab.break_quorum(lab.hosts[1:])
        say(f"DRILL: quorum broken; restoring it with the recovery's own steps (`recover --backup bastion:FILE`: "
            f"copied to {lab.hosts[0].name}, checked, restored, the others joined) ...")
        try:
            restore(lab, f"bastion:{checked.path}", work)
            agreed = hashes(lab)
            names = keys(lab)
        except LabError as exc:
            raise DrillFailed(f"the restored lab: {exc}") from None
        report(checked, lab, agreed, names, time.monotonic() - started)
        return EXIT_OK
    finally:
        with contextlib.suppress(LabError, OSError):
            lab.destroy()
        say("DRILL: lab torn down")


def age(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def report(checked: Checked, lab: Lab, agreed: list[MemberHash], names: list[str], seconds: float) -> None:
    import time

    from ..backups.drill import count_resources
    from ..backups.sidecar import Drill, save

    side = checked.sidecar
    taken = side.taken_epoch if side else checked.path.stat().st_mtime
    age_from = "taken" if side else "file modified"
    first = agreed[0]
    say(f"DRILL PASSED in {seconds:.0f}s: {checked.path} restores ({checked.profile} lab, etcd {lab.release.full}, "
        f"{len(lab.hosts)} members)")
    say(f"  revision {checked.facts.revision} (restored cluster at {first.revision}); {age_from} "
        f"{age(time.time() - taken)} ago")
    say(f"  every member: hashkv {first.hash} at revision {first.revision}")
    say(f"  keys: {len(names)}")
    for resource, n in count_resources(names).items():
        say(f"    {resource:<60} {n}")
    if side is not None:
        drill = Drill(at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), profile=checked.profile,
                      etcd=lab.release.full, revision=checked.facts.revision, hashkv=first.hash,
                      hash_revision=first.revision, members=len(lab.hosts))
        save(checked.path, side.with_drill(drill))
        say(f"  recorded in {checked.path.name}.json")
    else:
        say("  no sidecar: nothing recorded")
