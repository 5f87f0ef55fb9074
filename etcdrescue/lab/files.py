"""Text of the files a lab master carries, in the shape OKD 3.10 writes them.

Fidelity matters more than elegance here: the recovery tool edits these files with
sed and parses them, so they must look like the ones on a real master.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .base import PLATFORM


class HostLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def ip(self) -> str: ...

    @property
    def peer_url(self) -> str: ...

    @property
    def client_url(self) -> str: ...


MANIFEST_HEAD = """\
apiVersion: v1
kind: Pod
metadata:
  name: master-etcd
  namespace: kube-system
  labels:
    openshift.io/control-plane: "true"
    openshift.io/component: etcd
  annotations:
    scheduler.alpha.kubernetes.io/critical-pod: ''
spec:
  restartPolicy: Always
  hostNetwork: true
  containers:
  - name: etcd
    image: quay.io/coreos/etcd:v3.2.22
    workingDir: /var/lib/etcd
    command: ["/bin/sh", "-c"]
    args:
"""

ARGS_BLOCK = """\
    - |
      #!/bin/sh
      set -o allexport
      source /etc/etcd/etcd.conf
      exec etcd
"""

# The single-quoted variant found in the OKD docs: blank lines inside the scalar fold to newlines.
ARGS_QUOTED = """\
    - '#!/bin/sh

      set -o allexport

      source /etc/etcd/etcd.conf

      exec etcd

      '
"""

MANIFEST_TAIL = """\
    securityContext:
      privileged: true
    volumeMounts:
     - mountPath: /etc/etcd/
       name: master-config
       readOnly: true
     - mountPath: /var/lib/etcd/
       name: master-data
  volumes:
  - name: master-config
    hostPath:
      path: /etc/etcd/
  - name: master-data
    hostPath:
      path: /var/lib/etcd
"""

MANIFEST_STYLES = ("block", "quoted")


def manifest(style: str = "block") -> str:
    if style not in MANIFEST_STYLES:
        raise ValueError(f"manifest_style must be one of {MANIFEST_STYLES}, not {style!r}")
    return MANIFEST_HEAD + (ARGS_BLOCK if style == "block" else ARGS_QUOTED) + MANIFEST_TAIL


def etcd_conf(me: HostLike, members: Sequence[HostLike]) -> str:
    initial = ",".join(f"{m.name}={m.peer_url}" for m in members)
    lines = [
        f"ETCD_NAME={me.name}",
        f"ETCD_LISTEN_PEER_URLS={me.peer_url}",
        "ETCD_DATA_DIR=/var/lib/etcd/",
        "#ETCD_WAL_DIR=",
        "#ETCD_SNAPSHOT_COUNT=10000",
        "ETCD_HEARTBEAT_INTERVAL=100",
        "ETCD_ELECTION_TIMEOUT=1000",
        f"ETCD_LISTEN_CLIENT_URLS={me.client_url}",
        "#ETCD_MAX_SNAPSHOTS=5",
        "#ETCD_MAX_WALS=5",
        "#ETCD_CORS=",
        "",
        "#[cluster]",
        f"ETCD_INITIAL_ADVERTISE_PEER_URLS={me.peer_url}",
        f"ETCD_INITIAL_CLUSTER={initial}",
        "ETCD_INITIAL_CLUSTER_STATE=new",
        "ETCD_INITIAL_CLUSTER_TOKEN=etcd-cluster-1",
        "#ETCD_DISCOVERY=",
        "#ETCD_DISCOVERY_SRV=",
        "#ETCD_DISCOVERY_FALLBACK=proxy",
        "#ETCD_DISCOVERY_PROXY=",
        f"ETCD_ADVERTISE_CLIENT_URLS={me.client_url}",
        "",
        "#[security]",
        "ETCD_TRUSTED_CA_FILE=/etc/etcd/ca.crt",
        "ETCD_CLIENT_CERT_AUTH=true",
        "ETCD_CERT_FILE=/etc/etcd/server.crt",
        "ETCD_KEY_FILE=/etc/etcd/server.key",
        "#ETCD_AUTO_TLS=false",
        "ETCD_PEER_TRUSTED_CA_FILE=/etc/etcd/ca.crt",
        "ETCD_PEER_CLIENT_CERT_AUTH=true",
        "ETCD_PEER_CERT_FILE=/etc/etcd/peer.crt",
        "ETCD_PEER_KEY_FILE=/etc/etcd/peer.key",
        "#ETCD_PEER_AUTO_TLS=false",
        "",
        "#[logging]",
        "ETCD_DEBUG=False",
        "",
    ]
    return "\n".join(lines)


def inventory(
    cluster: str, port: int, identity_file: str, known_hosts: str, members: Sequence[HostLike]
) -> str:
    out = [
        f"cluster: {cluster}",
        f"profile: {PLATFORM}",
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


# `master-restart etcd` on OKD stops the etcd container and lets the kubelet start a new one;
# here PID 1 of the namespace is the kubelet stand-in and SIGUSR1 asks it for exactly that.
MASTER_RESTART = """\
#!/bin/bash
# etcdrescue lab stand-in for OKD's master-restart
set -euo pipefail
if [[ $# -lt 1 ]]; then
  echo "usage: master-restart api|controllers|etcd" >&2
  exit 1
fi
if [[ "$1" != "etcd" ]]; then
  echo "Component $1 is not running" >&2
  exit 0
fi
pid=$(sed -n 's/^etcd_pid=\\([0-9][0-9]*\\)$/\\1/p' /run/etcdlab/state 2>/dev/null || true)
if [[ -z "$pid" ]]; then
  echo "Component etcd is not running" >&2
  exit 0
fi
kill -USR1 1
"""

# `master-logs etcd etcd` on OKD is `docker logs` of the current etcd container.
MASTER_LOGS = """\
#!/bin/bash
# etcdrescue lab stand-in for OKD's master-logs
set -uo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: master-logs api|controllers|etcd api|controllers|etcd [--tail N]" >&2
  exit 1
fi
if [[ "$1" != "etcd" || "$2" != "etcd" ]]; then
  echo "Component $1 is stopped or not running" >&2
  exit 0
fi
shift 2
tail_n=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --tail) tail_n="$2"; shift 2 ;;
    --tail=*) tail_n="${1#--tail=}"; shift ;;
    *) shift ;;
  esac
done
log=/run/etcdlab/etcd.log
if [[ ! -e "$log" ]]; then
  echo "Component etcd is stopped or not running" >&2
  exit 0
fi
if [[ -n "$tail_n" && "$tail_n" != "all" ]]; then
  tail -n "$tail_n" "$log"
else
  cat "$log"
fi
"""
