"""`etcdrescue lab up|status|break|down`: a local lab of fake masters (OKD 3 or kubeadm) to practise on.

Why a CLI for it: an operator should rehearse the recovery (and read a runbook
against real output) before the day it is needed, on this machine, without a
spare OpenShift cluster. `up` prints only the inventory path on stdout, so
`INV=$(etcdrescue lab up)` works; everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import EXIT_OK, InputError, RescueError
from ..platform.profiles import PROFILES

if TYPE_CHECKING:
    from ..lab import Lab

SAMPLE_PREFIX = "/sample/"
SAMPLE_KEYS = 500
DEFAULT_SUBNET = 60
BACKUP_NOTE = "sample-backup"
"""File in the lab root holding the path of the backup `up` took on the seed."""


def default_root() -> Path:
    from ..journal import default_dir

    return default_dir() / "lab"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("lab", help="local lab of fake OKD or kubeadm masters (etcd, sshd, TLS) to practise "
                                          "on; root")
    p.add_argument("action", choices=["up", "status", "break", "down"])
    p.add_argument("--root", type=Path, help="lab directory (default $XDG_STATE_HOME/etcdrescue/lab, "
                                             "i.e. ~/.local/state/etcdrescue/lab)")
    p.add_argument("--members", type=int, choices=[3, 5], help="members of a new lab (default 3)")
    p.add_argument("--subnet", type=int, help=f"the lab uses 127.0.<subnet>.x (default {DEFAULT_SUBNET})")
    add_shape_options(p)
    p.add_argument("--host-tools", action="store_true",
                   help="up: etcd, etcdctl and etcdutl on the hosts' PATH even where the platform has none "
                        "(kubeadm)")
    p.add_argument("--mode", choices=["quorum", "seed-corrupt", "all", *NOSPACE_MODES, *ONE_MEMBER, *BY_HAND],
                   default="quorum",
                   help="break: quorum = all but the first member; seed-corrupt = that and a corrupt db on the "
                        "first; all = every member; nospace = a small quota filled with old revisions (NOSPACE "
                        "alarm; reclaim-space gives the space back); nospace-data = filled with live data (only "
                        "reclaim-space --quota helps); wal-lost = the last member's WAL removed; wiped = the last "
                        "member's data wiped and etcd restarted under its old identity (the quorum holds in "
                        "both: `etcdrescue replace`); cert-expired = the last member's peer certificate expired; "
                        "old-flags = kubeadm: --experimental-* flags in the last member's manifest, which etcd "
                        "3.7 refuses (`etcdrescue diagnose` says how to renew the certificate by hand; "
                        "`etcdrescue fix-flags` rewrites the flags) (default quorum)")
    p.add_argument("--destroy", action="store_true", help="down: also remove the lab's files")
    p.set_defaults(func=cmd_lab)


NOSPACE_MODES = ("nospace", "nospace-data")
ONE_MEMBER = ("wal-lost", "wiped")
BY_HAND = ("cert-expired", "old-flags")
"""Break modes of `diagnose`'s verdicts that no recovery fixes (the platform's certificate renewal by hand, the
manifest's flags by `fix-flags`)."""
"""`lab.data_breaks.MODES`, spelled out for the same reason as `ETCD_RELEASES`."""
ETCD_RELEASES = ("3.4", "3.5", "3.6", "3.7")
"""`lab.versions.RELEASES`, spelled out: importing the lab (cryptography) would cost every `etcdrescue` start
~0.2 s. A test keeps them equal."""


def add_shape_options(p: argparse.ArgumentParser) -> None:
    """--profile and --etcd, shared with `rehearse`: which platform's masters, which etcd release."""
    p.add_argument("--profile", choices=PROFILES, help="platform of a new lab's masters (default okd3)")
    p.add_argument("--etcd", choices=ETCD_RELEASES, help="etcd release of a new lab: 3.4 = Debian's etcd-server; "
                                                    "3.5, 3.6, 3.7 = the newest patch, built by scripts/build-etcd "
                                                    "(default 3.4)")


def check_prerequisites() -> None:
    """One line naming what is missing (and the Debian package), exit 2, before anything is touched."""
    from ..lab import missing_prerequisites
    from ..lab.base import ROOT_MESSAGE

    if os.geteuid() != 0:
        raise InputError(ROOT_MESSAGE)
    missing = missing_prerequisites()
    if missing:
        pkgs = sorted({m.rsplit("Debian package ", 1)[-1].rstrip(")") for m in missing})
        raise InputError(f"lab prerequisites missing: {'; '.join(missing)} (apt-get install {' '.join(pkgs)})")


def open_lab(root: Path, members: int | None, subnet: int | None, *, create: bool, profile: str | None = None,
             etcd: str | None = None, host_tools: bool = False) -> Lab:
    """The lab at `root`: reopened with its recorded shape, or (create=True) a new one."""
    from ..lab import Lab

    if (root / "lab.json").exists():
        lab = Lab.load(root)
        destroy = "`etcdrescue lab down --destroy` first"
        if members is not None and members != len(lab.hosts):
            raise InputError(f"{root} holds a {len(lab.hosts)}-member lab; {destroy}")
        if subnet is not None and subnet != lab.subnet:
            raise InputError(f"{root} holds a lab on subnet {lab.subnet}; {destroy}")
        if profile is not None and profile != lab.profile:
            raise InputError(f"{root} holds a {lab.profile} lab; {destroy}")
        if etcd is not None and etcd != lab.release.minor:
            raise InputError(f"{root} holds a lab on etcd {lab.release.minor}; {destroy}")
        if host_tools and not lab.host_tools:
            raise InputError(f"{root} holds a lab without host tools; {destroy}")
        return lab
    if not create:
        raise InputError(f"no lab at {root} (start one with `etcdrescue lab up`)")
    if not 1 <= (subnet if subnet is not None else DEFAULT_SUBNET) <= 254:
        raise InputError("--subnet must be 1..254")
    return Lab(root, members or 3, subnet=DEFAULT_SUBNET if subnet is None else subnet, profile=profile or "okd3",
               etcd=etcd or "3.4", host_tools=True if host_tools else None)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def corrupt_seed(lab: Lab) -> None:
    """Overwrite the seed's bbolt db with garbage: etcd panics at start, only a backup helps."""
    seed = lab.hosts[0]
    lab.stop_etcd(seed)
    db = lab.host_path(seed, "/var/lib/etcd/member/snap/db")
    size = max(db.stat().st_size if db.exists() else 0, 64 * 1024)
    db.write_bytes(b"\x00etcdrescue-lab-corrupt\xff" * (size // 24 + 1))
    lab.start_etcd(seed, wait=False)


def cmd_lab(args: argparse.Namespace) -> int:
    from ..lab import LabError

    root = (args.root or default_root()).absolute()
    if args.action in ("up", "break", "down"):
        check_prerequisites()
    try:
        return ACTIONS[args.action](args, root)
    except LabError as exc:
        raise RescueError(f"lab: {exc}") from None


def lab_up(args: argparse.Namespace, root: Path) -> int:
    lab = open_lab(root, args.members, args.subnet, create=True, profile=args.profile, etcd=args.etcd,
                   host_tools=args.host_tools)
    first = not (root / BACKUP_NOTE).exists()
    say(f"starting {len(lab.hosts)} fake {lab.profile} masters (etcd {lab.release.full}) on "
        f"127.0.{lab.subnet}.1-{len(lab.hosts)} (lab in {root}) ...")
    lab.up(timeout=90)
    note = root / BACKUP_NOTE
    openshift = "openshift" in lab.shape.backup_kinds
    if first:
        import time

        lab.put_keys(SAMPLE_PREFIX, SAMPLE_KEYS)
        time.sleep(0.6)  # let the live db copy see the writes (etcd batches commits every 100 ms)
        backup = lab.backup_openshift(lab.hosts[0]) if openshift else lab.snapshot_save(lab.hosts[0])
        note.write_text(backup + "\n")
        say(f"sample data: {SAMPLE_KEYS} keys under {SAMPLE_PREFIX}")
    backup = note.read_text().strip()
    say(f"{'openshift-style backup' if openshift else 'etcdctl snapshot'} on {lab.hosts[0].name}: {backup}")
    say(f"next: etcdrescue lab break --root {root}; "
        f"etcdrescue recover -i {lab.inventory_path} --backup {backup}")
    print(lab.inventory_path)
    return EXIT_OK


def lab_status(args: argparse.Namespace, root: Path) -> int:
    lab = open_lab(root, args.members, args.subnet, create=False, profile=args.profile, etcd=args.etcd)
    rows = lab.status()
    print(f"lab {root}: {lab.profile}, etcd {lab.release.full} (inventory {lab.inventory_path})")
    for r in rows:
        state = ("healthy" if r["healthy"] else f"etcd pid {r['etcd_pid']}" if r["etcd_pid"] else "etcd down")
        print(f"  {r['name']:<28} {r['ip']:<14} {'up' if r['supervisor'] else 'DOWN':<5} manifest {r['manifest']:<9}"
              f"{state:<16} starts {r['starts']}" + (f", last exit {r['last_exit']}" if r["last_exit"] else ""))
    note = root / BACKUP_NOTE
    if note.exists():
        print(f"  backup on {lab.hosts[0].name}: {note.read_text().strip()}")
    return EXIT_OK


def lab_break(args: argparse.Namespace, root: Path) -> int:
    lab = open_lab(root, args.members, args.subnet, create=False, profile=args.profile, etcd=args.etcd)
    if any(lab.supervisor_pid(h) is None for h in lab.hosts):
        raise InputError("the lab is not (fully) up: `etcdrescue lab up` first")
    if args.mode in NOSPACE_MODES:
        from ..lab.nospace import break_nospace

        quota = break_nospace(lab, history=args.mode == "nospace")
        say(f"NOSPACE alarm raised: --quota-backend-bytes={quota} on every member, filled with "
            + ("old revisions of a few keys" if args.mode == "nospace" else "live keys"))
        return EXIT_OK
    if args.mode in ONE_MEMBER:
        from ..lab.data_breaks import MODES

        MODES[args.mode](lab, lab.hosts[-1])
        say(f"broke {lab.hosts[-1].name} ({args.mode}); the others keep the quorum")
        return EXIT_OK
    if args.mode in BY_HAND:
        from ..lab.breaks import expire_peer_cert, refused_flags

        if args.mode == "old-flags" and lab.profile != "kubeadm":
            raise InputError("--mode old-flags needs a kubeadm lab (okd3 keeps etcd's flags in etcd.conf, where "
                             "etcd ignores the names it does not know)")
        changed = (expire_peer_cert if args.mode == "cert-expired" else refused_flags)(lab, lab.hosts[-1])
        say(f"broke {lab.hosts[-1].name} ({args.mode}: {changed}); the others keep the quorum")
        return EXIT_OK
    targets = lab.hosts if args.mode == "all" else lab.hosts[1:]
    lab.break_quorum(targets)
    if args.mode == "seed-corrupt":
        corrupt_seed(lab)
    say(f"broke {', '.join(h.name for h in targets)}" + (f"; corrupted the db of {lab.hosts[0].name}"
                                                          if args.mode == "seed-corrupt" else ""))
    return EXIT_OK


def lab_down(args: argparse.Namespace, root: Path) -> int:
    lab = open_lab(root, None, None, create=False)
    if args.destroy:
        lab.destroy()
        say(f"lab stopped and {root} removed")
    else:
        lab.down()
        say(f"lab stopped; files kept in {root} (`etcdrescue lab up` restarts it)")
    return EXIT_OK


ACTIONS = {"up": lab_up, "status": lab_status, "break": lab_break, "down": lab_down}
