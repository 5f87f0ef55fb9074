"""The kubeadm lab shape: control-plane nodes as the kubeadm of the lab's etcd leaves them.

The four static pod manifests are written the way kubeadm serialises them (keys sorted, `command:`
as `etcd` then one sorted `--flag=value` item per flag, `creationTimestamp: null`, `status: {}`, mode
0600), the etcd certificates are kubeadm's set under /etc/kubernetes/pki/etcd, and the data is in
/var/lib/etcd. Only etcd runs: the kubelet stand-in starts the pod with a container named `etcd`.

Where the lab departs from kubeadm, and why:
- All lab hosts share one network namespace, so etcd cannot also listen on 127.0.0.1: clients are
  served on the host's IP only, and the metrics URL (and the probes that read it) is http://IP:2381.
- kubeadm builds the cluster by `init` on one node (`--initial-cluster=<itself>`) and a `join` per
  other node (`member add`, then `--initial-cluster=<members so far>` and
  `--initial-cluster-state=existing`). Starting all members at once with `existing` on the joiners
  does not bootstrap: a joiner asks the first member for the cluster version, which is "not decided"
  until a leader exists, and the leader needs the joiners' votes ("incompatible with current running
  cluster", measured on 3.5.1). So the lab bootstraps every member with the full `--initial-cluster`
  and `--initial-cluster-state=new`, and once the cluster is healthy writes the manifests kubeadm
  would have left (`settled_files`): that restarts each etcd once, on its existing data, where the
  initial-cluster flags are no longer read.
- The etcd image tag names the release the lab really runs, and the kubeadm version is one that
  installs that minor (`KUBEADM`): 1.33 writes 3.5's `--experimental-*` flags, 1.34+ with an etcd 3.6+
  image `--feature-gates=InitialCorruptCheck=true` and `--watch-progress-notify-interval` (which 3.5
  refuses, and without which 3.7 would refuse to start: it has no `--experimental-*` flag left).
  3.4 keeps the 1.31 manifest this shape always had, with the `/health` probes 3.4 can answer.
"""

from __future__ import annotations

import posixpath
from typing import Any

from ..platform import kubeadm
from ..platform.tools import TOOLS_ROOT
from .shape import CertSpec, HostContext, HostFile, HostLike, KubeletRules, LabShape, Mount, PodStart, Runtime

PATHS = kubeadm.DEFAULT_PATHS
MANIFESTS = PATHS.pod_dir
PKI = posixpath.dirname(posixpath.dirname(PATHS.ca))
ETCD_PKI = posixpath.dirname(PATHS.ca)
KUBEADM = {"3.4": "v1.31.1", "3.5": "v1.33.7", "3.6": "v1.36.2", "3.7": "v1.37.1"}
"""The Kubernetes (kubeadm) version whose manifests a lab on each etcd minor imitates."""
METRICS_PORT = 2381
CONTAINERD = "/var/lib/containerd"
CRIO = "/var/lib/containers"
"""containerd's state: its overlayfs snapshotter unpacks each image layer into `snapshots/<n>/fs/`."""
CONTAINER = "etcd"


def metrics_url(h: HostLike) -> str:
    return f"http://{h.ip}:{METRICS_PORT}"


def etcd_flags(ctx: HostContext, *, settled: bool) -> dict[str, str]:
    """etcd's flags as kubeadm writes them (names without dashes), for the bootstrap or the settled manifest."""
    h = ctx.host
    members = ctx.members[: ctx.index + 1] if settled else ctx.members
    flags = {
        "advertise-client-urls": h.client_url,
        "cert-file": f"{ETCD_PKI}/server.crt",
        "client-cert-auth": "true",
        "data-dir": PATHS.data_dir,
        "initial-advertise-peer-urls": h.peer_url,
        "initial-cluster": ",".join(f"{m.name}={m.peer_url}" for m in members),
        "key-file": f"{ETCD_PKI}/server.key",
        "listen-client-urls": h.client_url,
        "listen-metrics-urls": metrics_url(h),
        "listen-peer-urls": h.peer_url,
        "name": h.name,
        "peer-cert-file": f"{ETCD_PKI}/peer.crt",
        "peer-client-cert-auth": "true",
        "peer-key-file": f"{ETCD_PKI}/peer.key",
        "peer-trusted-ca-file": PATHS.ca,
        "snapshot-count": "10000",
        "trusted-ca-file": PATHS.ca,
    }
    if ctx.etcd.at_least >= (3, 6):  # kubeadm 1.34+ with an etcd image tag >= 3.6.0 (kubernetes#133023)
        flags |= {"feature-gates": "InitialCorruptCheck=true", "watch-progress-notify-interval": "5s"}
    else:
        flags |= {"experimental-initial-corrupt-check": "true", "experimental-watch-progress-notify-interval": "5s"}
    if not settled:
        flags["initial-cluster-state"] = "new"
    elif ctx.index > 0:
        flags["initial-cluster-state"] = "existing"
    return flags


def _command(program: str, flags: dict[str, str]) -> str:
    items = [program, *(f"--{k}={v}" for k, v in sorted(flags.items()))]
    return "".join(f"    - {item}\n" for item in items)


def _probe(kind: str, host: str, path: str, port: int, scheme: str, failures: int, delay: bool = True,
           period: int = 10) -> str:
    return (f"    {kind}:\n"
            f"      failureThreshold: {failures}\n"
            f"      httpGet:\n"
            f"        host: {host}\n"
            f"        path: {path}\n"
            f"        port: {port}\n"
            f"        scheme: {scheme}\n"
            + ("      initialDelaySeconds: 10\n" if delay else "")
            + f"      periodSeconds: {period}\n"
            f"      timeoutSeconds: 15\n")


def _volumes(mounts: list[tuple[str, str, str, bool]], *, sort_mounts: bool = True) -> tuple[str, str]:
    """(volumeMounts block, volumes block) for (name, path, hostPath type, readOnly).

    kubeadm sorts both by volume name, except etcd's volumeMounts, which it lists in its own order."""
    vm = "    volumeMounts:\n" + "".join(
        f"    - mountPath: {path}\n      name: {name}\n" + ("      readOnly: true\n" if ro else "")
        for name, path, _, ro in (sorted(mounts) if sort_mounts else mounts))
    vols = "  volumes:\n" + "".join(
        f"  - hostPath:\n      path: {path}\n      type: {kind}\n    name: {name}\n"
        for name, path, kind, _ in sorted(mounts))
    return vm, vols


POD_TAIL = """\
  hostNetwork: true
  priority: 2000001000
  priorityClassName: system-node-critical
  securityContext:
    seccompProfile:
      type: RuntimeDefault
"""


def _header(name: str, annotations: dict[str, str]) -> str:
    notes = ("  annotations:\n" + "".join(f"    {k}: {v}\n" for k, v in annotations.items())) if annotations else ""
    return (f"apiVersion: v1\nkind: Pod\nmetadata:\n{notes}  creationTimestamp: null\n  labels:\n"
            f"    component: {name}\n    tier: control-plane\n  name: {name}\n  namespace: kube-system\n"
            f"spec:\n  containers:\n  - command:\n")


def etcd_manifest(ctx: HostContext, *, settled: bool) -> str:
    h = ctx.host
    vm, vols = _volumes([("etcd-data", PATHS.data_dir, "DirectoryOrCreate", False),
                         ("etcd-certs", ETCD_PKI, "DirectoryOrCreate", False)], sort_mounts=False)
    return (_header(CONTAINER, {"kubeadm.kubernetes.io/etcd.advertise-client-urls": h.client_url})
            + _command("etcd", etcd_flags(ctx, settled=settled))
            + f"    image: {ctx.etcd.image}\n    imagePullPolicy: IfNotPresent\n"
            + _etcd_probes(ctx)
            + vm + POD_TAIL + vols + "status: {}\n")


def _etcd_probes(ctx: HostContext) -> str:
    """kubeadm 1.31+ probes `/livez` and `/readyz` (etcd 3.5.11+); 3.4 has neither, so its lab keeps `/health`."""
    ip, name = ctx.host.ip, f"    name: {CONTAINER}\n"
    requests = "    resources:\n      requests:\n        cpu: 100m\n        memory: 100Mi\n"
    if ctx.etcd.at_least < (3, 5):
        return (_probe("livenessProbe", ip, "/health?exclude=NOSPACE&serializable=true", METRICS_PORT, "HTTP", 8)
                + name + requests + _probe("startupProbe", ip, "/health?serializable=false", METRICS_PORT, "HTTP", 24))
    return (_probe("livenessProbe", ip, "/livez", METRICS_PORT, "HTTP", 8) + name
            + _probe("readinessProbe", ip, "/readyz", METRICS_PORT, "HTTP", 3, delay=False, period=1)
            + requests + _probe("startupProbe", ip, "/readyz", METRICS_PORT, "HTTP", 24))


CA_VOLUMES = [("ca-certs", "/etc/ssl/certs", "DirectoryOrCreate", True),
              ("etc-ca-certificates", "/etc/ca-certificates", "DirectoryOrCreate", True),
              ("k8s-certs", PKI, "DirectoryOrCreate", True),
              ("usr-local-share-ca-certificates", "/usr/local/share/ca-certificates", "DirectoryOrCreate", True),
              ("usr-share-ca-certificates", "/usr/share/ca-certificates", "DirectoryOrCreate", True)]


def apiserver_manifest(ctx: HostContext) -> str:
    """Each kube-apiserver talks only to its local etcd (kubeadm's stacked etcd); it is never started here."""
    h = ctx.host
    flags = {
        "advertise-address": h.ip, "allow-privileged": "true", "authorization-mode": "Node,RBAC",
        "client-ca-file": f"{PKI}/ca.crt", "enable-admission-plugins": "NodeRestriction",
        "enable-bootstrap-token-auth": "true", "etcd-cafile": PATHS.ca,
        "etcd-certfile": f"{PKI}/apiserver-etcd-client.crt", "etcd-keyfile": f"{PKI}/apiserver-etcd-client.key",
        "etcd-servers": "https://127.0.0.1:2379",
        "kubelet-client-certificate": f"{PKI}/apiserver-kubelet-client.crt",
        "kubelet-client-key": f"{PKI}/apiserver-kubelet-client.key",
        "kubelet-preferred-address-types": "InternalIP,ExternalIP,Hostname",
        "proxy-client-cert-file": f"{PKI}/front-proxy-client.crt",
        "proxy-client-key-file": f"{PKI}/front-proxy-client.key",
        "requestheader-allowed-names": "front-proxy-client",
        "requestheader-client-ca-file": f"{PKI}/front-proxy-ca.crt",
        "requestheader-extra-headers-prefix": "X-Remote-Extra-", "requestheader-group-headers": "X-Remote-Group",
        "requestheader-username-headers": "X-Remote-User", "secure-port": "6443",
        "service-account-issuer": "https://kubernetes.default.svc.cluster.local",
        "service-account-key-file": f"{PKI}/sa.pub", "service-account-signing-key-file": f"{PKI}/sa.key",
        "service-cluster-ip-range": "10.96.0.0/12", "tls-cert-file": f"{PKI}/apiserver.crt",
        "tls-private-key-file": f"{PKI}/apiserver.key",
    }
    vm, vols = _volumes(CA_VOLUMES)
    return (_header("kube-apiserver", {"kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint":
                                       f"{h.ip}:6443"})
            + _command("kube-apiserver", flags)
            + f"    image: registry.k8s.io/kube-apiserver:{KUBEADM[ctx.etcd.minor]}\n"
            + "    imagePullPolicy: IfNotPresent\n"
            + _probe("livenessProbe", h.ip, "/livez", 6443, "HTTPS", 8)
            + "    name: kube-apiserver\n"
            + _probe("readinessProbe", h.ip, "/readyz", 6443, "HTTPS", 3, delay=False, period=1)
            + "    resources:\n      requests:\n        cpu: 250m\n"
            + _probe("startupProbe", h.ip, "/livez", 6443, "HTTPS", 24)
            + vm + POD_TAIL + vols + "status: {}\n")


def controller_manager_manifest(ctx: HostContext) -> str:
    conf = "/etc/kubernetes/controller-manager.conf"
    flags = {
        "authentication-kubeconfig": conf, "authorization-kubeconfig": conf, "bind-address": "127.0.0.1",
        "client-ca-file": f"{PKI}/ca.crt", "cluster-name": "kubernetes",
        "cluster-signing-cert-file": f"{PKI}/ca.crt", "cluster-signing-key-file": f"{PKI}/ca.key",
        "controllers": "*,bootstrapsigner,tokencleaner", "kubeconfig": conf, "leader-elect": "true",
        "requestheader-client-ca-file": f"{PKI}/front-proxy-ca.crt", "root-ca-file": f"{PKI}/ca.crt",
        "service-account-private-key-file": f"{PKI}/sa.key", "use-service-account-credentials": "true",
    }
    vm, vols = _volumes([*CA_VOLUMES, ("kubeconfig", conf, "FileOrCreate", True),
                         ("flexvolume-dir", "/usr/libexec/kubernetes/kubelet-plugins/volume/exec",
                          "DirectoryOrCreate", False)])
    return (_header("kube-controller-manager", {})
            + _command("kube-controller-manager", flags)
            + f"    image: registry.k8s.io/kube-controller-manager:{KUBEADM[ctx.etcd.minor]}\n"
            + "    imagePullPolicy: IfNotPresent\n"
            + _probe("livenessProbe", "127.0.0.1", "/healthz", 10257, "HTTPS", 8)
            + "    name: kube-controller-manager\n"
            + "    resources:\n      requests:\n        cpu: 200m\n"
            + _probe("startupProbe", "127.0.0.1", "/healthz", 10257, "HTTPS", 24)
            + vm + POD_TAIL + vols + "status: {}\n")


def scheduler_manifest(ctx: HostContext) -> str:
    conf = "/etc/kubernetes/scheduler.conf"
    flags = {"authentication-kubeconfig": conf, "authorization-kubeconfig": conf, "bind-address": "127.0.0.1",
             "kubeconfig": conf, "leader-elect": "true"}
    vm, vols = _volumes([("kubeconfig", conf, "FileOrCreate", True)])
    return (_header("kube-scheduler", {})
            + _command("kube-scheduler", flags)
            + f"    image: registry.k8s.io/kube-scheduler:{KUBEADM[ctx.etcd.minor]}\n"
            + "    imagePullPolicy: IfNotPresent\n"
            + _probe("livenessProbe", "127.0.0.1", "/healthz", 10259, "HTTPS", 8)
            + "    name: kube-scheduler\n"
            + "    resources:\n      requests:\n        cpu: 100m\n"
            + _probe("startupProbe", "127.0.0.1", "/healthz", 10259, "HTTPS", 24)
            + vm + POD_TAIL + vols + "status: {}\n")


MANIFEST_MODE = 0o600
"""kubeadm writes static pod manifests readable by root only."""


def _initial_files(ctx: HostContext) -> tuple[HostFile, ...]:
    return (
        HostFile(PATHS.manifest, etcd_manifest(ctx, settled=False), MANIFEST_MODE),
        HostFile(f"{MANIFESTS}/kube-apiserver.yaml", apiserver_manifest(ctx), MANIFEST_MODE),
        HostFile(f"{MANIFESTS}/kube-controller-manager.yaml", controller_manager_manifest(ctx), MANIFEST_MODE),
        HostFile(f"{MANIFESTS}/kube-scheduler.yaml", scheduler_manifest(ctx), MANIFEST_MODE),
    )


def _settled_files(ctx: HostContext) -> tuple[HostFile, ...]:
    return (HostFile(PATHS.manifest, etcd_manifest(ctx, settled=True), MANIFEST_MODE),)


def _certificates(h: HostLike) -> tuple[CertSpec, ...]:
    """kubeadm's etcd set: server and peer serve and authenticate (node name, localhost, its IP, loopbacks);
    healthcheck-client and apiserver-etcd-client only authenticate."""
    dns, ips = (h.name, "localhost"), (h.ip, "127.0.0.1", "::1")
    return (
        CertSpec(PATHS.ca, f"{ETCD_PKI}/ca.key", ca=True),
        CertSpec(f"{ETCD_PKI}/server.crt", f"{ETCD_PKI}/server.key", h.name, dns, ips),
        CertSpec(f"{ETCD_PKI}/peer.crt", f"{ETCD_PKI}/peer.key", h.name, dns, ips),
        CertSpec(f"{ETCD_PKI}/healthcheck-client.crt", f"{ETCD_PKI}/healthcheck-client.key",
                 "kube-etcd-healthcheck-client", server_auth=False),
        CertSpec(f"{PKI}/apiserver-etcd-client.crt", f"{PKI}/apiserver-etcd-client.key",
                 "kube-apiserver-etcd-client", server_auth=False),
    )


def etcd_container(doc: Any) -> dict[str, Any] | None:
    """The pod's container named `etcd`, if the document is a pod that has one."""
    if not isinstance(doc, dict):
        return None
    spec = doc.get("spec")
    containers = spec.get("containers") if isinstance(spec, dict) else None
    if not isinstance(containers, list):
        return None
    for c in containers:
        if isinstance(c, dict) and c.get("name") == CONTAINER:
            return c
    return None


def _is_etcd_pod(doc: Any) -> bool:
    return etcd_container(doc) is not None


def _start(doc: Any) -> PodStart:
    """A container's `command` replaces the image's entrypoint and `args` follow it: here the
    command is run directly, no shell in between."""
    c = etcd_container(doc)
    if c is None:
        raise KeyError("no container named etcd")
    command, args = c.get("command"), c.get("args") or []
    if not isinstance(command, list) or not command:
        raise ValueError("the etcd container has no command list")
    if not isinstance(args, list) or not all(isinstance(a, str) for a in [*command, *args]):
        raise TypeError("command and args must be lists of strings")
    return PodStart((*command, *args), c.get("workingDir") or "/")


CRICTL = """\
#!/bin/bash
# etcdrescue lab stand-in for crictl: the etcd container is the kubelet stand-in's current etcd process;
# the lab runs no other pod, so another component's container "runs" while its manifest is in the pod dir
set -uo pipefail
log=/run/etcdlab/etcd.log
case "${1:-}" in
  ps)
    shift
    name=""; json=""
    while [[ $# -gt 0 ]]; do
      case "$1" in --name) name="$2"; shift 2 ;; --name=*) name="${1#--name=}"; shift ;;
                   -o) [[ "$2" == json ]] && json=1; shift 2 ;; *) shift ;; esac
    done
    if [[ -n "$json" ]]; then
      # the kubelet's restart count is the newest container's attempt: the stand-in's starts less the first
      n=$(sed -n 's/^restarts=//p' /run/etcdlab/state 2>/dev/null); n=$(( ${n:-1} > 0 ? ${n:-1} - 1 : 0 ))
      if [[ ( -z "$name" || "$name" == etcd ) && -e "$log" ]]; then
        printf '{"containers": [{"id": "etcdlab0000etcd", "metadata": {"name": "etcd", "attempt": %d}}]}\n' "$n"
      else echo '{"containers": []}'; fi
      exit 0
    fi
    if [[ ( -z "$name" || "$name" == etcd ) && -e "$log" ]]; then echo etcdlab0000etcd; fi
    for c in kube-apiserver kube-controller-manager kube-scheduler; do
      if [[ ( -z "$name" || "$name" == "$c" ) && -e "MANIFESTS/$c.yaml" ]]; then echo "etcdlab-$c"; fi
    done ;;
  logs)
    shift
    tail_n=all
    while [[ $# -gt 1 ]]; do
      case "$1" in --tail) tail_n="$2"; shift 2 ;; --tail=*) tail_n="${1#--tail=}"; shift ;; *) shift ;; esac
    done
    if [[ "${1:-}" != etcdlab0000etcd || ! -e "$log" ]]; then echo "container not found" >&2; exit 1; fi
    if [[ "$tail_n" == all ]]; then cat "$log"; else tail -n "$tail_n" "$log"; fi ;;
  exec)
    # `crictl exec [-i] [-t] [-s] [--timeout N] CONTAINER CMD ARG...`: CMD runs as the image's own binary, with
    # no shell in between; the etcd image (upstream, distroless since 3.5.7) has only etcd, etcdctl, etcdutl in
    # /usr/local/bin (the lab's: /run/etcdlab/image-bin) and no /bin/sh
    shift
    while [[ $# -gt 0 && "$1" == -* ]]; do
      case "$1" in --timeout|-e|--env) shift 2 ;; *) shift ;; esac
    done
    id="${1:-}"; shift || true
    pid=$(sed -n 's/^etcd_pid=//p' /run/etcdlab/state 2>/dev/null)
    if [[ "$id" != etcdlab0000etcd || -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null; then
      echo "container \\"$id\\" is not running" >&2; exit 1
    fi
    cmd="${1:-}"; shift || true
    case "$cmd" in /usr/local/bin/*) cmd="${cmd#/usr/local/bin/}" ;; esac
    if [[ -z "$cmd" || "$cmd" == */* || ! -x "/run/etcdlab/image-bin/$cmd" ]]; then
      echo "execing command in container: OCI runtime exec failed: exec failed: unable to start container process:" \\
           "exec: \\"$cmd\\": executable file not found in \\$PATH: unknown" >&2
      exit 1
    fi
    exec env -i PATH=/usr/local/bin HOME=/root "/run/etcdlab/image-bin/$cmd" "$@" ;;
  *) echo "crictl stand-in: only ps, logs and exec" >&2; exit 1 ;;
esac
"""
CRICTL = CRICTL.replace("MANIFESTS", MANIFESTS)
"""kubeadm nodes read etcd's log with `crictl logs`: the platform's log command runs unchanged in the lab; `crictl
exec` runs a program of the etcd image as the real one does (never through a shell: the image has none)."""

RUNTIMES = (Runtime("containerd", ()),
            Runtime("crio", (), image_layer=f"{CRIO}/storage/overlay/{{layer}}/diff"))
"""kubeadm nodes run containerd (kubeadm's default) or CRI-O: both answer `crictl`, and unpack images to different
places (`platform.tools.IMAGE_DIRS`)."""

SHAPE = LabShape(
    platform=kubeadm.NAME,
    paths=PATHS,
    mounts=(Mount("/etc/kubernetes", "etc/kubernetes"), Mount(PATHS.data_dir, "var/lib/etcd"),
            Mount(TOOLS_ROOT.rsplit("/", 1)[0], "var/lib/etcdrescue"), Mount(CONTAINERD, "var/lib/containerd"),
            Mount(CRIO, "var/lib/containers")),
    image_layer=f"{CONTAINERD}/io.containerd.snapshotter.v1.overlayfs/snapshots/{{layer}}/fs",
    runtimes=RUNTIMES,
    dirs=(MANIFESTS, ETCD_PKI),
    kubelet=KubeletRules(pod_dir=MANIFESTS, pod_label=CONTAINER, is_etcd_pod=_is_etcd_pod, start=_start),
    certificates=_certificates,
    initial_files=_initial_files,
    settled_files=_settled_files,
    host_tools=False,
    etcd_ports=(2379, 2380, METRICS_PORT),
    backup_kinds=("snapshot",),
    helper_files=(HostFile("/usr/local/bin/crictl", CRICTL, 0o755),),
)
