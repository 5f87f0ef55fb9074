"""Each etcd certificate's expiry, read from the PEM files the member's settings name.

Certificates are public: the bastion reads the files and parses them itself (paramiko's `cryptography`), so no
`openssl` is needed on the master. Keys are never read.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from cryptography import x509


class CertRole(enum.Enum):
    SERVER = "server"
    PEER = "peer"
    CLIENT = "client"


SETTINGS_FLAG = {CertRole.SERVER: "cert-file", CertRole.PEER: "peer-cert-file"}
"""The etcd flag naming each role's certificate; the client certificate is the one etcdctl uses (`Paths.cert`)."""

SOON = dt.timedelta(days=30)


@dataclass(frozen=True)
class CertFact:
    role: CertRole
    path: str
    not_after: dt.datetime | None = None
    error: str = ""

    def left(self, now: dt.datetime) -> dt.timedelta | None:
        return None if self.not_after is None else self.not_after - now

    def expired(self, now: dt.datetime) -> bool:
        left = self.left(now)
        return left is not None and left <= dt.timedelta(0)

    def words(self, now: dt.datetime) -> str:
        if self.not_after is None:
            return f"{self.role.value} certificate {self.path}: {self.error or 'unread'}"
        left = self.left(now)
        assert left is not None
        when = self.not_after.strftime("%Y-%m-%d %H:%M UTC")
        if left <= dt.timedelta(0):
            return f"{self.role.value} certificate {self.path} EXPIRED {when} ({(-left).days} days ago)"
        soon = " (soon)" if left < SOON else ""
        return f"{self.role.value} certificate {self.path} expires {when}, in {left.days} days{soon}"


def read_cert(role: CertRole, path: str, pem: bytes) -> CertFact:
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        return CertFact(role, path, error=f"not a PEM certificate ({str(exc)[:80]})")
    return CertFact(role, path, cert.not_valid_after_utc)
