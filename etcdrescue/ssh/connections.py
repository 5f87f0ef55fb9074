"""SSH connections along routes: one per login per run, jump hosts included.

A route's prefixes are logins too: two members behind the same jump host share its connection, and a
member that is also a jump host shares its own. A member's connection to the next hop is a
`direct-tcpip` channel of the one before it, passed to paramiko as its socket (what `ssh -J` does;
paramiko does not do it itself). Whoever uses a connection holds it; it closes when the last holder
lets go, or with the pool. A connection found dead is opened again on next use (after a real fault).

paramiko gets no host keys: every key a server offers reaches `_Verify`, which judges it by the
route's known_hosts files (`known_hosts.py`) and refuses anything but a key on record.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import paramiko
from paramiko.pkey import PublicBlob

from ..errors import HostKeyError, TransportError
from .known_hosts import KnownHosts, Verdict, refusal
from .route import Endpoint, Route

Login = tuple[tuple[str, str, int], ...]


class _Verify(paramiko.MissingHostKeyPolicy):
    def __init__(self, route: Route, known: KnownHosts) -> None:
        self.route, self.known = route, known

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        verdict, on_record = self.known.check(self.route[-1].key_name, key.get_name(), key.asbytes())
        if verdict is not Verdict.TRUSTED:
            raise HostKeyError(refusal(verdict, self.route, key.get_name(), key.asbytes(), on_record))


class Connections:
    """Every SSH connection of a run, keyed by the logins of the route to it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[Login, threading.Lock] = {}
        self._clients: dict[Login, paramiko.SSHClient] = {}
        self._holders: dict[Login, set[Hashable]] = {}
        self.opened = 0
        """SSH connections opened so far (each TCP connection or jump channel that logged in)."""

    def client(self, route: Route, holder: Hashable, *, passphrase: str | None, timeout: float) -> paramiko.SSHClient:
        """The logged-in connection to `route[-1]`, opening what is missing or dead along the route."""
        parent: paramiko.SSHClient | None = None
        for i in range(len(route)):
            key: Login = tuple(e.login for e in route[: i + 1])
            with self._lock:
                lock = self._locks.setdefault(key, threading.Lock())
            with lock:
                with self._lock:  # held before it is looked at: a concurrent release cannot close it under us
                    self._holders.setdefault(key, set()).add(holder)
                    current = self._clients.get(key)
                if current is None or not _alive(current):
                    if current is not None:
                        current.close()
                    current = _open(route[: i + 1], parent, passphrase, timeout, hop=i < len(route) - 1)
                    with self._lock:
                        self._clients[key] = current
                        self.opened += 1
            parent = current
        assert parent is not None
        return parent

    def release(self, holder: Hashable) -> None:
        """`holder` is done: connections nobody else holds close (deepest first)."""
        with self._lock:
            idle = []
            for key, holders in self._holders.items():
                holders.discard(holder)
                if not holders:
                    idle.append(key)
            for key in sorted(idle, key=len, reverse=True):
                del self._holders[key]
                client = self._clients.pop(key, None)
                if client is not None:
                    client.close()

    def close(self) -> None:
        with self._lock:
            for key in sorted(self._clients, key=len, reverse=True):
                self._clients[key].close()
            self._clients.clear()
            self._holders.clear()


def _alive(client: paramiko.SSHClient) -> bool:
    transport = client.get_transport()
    return bool(transport and transport.is_active())


def _open(route: Route, parent: paramiko.SSHClient | None, passphrase: str | None, timeout: float,
          *, hop: bool) -> paramiko.SSHClient:
    """Errors about a jump host say so; the member's name is the caller's to add."""
    ep = route[-1]
    where = f"jump host {ep.name}: " if hop else ""
    try:
        return _login(route, parent, passphrase, timeout)
    except (HostKeyError, TransportError) as exc:
        raise type(exc)(where + str(exc)) from None


def _login(route: Route, parent: paramiko.SSHClient | None, passphrase: str | None, timeout: float
           ) -> paramiko.SSHClient:
    ep = route[-1]
    known = KnownHosts(ep.known_hosts)
    if not known.existing:
        files = ", ".join(ep.known_hosts)
        raise HostKeyError(f"known_hosts file {files} not found: refusing to trust any key")
    keys = [f for f in ep.identity_files if Path(f).is_file()]
    if ep.identity_files and not keys and not any(Path(f + ".pub").is_file() for f in ep.identity_files):
        raise TransportError(f"identity file {', '.join(ep.identity_files)} not found")
    sock = _socket(route, parent, timeout)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(_Verify(route, known))
    agent = paramiko.Agent() if ep.identities_only else None
    try:
        pkey = _agent_key(agent, ep) if agent is not None else None
        client.connect(
            ep.host, port=ep.port, username=ep.user, sock=sock, pkey=pkey,
            key_filename=keys or None,  # type: ignore[arg-type]  # paramiko takes a list; its stubs say str
            passphrase=passphrase,
            allow_agent=not ep.identities_only, look_for_keys=not ep.identity_files and not ep.identities_only,
            timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
            transport_factory=_preferring(known, ep),
        )
    except HostKeyError:
        client.close()
        raise
    except paramiko.AuthenticationException as exc:
        client.close()
        raise TransportError(f"SSH authentication as {ep.user} failed: {exc}") from None
    except paramiko.SSHException as exc:
        client.close()
        if str(exc) != "No authentication methods available":
            raise TransportError(f"SSH connection to {ep.address} failed: {exc}") from None
        held = f"neither {', '.join(ep.identity_files)} nor the agent holds a key" if ep.identity_files else (
            "no key file and no agent key")
        raise TransportError(f"SSH authentication as {ep.user} failed: {held} to offer") from None
    except (OSError, EOFError) as exc:
        client.close()
        raise TransportError(f"SSH connection to {ep.address} failed: {exc}") from None
    finally:
        if agent is not None:
            agent.close()
    return client


def _socket(route: Route, parent: paramiko.SSHClient | None, timeout: float) -> Any:
    ep = route[-1]
    if parent is None:
        try:
            sock = socket.create_connection((ep.host, ep.port), timeout=timeout)
        except socket.gaierror as exc:
            alias = "" if ep.host != ep.name else " (no ssh config HostName for it either)"
            raise TransportError(f"cannot resolve host name {ep.host!r}{alias}: {exc.strerror or exc}") from None
        except OSError as exc:
            raise TransportError(f"cannot reach {ep.address}: {exc.strerror or exc}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    transport = parent.get_transport()
    via = route[-2]
    try:
        assert transport is not None
        return transport.open_channel("direct-tcpip", (ep.host, ep.port), ("127.0.0.1", 0), timeout=timeout)
    except (paramiko.SSHException, OSError, EOFError, AssertionError) as exc:
        raise TransportError(f"jump host {via.name} cannot reach {ep.address}: {exc}") from None


def _agent_key(agent: paramiko.Agent, ep: Endpoint) -> paramiko.PKey | None:
    """IdentitiesOnly: an agent key is offered only if it is one of the identity files' (by its `.pub`),
    as `ssh` does; that is how a passphrase-protected identity the agent holds is used."""
    wanted = set()
    for f in ep.identity_files:
        try:
            wanted.add(PublicBlob.from_file(f + ".pub").key_blob)
        except (OSError, ValueError):
            continue
    return next((k for k in agent.get_keys() if k.asbytes() in wanted), None)


def _preferring(known: KnownHosts, ep: Endpoint) -> Any:
    """A Transport that asks for the key types on record first (as `ssh` does), so a host with an
    ed25519 and an ECDSA key shows the one known_hosts has."""
    types = {k.key_type for k in known.keys_for(ep.key_name)}

    def factory(sock: Any, disabled_algorithms: dict[str, Any] | None = None) -> paramiko.Transport:
        transport = paramiko.Transport(sock, disabled_algorithms=disabled_algorithms)
        options = transport.get_security_options()
        offered = list(options.key_types)
        first = [t for t in offered if t in types or (t.startswith("rsa-sha2-") and "ssh-rsa" in types)]
        options.key_types = first + [t for t in offered if t not in first]
        return transport

    return factory
