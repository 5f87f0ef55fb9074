"""kubeadm control planes: etcd's flags are the `command:` items of its static pod manifest."""

from __future__ import annotations

from .paths import Paths

NAME = "kubeadm"
DEFAULT_PATHS = Paths(
    manifest="/etc/kubernetes/manifests/etcd.yaml",
    disabled_dir="/etc/kubernetes/manifests-disabled",
    etcd_conf="/etc/kubernetes/manifests/etcd.yaml",
    data_dir="/var/lib/etcd",
    ca="/etc/kubernetes/pki/etcd/ca.crt",
    cert="/etc/kubernetes/pki/etcd/healthcheck-client.crt",
    key="/etc/kubernetes/pki/etcd/healthcheck-client.key",
)
"""`disabled_dir` sits beside the manifests dir, not inside it: the kubelet ignores sub-directories,
but an operator's `ls` of the manifests dir should not show a stopped etcd as if it were a pod."""
