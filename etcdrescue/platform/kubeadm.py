"""kubeadm control planes: etcd's flags are the `command:` items of its static pod manifest.

While a recovery runs, the manifest sits in `disabled_dir`, out of the kubelet's sight: every edit is
made there (into a temp file, verified by re-parsing, renamed over), so a half-written or half-edited
manifest can never reach the kubelet; starting etcd is moving the finished file back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..command import Command, Raw, chain, q, sh
from .base import ManifestProblem, Platform, Severity
from .controlplane import Component, ControlPlane
from .manifest import (
    command_items,
    edit_problem,
    flags,
    flags_present,
    manifest_problem,
    set_flags_script,
    show_both,
    verify_edit,
)
from .paths import Paths
from .pod import StaticPod, put_back
from .profiles import KUBEADM
from .release import NEW_IN_36, EtcdRelease, FlagRewrite, rewrite_for
from .tools import EtcdTools

NAME = KUBEADM
FLAG = "--force-new-cluster"
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
but an operator's `ls` of the manifests dir should not show a stopped etcd as if it were a pod.
`etcd_conf` is the manifest itself: that is where kubeadm keeps etcd's flags."""

LOGS = "crictl logs --tail 300 $(crictl ps -a --name etcd -q | head -n 1)"
"""The newest etcd container's log (`ps -a`: the one that just exited is the one that says why)."""
RUNNING = 'test -n "$(crictl ps -q --name {container} --state running)"'
RESTARTS = ("crictl ps -a --name etcd -o json 2>/dev/null | grep -o '\"attempt\": *[0-9]*' | head -n 1 "
            "| grep -o '[0-9]*$'")
"""The newest etcd container's attempt: the kubelet's restart count (crictl lists the newest first)."""
IMAGE_TAG = re.compile(r"^\s*image:\s*\S*/etcd:v?([0-9]+\.[0-9]+\.[0-9]+)", re.M)


@dataclass(frozen=True)
class CommandList:
    """Settings as the `--flag=value` items of the etcd container's command, edited in the disabled manifest."""

    manifest: str
    disabled: str

    @property
    def file(self) -> str:
        return self.disabled

    @property
    def label(self) -> str:
        return "etcd manifest"

    @property
    def where(self) -> str:
        return "etcd's flags: the `command:` items of the etcd container in the manifest"

    def keep_copy(self, host: str, aside: str) -> Command:
        return Command(host, sh("cp", "-p", self.disabled, aside), "keep a copy of the etcd manifest",
                       skip_if=Raw(f"test -e {q(aside)} || test -e {q(self.manifest)}"))

    def set(self, host: str, values: Mapping[str, str], drop: Sequence[str] = ()) -> tuple[Command, ...]:
        """Edit into a hidden temp file beside the disabled manifest, verify by re-parsing, rename over it.

        Done means: the items are in the disabled manifest (the dropped ones gone), or etcd was already started
        from it.
        """
        tmp = f"{self.disabled.rsplit('/', 1)[0]}/.{self.disabled.rsplit('/', 1)[1]}.etcdrescue-edit"
        items = ", ".join(f"--{k}={v}" for k, v in values.items())
        gone = ", ".join(f"--{n}" for n in drop)
        what = " and ".join(w for w in (f"with {items}" if items else "", f"without {gone}" if gone else "") if w)
        done = Raw(f"test -e {q(self.manifest)} || {{ {flags_present(self.disabled, values, drop)}; }}")
        return (
            Command(host, set_flags_script(self.disabled, tmp, values, drop), f"write the manifest {what}",
                    skip_if=done),
            Command(host, show_both(self.disabled, tmp), "verify the edit: re-parsed, only these items changed",
                    mutates=False, skip_if=done, check=verify_edit(values, drop),
                    expect="the original, then the edited manifest: every other item, key and value unchanged"),
            Command(host, sh("mv", tmp, self.disabled), "put the edited manifest in place (atomic rename)",
                    skip_if=done),
        )

    def put_back(self, host: str, aside: str, rewritten: str) -> Command:
        return Command(host, chain(sh("cp", "-p", self.disabled, rewritten), sh("cp", "-p", aside, self.disabled)),
                       "put the original etcd manifest back")

    def readable_script(self) -> str:
        return f"{{ test -r {q(self.manifest)} || test -r {q(self.disabled)}; }}"

    def values_script(self) -> str:
        return f"cat {q(self.manifest)} 2>/dev/null || cat {q(self.disabled)}"

    def parse_values(self, text: str) -> dict[str, str]:
        return flags(text)


@dataclass(frozen=True)
class CommandListFlag:
    """`--force-new-cluster=true` as one more command item, for one start; the original bytes come back after."""

    settings: CommandList
    flag: str = FLAG

    def add(self, host: str, pristine: str) -> tuple[Command, ...]:
        s = self.settings
        return (
            Command(host, sh("cp", "-p", s.disabled, pristine),
                    "keep the original manifest (its bytes are restored later)",
                    skip_if=Raw(f"test -e {q(pristine)} || test -e {q(s.manifest)}")),
            *s.set(host, {"force-new-cluster": "true"}),
        )

    def drop(self, host: str, pristine: str, kept: str) -> tuple[Command, ...]:
        return put_back(host, self.settings.manifest, pristine, kept)

    def absent(self) -> Raw:
        return Raw(f"! grep -q -- {q(self.flag)} {q(self.settings.manifest)}")


def version_problem(text: str) -> ManifestProblem | None:
    """The manifest's flags must suit the etcd its image tag names, or that etcd exits 2 at start ("flag provided
    but not defined"): 3.7 removed every `--experimental-*` flag, 3.5 lacks the names 3.6 introduced. Said at
    pre-flight, before anything changes; `fix-flags` rewrites them when asked (`flag_rewrite`), nothing else does."""
    version = server_version(text)
    runs = EtcdRelease(version or "")
    if runs.minor is None:
        return None
    try:
        names = [item[2:].split("=", 1)[0] for item in command_items(text)[1:] if item.startswith("--")]
    except ValueError:
        return None
    if runs.refuses_experimental_flags:
        bad = [n for n in names if n.startswith("experimental-")]
        fix = ("3.7 removed the --experimental-* flags: kubeadm 1.34+ writes --feature-gates=InitialCorruptCheck=true "
               "and --watch-progress-notify-interval")
    elif runs.lacks_36_flag_names:
        bad = [n for n in names if n in NEW_IN_36]
        fix = "3.5 has only their --experimental-* forms, which kubeadm <= 1.33 writes"
    else:
        return None
    if not bad:
        return None
    rewrite = flag_rewrite(text)
    fixable = rewrite is not None and not rewrite.problem
    how = ("; `etcdrescue fix-flags` rewrites them" if fixable
           else f" (`etcdrescue fix-flags` cannot: {rewrite.problem})" if rewrite is not None else "")
    return ManifestProblem(f"its image runs etcd {version}, which refuses {', '.join('--' + n for n in bad)} "
                           f"({fix}): correct the manifest's flags or its image first{how}", Severity.ALWAYS,
                           flags=fixable)


def flag_rewrite(text: str) -> FlagRewrite | None:
    """The rewrite of the manifest's flags for the etcd its image tag names (`release.rewrite_for`); None when they
    suit it, or when the manifest does not say its version or has no readable command list."""
    try:
        found = flags(text)
    except ValueError:
        return None
    rewrite = rewrite_for(EtcdRelease(server_version(text) or ""), found)
    if rewrite is None or rewrite.problem:
        return rewrite
    problem = edit_problem(dict(rewrite.set), rewrite.drop)
    if problem is not None:
        return FlagRewrite(rewrite.release, problem=f"the rewrite cannot be written: {problem}")
    return rewrite


def kubeadm_manifest_problem(text: str) -> ManifestProblem | None:
    return manifest_problem(text) or version_problem(text)


def server_version(text: str) -> str | None:
    """kubeadm pins etcd's image by version (`registry.k8s.io/etcd:3.5.15-0`)."""
    found = IMAGE_TAG.search(text)
    return found.group(1) if found else None


def platform(paths: Paths) -> Platform:
    settings = CommandList(paths.manifest, paths.disabled_manifest)
    return Platform(
        name=NAME,
        paths=paths,
        settings=settings,
        pod=StaticPod(paths.manifest, paths.disabled_manifest, paths.disabled_dir, (), LOGS),
        tools=EtcdTools(paths),
        force_flag=CommandListFlag(settings),
        manifest_problem=kubeadm_manifest_problem,
        flag_rewrite=flag_rewrite,
        server_version=server_version,
        restarts=RESTARTS,
        renew_certs=(
            "kubeadm certs check-expiration",
            "kubeadm certs renew etcd-server && kubeadm certs renew etcd-peer && "
            "kubeadm certs renew etcd-healthcheck-client && kubeadm certs renew apiserver-etcd-client",
            f"then restart etcd and the API server on this node: move {paths.manifest} out of {paths.pod_dir} "
            "until the pod is gone, and back",
        ),
        control_plane=ControlPlane(
            paths.disabled_dir,
            ((Component("kube-apiserver", f"{paths.pod_dir}/kube-apiserver.yaml", "kube-apiserver"),),
             tuple(Component(n, f"{paths.pod_dir}/{n}.yaml", n)
                   for n in ("kube-controller-manager", "kube-scheduler"))),
            running=RUNNING),
    )
