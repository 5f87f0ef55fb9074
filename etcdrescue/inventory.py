"""Load and validate the YAML inventory.

Every value here may end up in a shell command on a master, so validation is
strict: names, hosts, URLs and paths must match narrow patterns, and anything
else is rejected with the file, the field and the reason.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from .errors import InventoryError
from .platform import DEFAULT_PROFILE, PLATFORMS, Paths, Platform

NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,252}[A-Za-z0-9])?$")
HOSTNAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
PATH_RE = re.compile(r"^/[A-Za-z0-9._/+@=:-]*$")
SCOPE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
CLUSTER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")

TOP_KEYS = {"cluster", "profile", "ssh", "paths", "members"}
SSH_KEYS = {"user", "port", "identity_file", "known_hosts", "sudo", "config"}
MEMBER_KEYS = {"name", "host", "port", "peer_url", "client_url"}
PATH_KEYS = set(Paths.__dataclass_fields__)


@dataclass(frozen=True)
class SSHSettings:
    """The inventory's `ssh:` section. `explicit` names the keys the inventory sets: only those win
    over the operator's ssh config file (`config`, None for none); the defaults give way to it."""

    user: str = "root"
    port: int = 22
    identity_file: str | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    sudo: bool = False
    config: str | None = "~/.ssh/config"
    explicit: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Member:
    name: str
    host: str
    port: int
    peer_url: str
    client_url: str
    port_set: bool = False
    """The member's or the ssh section's `port` is in the inventory (else the ssh config's Port may apply)."""

    @property
    def peer_host(self) -> str:
        return urlsplit(self.peer_url).hostname or ""

    @property
    def client_host(self) -> str:
        return urlsplit(self.client_url).hostname or ""

    @property
    def client_port(self) -> int:
        return urlsplit(self.client_url).port or 2379

    @property
    def peer_port(self) -> int:
        return urlsplit(self.peer_url).port or 2380


@dataclass(frozen=True)
class Inventory:
    cluster: str
    platform: Platform
    ssh: SSHSettings
    members: tuple[Member, ...]
    source: str = "<inventory>"

    @property
    def paths(self) -> Paths:
        return self.platform.paths

    def member(self, name: str) -> Member:
        for m in self.members:
            if m.name == name:
                return m
        raise InventoryError(f"{self.source}: no member named {name!r} (members: {self.names()})")

    def names(self) -> str:
        return ", ".join(m.name for m in self.members)

    def with_seed(self, name: str | None) -> Inventory:
        """The same inventory with `name` first: the first member is the restore seed."""
        if name is None:
            return self
        seed = self.member(name)
        return replace(self, members=(seed, *(m for m in self.members if m.name != name)))

    @property
    def seed(self) -> Member:
        return self.members[0]

    @property
    def quorum(self) -> int:
        return len(self.members) // 2 + 1


def load_inventory(path: str | Path) -> Inventory:
    p = Path(path).expanduser()
    where = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError(f"{where}: inventory file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"{where}: cannot read inventory: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise InventoryError(f"{where}: not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    return parse_inventory(data, where)


def parse_inventory(data: Any, where: str = "<inventory>") -> Inventory:
    def fail(field: str, why: str) -> InventoryError:
        return InventoryError(f"{where}: {field}: {why}")

    if not isinstance(data, dict):
        raise fail("(top level)", "must be a mapping with cluster, profile, ssh, members")
    _no_unknown(data, TOP_KEYS, "(top level)", fail)

    cluster = data.get("cluster")
    if not isinstance(cluster, str) or not CLUSTER_RE.fullmatch(cluster):
        raise fail("cluster", "required; letters, digits, '.', '_', '-' (max 63)")

    profile_name = data.get("profile", DEFAULT_PROFILE)
    if profile_name not in PLATFORMS:
        raise fail("profile", f"unknown profile {profile_name!r} (known: {', '.join(sorted(PLATFORMS))})")
    kind = PLATFORMS[profile_name]

    ssh = _parse_ssh(data.get("ssh") or {}, fail)
    paths = _parse_paths(data.get("paths") or {}, kind.default_paths, fail)

    raw_members = data.get("members")
    if not isinstance(raw_members, list) or not raw_members:
        raise fail("members", "required: a non-empty list")
    members = tuple(_parse_member(i, m, ssh, fail) for i, m in enumerate(raw_members))
    _check_unique(members, fail)
    return Inventory(cluster=cluster, platform=kind.build(paths), ssh=ssh, members=members, source=where)


def _no_unknown(d: dict[str, Any], allowed: set[str], field: str, fail: Any) -> None:
    unknown = sorted(set(map(str, d)) - allowed)
    if unknown:
        raise fail(field, f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")


def _port(value: Any, field: str, fail: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise fail(field, f"must be a port number 1-65535, got {value!r}")
    return value


def _abs_path(value: Any, field: str, fail: Any, *, local: bool = False) -> str:
    if not isinstance(value, str) or not value:
        raise fail(field, "must be a non-empty path")
    if local:
        try:
            value = str(Path(value).expanduser())
        except RuntimeError:  # "~nosuchuser/..."
            raise fail(field, f"cannot expand '~' in {value!r}: no such user or no home directory") from None
    if not value.startswith("/"):
        raise fail(field, f"must be an absolute path, got {value!r}")
    if not PATH_RE.fullmatch(value) or "/../" in value + "/" or "//" in value:
        raise fail(field, f"unsafe characters or '..' in path {value!r}")
    return value.rstrip("/") or "/"


def _parse_ssh(raw: Any, fail: Any) -> SSHSettings:
    if not isinstance(raw, dict):
        raise fail("ssh", "must be a mapping")
    _no_unknown(raw, SSH_KEYS, "ssh", fail)
    user = raw.get("user", "root")
    if not isinstance(user, str) or not USER_RE.fullmatch(user):
        raise fail("ssh.user", f"not a valid user name: {user!r}")
    port = _port(raw.get("port", 22), "ssh.port", fail)
    identity = raw.get("identity_file")
    if identity is not None:
        identity = _abs_path(identity, "ssh.identity_file", fail, local=True)
    known = _abs_path(raw.get("known_hosts", "~/.ssh/known_hosts"), "ssh.known_hosts", fail, local=True)
    sudo = raw.get("sudo", False)
    if not isinstance(sudo, bool):
        raise fail("ssh.sudo", "must be true or false")
    config = raw.get("config", "~/.ssh/config")
    if config is False or (isinstance(config, str) and config.lower() == "none"):
        config = None
    else:
        config = _abs_path(config, "ssh.config", fail, local=True)
    explicit = frozenset(k for k, v in raw.items() if v is not None)
    return SSHSettings(user=user, port=port, identity_file=identity, known_hosts=known, sudo=sudo,
                       config=config, explicit=explicit)


def _parse_paths(raw: Any, defaults: Paths, fail: Any) -> Paths:
    if not isinstance(raw, dict):
        raise fail("paths", "must be a mapping")
    _no_unknown(raw, PATH_KEYS, "paths", fail)
    values = {k: _abs_path(v, f"paths.{k}", fail) for k, v in raw.items()}
    paths = replace(defaults, **values)
    if paths.disabled_dir == paths.pod_dir:
        raise fail("paths.disabled_dir", "must differ from the manifest's directory (the kubelet reads that)")
    return paths


def _url(value: Any, field: str, fail: Any) -> str:
    if not isinstance(value, str):
        raise fail(field, "required: a URL like https://10.0.0.10:2380")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:  # "https://[:2380", "https://[fe80::1%]:2380" (bad bracketed host), bad port
        raise fail(field, f"malformed URL {value!r}: need scheme://host:port") from None
    if parts.scheme not in ("https", "http") or not parts.hostname or port is None:
        raise fail(field, f"malformed URL {value!r}: need scheme://host:port")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise fail(field, f"malformed URL {value!r}: no path, query or user allowed")
    if not valid_host(parts.hostname):
        raise fail(field, f"malformed host in URL {value!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if parts.netloc.lower() != f"{host}:{port}".lower() or not 0 < port < 65536:
        # urlsplit reads "[::];:0" as host "::", port 0: whatever lies between them would reach a shell
        raise fail(field, f"malformed URL {value!r}: need scheme://host:port")
    return f"{parts.scheme}://{parts.netloc}"


def valid_host(host: str) -> bool:
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return bool(HOSTNAME_RE.fullmatch(host))
    # An IPv6 scope id ("fe80::1%eth0") may hold any character, "$(...)" and newlines included.
    scope = getattr(addr, "scope_id", None)
    return scope is None or bool(SCOPE_RE.fullmatch(scope))


def _parse_member(i: int, raw: Any, ssh: SSHSettings, fail: Any) -> Member:
    field = f"members[{i}]"
    if not isinstance(raw, dict):
        raise fail(field, "must be a mapping with name, peer_url, client_url")
    _no_unknown(raw, MEMBER_KEYS, field, fail)
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise fail(f"{field}.name", f"required; letters, digits, '.', '_', '-': got {name!r}")
    host = raw.get("host", name)
    if not isinstance(host, str) or not valid_host(host):
        raise fail(f"{field}.host", f"not a valid host name or address: {host!r}")
    port = _port(raw.get("port", ssh.port), f"{field}.port", fail)
    port_set = raw.get("port") is not None or "port" in ssh.explicit
    peer = _url(raw.get("peer_url"), f"{field}.peer_url", fail)
    client = _url(raw.get("client_url"), f"{field}.client_url", fail)
    peer_parts, client_parts = urlsplit(peer), urlsplit(client)
    if peer_parts.scheme != client_parts.scheme:
        raise fail(f"{field}.peer_url", "peer and client URLs must use the same scheme")
    if peer_parts.port == client_parts.port and peer_parts.hostname == client_parts.hostname:
        raise fail(f"{field}.peer_url", "peer URL and client URL must not share a port")
    if peer_parts.hostname in ("localhost", "127.0.0.1") and not host.startswith("127."):
        raise fail(f"{field}.peer_url", f"peer URL {peer!r} points at localhost, other members cannot reach it")
    return Member(name=name, host=host, port=port, peer_url=peer, client_url=client, port_set=port_set)


def _check_unique(members: tuple[Member, ...], fail: Any) -> None:
    for attr in ("name", "peer_url", "client_url"):
        seen: dict[str, int] = {}
        for i, m in enumerate(members):
            value = getattr(m, attr)
            if value in seen:
                raise fail(f"members[{i}].{attr}", f"duplicate {attr} {value!r} (also members[{seen[value]}])")
            seen[value] = i
    hosts: dict[tuple[str, int], int] = {}
    for i, m in enumerate(members):
        if (m.host, m.port) in hosts:
            raise fail(f"members[{i}].host", f"duplicate SSH target {m.host}:{m.port}")
        hosts[(m.host, m.port)] = i
