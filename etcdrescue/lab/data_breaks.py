"""One member broken while the quorum holds: the incidents `etcdrescue replace` is for.

Inside the lab's fake host directories the lab may delete what a real incident destroys; the tool never does.
"""

from __future__ import annotations

import shutil

from etcdrescue.lab.base import HostRef
from etcdrescue.lab.lab import Lab

STATE_NEW = ("ETCD_INITIAL_CLUSTER_STATE=new", "--initial-cluster-state=new")
"""How each platform's settings say `new` (okd3's etcd.conf, kubeadm's manifest item)."""


def lose_wal(lab: Lab, host: HostRef) -> None:
    """The member's WAL gone (a disk that lost it): etcd refuses to start on its own data and the kubelet
    crash-loops it."""
    lab.stop_etcd(host)
    shutil.rmtree(lab.host_path(host, f"{lab.shape.paths.member_dir}/wal"), ignore_errors=True)
    lab.start_etcd(host, wait=False)


def wipe(lab: Lab, host: HostRef) -> None:
    """The member's data dir wiped and etcd restarted under its old identity, told to join the `existing`
    cluster, while its old entry is still in the member list: the leader sends it a commit index its empty log
    does not have and it panics with `tocommit(N) is out of range [lastIndex(0)]`, again at every start."""
    lab.stop_etcd(host)
    paths = lab.shape.paths
    shutil.rmtree(lab.host_path(host, paths.member_dir), ignore_errors=True)
    for where in (paths.etcd_conf, paths.disabled_manifest):
        settings = lab.host_path(host, where)
        if settings.exists():
            text = settings.read_text()
            for new in STATE_NEW:
                text = text.replace(new, new.replace("new", "existing"))
            settings.write_text(text)
    lab.start_etcd(host, wait=False)


MODES = {"wal-lost": lose_wal, "wiped": wipe}
"""`etcdrescue lab break --mode`: the one-member breaks, each of the lab's last member by default."""
