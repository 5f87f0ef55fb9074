"""The kubeadm platform's settings and flag edit, run with real bash on kubeadm's own manifests.

The commands are exactly the ones a plan holds (and the runbook prints); `run` plays the engine's part:
the read-only "already done?" probe first, then the script, then the output check.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from etcdrescue.command import Command
from etcdrescue.inventory.model import Inventory, parse_inventory
from etcdrescue.model import Context, Method
from etcdrescue.plan import build_plan
from etcdrescue.platform.kubeadm import server_version
from etcdrescue.platform.manifest import command_items, flags

DATA = Path(__file__).parent / "data" / "kubeadm"


def inventory(root: Path) -> Inventory:
    return parse_inventory({"cluster": "k", "profile": "kubeadm", "paths": {
        "manifest": f"{root}/manifests/etcd.yaml", "disabled_dir": f"{root}/disabled",
        "etcd_conf": f"{root}/manifests/etcd.yaml", "data_dir": f"{root}/data"}, "members": [
        {"name": f"cp{i}", "host": f"10.0.0.{i}", "peer_url": f"https://10.0.0.{i}:2380",
         "client_url": f"https://10.0.0.{i}:2379"} for i in (1, 2, 3)]})


def run(commands: tuple[Command, ...] | list[Command]) -> list[str]:
    """What each command did: 'skipped' (its probe said done) or 'ran'; a failing script or check raises."""
    did = []
    for c in commands:
        if c.skip_if and subprocess.run(["bash", "-c", c.skip_if], capture_output=True).returncode == 0:
            did.append("skipped")
            continue
        res = subprocess.run(["bash", "-c", c.script], capture_output=True, text=True)
        assert res.returncode == 0, (c.purpose, res.stderr)
        if c.check is not None:
            assert c.check(res.stdout) is None, (c.purpose, c.check(res.stdout))
        did.append("ran")
    return did


@pytest.fixture
def host(tmp_path: Path) -> tuple[Inventory, Path]:
    """A kubeadm master's files with etcd stopped: the manifest in the disabled dir."""
    (tmp_path / "manifests").mkdir()
    (tmp_path / "disabled").mkdir()
    (tmp_path / "data").mkdir()
    shutil.copy(DATA / "v1.31-joined.yaml", tmp_path / "disabled" / "etcd.yaml")
    return inventory(tmp_path), tmp_path / "disabled" / "etcd.yaml"


def test_joiner_settings_edit_only_their_items_and_rerun_changes_nothing(host: tuple[Inventory, Path]) -> None:
    inv, disabled = host
    before = disabled.read_text()
    plan = build_plan(Context(inv, "/b", Method.SNAPSHOT_RESTORE, "S"))
    join = plan.step("join-cp2")
    edits = [c for c in join.commands if c.host == "cp2" and "/data/member" not in c.script
             and "manifests/etcd.yaml" not in c.script.split("&&")[-1]]
    assert run(edits) == ["ran"] * len(edits)
    got = flags(disabled.read_text())
    assert got["name"] == "cp2" and got["initial-cluster-state"] == "existing"
    assert got["initial-cluster"] == "cp1=https://10.0.0.1:2380,cp2=https://10.0.0.2:2380"
    old, new = command_items(before), command_items(disabled.read_text())
    untouched = ("--name=", "--initial-cluster=", "--initial-cluster-state=", "--initial-advertise-peer-urls=")
    assert [i for i in old if not i.startswith(untouched)] == [i for i in new if not i.startswith(untouched)]
    assert (disabled.parent / "etcd.yaml.etcdrescue-S").read_text() == before, "the original kept aside"
    after = disabled.read_bytes()
    assert run(edits) == ["skipped"] * len(edits)
    assert disabled.read_bytes() == after
    assert not any(p.name.startswith(".") for p in disabled.parent.iterdir()), "no temp file left behind"


def test_force_new_cluster_is_one_more_item_and_the_original_bytes_come_back(host: tuple[Inventory, Path]) -> None:
    inv, disabled = host
    original = disabled.read_bytes()
    plan = build_plan(Context(inv, None, Method.FORCE_NEW_CLUSTER, "S"))
    conf, start, drop = plan.step("seed-conf"), plan.step("seed-start"), plan.step("seed-drop-flag")
    run(conf.commands)
    run(start.commands)
    live = disabled.parent.parent / "manifests" / "etcd.yaml"
    assert live.exists() and not disabled.exists()
    assert command_items(live.read_text())[-1] == "--force-new-cluster=true"
    run(drop.commands)
    assert live.read_bytes() == original, "the seed gets its original manifest back, byte for byte"
    assert (disabled.parent / "etcd.yaml.forced-S").exists()


def test_a_half_written_edit_never_reaches_the_kubelet(host: tuple[Inventory, Path]) -> None:
    """The edit goes to a dot file beside the disabled manifest; only a verified file is renamed over it."""
    inv, disabled = host
    plan = build_plan(Context(inv, "/b", Method.SNAPSHOT_RESTORE, "S"))
    write, verify, rename = [c for c in plan.step("seed-conf").commands if c.host == "cp1"][1:4]
    run([write])
    tmp = next(p for p in disabled.parent.iterdir() if p.name.startswith("."))
    tmp.write_text(tmp.read_text().replace("- --data-dir=/var/lib/etcd\n", ""))
    res = subprocess.run(["bash", "-c", verify.script], capture_output=True, text=True)
    assert verify.check is not None and verify.check(res.stdout) is not None, "a damaged edit is caught"
    assert not (disabled.parent.parent / "manifests" / "etcd.yaml").exists()
    assert rename.script.startswith("mv ") and str(disabled.parent) in rename.script


@pytest.mark.parametrize(("name", "version"), [("v1.24-init.yaml", "3.5.6"), ("v1.31-joined.yaml", None)])
def test_server_version_from_the_image_tag(name: str, version: str | None) -> None:
    text = (DATA / name).read_text()
    found = server_version(text)
    tag = next(line.split(":")[-1] for line in text.splitlines() if "image:" in line and "etcd" in line)
    assert found == tag.split("-")[0].lstrip("v")
    assert version is None or found == version
