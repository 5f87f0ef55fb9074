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
from etcdrescue.platform.release import NEW_IN_36

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
        "flags or its image first; `etcdrescue fix-flags` rewrites them")
    assert problem(manifest("3.5", image="3.6.17")) is None, "3.6 takes both names"


def test_a_35_image_on_36_flags_is_refused() -> None:
    text = manifest("3.6", image="3.5.36", extra=("--compaction-batch-limit=1000",))
    assert problem(text) == (
        "its image runs etcd 3.5.36, which refuses --feature-gates, --watch-progress-notify-interval, "
        "--compaction-batch-limit "
        "(3.5 has only their --experimental-* forms, which kubeadm <= 1.33 writes): correct the manifest's flags or "
        "its image first; `etcdrescue fix-flags` rewrites them")
    assert problem(manifest("3.6", image="3.6.17")) is None


@pytest.mark.parametrize("name", NEW_IN_36)
def test_every_name_said_new_in_36_is_refused_by_the_real_35(name: str) -> None:
    etcd = release("3.5").binaries()["etcd"]
    value = "InitialCorruptCheck=true" if name == "feature-gates" else "1"
    res = subprocess.run([str(etcd), f"--{name}={value}", "--version"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and "flag provided but not defined" in res.stderr, res.stderr


def test_a_35_image_on_a_gate_without_a_35_flag_is_refused_and_not_rewritten() -> None:
    from etcdrescue.platform.kubeadm import kubeadm_manifest_problem

    found = kubeadm_manifest_problem(manifest("3.6", image="3.5.36", extra=("--feature-gates=SomethingNew=true",)))
    assert found is not None and not found.flags
    assert found.text.endswith("(`etcdrescue fix-flags` cannot: etcd 3.5.36 has no flag for the feature gate "
                               "SomethingNew: take it out by hand or run an etcd 3.6+ image)")


@pytest.mark.parametrize(("minor", "written", "runs"), [("3.5", "3.5", "3.7"), ("3.6", "3.6", "3.5"),
                                                        ("3.7", "3.7", "3.5")])
def test_the_rewritten_flags_start_the_real_etcd(minor: str, written: str, runs: str) -> None:
    """What the rewrite makes of the manifest kubeadm writes for one minor (plus every flag it knows how to
    translate), the real binary of the other minor takes: it exits 0 on `--version` after parsing every item (and
    exits 2 on the items before the rewrite)."""
    from etcdrescue.platform.kubeadm import flag_rewrite, kubeadm_manifest_problem
    from etcdrescue.platform.manifest import edited_items
    from etcdrescue.platform.release import FEATURE_GATES_36, NO_35_FORM

    if runs == "3.7":
        extra = (*(f"--{n}=true" for n in FEATURE_GATES_36), "--experimental-max-learners=2")
    else:
        extra = ("--feature-gates=" + ",".join(f"{g}=true" for g in FEATURE_GATES_36.values()),
                 *(f"--{n}={'1s' if n.endswith('-time') else '1'}" for n in NEW_IN_36
                   if n not in ("feature-gates", "watch-progress-notify-interval", *NO_35_FORM)))
    version = release(runs).full
    text = manifest(written, image=version, extra=extra)
    rewrite = flag_rewrite(text)
    assert rewrite is not None and not rewrite.problem
    found = kubeadm_manifest_problem(text)
    assert found is not None and found.flags
    items = edited_items(yaml.safe_load(text)["spec"]["containers"][0]["command"], dict(rewrite.set), rewrite.drop)
    etcd = release(runs).binaries()["etcd"]
    res = subprocess.run([str(etcd), *items[1:], "--version"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    before = yaml.safe_load(text)["spec"]["containers"][0]["command"]
    assert subprocess.run([str(etcd), *before[1:], "--version"], capture_output=True, timeout=30).returncode == 2


def test_a_34_image_under_36_names_gets_only_flags_34_has() -> None:
    """Back to etcd 3.4: what kubeadm 1.34+ writes rewrites to flags the real 3.4.23 takes; a 3.6 name whose
    `--experimental-*` form only 3.5 added has no 3.4 spelling, so there is no rewrite, and the problem says so."""
    from etcdrescue.platform.kubeadm import flag_rewrite
    from etcdrescue.platform.manifest import edited_items

    version = release("3.4").full
    text = manifest("3.6", image=version)
    rewrite = flag_rewrite(text)
    assert rewrite is not None and not rewrite.problem, rewrite
    items = edited_items(yaml.safe_load(text)["spec"]["containers"][0]["command"], dict(rewrite.set), rewrite.drop)
    etcd = release("3.4").binaries()["etcd"]
    res = subprocess.run([str(etcd), *items[1:], "--version"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    newer = flag_rewrite(manifest("3.6", image=version, extra=("--compact-hash-check-time=1m",)))
    assert newer is not None and newer.problem == (
        f"etcd {version} has no flag for --experimental-compact-hash-check-time (3.5 added them): take them out by "
        "hand or run an etcd 3.5+ image")
    refused = subprocess.run([str(etcd), "--experimental-compact-hash-check-time=1m", "--version"],
                             capture_output=True, timeout=30)
    assert refused.returncode == 2, "the reason there is no rewrite"
