"""etcdrescue: guided, verified, resumable recovery of an etcd cluster that lost quorum."""

__version__ = "0.1.0"
