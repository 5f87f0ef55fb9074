"""Nothing lost: what each master had before a run is still on it afterwards (possibly moved aside).

- every original `etcd.conf` and etcd manifest is still present, byte-identical, somewhere on that host
  (under /etc/etcd resp. /etc/origin: moved or copied aside with a stamp);
- every file of the original live data dir (`/var/lib/etcd/member/...`) still exists by its relative name
  under `member/` or a `member.*` sibling, and none that had bytes shrank to nothing (a live etcd rewrites
  its own WAL and db, so bytes are not compared there);
- every other original file under /var/lib/etcd (backups, lock files) still exists byte-identical
  somewhere under /var/lib/etcd.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from etcdrescue.lab import Lab

CONF = "/etc/etcd/etcd.conf"
MANIFESTS = ("/etc/origin/node/pod/etcd.yaml", "/etc/origin/node/pod/disabled/etcd.yaml")
DATA = "/var/lib/etcd"


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _files(base: Path) -> list[Path]:
    return [p for p in sorted(base.rglob("*")) if p.is_file() and not p.is_symlink()] if base.exists() else []


@dataclass
class HostBefore:
    name: str
    conf: str = ""
    manifests: dict[str, str] = field(default_factory=dict)
    member_files: dict[str, int] = field(default_factory=dict)
    """relative path under member/ -> size"""
    other_files: dict[str, str] = field(default_factory=dict)
    """path relative to the data dir -> sha256"""


def snapshot(lab: Lab) -> dict[str, HostBefore]:
    out = {}
    for h in lab.hosts:
        before = HostBefore(h.name, conf=_sha(lab.host_path(h, CONF)))
        for m in MANIFESTS:
            p = lab.host_path(h, m)
            if p.exists():
                before.manifests[m] = _sha(p)
        data = lab.host_path(h, DATA)
        for p in _files(data):
            rel = p.relative_to(data)
            if rel.parts[0] == "member":
                before.member_files[str(Path(*rel.parts[1:]))] = p.stat().st_size
            else:
                before.other_files[str(rel)] = _sha(p)
        out[h.name] = before
    return out


def audit(lab: Lab, before: dict[str, HostBefore]) -> list[str]:
    """Every way a host lost something it had in `before`; empty when nothing was lost."""
    problems = []
    for h in lab.hosts:
        b = before[h.name]
        etc_etcd = {_sha(p) for p in _files(lab.host_path(h, "/etc/etcd"))}
        if b.conf not in etc_etcd:
            problems.append(f"{h.name}: the original {CONF} is nowhere under /etc/etcd")
        origin = {_sha(p) for p in _files(lab.host_path(h, "/etc/origin"))}
        for m, digest in b.manifests.items():
            if digest not in origin:
                problems.append(f"{h.name}: the original {m} is nowhere under /etc/origin")
        data = lab.host_path(h, DATA)
        member_dirs = [d for d in data.iterdir() if d.is_dir() and (d.name == "member" or d.name.startswith(
            "member."))] if data.exists() else []
        for rel, size in b.member_files.items():
            copies = [d / rel for d in member_dirs if (d / rel).is_file()]
            if not copies:
                problems.append(f"{h.name}: {DATA}/member/{rel} is gone (not in member/ nor any member.* copy)")
            elif size > 0 and all(c.stat().st_size == 0 for c in copies):
                problems.append(f"{h.name}: {DATA}/member/{rel} shrank to nothing")
        data_digests = {_sha(p) for p in _files(data)}
        for rel, digest in b.other_files.items():
            if digest not in data_digests:
                problems.append(f"{h.name}: {DATA}/{rel} (or a byte-identical copy) is gone")
    return problems
