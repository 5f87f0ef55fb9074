"""The etcd command-line tools on a host: the one place that spells an etcdctl or etcdutl command line.

Which binaries a recovery uses is decided once, by the pre-flight (`choose_tools`): the operator's, uploaded
with `--etcd-tools` into `TOOLS_ROOT/<version>/` on every master; the hosts' own (found on PATH or in the usual
places); or the binaries of the node's own etcd image, where its container runtime unpacked them (`IMAGE_DIRS`),
which the plan's first step copies into the same `TOOLS_ROOT/<version>/` on every master. Snapshot restore and
status use etcdutl where the tools are 3.5 or newer (etcdctl's copies are deprecated in 3.5 and gone in 3.6),
etcdctl on 3.4.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..command import Raw, q, sh
from .paths import Paths
from .release import EtcdRelease

STATE_ROOT = "/var/lib/etcdrescue"
"""The tool's own directory on every master: uploaded tools and the run's lock, never etcd's."""
TOOLS_ROOT = f"{STATE_ROOT}/tools"
"""Private directory for uploaded tools: never a system binary's place, one sub-directory per version."""
SEARCH = ("/usr/local/bin", "/usr/bin", "/usr/local/sbin", "/usr/sbin", "/opt/bin", "/opt/etcd/bin")
"""Where a tool not on PATH is looked for (distribution packages, tarball installs)."""
NAMES = ("etcdctl", "etcdutl")
IMAGE_DIRS = ("/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/*/fs/usr/local/bin",
              "/var/lib/containers/storage/overlay/*/diff/usr/local/bin")
"""Where containerd's overlayfs snapshotter and CRI-O's storage unpack image layers: an etcd image's binaries sit
in one layer's `usr/local/bin` (the directory's number differs from node to node)."""


@dataclass(frozen=True)
class Tool:
    path: str
    version: str
    on_path: bool = True
    """Found by `command -v` (else in one of SEARCH, or uploaded)."""


def find_script(name: str) -> str:
    """Shell printing `name`'s path (PATH first, then SEARCH), whether PATH found it, and its version."""
    dirs = " ".join(q(d) for d in SEARCH)
    return (f"p=$(command -v {q(name)} 2>/dev/null); onp=yes; "
            f"if test -z \"$p\"; then onp=no; for d in {dirs}; do if test -x \"$d/{name}\"; then p=\"$d/{name}\"; "
            f"break; fi; done; fi; echo {name}=$p; echo {name}_on_path=$onp; "
            f"echo {name}_version=$(test -n \"$p\" && \"$p\" version 2>/dev/null | "
            f"sed -n 's/^{name} version: *//p' | head -1)")


def parse_tool(kv: dict[str, str], name: str) -> Tool | None:
    path = kv.get(name, "")
    if not path:
        return None
    return Tool(path, kv.get(f"{name}_version", ""), kv.get(f"{name}_on_path") == "yes")


def image_script() -> str:
    """Shell printing `images=` and, per unpacked layer holding an etcdctl, `DIR|ETCDCTL_VERSION|ETCDUTL_VERSION`.

    Each binary is asked its own version: a layer's place says nothing about which image it belongs to."""
    dirs = " ".join(IMAGE_DIRS)

    def version(name: str) -> str:
        return (f"\"$(test -x \"$d/{name}\" && \"$d/{name}\" version 2>/dev/null | "
                f"sed -n 's/^{name} version: *//p' | head -1)\"")

    return (f"echo images=$(for d in {dirs}; do if test -x \"$d/etcdctl\"; then "
            f"printf '%s|%s|%s ' \"$d\" {version('etcdctl')} {version('etcdutl')}; fi; done)")


@dataclass(frozen=True)
class ImageBinaries:
    """The etcd tools of one unpacked image layer on a host, with the version each reports there."""

    directory: str
    etcdctl_version: str
    etcdutl_version: str = ""

    @property
    def etcdctl(self) -> str:
        return f"{self.directory}/etcdctl"

    @property
    def etcdutl(self) -> str:
        """"" where the layer has none (Kubernetes' own 3.5 images) or where etcdctl still restores (3.4)."""
        usable = self.etcdutl_version == self.etcdctl_version and EtcdRelease(self.etcdctl_version).has_etcdutl
        return f"{self.directory}/etcdutl" if usable else ""

    def tools(self, paths: Paths) -> EtcdTools:
        """The binaries where they are: what the read-only pre-flight runs on this host."""
        return EtcdTools(paths, self.etcdctl, self.etcdutl, self.etcdctl_version)


def parse_images(value: str) -> tuple[ImageBinaries, ...]:
    out = []
    for item in value.split():
        directory, _, versions = item.partition("|")
        ctl, _, utl = versions.partition("|")
        if directory and ctl:
            out.append(ImageBinaries(directory, ctl, utl))
    return tuple(out)


def matching_image(images: Iterable[ImageBinaries], server_version: str | None) -> ImageBinaries | None:
    """The layer whose etcdctl reports the very version etcd runs (the image tag's), first found."""
    want = EtcdRelease(server_version or "").patch
    return next((i for i in images if want is not None and EtcdRelease(i.etcdctl_version).patch == want), None)


MEMBER_ROWS = (
    r"""grep -o '{"ID":[0-9]*[^{}]*}' | while IFS= read -r m; do id=${m#*\"ID\":}; id=${id%%[!0-9]*}; """
    r"""urls=${m#*\"peerURLs\":[}; urls=${urls%%]*}; urls=${urls//\"/}; """
    r"""case $m in *'"name":"'[!\"]*) s=started;; *) s=unstarted;; esac; """
    r"""case $m in *'"isLearner":true'*) l=true;; *) l=false;; esac; """
    r"""printf '%x\t%s\t%s\t%s\n' "$((id))" "$s" "$urls" "$l"; done""")
"""Shell reading `member list -w json` on stdin, printing `EtcdTools.member_rows`' rows."""
PROGRAMS = {"rows.sh": MEMBER_ROWS}
"""The program `member_rows` passes to `bash -c` as one quoted argument, by the file a runbook ships it under."""


@dataclass(frozen=True)
class EtcdTools:
    """Builds every etcdctl/etcdutl call a step, probe, gate or runbook shows.

    `etcdctl` is the command as the hosts run it (a name on PATH, or a full path); `etcdutl` is set
    where snapshot restore/status should use it (3.5+). The TLS client identity is the platform's.
    """

    paths: Paths
    etcdctl: str = "etcdctl"
    etcdutl: str = ""
    version: str = ""
    """etcdctl's own version, where it is known (options some versions lack are added only where it has them)."""
    copied_from: tuple[tuple[str, str], ...] = ()
    """(member, directory) per host where these are copies of the node's etcd image binaries (`ImageBinaries`),
    which the plan's first step puts in place; () for the hosts' own tools or uploaded ones."""

    def ctl(self, endpoints: Iterable[str], *args: object) -> Raw:
        """An etcdctl v3 call authenticated with the host's own TLS material."""
        return self._ctl(",".join(endpoints), *args)

    def _ctl(self, endpoints: str, *args: object) -> Raw:
        p = self.paths
        return sh(*self._api, self.etcdctl, "--cacert", p.ca, "--cert", p.cert, "--key", p.key,
                  "--endpoints", endpoints, *args)

    @property
    def _api(self) -> tuple[Raw, ...]:
        """`ETCDCTL_API=3` where etcdctl may still speak v2 by default (before 3.4) or where its version is unknown;
        3.6 removed the v2 API and warns "unrecognized environment variable" on every call that sets it."""
        return () if EtcdRelease(self.version).at_least((3, 6)) else (Raw("ETCDCTL_API=3"),)

    def member_list_own_view(self, endpoints: Iterable[str], *args: object) -> Raw:
        """`member list -w json` as the asked member itself sees it, quorum or not.

        etcdctl 3.4 is served locally anyway; 3.5's is linearizable only and fails without a quorum; 3.6+
        has `--consistency=s` (serializable) for exactly this.
        """
        own = ("--consistency=s",) if EtcdRelease(self.version).lists_members_serializably else ()
        return self.ctl(endpoints, "member", "list", "-w", "json", *own, *args)

    def member_rows(self, endpoints: Iterable[str]) -> Raw:
        """`member list -w json` as one tab-separated row per member, for a shell step that decides on the host:
        `ID<TAB>STATUS<TAB>PEER_URLS<TAB>LEARNER` (ID in hex as `member promote/remove` take it; STATUS `started`
        or `unstarted`; PEER_URLS comma-joined; LEARNER `true` or `false`), the columns of etcdctl's table.

        Why JSON, not the table: the table is for people (its columns and spacing are not a contract); the JSON
        keys are etcd's API. Hosts have no jq: each member is one `{"ID":...}` object with no nested object
        (its lists are arrays), which `grep -o` cuts out; IDs are decimal there (unsigned 64-bit) and bash's
        arithmetic wraps them into the two's complement `printf %x` prints as the unsigned hex. `--hex` is no
        help: 3.5 and 3.6 then drop `isLearner`. The program is one quoted `bash -c` argument, so a runbook ships
        it once as a helper file (`PROGRAMS`).
        """
        return Raw(f"{self.ctl(endpoints, 'member', 'list', '-w', 'json')} | bash -c {q(MEMBER_ROWS)}")

    def ctl_listening(self, endpoints: Iterable[str], *args: object) -> Raw:
        """`ctl` asked only of the endpoints whose port takes a TCP connection now; `[]` when none does.

        Why: on a closed port etcdctl waits in gRPC's reconnect backoff until its deadline, so a gate
        polling a member about to start would notice it that much late; bash's connect is refused at once.
        """
        urls = " ".join(q(u) for u in endpoints)
        found = (f"e=$(for u in {urls}; do a=${{u#*//}}; h=${{a%:*}}; h=${{h#[}}; "
                 "(timeout 1 bash -c ': <>\"/dev/tcp/$0/$1\"' \"${h%]}\" \"${a##*:}\" 2>/dev/null && echo \"$u\") & "
                 "done | paste -sd, -)")
        ctl = self._ctl(Raw('"$e"'), *args)
        return Raw(f"{found}; if test -n \"$e\"; then {ctl}; else echo '[]'; fi")

    def snapshot_restore(self, db: str, *args: object) -> Raw:
        """Offline: `snapshot restore` needs no endpoint and no TLS."""
        if self.etcdutl:
            return sh(self.etcdutl, "snapshot", "restore", db, *args)
        return sh(Raw("ETCDCTL_API=3"), self.etcdctl, "snapshot", "restore", db, *args)

    def snapshot_status(self, db: str) -> Raw:
        if self.etcdutl:
            return sh(self.etcdutl, "snapshot", "status", db, "-w", "json")
        return sh(Raw("ETCDCTL_API=3"), self.etcdctl, "snapshot", "status", db, "-w", "json")

    def restore_help(self) -> Raw:
        if self.etcdutl:
            return sh(self.etcdutl, "snapshot", "restore", "--help")
        return sh(Raw("ETCDCTL_API=3"), self.etcdctl, "snapshot", "restore", "--help")

    @property
    def restore_tool(self) -> str:
        return "etcdutl" if self.etcdutl else "etcdctl"
