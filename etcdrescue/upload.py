"""`--etcd-tools DIR`: the operator's etcdctl (and etcdutl) copied to every master, for hosts without them.

Why every master, even those with tools of their own: one command line then works everywhere, and the
runbook prints one. The files go to `TOOLS_ROOT/<version>/` (a private directory, one per version, never
a system binary's place); an existing copy that reports the right version is kept, not copied again.
Nothing else on the host changes; this is the one write that `check` and a dry run make, and only when
the operator asks for it.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .command import Raw, chain, q, sh
from .errors import InputError, TransportError
from .platform.release import EtcdRelease
from .platform.tools import NAMES, TOOLS_ROOT, EtcdTools
from .preflight.survey import Uploaded
from .ssh.hosts import Hosts

VERSION_RE = re.compile(r"^(etcdctl|etcdutl) version: *v?([0-9]+\.[0-9]+\.[0-9]+\S*)", re.M)


@dataclass(frozen=True)
class LocalTools:
    """The tools found in the operator's directory, with the version each reports here."""

    directory: Path
    version: str
    files: dict[str, Path]

    @property
    def remote_dir(self) -> str:
        return f"{TOOLS_ROOT}/{self.version}"

    def tools(self, base: EtcdTools) -> EtcdTools:
        util = self.files.get("etcdutl") if EtcdRelease(self.version).has_etcdutl else None
        return EtcdTools(base.paths, f"{self.remote_dir}/etcdctl", f"{self.remote_dir}/etcdutl" if util else "",
                         self.version)


def local_version(path: Path) -> str:
    try:
        res = subprocess.run([str(path), "version"], capture_output=True, text=True, timeout=20, check=False)
    except OSError as exc:
        raise InputError(f"--etcd-tools: cannot run {path} here to learn its version: {exc.strerror or exc}") from None
    found = VERSION_RE.search(res.stdout)
    if res.returncode != 0 or found is None or found.group(1) != path.name:
        raise InputError(f"--etcd-tools: {path} is not an {path.name} (`{path.name} version` printed "
                         f"{(res.stdout + res.stderr).strip()[:80]!r})")
    return found.group(2)


def find_local(directory: str | Path) -> LocalTools:
    """Check `--etcd-tools DIR` before any connection: etcdctl present, runnable, one version for all."""
    d = Path(directory).expanduser()
    if not d.is_dir():
        raise InputError(f"--etcd-tools: {d} is not a directory")
    files = {name: d / name for name in NAMES if (d / name).is_file()}
    if "etcdctl" not in files:
        raise InputError(f"--etcd-tools: no etcdctl in {d}")
    for path in files.values():
        if not os.access(path, os.X_OK):
            raise InputError(f"--etcd-tools: {path} is not executable")
    versions = {name: local_version(path) for name, path in files.items()}
    if len(set(versions.values())) > 1:
        raise InputError("--etcd-tools: etcdctl and etcdutl differ in version ("
                         + ", ".join(f"{n} {v}" for n, v in versions.items()) + ")")
    version = versions["etcdctl"]
    if not EtcdRelease(version).etcdctl_restores and "etcdutl" not in files:
        raise InputError(f"--etcd-tools: etcdctl {version} cannot restore snapshots: put etcdutl {version} "
                         f"in {d} too")
    return LocalTools(d, version, files)


def installed_script(local: LocalTools, name: str) -> Raw:
    """Read-only: exit 0 when the uploaded `name` is in place and reports the expected version."""
    path = f"{local.remote_dir}/{name}"
    return Raw(f"test -x {q(path)} && {q(path)} version 2>/dev/null | grep -qx "
               f"{q(f'{name} version: {local.version}')}")


def install(hosts: Hosts, local: LocalTools) -> Uploaded:
    """Upload every tool to every host (skipping copies already in place) and check what each reports."""
    for member in hosts.inv.members:
        host = hosts[member.name]
        for name, path in local.files.items():
            if hosts.run(member.name, installed_script(local, name), timeout=30).ok:
                continue
            tmp = f"/tmp/.etcdrescue-{name}-{secrets.token_hex(6)}"
            host.put_file(path, tmp)
            target = f"{local.remote_dir}/{name}"
            res = hosts.run(member.name, chain(
                sh("install", "-d", "-m", "0700", TOOLS_ROOT), sh("install", "-d", "-m", "0755", local.remote_dir),
                sh("mv", tmp, target), sh("chown", "0:0", target), sh("chmod", "0755", target)), timeout=60)
            if not res.ok:
                raise TransportError(f"{member.name}: cannot put {name} in {local.remote_dir}: "
                                     f"{res.output.splitlines()[-1:] or ['no output']}")
            if not hosts.run(member.name, installed_script(local, name), timeout=30).ok:
                got = hosts.run(member.name, sh(target, "version"), timeout=30).output.splitlines()[:1]
                raise InputError(f"{member.name}: the uploaded {name} does not report version {local.version} "
                                 f"there ({got[0] if got else 'it does not run'}): wrong architecture or a "
                                 "damaged copy; nothing else was changed")
    return Uploaded(local.tools(hosts.inv.platform.tools), local.version)
