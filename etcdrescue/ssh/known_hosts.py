"""Host keys the operator trusts: OpenSSH known_hosts files, judged line by line as `ssh` judges them.

Why not paramiko's HostKeys: it matches hashed (`|1|salt|hash`) and exact `[host]:port` names, but a
marker line (`@cert-authority`, `@revoked`) makes it raise, a key type it does not know drops the
line silently, and it has no patterns. Here a line is host patterns (comma list, `*` and `?`, `!`
negation, or one hashed name), a key type and the key's base64; `@revoked` keys are refused, and
`@cert-authority` lines are skipped (host certificates are not supported).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import shlex
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from .route import Endpoint


class Verdict(Enum):
    TRUSTED = "trusted"
    UNKNOWN = "unknown"
    CHANGED = "changed"
    REVOKED = "revoked"


@dataclass(frozen=True)
class KnownKey:
    file: str
    line: int
    key_type: str
    blob: bytes
    revoked: bool = False

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.blob)


@dataclass(frozen=True)
class _Entry:
    patterns: str
    key: KnownKey


def fingerprint(blob: bytes) -> str:
    """`ssh-keygen -l`'s SHA256 form of a public key blob."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _base_type(key_type: str) -> str:
    """paramiko names an RSA key by the signature it negotiated; known_hosts says ssh-rsa."""
    return "ssh-rsa" if key_type.startswith("rsa-sha2-") else key_type


class KnownHosts:
    """The keys of one or more known_hosts files (missing files hold none, as for `ssh`)."""

    def __init__(self, files: tuple[str, ...]) -> None:
        self.files = files
        self.existing = tuple(f for f in files if Path(f).is_file())
        self._entries = [e for f in self.existing for e in _read(f)]

    def keys_for(self, name: str) -> list[KnownKey]:
        """The trusted (not revoked) keys on record for `name` (`host` or `[host]:port`)."""
        return [e.key for e in self._entries if not e.key.revoked and _host_matches(name, e.patterns)]

    def check(self, name: str, key_type: str, blob: bytes) -> tuple[Verdict, list[KnownKey]]:
        """The verdict on the key `name` offered, and the keys on record for `name` it was compared with."""
        key_type = _base_type(key_type)
        for e in self._entries:
            if e.key.revoked and e.key.blob == blob and _host_matches(name, e.patterns):
                return Verdict.REVOKED, [e.key]
        known = self.keys_for(name)
        if any(k.key_type == key_type and k.blob == blob for k in known):
            return Verdict.TRUSTED, known
        return (Verdict.CHANGED if known else Verdict.UNKNOWN), known


def _read(file: str) -> list[_Entry]:
    try:
        lines = Path(file).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    out = []
    for number, raw in enumerate(lines, 1):
        fields = raw.split()
        if not fields or fields[0].startswith("#"):
            continue
        marker = fields.pop(0) if fields[0].startswith("@") else None
        if marker not in (None, "@revoked") or len(fields) < 3:
            continue
        try:
            blob = base64.b64decode(fields[2], validate=True)
        except (binascii.Error, ValueError):
            continue
        out.append(_Entry(fields[0], KnownKey(file, number, fields[1], blob, revoked=marker == "@revoked")))
    return out


def _host_matches(name: str, patterns: str) -> bool:
    if patterns.startswith("|1|"):
        return _hashed_matches(name, patterns)
    name = name.lower()
    matched = False
    for pattern in patterns.lower().split(","):
        negated = pattern.startswith("!")
        if _glob(pattern.removeprefix("!")).fullmatch(name):
            if negated:
                return False
            matched = True
    return matched


def _glob(pattern: str) -> re.Pattern[str]:
    """ssh's patterns know only `*` and `?` (so `[10.0.0.1]:2222` is a literal name, not a class)."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern))


def _hashed_matches(name: str, field: str) -> bool:
    """`|1|base64(salt)|base64(HMAC-SHA1(salt, name))`, as `ssh-keygen -H` writes it."""
    try:
        _, _, salt, digest = field.split("|")
        want = base64.b64decode(digest, validate=True)
        got = hmac.new(base64.b64decode(salt, validate=True), name.encode(), hashlib.sha1).digest()
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(want, got)


# -- what an operator reads when a key is refused -------------------------------------------------------

def keyscan_line(route: tuple[Endpoint, ...]) -> str:
    """The command that shows, by hand, the keys `route[-1]` offers: run on the last jump host, reached
    as the tool reaches it (`-F`: `ssh` reads the passwd entry's ~/.ssh/config, not $HOME's; the known
    hosts it trusted)."""
    target = route[-1]
    scan = f"ssh-keyscan -p {target.port} {shlex.quote(target.host)}"
    if len(route) == 1:
        return scan
    *before, last = route[:-1]
    words = ["ssh"]
    if last.config:
        words += ["-F", shlex.quote(last.config)]
    words += ["-o", shlex.quote("UserKnownHostsFile=" + " ".join(last.known_hosts))]
    if before:
        words += ["-J", shlex.quote(",".join(f"{h.user}@{h.name}:{h.port}" for h in before))]
    words += ["-p", str(last.port), shlex.quote(f"{last.user}@{last.name}"), scan]
    return " ".join(words)


def refusal(verdict: Verdict, route: tuple[Endpoint, ...], key_type: str, blob: bytes,
            known: list[KnownKey]) -> str:
    """One line: which login, what it offered, what is on record, and what to run by hand."""
    target = route[-1]
    offered = f"{_base_type(key_type)} {fingerprint(blob)}"
    scan = keyscan_line(route)
    files = ", ".join(target.known_hosts)
    if verdict is Verdict.UNKNOWN:
        return (f"{target.address}: host key not in {files} (offered {offered}): refusing; "
                f"check it by hand with `{scan}` and add it to {target.known_hosts[0]}")
    first = known[0]
    where = f"{first.file}:{first.line}"
    if verdict is Verdict.REVOKED:
        return f"host key of {target.address} is marked @revoked in {where} (offered {offered}): refusing"
    remove = f"ssh-keygen -R {shlex.quote(target.key_name)} -f {shlex.quote(first.file)}"
    had = ", ".join(f"{k.key_type} {k.fingerprint}" for k in known)
    return (f"host key of {target.address} CHANGED: offered {offered}, {where} has {had}: refusing; "
            f"if the change is expected, check the new key with `{scan}`, then `{remove}` and add it")
