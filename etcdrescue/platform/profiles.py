"""The inventory's `profile:` names, one per platform: every other place reads them from here.

This module imports nothing: the command line's parser offers them (`--profile`) before it may load
anything a platform needs (YAML among them).
"""

from __future__ import annotations

OKD3 = "okd3"
"""OKD/OpenShift 3.10+ masters: etcd's flags in /etc/etcd/etcd.conf."""
KUBEADM = "kubeadm"
"""kubeadm control-plane nodes: etcd's flags in its static pod manifest."""

PROFILES = (OKD3, KUBEADM)
DEFAULT_PROFILE = OKD3
"""An inventory without `profile:`, and a lab made without `--profile`."""
