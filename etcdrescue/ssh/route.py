"""How each member is reached: the inventory's `ssh:` settings and the operator's ssh config, combined.

A route is the logins on the way to a member: its ProxyJump hops in order, then the member itself.
For a member, what the inventory sets explicitly wins over the config file, the config file over
the inventory's defaults. A ProxyJump hop is configured by its own config entry (the inventory's
settings are for the members): `user@host:port` in the ProxyJump value, then the hop's own User,
Port and IdentityFile; the inventory's user, identity file and default port 22 only where the
config names none. The inventory's known_hosts, when set, is the only trust store for every login.

ProxyJump follows `ssh -J`: the first hop is reached by its own config entry (its own ProxyJump
included); each later hop through the one before it, whatever ProxyJump its entry names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..inventory.model import USER_RE, Inventory, Member, SSHSettings, valid_host
from .config import ClientConfig, HostEntry, SSHConfigError

HOP_RE = re.compile(r"^(?:ssh://)?(?:(?P<user>[^@/]+)@)?(?P<host>\[[^\]/]+\]|[^:@/\[\]]+)(?::(?P<port>\d{1,5}))?/?$")


@dataclass(frozen=True)
class Endpoint:
    """One SSH login on the way to a member: where, as whom, which keys to offer, which host keys to trust."""

    name: str
    """As the operator wrote it: the inventory's host or a ProxyJump hop (an ssh config alias or an address)."""
    host: str
    port: int
    user: str
    known_hosts: tuple[str, ...]
    identity_files: tuple[str, ...] = ()
    identities_only: bool = False
    host_key_alias: str | None = None
    config: str | None = None
    """The ssh config file it was resolved with (what `ssh -F` needs to resolve `name` the same way)."""

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def key_name(self) -> str:
        """The name its key has in known_hosts (as `ssh` looks it up: port 22 is left out)."""
        name = (self.host_key_alias or self.host).lower()
        return name if self.port == 22 else f"[{name}]:{self.port}"

    @property
    def login(self) -> tuple[str, str, int]:
        """Two routes that share a login prefix share those connections."""
        return (self.user, self.host, self.port)


Route = tuple[Endpoint, ...]
"""ProxyJump hops first, the member last."""


def member_routes(inv: Inventory) -> dict[str, Route]:
    """Every member's route; a bad config, an unknown or invalid value, or a ProxyJump loop is an InputError."""
    config = load_config(inv.ssh)
    return {m.name: member_route(m, inv.ssh, config) for m in inv.members}


def load_config(ssh: SSHSettings) -> ClientConfig:
    if ssh.config is None:
        return ClientConfig.empty()
    return ClientConfig.load(ssh.config, required="config" in ssh.explicit)


def member_route(member: Member, ssh: SSHSettings, config: ClientConfig) -> Route:
    entry = config.lookup(member.host)
    explicit = ssh.explicit
    target = Endpoint(
        name=member.host,
        host=_checked_host(entry.hostname, member.host, config),
        port=member.port if member.port_set or "port" in explicit else entry.port or member.port,
        user=_checked_user(ssh.user if "user" in explicit else entry.user or ssh.user, member.host, config),
        known_hosts=_known_hosts(ssh, entry),
        identity_files=(ssh.identity_file,) if ssh.identity_file else entry.identity_files,
        identities_only=entry.identities_only,
        host_key_alias=entry.host_key_alias,
        config=config.path,
    )
    return (*_hops(entry.proxy_jump, (member.host,), ssh, config), target)


def _hops(specs: tuple[str, ...], chain: tuple[str, ...], ssh: SSHSettings, config: ClientConfig) -> Route:
    if not specs:
        return ()
    first = _hop(specs[0], chain, ssh, config)
    route = (*_hops(first[1].proxy_jump, (*chain, first[0].name), ssh, config), first[0])
    for spec in specs[1:]:
        route = (*route, _hop(spec, chain, ssh, config)[0])
    return route


def _hop(spec: str, chain: tuple[str, ...], ssh: SSHSettings, config: ClientConfig) -> tuple[Endpoint, HostEntry]:
    where = f"ssh config {config.path}"
    m = HOP_RE.fullmatch(spec)
    if m is None or (m["port"] and not 1 <= int(m["port"]) <= 65535):
        raise SSHConfigError(f"{where}: {chain[0]}: ProxyJump {spec!r} is not [user@]host[:port]")
    name = m["host"].strip("[]")
    if name in chain:
        raise SSHConfigError(f"{where}: ProxyJump loop: {' -> '.join((*chain, name))}")
    entry = config.lookup(name)
    hop = Endpoint(
        name=name,
        host=_checked_host(entry.hostname, name, config),
        port=int(m["port"]) if m["port"] else entry.port or 22,
        user=_checked_user(m["user"] or entry.user or ssh.user, name, config),
        known_hosts=_known_hosts(ssh, entry),
        identity_files=entry.identity_files or ((ssh.identity_file,) if ssh.identity_file else ()),
        identities_only=entry.identities_only,
        host_key_alias=entry.host_key_alias,
        config=config.path,
    )
    return hop, entry


def _known_hosts(ssh: SSHSettings, entry: HostEntry) -> tuple[str, ...]:
    if "known_hosts" in ssh.explicit:
        return (ssh.known_hosts,)
    return entry.known_hosts or (ssh.known_hosts,)


def _checked_host(host: str, name: str, config: ClientConfig) -> str:
    if not valid_host(host):
        raise SSHConfigError(f"ssh config {config.path}: {name}: HostName {host!r} is not a host name or address")
    return host


def _checked_user(user: str, name: str, config: ClientConfig) -> str:
    if not USER_RE.fullmatch(user):
        raise SSHConfigError(f"ssh config {config.path}: {name}: User {user!r} is not a valid user name")
    return user
