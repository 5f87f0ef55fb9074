"""Restarting the Kubernetes control plane on a master after etcd's revisions went backwards.

Why at all: a restore without a revision bump hands every watcher (the API servers' watch caches, the
controllers' informers) an etcd whose revision is lower than the one they last saw. They would wait for
revisions that are never coming, or serve stale data; a restart makes them list from scratch.

Each component's manifest is copied aside first, and the gate compares the manifest in place with that
copy byte for byte: whatever the restart did, the pod definition the kubelet reads is the one it had.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..command import Command, Raw, chain, q, sh

STOP_WAIT = 90
"""Seconds a bounced component may take to stop (the API server's shutdown grace is up to 60 s)."""


@dataclass(frozen=True)
class Component:
    name: str
    """What the platform's restart command calls it: `api`, `controllers`; or the pod's name."""
    manifest: str
    container: str
    """The container's name, as the runtime's `ps` filters it."""
    pod: str = ""
    """The static pod's name, where it differs from `name` (what the operator sees in `oc get pods`)."""

    @property
    def label(self) -> str:
        return self.pod or self.name


@dataclass(frozen=True)
class ControlPlane:
    """The masters' control-plane components in restart order, and how the platform restarts one.

    `stages`: the API servers go first on every host, then the rest (controllers and scheduler), as the
    Kubernetes restore procedure asks: the controllers must find a relisted API behind them.
    `restart`: the command that restarts a component (`master-restart NAME`), or empty: bounce its
    static-pod manifest (out of the kubelet's dir until the container is gone, then back).
    `running`: the shell test that a component's container runs, `{container}` filled in.
    """

    disabled_dir: str
    stages: tuple[tuple[Component, ...], ...]
    running: str
    restart: tuple[str, ...] = ()

    def kept(self, c: Component, stamp: str) -> str:
        return f"{self.disabled_dir}/{c.manifest.rsplit('/', 1)[1]}.etcdrescue-{stamp}"

    def bounced(self, c: Component, stamp: str) -> str:
        return f"{self.disabled_dir}/{c.manifest.rsplit('/', 1)[1]}.bounced-{stamp}"

    def is_running(self, c: Component) -> str:
        return self.running.format(container=q(c.container))

    def restart_commands(self, host: str, c: Component, stamp: str) -> tuple[Command, ...]:
        kept = self.kept(c, stamp)
        keep = Command(host, sh("cp", "-p", c.manifest, kept), f"keep a copy of {c.label}'s manifest",
                       skip_if=sh("test", "-e", kept))
        if self.restart:
            return keep, Command(host, sh(*self.restart, c.name), f"restart {c.label}")
        bounced = self.bounced(c, stamp)
        pod_dir, name = c.manifest.rsplit("/", 1)
        tmp = f"{pod_dir}/.{name}.etcdrescue-tmp"
        gone = (f"n=0; while {self.is_running(c)}; do if test $n -ge {STOP_WAIT}; then "
                f"echo {q(c.label)} still running {STOP_WAIT}s after its manifest moved >&2; break; fi; "
                f"n=$((n+1)); sleep 1; done; ! {self.is_running(c)}")
        return (
            keep,
            Command(host, chain(sh("mv", c.manifest, bounced), Raw(f"{{ {gone}; }}")),
                    f"move {c.label}'s manifest out of the kubelet's dir; wait until its container is gone",
                    skip_if=sh("test", "-e", bounced), timeout=STOP_WAIT + 30),
            Command(host, chain(sh("cp", "-p", bounced, tmp), sh("mv", tmp, c.manifest)),
                    f"put {c.label}'s manifest back (the kubelet starts it anew)",
                    skip_if=sh("test", "-e", c.manifest)),
        )

    def back(self, c: Component, stamp: str) -> str:
        """Exit 0 once the component runs again from the very manifest it had before the restart."""
        return f"cmp -s {q(c.manifest)} {q(self.kept(c, stamp))} && {self.is_running(c)}"
