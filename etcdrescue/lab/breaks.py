"""Break modes for `diagnose`'s by-hand verdicts: an expired peer certificate, and flags the binary refuses.

Each changes one member the way the incident does in the field, keeping what it replaced beside it as a dot file
(`.<file>.lab-before`: a kubelet runs every other file in its manifests dir as a pod, and the pre-flight refuses
such a second etcd pod), and lets the kubelet stand-in restart etcd.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from .base import HostRef
from .lab import Lab
from .pki import CertificateAuthority, write_atomic

OLD_FLAGS = ("--experimental-initial-corrupt-check=true", "--experimental-watch-progress-notify-interval=5s")
"""What a kubeadm 1.31-1.33 manifest (etcd 3.5) carries, and etcd 3.7 refuses (renamed in 3.6, removed in 3.7)."""


def kept(real: Path) -> Path:
    """Where `keep_before` keeps the file at `real` (a path on this machine)."""
    return real.with_name(f".{real.name}.lab-before")


def keep_before(lab: Lab, host: HostRef, path: str) -> None:
    real = lab.host_path(host, path)
    before = kept(real)
    if not before.exists():
        shutil.copy2(real, before)


def expire_peer_cert(lab: Lab, host: HostRef) -> str:
    """The member's peer certificate replaced by one that expired yesterday; etcd restarted. Its peers refuse it,
    so it loses the cluster (and, on okd3, the tool's own client certificate there, which is the same file)."""
    h = lab.host(host)
    spec = next(s for s in lab.shape.certificates(h) if s.cert.endswith("/peer.crt"))
    ca = CertificateAuthority.load(lab.pki / "ca.crt", lab.pki / "ca.key")
    pem, key = ca.issue(spec.common_name, list(spec.dns), list(spec.ips), server_auth=spec.server_auth, expired=True)
    key_path = spec.key or spec.cert + ".key"
    for path in (spec.cert, key_path):
        keep_before(lab, h, path)
    write_atomic(lab.host_path(h, key_path), key, 0o600)
    write_atomic(lab.host_path(h, spec.cert), pem)
    lab.stop_etcd(h)
    lab.start_etcd(h, wait=False)
    return spec.cert


def refused_flags(lab: Lab, host: HostRef, flags: tuple[str, ...] = OLD_FLAGS) -> str:
    """kubeadm only: `flags` added to the member's etcd command list (an upgrade that kept an older manifest's
    flags). The kubelet stand-in restarts etcd on the changed manifest; a binary without them exits at once."""
    h = lab.host(host)
    manifest = lab.shape.paths.manifest
    real = lab.host_path(h, manifest)
    doc = yaml.safe_load(real.read_text())
    container = next(c for c in doc["spec"]["containers"] if c["name"] == "etcd")
    keep_before(lab, h, manifest)
    container["command"] = [*container["command"], *(f for f in flags if f not in container["command"])]
    write_atomic(real, yaml.safe_dump(doc, sort_keys=False))
    return manifest
