"""Facts: read-only (script, parser) pairs, parsed from what etcdctl and coreutils print.

Parsers are pure functions of text, tested on recorded output (tests/data/).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .command import Raw, etcdctl, q, sh
from .profiles import Paths

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

    @property
    def is_leader(self) -> bool:
        return self.leader is not None and self.leader == self.member_id


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
            version=str(st.get("version", "")),
        ))
    return out


def parse_endpoint_health(text: str) -> list[EndpointHealth]:
    data = _json(text, "endpoint health")
    return [EndpointHealth(e["endpoint"], bool(e.get("health")), e.get("error", "")) for e in data]


def parse_snapshot_status(text: str) -> SnapshotInfo:
    d = _json(text, "snapshot status")
    return SnapshotInfo(int(d["hash"]), int(d["revision"]), int(d["totalKey"]), int(d["totalSize"]))


def parse_kv(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


# --- facts -----------------------------------------------------------------

def member_list(paths: Paths, endpoints: Iterable[str]) -> Fact[list[MemberInfo]]:
    return Fact("member list", etcdctl(paths, endpoints, "member", "list", "-w", "json"), parse_member_list)


def endpoint_status(paths: Paths, endpoints: Iterable[str]) -> Fact[list[EndpointStatus]]:
    script = Raw(etcdctl(paths, endpoints, "endpoint", "status", "-w", "json", "--command-timeout=3s") + " 2>/dev/null")
    return Fact("endpoint status", script, parse_endpoint_status)


def endpoint_health(paths: Paths, endpoints: Iterable[str]) -> Fact[list[EndpointHealth]]:
    script = Raw(etcdctl(paths, endpoints, "endpoint", "health", "-w", "json", "--command-timeout=3s")
                 + " 2>/dev/null; true")
    return Fact("endpoint health", script, parse_endpoint_health)


def snapshot_status(db: str) -> Fact[SnapshotInfo]:
    return Fact("snapshot status", sh(Raw("ETCDCTL_API=3"), "etcdctl", "snapshot", "status", db, "-w", "json"),
                parse_snapshot_status)


def port_probe(host: str, port: int) -> str:
    """Exit 0 when something accepts a TCP connection on host:port (bash's /dev/tcp, no extra tools)."""
    return f"timeout 2 bash -c {q(f'exec 3<>/dev/tcp/{host}/{port}')} 2>/dev/null"


def etcd_down(host: str, ports: Iterable[int]) -> Raw:
    """Exit 0 when no etcd process runs and none of its ports accept connections."""
    checks = " && ".join(f"! {port_probe(host, p)}" for p in ports)
    return Raw(f"! pgrep -x etcd >/dev/null && {checks}")


ETCD_CMDLINES = "for pid in $(pgrep -x etcd); do tr '\\0' ' ' < /proc/$pid/cmdline; echo; done"
"""One line per running etcd process: its command line (the flags the kubelet started it with)."""


def etcd_runs_without(flag: str) -> Raw:
    """Exit 0 when an etcd process runs and none carries `flag`: the restart without it has happened."""
    return Raw(f"pgrep -x etcd >/dev/null && ! {{ {ETCD_CMDLINES}; }} | grep -q -- {q(flag)}")


def host_survey(paths: Paths, host: str, client_port: int, peer_port: int) -> Fact[dict[str, str]]:
    """One round trip for the pre-flight: where the manifest is, whether etcd runs, sizes and free disk."""
    m, d, c, dd = q(paths.manifest), q(paths.disabled_manifest), q(paths.etcd_conf), q(paths.data_dir)
    member = q(paths.member_dir)
    lines = [
        f"echo manifest=$(test -e {m} && echo yes || echo no)",
        f"echo disabled=$(test -e {d} && echo yes || echo no)",
        f"echo conf=$(test -r {c} && echo yes || echo no)",
        f"echo data_dir=$(test -d {dd} && echo yes || echo no)",
        f"echo member=$(test -d {member} && echo yes || echo no)",
        f"echo member_kb=$(du -sk {member} 2>/dev/null | cut -f1)",
        f"echo free_kb=$(df -Pk {dd} 2>/dev/null | awk 'NR==2 {{print $4}}')",
        "echo etcd_pid=$(pgrep -x etcd | head -1)",
        f"echo client_port=$({port_probe(host, client_port)} && echo open || echo closed)",
        f"echo peer_port=$({port_probe(host, peer_port)} && echo open || echo closed)",
        "echo etcdctl=$(command -v etcdctl || true)",
        "echo bash=$BASH_VERSION",
        f"echo tls=$(test -r {q(paths.ca)} && test -r {q(paths.cert)} && test -r {q(paths.key)} "
        "&& echo yes || echo no)",
    ]
    return Fact("host survey", Raw("; ".join(lines)), parse_kv)


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


def conf_values(path: str) -> Fact[dict[str, str]]:
    return Fact("etcd.conf", sh("cat", path), lambda t: {k: v.strip('"') for k, v in parse_kv(t).items()
                                                       if not k.startswith("#")})
