"""OpenShift/OKD 3.10+ masters: etcd's flags in /etc/etcd/etcd.conf, sourced by the static pod's
`exec etcd` shell script; `master-restart` and `master-logs` manage the pod."""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from ..command import Command, Raw, q, sh
from .base import ManifestProblem, Platform, Severity
from .controlplane import Component, ControlPlane
from .envfile import EnvFile
from .paths import Paths
from .pod import StaticPod, put_back
from .profiles import OKD3
from .tools import EtcdTools

NAME = OKD3
FLAG = "--force-new-cluster"
EXEC_LINE = re.compile(r"exec etcd(?:[ \t]*$|(?=\\n))", re.M)
"""The `exec etcd` of the pod's shell script, as a block scalar line or inside a quoted scalar."""

SED_ADD_FLAG = r"s/(exec etcd)([[:space:]]*)$/\1 --force-new-cluster\2/; s/(exec etcd)(\\n)/\1 --force-new-cluster\2/"

DEFAULT_PATHS = Paths(
    manifest="/etc/origin/node/pod/etcd.yaml",
    disabled_dir="/etc/origin/node/pod/disabled",
    etcd_conf="/etc/etcd/etcd.conf",
    data_dir="/var/lib/etcd",
    ca="/etc/etcd/ca.crt",
    cert="/etc/etcd/peer.crt",
    key="/etc/etcd/peer.key",
)
RESTART = ("/usr/local/bin/master-restart", "etcd")
LOGS = "/usr/local/bin/master-logs etcd etcd"
RUNNING = ('if command -v docker >/dev/null 2>&1; then '
           'test -n "$(docker ps -q --filter label=io.kubernetes.container.name={container} --filter status=running)"; '
           'else test -n "$(crictl ps -q --label io.kubernetes.container.name={container} --state running)"; fi')
"""OKD 3.x runs its static pods on docker or CRI-O; the kubelet labels each container with its name in the pod.
Where docker is absent the master runs CRI-O and `crictl` asks it, as openshift-ansible's own `master-restart`
for CRI-O does. The master-controllers pod runs the controller manager and the scheduler in one container."""
RESTARTS = ('if command -v docker >/dev/null 2>&1; then docker ps -a --filter label=io.kubernetes.container.name=etcd '
            '--format \'{{index .Labels "io.kubernetes.container.restartCount"}}\' | head -n 1; '
            'else crictl ps -a --label io.kubernetes.container.name=etcd -o json 2>/dev/null '
            '| grep -o \'"attempt": *[0-9]*\' | head -n 1 | grep -o \'[0-9]*$\'; fi')
"""The kubelet's restart count of etcd's container, from the runtime that runs it."""


@dataclass(frozen=True)
class ExecLineFlag:
    """`--force-new-cluster` appended to the pod script's `exec etcd` line by one sed.

    Why the manifest and not `ETCD_FORCE_NEW_CLUSTER=true` in etcd.conf: the restart gate proves
    the flag is gone from the *running* process's command line (`/proc/PID/cmdline`); an env var
    would need `/proc/PID/environ` instead, and the field-proven procedure edits the manifest.
    The edit is verified to change exactly one line, and undone by putting the original bytes back.
    """

    manifest: str
    disabled_manifest: str
    flag: str = FLAG

    def add(self, host: str, pristine: str) -> tuple[Command, ...]:
        m, d = self.manifest, self.disabled_manifest
        return (
            Command(host, sh("cp", "-p", d, pristine), "keep the original manifest (its bytes are restored later)",
                    skip_if=Raw(f"test -e {q(pristine)} || test -e {q(m)}")),
            Command(host, sh("sed", "-i", "-E", SED_ADD_FLAG, d), f"add {FLAG} to the manifest's `exec etcd` line",
                    skip_if=Raw(f"test -e {q(m)} || grep -q -- {q('exec etcd ' + FLAG)} {q(d)}")),
            Command(host, Raw(f"test \"$(diff {q(pristine)} {q(d)} | grep -c '^[<>]')\" = 2 "
                              f"&& grep -c -- {q(FLAG)} {q(d)}"),
                    "verify the edit changed exactly one line", mutates=False,
                    skip_if=sh("test", "-e", m), check=_one_flag, expect="1"),
        )


    def drop(self, host: str, pristine: str, kept: str) -> tuple[Command, ...]:
        return put_back(host, self.manifest, pristine, kept)

    def absent(self) -> Raw:
        return Raw(f"! grep -q -- {q(self.flag)} {q(self.manifest)}")


def _one_flag(output: str) -> str | None:
    return None if output.strip() == "1" else f"expected exactly one {FLAG} in the manifest, found {output.strip()!r}"


def manifest_problem(text: str) -> ManifestProblem | None:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return ManifestProblem(f"malformed YAML ({str(exc).splitlines()[0]})", Severity.ALWAYS)
    if not isinstance(doc, dict) or not doc.get("spec", {}).get("containers"):
        return ManifestProblem("not a pod manifest (no spec.containers)", Severity.ALWAYS)
    if FLAG in text:
        return ManifestProblem(f"already contains {FLAG} (an earlier attempt?): put the original manifest back first",
                               Severity.FLAG_EDIT)
    n = len(EXEC_LINE.findall(text))
    if n != 1:
        return ManifestProblem(f"expected one `exec etcd` line to edit, found {n}", Severity.FLAG_EDIT)
    return None


def platform(paths: Paths) -> Platform:
    return Platform(
        name=NAME,
        paths=paths,
        settings=EnvFile(paths.etcd_conf),
        pod=StaticPod(paths.manifest, paths.disabled_manifest, paths.disabled_dir, RESTART, LOGS),
        tools=EtcdTools(paths),
        force_flag=ExecLineFlag(paths.manifest, paths.disabled_manifest),
        manifest_problem=manifest_problem,
        restarts=RESTARTS,
        renew_certs=(
            "from the openshift-ansible host: ansible-playbook -i <inventory> "
            "playbooks/openshift-etcd/redeploy-certificates.yml",
            "(OKD 3.x ships no other supported renewal; the playbook restarts etcd one master at a time)",
        ),
        control_plane=ControlPlane(
            paths.disabled_dir,
            ((Component("api", f"{paths.pod_dir}/apiserver.yaml", "api", "master-api"),),
             (Component("controllers", f"{paths.pod_dir}/controller.yaml", "controllers", "master-controllers"),)),
            running=RUNNING, restart=(RESTART[0],)),
    )
