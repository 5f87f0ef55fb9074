"""A local lab of fake OKD 3.10 masters (etcd static pods, sshd, real TLS) for tests and rehearsal."""

from __future__ import annotations

from etcdrescue.lab.base import LabError, LabHost, missing_prerequisites
from etcdrescue.lab.lab import Lab

__all__ = ["Lab", "LabError", "LabHost", "missing_prerequisites"]
