"""What makes a lab master an OKD 3 master or a kubeadm control-plane node.

Everything platform-specific the lab needs sits in one `LabShape`: the platform's own paths (taken
from `etcdrescue.platform`, never copied), the directories each host gets bind-mounted over the real
ones, the files and certificates written when a host is created, and the rules the kubelet stand-in
uses to find the etcd pod and turn it into a command line. `Lab` and the kubelet stand-in (`host.py`)
ask the shape and never name a platform path themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..platform.paths import Paths
from .versions import EtcdRelease

RUN_DIR = "/run/etcdlab"
"""Per-host state of the kubelet stand-in (state file, kubelet.log, etcd.log): the same on every shape."""


class HostLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def ip(self) -> str: ...

    @property
    def peer_url(self) -> str: ...

    @property
    def client_url(self) -> str: ...


@dataclass(frozen=True)
class Mount:
    """A real directory of the host (`path`) backed by `sub` under the host's own lab directory."""

    path: str
    sub: str


@dataclass(frozen=True)
class HostFile:
    path: str
    """Where the host sees the file (a path under one of the shape's mounts)."""
    text: str
    mode: int = 0o644


@dataclass(frozen=True)
class CertSpec:
    """One certificate a host carries. `ca=True`: the lab CA itself (its key too, when `key` is set)."""

    cert: str
    key: str | None
    common_name: str = ""
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    server_auth: bool = True
    ca: bool = False


@dataclass(frozen=True)
class HostContext:
    """What a shape needs to write one host's files."""

    host: HostLike
    members: tuple[HostLike, ...]
    etcd: EtcdRelease
    style: str

    @property
    def index(self) -> int:
        return next(i for i, m in enumerate(self.members) if m.name == self.host.name)


@dataclass(frozen=True)
class PodStart:
    argv: tuple[str, ...]
    cwd: str


@dataclass(frozen=True)
class KubeletRules:
    """How the kubelet stand-in reads the manifests dir.

    Every non-dot regular file in `pod_dir` is parsed (a real kubelet reads any extension and skips
    sub-directories); the one for which `is_etcd_pod` holds is run with `start`'s argv. `start` raises
    (KeyError, TypeError, ValueError, IndexError) on a pod it cannot run, which the stand-in refuses
    as a kubelet would. `fallback_file`: a file of that name that does not parse still counts as the
    etcd pod (then refused at start), which is how the okd3 lab has always treated a broken etcd.yaml.
    """

    pod_dir: str
    pod_label: str
    is_etcd_pod: Callable[[Any], bool | None]
    """True: the etcd pod; False: another pod; None: not a pod document (see `fallback_file`)."""
    start: Callable[[Any], PodStart]
    fallback_file: str | None = None


@dataclass(frozen=True)
class Runtime:
    """A container runtime a platform's masters may run: the stand-ins of its tools, the programs it lacks."""

    name: str
    files: tuple[HostFile, ...]
    hides: tuple[str, ...] = ()
    """Programs in /usr/local/bin a master on this runtime does not have (whited out in the host's own layer)."""
    image_layer: str = ""
    """Where this runtime unpacks an image layer, where it differs from the shape's `image_layer`."""


FilesFor = Callable[[HostContext], tuple[HostFile, ...]]


def _none(ctx: HostContext) -> tuple[HostFile, ...]:
    return ()


@dataclass(frozen=True)
class LabShape:
    """Everything platform-specific about a lab master.

    `initial_files` are written once, when a host is first created (afterwards the recovery tool owns
    them); `settled_files`, when not empty, replace them once the new cluster has been healthy for the
    first time (kubeadm: the lab bootstraps all members as one new cluster, then writes the manifests
    kubeadm would have left after `init` and `join`, which restarts each etcd once). `helper_files` are
    rewritten at every `create` (scripts, never state).
    """

    platform: str
    paths: Paths
    mounts: tuple[Mount, ...]
    dirs: tuple[str, ...]
    kubelet: KubeletRules
    certificates: Callable[[HostLike], tuple[CertSpec, ...]]
    initial_files: FilesFor
    settled_files: FilesFor = _none
    helper_files: tuple[HostFile, ...] = ()
    host_tools: bool = True
    """Default visibility of etcd, etcdctl and etcdutl on a host's PATH."""
    manifest_styles: tuple[str, ...] = ("block",)
    etcd_ports: tuple[int, ...] = (2379, 2380)
    """Ports etcd binds on each host IP: checked free before `up`, closed after `down`."""
    backup_kinds: tuple[str, ...] = ()
    """Lab helpers that make this platform's usual backup: "openshift" (dir) and/or "snapshot" (file)."""
    image_layer: str = ""
    """Where the node's container runtime unpacks an image layer (`{layer}`: the layer's directory name); the lab
    puts the etcd image's /usr/local/bin there as a runtime would. "": the platform's etcd image is not unpacked."""
    runtimes: tuple[Runtime, ...] = ()
    """The container runtimes a lab of this shape can imitate, the default first (none: only `helper_files`)."""

    def runtime(self, name: str | None) -> Runtime | None:
        if not self.runtimes:
            if name:
                raise ValueError(f"the {self.platform} lab has no runtime choice")
            return None
        if name is None:
            return self.runtimes[0]
        for r in self.runtimes:
            if r.name == name:
                return r
        raise ValueError(f"runtime must be one of {', '.join(r.name for r in self.runtimes)}, not {name!r}")

    @property
    def path_map(self) -> dict[str, str]:
        """Real path prefix inside a host -> directory under the host's lab dir that backs it."""
        return {**{m.path: m.sub for m in self.mounts}, RUN_DIR: "run", "/usr/local/bin": "usr-local-bin"}

    @property
    def mount_points(self) -> tuple[str, ...]:
        """Directories that must exist on the machine itself to be mounted over."""
        return (*(m.path for m in self.mounts), RUN_DIR, "/run/sshd")
