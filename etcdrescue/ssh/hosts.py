"""One SSHHost per inventory member, and running facts on them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ..inventory.model import Inventory
from ..probes import Fact, ParseError
from .connections import Connections
from .route import member_routes
from .transport import Result, SSHConfig, SSHHost

T = TypeVar("T")


class Hosts:
    """The members' hosts, sharing one pool of connections (one per login, jump hosts included).

    Every route is resolved here, before any connection: a bad ssh config or a ProxyJump loop is
    refused while nothing has run anywhere.
    """

    def __init__(self, inv: Inventory, *, sudo_password: str | None = None, passphrase: str | None = None) -> None:
        self.inv = inv
        self.connections = Connections()
        routes = member_routes(inv)
        self._hosts = {
            m.name: SSHHost(m.name, SSHConfig(routes[m.name], passphrase=passphrase, sudo=inv.ssh.sudo,
                                              sudo_password=sudo_password), self.connections)
            for m in inv.members
        }

    def __getitem__(self, name: str) -> SSHHost:
        return self._hosts[name]

    def __enter__(self) -> Hosts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for h in self._hosts.values():
            h.close()
        self.connections.close()

    def run(self, name: str, script: str, timeout: float = 60.0,
            on_output: Callable[[str], None] | None = None) -> Result:
        return self._hosts[name].run(script, timeout=timeout, on_output=on_output)

    def fact(self, name: str, fact: Fact[T]) -> T:
        res = self.run(name, fact.script, fact.timeout)
        try:
            return fact.parse(res.stdout)
        except (ParseError, KeyError, ValueError, TypeError) as exc:
            raise ParseError(f"{name}: {fact.name}: {exc}; stderr: {res.stderr.strip()[:200]}") from None
