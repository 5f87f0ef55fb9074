"""The operator's OpenSSH client configuration (`~/.ssh/config`), read the way `ssh` reads it.

paramiko's `SSHConfig` parses Host and Match blocks and expands tokens, but ignores `Include`.
Includes are expanded here, as text, before paramiko reads the result. `ssh` evaluates an included
file inside the block that includes it: its own Host and Match blocks only apply when the including
block does too, and the including block goes on after the Include. In text that is: each header of
the included file becomes a `Match` carrying the including block's condition as well, and the
including block's header is written again after the included lines.

The system-wide `/etc/ssh/ssh_config` is not read: what a recovery connects to should not depend on
a file the operator did not name.
"""

from __future__ import annotations

import glob
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import paramiko

from ..errors import InputError

DEFAULT_PATH = "~/.ssh/config"
MAX_INCLUDE_DEPTH = 16  # as ssh's READCONF_MAX_DEPTH
SETTING = re.compile(r"(\w+)(?:\s*=\s*|\s+)(.+)")


class SSHConfigError(InputError):
    pass


@dataclass(frozen=True)
class HostEntry:
    """What the config says about one name; None or empty where it says nothing."""

    name: str
    hostname: str
    port: int | None = None
    user: str | None = None
    identity_files: tuple[str, ...] = ()
    identities_only: bool = False
    known_hosts: tuple[str, ...] = ()
    proxy_jump: tuple[str, ...] = ()
    host_key_alias: str | None = None


@dataclass(frozen=True)
class ClientConfig:
    """A parsed config file (`path` None: no file, every lookup says nothing)."""

    path: str | None
    parsed: paramiko.SSHConfig

    @classmethod
    def empty(cls) -> ClientConfig:
        return cls(None, paramiko.SSHConfig())

    @classmethod
    def load(cls, path: str, *, required: bool) -> ClientConfig:
        """Read `path`; a missing file is an error only when the operator named it (`ssh` itself
        starts without a `~/.ssh/config`)."""
        p = Path(path).expanduser()
        if not p.is_file():
            if required:
                raise SSHConfigError(f"ssh config file {path} not found (set ssh.config: none to use none)")
            return cls.empty()
        text = "\n".join(_expand(p, 0, ()))
        try:
            return cls(str(p), paramiko.SSHConfig.from_text(text))
        except (paramiko.ConfigParseError, ValueError) as exc:
            raise SSHConfigError(f"ssh config {p}: {exc}") from None

    def lookup(self, name: str) -> HostEntry:
        if self.path is None:
            return HostEntry(name, name)
        try:
            opts = self.parsed.lookup(name)
        except (paramiko.ConfigParseError, paramiko.CouldNotCanonicalize, ImportError, ValueError) as exc:
            raise SSHConfigError(f"ssh config {self.path}: looking up {name}: {exc}") from None
        if opts.get("proxycommand") and "proxyjump" not in opts:
            raise SSHConfigError(f"ssh config {self.path}: {name}: ProxyCommand is not supported; use ProxyJump")
        port = opts.get("port")
        if port is not None and (not str(port).isdigit() or not 1 <= int(port) <= 65535):
            raise SSHConfigError(f"ssh config {self.path}: {name}: Port {port!r} is not a port number")
        jump = opts.get("proxyjump", "none")
        return HostEntry(
            name=name,
            hostname=opts["hostname"],
            port=int(port) if port is not None else None,
            user=opts.get("user"),
            identity_files=tuple(_home(f) for f in opts.get("identityfile", [])),
            identities_only=opts.get("identitiesonly", "no").lower() == "yes",
            known_hosts=tuple(_home(f) for f in opts.get("userknownhostsfile", "").split()),
            proxy_jump=() if jump.lower() == "none" else tuple(h.strip() for h in jump.split(",")),
            host_key_alias=opts.get("hostkeyalias"),
        )


def _home(path: str) -> str:
    if path.startswith("~"):
        return str(Path(path).expanduser())
    return path.replace("%d", str(Path.home()))


def _condition(header: str) -> list[str]:
    """A Host or Match header as Match criteria ("Host a b" is "originalhost a,b")."""
    key, _, value = header.partition(" ")
    words = shlex.split(value)
    if key.lower() == "host":
        return ["originalhost", ",".join(words)]
    return [] if [w.lower() for w in words] == ["all"] else words


def _header(outer: tuple[str, ...], header: str) -> str:
    """`header` as it reads inside a block whose condition is `outer`."""
    if not outer:
        return header
    return "Match " + " ".join(shlex.quote(w) for w in (*outer, *_condition(header)))


def _expand(path: Path, depth: int, outer: tuple[str, ...]) -> list[str]:
    if depth > MAX_INCLUDE_DEPTH:
        raise SSHConfigError(f"ssh config {path}: Include nested more than {MAX_INCLUDE_DEPTH} deep (a loop?)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SSHConfigError(f"cannot read ssh config {path}: {exc}") from None
    out: list[str] = []
    header: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = SETTING.match(line)
        if match is None:
            out.append(line)  # paramiko names the unparsable line
            continue
        key, value = match.group(1).lower(), match.group(2)
        if key in ("host", "match"):
            header = f"{key} {value.strip()}"
            out.append(_header(outer, header))
        elif key == "include":
            inner = (*outer, *_condition(header)) if header else outer
            for pattern in shlex.split(value):
                for file in _include_files(pattern):
                    out += _expand(file, depth + 1, inner)
            out.append(_header(outer, header) if header else ("Match " + " ".join(map(shlex.quote, outer))
                                                               if outer else "Host *"))
        else:
            out.append(line)
    return out


def _include_files(pattern: str) -> list[Path]:
    """Include's files: a relative pattern is under ~/.ssh; a glob matching nothing adds nothing (as in ssh)."""
    full = Path(pattern).expanduser()
    if not full.is_absolute():
        full = Path.home() / ".ssh" / full
    return [Path(f) for f in sorted(glob.glob(str(full))) if Path(f).is_file()]
