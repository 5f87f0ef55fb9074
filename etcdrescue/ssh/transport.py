"""SSH transport: one persistent paramiko connection per host.

Why its own socket: with TCP_NODELAY each command costs ~2 ms instead of ~48 ms
(measured: see docs/design.md), which matters for health gates polling every 0.5 s.
Connections, jump hosts and host keys are `connections.py`'s: unknown or changed keys
are refused with the offered fingerprint in the message.
"""

from __future__ import annotations

import logging
import secrets
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko

from ..errors import HostKeyError, TransportError
from .connections import Connections
from .route import Route
from .shell import RemoteShell, ShellLost

OutputCallback = Callable[[str], None]

logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False


@dataclass(frozen=True)
class Result:
    host: str
    command: str
    exited: int
    stdout: str
    stderr: str
    duration: float
    raw_stdout: bytes = b""

    @property
    def ok(self) -> bool:
        return self.exited == 0

    @property
    def output(self) -> str:
        return (self.stdout + ("\n" if self.stdout and self.stderr else "") + self.stderr).strip()


@dataclass(frozen=True)
class SSHConfig:
    """How to reach one member: the route to it (jump hosts first, the member last) and how to log in."""

    route: Route
    passphrase: str | None = None
    sudo: bool = False
    sudo_password: str | None = None
    connect_timeout: float = 10.0


SHELLS = 3
"""Long-lived shells per host, all on its one connection: a gate's probes of one host run side by side."""


class SSHHost:
    """Runs shell scripts on one host over a lazily opened, reused connection.

    The connection comes from `connections`, shared with the other members of the run (a jump host's
    connection serves every member behind it); without one the host has its own. Scripts run in up to
    SHELLS long-lived shells, each a channel of that connection: one login, several commands at once.
    """

    def __init__(self, name: str, config: SSHConfig, connections: Connections | None = None) -> None:
        self.name = name
        self.config = config
        self._connections = connections if connections is not None else Connections()
        self._client: paramiko.SSHClient | None = None
        self._idle: list[RemoteShell] = []
        self._lock = threading.Lock()
        self._shells = threading.BoundedSemaphore(SHELLS)

    def __enter__(self) -> SSHHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def transport(self) -> paramiko.Transport | None:
        return self._client.get_transport() if self._client else None

    @property
    def connected(self) -> bool:
        transport = self.transport
        return bool(transport and transport.is_active())

    def connect(self) -> None:
        with self._lock:
            if self.connected:
                return
            try:
                self._client = self._connections.client(self.config.route, self, passphrase=self.config.passphrase,
                                                        timeout=self.config.connect_timeout)
            except (HostKeyError, TransportError) as exc:
                raise type(exc)(f"{self.name}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            for shell in self._idle:
                shell.close()
            self._idle.clear()
            if self._client is not None:
                self._client = None
                self._connections.release(self)

    def run(self, script: str, *, timeout: float = 60.0, on_output: OutputCallback | None = None) -> Result:
        """Run `script` in the host's long-lived bash; reconnect once if the connection was already gone."""
        return self._run_in_shell(script, timeout, on_output)

    def _open_shell(self) -> RemoteShell:
        self.connect()
        transport = self.transport
        if transport is None:
            raise TransportError(f"{self.name}: not connected")
        channel = transport.open_session()
        if self.config.sudo:
            self._start_sudo_shell(channel)
        else:
            channel.exec_command("exec bash --noprofile --norc -s")
        shell = RemoteShell(channel)
        try:
            code, _, err = shell.run("true", time.monotonic() + self.config.connect_timeout + 20, None)
        except ShellLost:
            shell.close()
            why = "sudo refused the password?" if self.config.sudo else "slow or interactive login scripts?"
            raise TransportError(f"{self.name}: the remote shell did not answer ({why})") from None
        if code != 0:
            raise TransportError(f"{self.name}: remote shell refused: {err.decode(errors='replace').strip()}")
        return shell

    def _start_sudo_shell(self, channel: paramiko.Channel) -> None:
        """Start a root bash through sudo, sending the password only if sudo's own prompt asks for it.

        Why the prompt marker and the READY line: with NOPASSWD, or a login sudo still remembers,
        sudo does not read stdin, and a password written blindly would reach bash as a command.
        """
        token = secrets.token_hex(6)
        prompt, ready = f"[etcdrescue-sudo-{token}]", f"etcdrescue-ready-{token}"
        inner = f"echo {ready}; exec bash --noprofile --norc -s"
        channel.exec_command(f"exec sudo -S -p {shlex.quote(prompt)} bash --noprofile --norc -c {shlex.quote(inner)}")
        channel.settimeout(0.2)
        out, err = b"", b""
        sent = False
        deadline = time.monotonic() + self.config.connect_timeout + 20
        while ready.encode() not in out:
            if channel.recv_ready():
                out += channel.recv(4096)
            elif channel.recv_stderr_ready():
                err += channel.recv_stderr(4096)
            elif channel.exit_status_ready() or channel.closed:
                last = err.decode(errors="replace").replace(prompt, "").strip().splitlines()[-1:] or ["no output"]
                raise TransportError(f"{self.name}: sudo failed: {last[0][:200]}")
            elif time.monotonic() > deadline:
                raise TransportError(f"{self.name}: sudo did not start a shell in time")
            else:
                time.sleep(0.01)
            asked = err.count(prompt.encode())
            if asked and not sent:
                if not self.config.sudo_password:
                    raise TransportError(f"{self.name}: sudo asks for a password: set ETCDRESCUE_SUDO_PASSWORD")
                channel.sendall(self.config.sudo_password.encode() + b"\n")
                sent = True
            elif asked > 1:
                raise TransportError(f"{self.name}: sudo refused the password")

    def _run_in_shell(self, script: str, timeout: float, on_output: OutputCallback | None) -> Result:
        line = f"timeout -k 5 {int(max(1, timeout))} bash -c {shlex.quote(script)}"
        with self._shells:
            shell = self._take_shell()
            start = time.monotonic()
            try:
                code, out, err = shell.run(line, start + timeout + 10, on_output)
            except (ShellLost, paramiko.SSHException, EOFError, OSError) as exc:
                shell.close()
                self.close()
                raise TransportError(
                    f"{self.name}: connection lost while running a command ({exc}); "
                    "its effect is unknown: re-check"
                ) from None
            with self._lock:
                self._idle.append(shell)
            return Result(self.name, script, code, out.decode(errors="replace"),
                          err.decode(errors="replace"), time.monotonic() - start, out)

    def _take_shell(self) -> RemoteShell:
        """An idle shell still alive on a live connection, or a new one (reconnecting once if need be)."""
        with self._lock:
            while self._idle:
                shell = self._idle.pop()
                if shell.alive and self.connected:
                    return shell
                shell.close()
        try:
            return self._open_shell()
        except (paramiko.SSHException, EOFError, OSError):
            self.close()
        try:
            return self._open_shell()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            self.close()
            raise TransportError(f"{self.name}: cannot open an SSH channel: {exc}") from None

    def read_file(self, path: str) -> bytes:
        res = self.run(f"cat -- {shlex.quote(path)}", timeout=30)
        if not res.ok:
            raise TransportError(f"{self.name}: cannot read {path}: {res.stderr.strip()}")
        return res.raw_stdout

    def put_file(self, local: Path, remote: str) -> None:
        """Copy a local file to `remote` over SFTP on this host's connection, as the login user.

        The caller moves it into place from the (possibly sudo) shell: SFTP never runs as root through
        sudo, so it writes only where the login user may.
        """
        self.connect()
        assert self._client is not None
        try:
            with self._client.open_sftp() as sftp:
                sftp.put(str(local), remote)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise TransportError(f"{self.name}: cannot upload {local.name} to {remote}: {exc}") from None

    def get_file(self, remote: str, local: Path) -> None:
        """Copy `remote` to a local file over SFTP on this host's connection, as the login user."""
        self.connect()
        assert self._client is not None
        try:
            with self._client.open_sftp() as sftp:
                sftp.get(remote, str(local))
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise TransportError(f"{self.name}: cannot download {remote}: {exc}") from None
