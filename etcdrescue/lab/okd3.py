"""The okd3 lab shape: OKD 3.10 masters, the files in the shape OKD 3.10 writes them.

Fidelity matters more than elegance here: the recovery tool edits these files with
sed and parses them, so they must look like the ones on a real master.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from typing import Any

from ..platform import okd3
from ..platform.tools import TOOLS_ROOT
from .shape import CertSpec, HostContext, HostFile, HostLike, KubeletRules, LabShape, Mount, PodStart, Runtime

PATHS = okd3.DEFAULT_PATHS
POD_NAME = "master-etcd"

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
  exit 0  # the lab runs no api or controllers container: nothing to stop
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


def _component_manifest(pod: str, container: str, start: str) -> str:
    """OKD 3.11's master-api / master-controllers static pods (openshift-ansible's templates, trimmed)."""
    return f"""\
apiVersion: v1
kind: Pod
metadata:
  name: {pod}
  namespace: kube-system
  labels:
    openshift.io/control-plane: "true"
    openshift.io/component: {container}
spec:
  restartPolicy: Always
  hostNetwork: true
  containers:
  - name: {container}
    image: docker.io/openshift/origin-control-plane:v3.11
    command: ["/bin/bash", "-c"]
    args:
    - |
      #!/bin/bash
      set -euo pipefail
      if [[ -f /etc/origin/master/master.env ]]; then
        set -o allexport
        source /etc/origin/master/master.env
      fi
      exec openshift start master {start} --config=/etc/origin/master/master-config.yaml --loglevel=2
    securityContext:
      privileged: true
    volumeMounts:
    - mountPath: /etc/origin/master/
      name: master-config
  volumes:
  - name: master-config
    hostPath:
      path: /etc/origin/master/
"""


DOCKER = f"""\
#!/bin/bash
# etcdrescue lab stand-in for docker: only `ps -q` with label/status filters. The lab runs no pod but etcd:
# etcd's container runs while the kubelet stand-in runs etcd; api and controllers "run" while their manifest
# is in the pod dir (a real kubelet would run them).
set -uo pipefail
[[ "${{1:-}}" == ps ]] || {{ echo "docker stand-in: only ps" >&2; exit 1; }}
shift
name=""; format=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --filter) [[ "$2" == label=io.kubernetes.container.name=* ]] && name="${{2#label=io.kubernetes.container.name=}}"
              shift 2 ;;
    --format) format="$2"; shift 2 ;;
    *) shift ;;
  esac
done
if [[ "$format" == *restartCount* ]]; then  # the kubelet's label: the stand-in's starts less the first
  n=$(sed -n 's/^restarts=//p' /run/etcdlab/state 2>/dev/null)
  [[ "$name" == etcd && -e /run/etcdlab/etcd.log ]] && echo $(( ${{n:-1}} > 0 ? ${{n:-1}} - 1 : 0 ))
  exit 0
fi
case "$name" in
  etcd) [[ -e /run/etcdlab/etcd.log ]] && echo etcdlab0000etcd ;;
  api) [[ -e {PATHS.pod_dir}/apiserver.yaml ]] && echo etcdlab00000api ;;
  controllers) [[ -e {PATHS.pod_dir}/controller.yaml ]] && echo etcdlab000ctrls ;;
esac
exit 0
"""


CRICTL = f"""\
#!/bin/bash
# etcdrescue lab stand-in for crictl on an OKD master that runs CRI-O (no docker): only `ps -q` with
# `--label io.kubernetes.container.name=NAME` / `--name NAME`. etcd's container runs while the kubelet stand-in runs
# etcd; api and controllers "run" while their manifest is in the pod dir (a real kubelet would run them).
set -uo pipefail
[[ "${{1:-}}" == ps ]] || {{ echo "crictl stand-in: only ps" >&2; exit 1; }}
shift
name=""; json=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --label) [[ "$2" == io.kubernetes.container.name=* ]] && name="${{2#io.kubernetes.container.name=}}"; shift 2 ;;
    --label=io.kubernetes.container.name=*) name="${{1#--label=io.kubernetes.container.name=}}"; shift ;;
    --name) name="$2"; shift 2 ;;
    -o) [[ "$2" == json ]] && json=1; shift 2 ;;
    *) shift ;;
  esac
done
if [[ -n "$json" ]]; then  # the newest container's attempt: the stand-in's starts less the first
  n=$(sed -n 's/^restarts=//p' /run/etcdlab/state 2>/dev/null)
  if [[ "$name" == etcd && -e /run/etcdlab/etcd.log ]]; then
    printf '{{"containers": [{{"id": "etcdlab0000etcd", "metadata": {{"name": "etcd", "attempt": %d}}}}]}}\n' \
      $(( ${{n:-1}} > 0 ? ${{n:-1}} - 1 : 0 ))
  else echo '{{"containers": []}}'; fi
  exit 0
fi
pid=$(sed -n 's/^etcd_pid=//p' /run/etcdlab/state 2>/dev/null)
case "$name" in
  etcd) [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo etcdlab0000etcd ;;
  api) [[ -e {PATHS.pod_dir}/apiserver.yaml ]] && echo etcdlab00000api ;;
  controllers) [[ -e {PATHS.pod_dir}/controller.yaml ]] && echo etcdlab000ctrls ;;
esac
exit 0
"""

RUNTIMES = (Runtime("docker", (HostFile("/usr/local/bin/docker", DOCKER, 0o755),)),
            Runtime("crio", (HostFile("/usr/local/bin/crictl", CRICTL, 0o755),), hides=("docker",)))
"""OKD 3.x masters run docker (the default) or CRI-O (openshift-ansible ships `master-restart` for both)."""


def _is_etcd_pod(doc: Any) -> bool | None:
    try:
        name = doc["metadata"]["name"]
    except (TypeError, KeyError):
        return None
    return None if name is None else name == POD_NAME


def _start(doc: Any) -> PodStart:
    """The pod's `args[0]` is a shell script (`source etcd.conf; exec etcd`), run as the container's `sh -c`."""
    script = doc["spec"]["containers"][0]["args"][0]
    if not isinstance(script, str):
        raise TypeError("args[0] is not a string")
    return PodStart(("bash", "-c", script), PATHS.data_dir)


def _certificates(h: HostLike) -> tuple[CertSpec, ...]:
    etc = posixpath.dirname(PATHS.etcd_conf)
    return (
        CertSpec(PATHS.ca, None, ca=True),
        *(CertSpec(f"{etc}/{kind}.crt", f"{etc}/{kind}.key", h.name, (h.name,), (h.ip, "127.0.0.1"))
          for kind in ("server", "peer")),
    )


def _initial_files(ctx: HostContext) -> tuple[HostFile, ...]:
    return (HostFile(PATHS.etcd_conf, etcd_conf(ctx.host, ctx.members)), HostFile(PATHS.manifest, manifest(ctx.style)),
            HostFile(f"{PATHS.pod_dir}/apiserver.yaml", _component_manifest("master-api", "api", "api")),
            HostFile(f"{PATHS.pod_dir}/controller.yaml",
                     _component_manifest("master-controllers", "controllers", "controllers")))


SHAPE = LabShape(
    platform=okd3.NAME,
    paths=PATHS,
    mounts=(Mount("/etc/origin", "etc/origin"), Mount(posixpath.dirname(PATHS.etcd_conf), "etc/etcd"),
            Mount(PATHS.data_dir, "var/lib/etcd"), Mount(TOOLS_ROOT.rsplit("/", 1)[0], "var/lib/etcdrescue")),
    dirs=(PATHS.disabled_dir, posixpath.dirname(PATHS.etcd_conf)),
    kubelet=KubeletRules(pod_dir=PATHS.pod_dir, pod_label=POD_NAME, is_etcd_pod=_is_etcd_pod, start=_start,
                         fallback_file=PATHS.manifest_name),
    certificates=_certificates,
    initial_files=_initial_files,
    helper_files=(HostFile(okd3.RESTART[0], MASTER_RESTART, 0o755), HostFile(okd3.LOGS.split()[0], MASTER_LOGS, 0o755)),
    runtimes=RUNTIMES,
    host_tools=True,
    manifest_styles=MANIFEST_STYLES,
    backup_kinds=("openshift",),
)
