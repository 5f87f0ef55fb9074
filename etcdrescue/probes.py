"""Facts: read-only (script, parser) pairs, parsed from what etcdctl and coreutils print.

Parsers are pure functions of text, tested on recorded output (tests/data/).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .command import Raw, q
from .inventory.model import Member
from .platform import Platform
from .platform.pod import port_probe
from .platform.tools import NAMES, EtcdTools, ImageBinaries, Tool, find_script, image_script, parse_images, parse_tool

T = TypeVar("T")


class ParseError(ValueError):
    pass


@dataclass(frozen=True)
class Fact(Generic[T]):
    name: str
    script: str
    parse: Callable[[str], T]
    timeout: float = 20.0


@dataclass(frozen=True)
class MemberInfo:
    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_learner: bool = False

    @property
    def started(self) -> bool:
        return bool(self.name)

    @property
    def hex_id(self) -> str:
        return f"{self.id:x}"


@dataclass(frozen=True)
class EndpointStatus:
    endpoint: str
    member_id: int
    leader: int | None
    raft_index: int
    raft_applied_index: int
    revision: int
    db_size: int
    version: str
    is_learner: bool = False
    db_size_in_use: int = 0
    """The bytes the keys use: `db_size` less the free pages a defragmentation would give back."""

    @property
    def is_leader(self) -> bool:
        return self.leader is not None and self.leader == self.member_id


ALARM_ERROR = "Active Alarm(s):"
"""How etcdctl 3.5+ `endpoint health` calls a member unhealthy for its alarms alone (3.4's does not look at them)."""


@dataclass(frozen=True)
class EndpointHealth:
    endpoint: str
    healthy: bool
    error: str = ""


@dataclass(frozen=True)
class SnapshotInfo:
    hash: int
    revision: int
    total_keys: int
    total_size: int
    storage_version: str = ""
    """The storage version the snapshot's db records (etcdutl 3.6+'s `version`); "" from 3.5 and older servers,
    and from older tools, which do not read it."""


def _json(text: str, what: str) -> Any:
    """etcdctl prints its JSON on one line; warnings (also JSON) go to stderr, which we do not read here."""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(("{", "[")):
            try:
                return json.loads(line)
            except json.JSONDecodeError as exc:
                raise ParseError(f"{what}: bad JSON: {exc}") from None
    raise ParseError(f"{what}: no JSON in output: {text.strip()[:200]!r}")


def parse_member_list(text: str) -> list[MemberInfo]:
    data = _json(text, "member list")
    return [
        MemberInfo(
            id=int(m["ID"]), name=m.get("name", ""),
            peer_urls=tuple(m.get("peerURLs", [])), client_urls=tuple(m.get("clientURLs", [])),
            is_learner=bool(m.get("isLearner", False)),
        )
        for m in data.get("members", [])
    ]


def parse_endpoint_status(text: str) -> list[EndpointStatus]:
    data = _json(text, "endpoint status")
    out = []
    for entry in data:
        st = entry["Status"]
        header = st.get("header", {})
        out.append(EndpointStatus(
            endpoint=entry["Endpoint"], member_id=int(header.get("member_id", 0)),
            leader=int(st["leader"]) if st.get("leader") else None,
            raft_index=int(st.get("raftIndex", 0)), raft_applied_index=int(st.get("raftAppliedIndex", 0)),
            revision=int(header.get("revision", 0)), db_size=int(st.get("dbSize", 0)),
            version=str(st.get("version", "")), is_learner=bool(st.get("isLearner", False)),
            db_size_in_use=int(st.get("dbSizeInUse", 0)),
        ))
    return out


def parse_endpoint_health(text: str) -> list[EndpointHealth]:
    data = _json(text, "endpoint health")
    return [EndpointHealth(e["endpoint"], bool(e.get("health")), e.get("error", "")) for e in data]


def parse_snapshot_status(text: str) -> SnapshotInfo:
    d = _json(text, "snapshot status")
    return SnapshotInfo(int(d["hash"]), int(d["revision"]), int(d["totalKey"]), int(d["totalSize"]),
                        str(d.get("version") or ""))


class AlarmKind(enum.Enum):
    NOSPACE = "NOSPACE"
    CORRUPT = "CORRUPT"


ALARM_CODES = {1: AlarmKind.NOSPACE, 2: AlarmKind.CORRUPT}
"""etcdserverpb.AlarmType as etcdctl's JSON prints it (a number; 0 is NONE)."""


@dataclass(frozen=True)
class Alarm:
    member_id: int
    kind: AlarmKind

    @property
    def hex_id(self) -> str:
        return f"{self.member_id:x}"


def parse_alarm_list(text: str) -> list[Alarm]:
    data = _json(text, "alarm list")
    out = []
    for a in data.get("alarms") or []:
        code = a.get("alarm", 0)
        kind = ALARM_CODES.get(int(code)) if str(code).isdigit() else AlarmKind.__members__.get(str(code))
        if kind is None:
            raise ParseError(f"alarm list: unknown alarm {code!r}")
        out.append(Alarm(int(a.get("memberID", 0)), kind))
    return out


def parse_kv(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


# --- facts -----------------------------------------------------------------

def member_list(tools: EtcdTools, endpoints: Iterable[str]) -> Fact[list[MemberInfo]]:
    return Fact("member list", tools.ctl(endpoints, "member", "list", "-w", "json"), parse_member_list)


def alarm_list(tools: EtcdTools, endpoints: Iterable[str]) -> Fact[list[Alarm]]:
    return Fact("alarm list", tools.ctl(endpoints, "alarm", "list", "-w", "json", "--command-timeout=5s"),
                parse_alarm_list)


def endpoint_status(tools: EtcdTools, endpoints: Iterable[str]) -> Fact[list[EndpointStatus]]:
    script = Raw(tools.ctl_listening(endpoints, "endpoint", "status", "-w", "json", "--command-timeout=3s")
                 + " 2>/dev/null")
    return Fact("endpoint status", script, parse_endpoint_status)


def endpoint_health(tools: EtcdTools, endpoints: Iterable[str]) -> Fact[list[EndpointHealth]]:
    script = Raw(tools.ctl_listening(endpoints, "endpoint", "health", "-w", "json", "--command-timeout=3s")
                 + " 2>/dev/null; true")
    return Fact("endpoint health", script, parse_endpoint_health)


def snapshot_status(tools: EtcdTools, db: str) -> Fact[SnapshotInfo]:
    return Fact("snapshot status", tools.snapshot_status(db), parse_snapshot_status)


BUMP_FLAGS = ("--bump-revision", "--mark-compacted")


def restore_can_bump(tools: EtcdTools) -> Fact[bool]:
    """Whether `snapshot restore` takes BUMP_FLAGS (etcdctl >= 3.4.27, etcdutl >= 3.5.10, any 3.6): asked of the
    binary itself, since backports make the version alone a poor guide."""
    tests = " && ".join(f"printf '%s' \"$h\" | grep -q -e {q(f)}" for f in BUMP_FLAGS)
    script = f"(h=$({tools.restore_help()} 2>&1); if {tests}; then echo yes; else echo no; fi)"
    return Fact("restore flags", script, _yes_no)


def _yes_no(output: str) -> bool:
    word = output.strip()
    if word not in ("yes", "no"):
        raise ParseError(f"expected yes or no, got {word[:60]!r}")
    return word == "yes"


@dataclass(frozen=True)
class HostSurvey:
    """What one round trip tells about a master before anything changes."""

    manifest: bool
    disabled: bool
    conf: bool
    data_dir: bool
    member: bool
    member_kb: int
    free_kb: int | None
    etcd_pid: int | None
    client_port_open: bool
    peer_port_open: bool
    etcdctl: Tool | None
    etcdutl: Tool | None
    bash: str
    tls: bool
    pod_copies: tuple[str, ...] = ()
    """Other files in the pod dir that define the etcd pod (each would run as a second etcd)."""
    images: tuple[ImageBinaries, ...] = ()
    """The etcd tools of every image layer the container runtime unpacked on the host, with their versions."""

    def journal(self) -> dict[str, str]:
        """The journal's spelling (what `etcdrescue report` prints, for old and new journals alike)."""
        yn = {True: "yes", False: "no"}
        return {"manifest": yn[self.manifest], "disabled": yn[self.disabled], "conf": yn[self.conf],
                "data_dir": yn[self.data_dir], "member": yn[self.member], "member_kb": str(self.member_kb),
                "free_kb": "" if self.free_kb is None else str(self.free_kb),
                "etcd_pid": "" if self.etcd_pid is None else str(self.etcd_pid),
                "client_port": "open" if self.client_port_open else "closed",
                "peer_port": "open" if self.peer_port_open else "closed",
                "etcdctl": self.etcdctl.path if self.etcdctl else "",
                "etcdctl_version": self.etcdctl.version if self.etcdctl else "",
                "etcdutl": self.etcdutl.path if self.etcdutl else "",
                "bash": self.bash, "tls": yn[self.tls]}


def _int(value: str) -> int | None:
    return int(value) if value.strip().isdigit() else None


def parse_host_survey(text: str) -> HostSurvey:
    kv = parse_kv(text)
    if "manifest" not in kv or "tls" not in kv:
        raise ParseError(f"host survey: incomplete output: {text.strip()[:200]!r}")
    return HostSurvey(
        manifest=kv["manifest"] == "yes", disabled=kv.get("disabled") == "yes", conf=kv.get("conf") == "yes",
        data_dir=kv.get("data_dir") == "yes", member=kv.get("member") == "yes",
        member_kb=_int(kv.get("member_kb", "")) or 0, free_kb=_int(kv.get("free_kb", "")),
        etcd_pid=_int(kv.get("etcd_pid", "")), client_port_open=kv.get("client_port") == "open",
        peer_port_open=kv.get("peer_port") == "open", etcdctl=parse_tool(kv, "etcdctl"),
        etcdutl=parse_tool(kv, "etcdutl"), bash=kv.get("bash", ""),
        tls=kv["tls"] == "yes", pod_copies=tuple(kv.get("pod_copies", "").split()),
        images=parse_images(kv.get("images", "")),
    )


def host_survey(platform: Platform, member: Member) -> Fact[HostSurvey]:
    """One round trip for the pre-flight: where the manifest is, whether etcd runs, sizes, free disk, tools (the
    host's own, and those of the etcd images its runtime unpacked)."""
    paths, host, client_port, peer_port = platform.paths, member.client_host, member.client_port, member.peer_port
    settings_readable, copies_script = platform.settings.readable_script(), platform.pod.copies_script()
    m, d, dd, md = q(paths.manifest), q(paths.disabled_manifest), q(paths.data_dir), q(paths.member_dir)
    lines = [
        f"echo manifest=$(test -e {m} && echo yes || echo no)",
        f"echo disabled=$(test -e {d} && echo yes || echo no)",
        f"echo conf=$({settings_readable} && echo yes || echo no)",
        f"echo data_dir=$(test -d {dd} && echo yes || echo no)",
        f"echo member=$(test -d {md} && echo yes || echo no)",
        f"echo member_kb=$(du -sk {md} 2>/dev/null | cut -f1)",
        f"echo free_kb=$(df -Pk {dd} 2>/dev/null | awk 'NR==2 {{print $4}}')",
        "echo etcd_pid=$(pgrep -x etcd | head -1)",
        f"echo client_port=$({port_probe(host, client_port)} && echo open || echo closed)",
        f"echo peer_port=$({port_probe(host, peer_port)} && echo open || echo closed)",
        *(find_script(name) for name in NAMES),
        image_script(),
        "echo bash=$BASH_VERSION",
        f"echo tls=$(test -r {q(paths.ca)} && test -r {q(paths.cert)} && test -r {q(paths.key)} "
        "&& echo yes || echo no)",
        f"echo pod_copies=$({copies_script})",
    ]
    return Fact("host survey", Raw("; ".join(lines)), parse_host_survey)


def backup_survey(path: str) -> Fact[dict[str, str]]:
    """What kind of backup sits at `path`: a data-dir copy (member/snap/db) or a snapshot file."""
    p = q(path)
    db = q(path.rstrip("/") + "/member/snap/db")
    script = Raw(
        f"if test -d {p}; then echo kind=dir; echo db=$(test -f {db} && echo yes || echo no); "
        f"echo wal=$(ls {q(path.rstrip('/') + '/member/wal')} 2>/dev/null | grep -c '[.]wal$'); "
        f"echo size_kb=$(du -sk {p} | cut -f1); echo mtime=$(stat -c %Y {db} 2>/dev/null); "
        f"elif test -f {p}; then echo kind=file; echo size_kb=$(du -sk {p} | cut -f1); echo mtime=$(stat -c %Y {p}); "
        f"else echo kind=missing; fi"
    )
    return Fact("backup survey", script, parse_kv)
