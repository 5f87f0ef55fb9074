"""Shared pieces of the end-to-end tests: break a lab the way the field report's cluster broke, run the CLI."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from etcdrescue.lab import Lab

PRE, POST = "/pre/", "/post/"


@dataclass
class Broken:
    lab: Lab
    backup: str | None


def break_lab(lab: Lab, backup: str | None) -> Broken:
    """500 keys, a backup of kind `backup` (None: none) on the seed, 100 more keys, then a majority's data destroyed."""
    lab.put_keys(PRE, 500)
    time.sleep(0.6)  # etcd flushes its db about every 100 ms; a copy taken at once can miss writes
    kinds = {"openshift": lab.backup_openshift, "copy": lab.backup_copy, "snapshot": lab.snapshot_save}
    path = kinds[backup](lab.hosts[0]) if backup else None
    lab.put_keys(POST, 100)
    lab.break_quorum(lab.hosts[1:len(lab.hosts) // 2 + 2])  # 2 of 3, 3 of 5: the survivors lack a quorum
    return Broken(lab, path)


def etcdrescue(*args: str, timeout: float = 400, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "etcdrescue", *args], capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL, env={**os.environ, "GRPC_VERBOSITY": "NONE", **(env or {})},
    )


def exported_documents(journal: Path, inventory: Path, backup: str | None,
                       env: dict[str, str]) -> dict[str, str]:
    """What an operator may share after a run: the report of its journal and the runbook, md and html."""
    out: dict[str, str] = {}
    for fmt in ("md", "html"):
        rep = etcdrescue("report", str(journal), "--format", fmt, env=env)
        assert rep.returncode == 0, rep.stderr
        out[f"report {fmt}"] = rep.stdout + rep.stderr
        book = etcdrescue("runbook", "-i", str(inventory), *(["--backup", backup] if backup else []),
                          "--format", fmt, env=env)
        assert book.returncode == 0, book.stderr
        out[f"runbook {fmt}"] = book.stdout + book.stderr
    return out


def tree_digest(lab: Lab) -> dict[str, str]:
    """Hash of every file a master has where etcd's manifests, settings, certificates and data live
    (okd3: /etc/origin, /etc/etcd, /var/lib/etcd; kubeadm: /etc/kubernetes, /var/lib/etcd).

    What is inside a live `member/` dir is left out: the running (or crash-looping) etcd rewrites,
    creates and drops its own db and WAL files by itself; the tool's moves and copies of whole
    member dirs still show in the names. The private tools directory (`--etcd-tools`) is not etcd's.
    """
    subs = [m.sub for m in lab.shape.mounts if m.sub != "var/lib/etcdrescue"]
    out: dict[str, str] = {}
    for h in lab.hosts:
        for sub in subs:
            base = h.dir / sub
            for p in sorted(base.rglob("*")):
                rel = p.relative_to(h.dir)
                if len(rel.parts) > 4 and rel.parts[:4] == ("var", "lib", "etcd", "member"):
                    continue
                if p.is_file() and not p.is_symlink():
                    out[f"{h.name}:{rel}"] = hashlib.sha256(p.read_bytes()).hexdigest()
                elif p.is_dir():
                    out[f"{h.name}:{rel}/"] = "dir"
    return out


def host_file(lab: Lab, host: int, path: str) -> Path:
    return lab.host_path(lab.hosts[host], path)


def image_bins(lab: Lab, host: int) -> dict[str, Path]:
    """The etcd image layers the lab unpacked on a host: etcdctl's version -> the layer's usr/local/bin."""
    out: dict[str, Path] = {}
    layers, _, inside = lab.image_layer.partition("{layer}")
    for bindir in sorted(host_file(lab, host, layers).glob(f"*{inside}/usr/local/bin")):
        ctl = bindir / "etcdctl"
        if ctl.exists():
            res = subprocess.run([str(ctl), "version"], capture_output=True, text=True, check=True)
            out[res.stdout.split("etcdctl version:", 1)[1].split()[0]] = bindir
    return out


def hide_image(lab: Lab, host: int, version: str) -> Path:
    """Move a host's etcd image layer of `version` out of the runtime's sight (as if garbage-collected); returns
    where it went."""
    bindir = image_bins(lab, host)[version]
    hidden = bindir.with_name("bin.hidden")
    bindir.rename(hidden)
    return hidden
