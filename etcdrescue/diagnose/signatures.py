"""Known causes, recognised in a member's last etcd log lines.

Each signature is a pattern seen in etcd's own messages (the 3.4 text logs and the 3.5+ JSON logs say the same
words); the newest matching line is the evidence. Sources: etcd's server and raft code and the incidents in
`shared/research/etcd-versions.md` §7.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Cause(enum.Enum):
    ALREADY_BOOTSTRAPPED = "already bootstrapped"
    """The member lost its WAL (or all its data) and restarted as a new member of a cluster that knows it."""
    TOCOMMIT_OUT_OF_RANGE = "tocommit out of range"
    """A wiped member restarted under its old identity: the leader sends a commit index it never had."""
    SPACE_EXCEEDED = "database space exceeded"
    CERT_EXPIRED = "x509 expired"
    CERT_UNKNOWN_AUTHORITY = "x509 unknown authority"
    WAL_CORRUPT = "WAL/CRC corruption"
    FLAG_UNDEFINED = "flag provided but not defined"
    REMOVED_ALL_VOTERS = "removed all voters"
    ADDRESS_IN_USE = "address in use"
    DISK_FULL = "no space left on device"


@dataclass(frozen=True)
class Signature:
    cause: Cause
    pattern: re.Pattern[str]


SIGNATURES = (
    Signature(Cause.ALREADY_BOOTSTRAPPED, re.compile(r"has already been bootstrapped")),
    Signature(Cause.TOCOMMIT_OUT_OF_RANGE, re.compile(r"tocommit\(\d+\) is out of range \[lastIndex\(\d+\)\]")),
    Signature(Cause.SPACE_EXCEEDED, re.compile(r"database space exceeded")),
    Signature(Cause.CERT_EXPIRED,
              re.compile(r"x509: certificate has expired|certificate has expired or is not yet valid")),
    Signature(Cause.CERT_UNKNOWN_AUTHORITY, re.compile(r"x509: certificate signed by unknown authority")),
    Signature(Cause.WAL_CORRUPT, re.compile(r"crc mismatch|wal: (?:file not found|slice bounds out of range|"
                                            r"max entry size limit exceeded)|"
                                            r"failed to (?:find database snapshot file|recover v3 backend)|"
                                            r"failed to read WAL|unexpected EOF.*wal|walpb: ")),
    Signature(Cause.FLAG_UNDEFINED, re.compile(r"flag provided but not defined: -+[\w.-]+")),
    Signature(Cause.REMOVED_ALL_VOTERS, re.compile(r"removed all voters")),
    Signature(Cause.ADDRESS_IN_USE, re.compile(r"address already in use")),
    Signature(Cause.DISK_FULL, re.compile(r"no space left on device")),
)


@dataclass(frozen=True)
class Finding:
    cause: Cause
    line: str
    """The newest log line that showed it (shortened)."""

    @property
    def words(self) -> str:
        """The cause, then the line that showed it; the line alone where it starts with the cause's own words
        (etcd's "flag provided but not defined: -x" said once, not twice)."""
        return self.line if self.line.startswith(self.cause.value) else f"{self.cause.value}: {self.line}"

    @property
    def detail(self) -> str:
        """The matched words themselves: the flag's name, the indexes."""
        for s in SIGNATURES:
            if s.cause is self.cause and (m := s.pattern.search(self.line)):
                return m.group(0)
        return ""


def classify(log: str) -> tuple[Finding, ...]:
    """Every known cause in `log`, each once, with its newest line; in the order of `SIGNATURES`."""
    lines = log.splitlines()
    out = []
    for s in SIGNATURES:
        line = next((ln for ln in reversed(lines) if s.pattern.search(ln)), None)
        if line is not None:
            out.append(Finding(s.cause, shorten(line)))
    return tuple(out)


def shorten(line: str, width: int = 240) -> str:
    line = line.strip()
    return line if len(line) <= width else line[: width - 3] + "..."
