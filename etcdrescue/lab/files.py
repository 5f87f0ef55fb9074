"""Files every lab master carries whatever its platform (sshd), and the lab's inventory.

The platform's own files (manifests, etcd settings, helper scripts) are written by its shape:
`okd3.py`, `kubeadm.py`.
"""

from __future__ import annotations

from collections.abc import Sequence

from .shape import HostLike


def inventory(
    cluster: str, port: int, identity_file: str, known_hosts: str, members: Sequence[HostLike], profile: str
) -> str:
    out = [
        f"cluster: {cluster}",
        f"profile: {profile}",
        f"ssh: {{user: root, port: {port}, identity_file: {identity_file}, known_hosts: {known_hosts}}}",
        "members:",
    ]
    out += [
        f"  - {{name: {m.name}, host: {m.ip}, peer_url: {m.peer_url}, client_url: {m.client_url}}}"
        for m in members
    ]
    return "\n".join(out) + "\n"


def sshd_config(ip: str, port: int, hostdir: str, labroot: str) -> str:
    return f"""\
# etcdrescue lab: one sshd per fake master, started inside that master's namespaces
ListenAddress {ip}:{port}
HostKey {hostdir}/ssh_host_ed25519_key
PidFile {hostdir}/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile {labroot}/authorized_keys
StrictModes no
UsePAM no
MaxSessions 30
MaxStartups 30:30:100
UseDNS no
PrintMotd no
PrintLastLog no
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
"""
