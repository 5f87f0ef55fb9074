"""A local lab of fake masters (etcd static pods, sshd, real TLS) for tests and rehearsal.

Its masters have a platform's shape (`shape.LabShape`: OKD 3.10 or kubeadm) and run etcd 3.4 or 3.5.
"""

from __future__ import annotations

from etcdrescue.lab.base import LabError, LabHost, missing_prerequisites
from etcdrescue.lab.lab import Lab
from etcdrescue.lab.shape import LabShape

__all__ = ["Lab", "LabError", "LabHost", "LabShape", "missing_prerequisites"]
