"""A kubeadm manifest's flags must suit the etcd its image runs: 3.7 exits 2 on any `--experimental-*` flag,
3.5 on the names 3.6 introduced. The pre-flight says so before anything changes (`kubeadm.version_problem`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from etcdrescue.lab import kubeadm as lab_kubeadm
from etcdrescue.lab.base import LabHost
from etcdrescue.lab.shape import HostContext
from etcdrescue.lab.versions import RELEASES, release
from etcdrescue.platform import Severity
from etcdrescue.platform.kubeadm import NEW_IN_36

HOSTS = tuple(LabHost(f"cp{i}", f"127.0.9.{i}", 2222, Path("/nowhere")) for i in (1, 2, 3))


def manifest(minor: str, *, image: str | None = None, extra: tuple[str, ...] = ()) -> str:
    """The manifest the kubeadm of `minor` writes (the lab's), optionally on another image, with items added."""
    doc = yaml.safe_load(lab_kubeadm.etcd_manifest(HostContext(HOSTS[1], HOSTS, release(minor), "block"),
                                                   settled=True))
    (etcd,) = doc["spec"]["containers"]
    etcd["command"] += list(extra)
    if image is not None:
        etcd["image"] = f"registry.k8s.io/etcd:{image}-0"
    return yaml.safe_dump(doc)


def problem(text: str) -> str | None:
    from etcdrescue.platform.kubeadm import kubeadm_manifest_problem

    found = kubeadm_manifest_problem(text)
    assert found is None or found.severity is Severity.ALWAYS
    return None if found is None else found.text


@pytest.mark.parametrize("minor", RELEASES)
def test_what_kubeadm_writes_for_a_minor_suits_it(minor: str) -> None:
    assert problem(manifest(minor)) is None


def test_a_37_image_on_experimental_flags_is_refused() -> None:
    text = manifest("3.5", image="3.7.4")
    assert problem(text) == (
        "its image runs etcd 3.7.4, which refuses --experimental-initial-corrupt-check, "
        "--experimental-watch-progress-notify-interval (3.7 removed the --experimental-* flags: kubeadm 1.34+ writes "
        "--feature-gates=InitialCorruptCheck=true and --watch-progress-notify-interval): correct the manifest's "
        "flags or its image first")
    assert problem(manifest("3.5", image="3.6.17")) is None, "3.6 takes both names"


def test_a_35_image_on_36_flags_is_refused() -> None:
    text = manifest("3.6", image="3.5.36", extra=("--max-learners=1",))
    assert problem(text) == (
        "its image runs etcd 3.5.36, which refuses --feature-gates, --watch-progress-notify-interval, --max-learners "
        "(3.5 has only their --experimental-* forms, which kubeadm <= 1.33 writes): correct the manifest's flags or "
        "its image first")
    assert problem(manifest("3.6", image="3.6.17")) is None


@pytest.mark.parametrize("name", NEW_IN_36)
def test_every_name_said_new_in_36_is_refused_by_the_real_35(name: str) -> None:
    etcd = release("3.5").binaries()["etcd"]
    value = "InitialCorruptCheck=true" if name == "feature-gates" else "1"
    res = subprocess.run([str(etcd), f"--{name}={value}", "--version"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and "flag provided but not defined" in res.stderr, res.stderr
