"""The join's "restart a joiner stuck in its first publish" command, run with real bash against shims.

A joiner is stuck when the seed applied its first publish before building the snapshot it sent it (see
docs/performance.md, "The slow join"): the seed lists it as started while it does not serve. The shims play
etcdctl (`endpoint status` on the joiner, `member list` on the seed) and pgrep; the kubeadm platform's
restart moves the manifest out of a temporary pod directory and back.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from etcdrescue.command import Command
from etcdrescue.inventory.model import Inventory, parse_inventory
from etcdrescue.model import Context, Method
from etcdrescue.steps import join as join_mod
from etcdrescue.steps.join import join, unstick

ETCDCTL = """#!/bin/bash
# endpoint status answers once $STATE/serves exists; member list shows the joiner started once $STATE/published does
case " $* " in
  *" endpoint status "*) test -e "$STATE/serves" ;;
  *" member list -w json"*)
    one='{"ID":1,"name":"cp1","peerURLs":["https://127.0.209.1:2380"],"clientURLs":["https://127.0.209.1:2379"]}'
    if test -e "$STATE/published"; then
      two='{"ID":2,"name":"cp2","peerURLs":["https://127.0.209.2:2380"],"clientURLs":["https://127.0.209.2:2379"],"isLearner":true}'
    else two='{"ID":2,"peerURLs":["https://127.0.209.2:2380"],"isLearner":true}'; fi
    echo "{\"header\":{\"cluster_id\":7,\"member_id\":1,\"raft_term\":2},\"members\":[$one,$two]}" ;;
  *) exit 2 ;;
esac
"""
PGREP = """#!/bin/bash
echo pgrep >> "$STATE/calls"
exit 1
"""


def inventory(root: Path, profile: str = "kubeadm") -> Inventory:
    paths = {"manifest": f"{root}/manifests/etcd.yaml", "disabled_dir": f"{root}/disabled",
             "etcd_conf": f"{root}/manifests/etcd.yaml", "data_dir": f"{root}/data"}
    return parse_inventory({"cluster": "k", "profile": profile, "paths": paths if profile == "kubeadm" else {},
                            "members": [{"name": f"cp{i}", "host": f"127.0.209.{i}",
                                         "peer_url": f"https://127.0.209.{i}:2380",
                                         "client_url": f"https://127.0.209.{i}:2379"} for i in (1, 2, 3)]})


def command(inv: Inventory) -> Command:
    return unstick(Context(inv, None, Method.FORCE_NEW_CLUSTER, "20240101T000000Z"), inv.members[1])


@pytest.fixture
def host(tmp_path: Path) -> tuple[Command, Path, dict[str, str]]:
    """A kubeadm master running the joiner: its manifest in the pod directory, shims first on PATH."""
    for d in ("manifests", "disabled", "data", "bin", "state"):
        (tmp_path / d).mkdir()
    (tmp_path / "manifests" / "etcd.yaml").write_text("kind: Pod\n")
    for name, text in (("etcdctl", ETCDCTL), ("pgrep", PGREP)):
        (tmp_path / "bin" / name).write_text(text)
        (tmp_path / "bin" / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "STATE": str(tmp_path / "state")}
    return command(inventory(tmp_path)), tmp_path, env


def run(c: Command, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    res = subprocess.run(["bash", "-c", c.script], capture_output=True, text=True, env=env, timeout=c.timeout)
    return res, time.monotonic() - start


def skipped(c: Command, env: dict[str, str]) -> bool:
    assert c.skip_if is not None
    return subprocess.run(["bash", "-c", c.skip_if], capture_output=True, env=env).returncode == 0


def test_a_serving_joiner_is_skipped(host: tuple[Command, Path, dict[str, str]]) -> None:
    c, root, env = host
    assert not skipped(c, env)
    (root / "state" / "serves").touch()
    assert skipped(c, env)


def test_a_published_joiner_that_does_not_serve_is_restarted(host: tuple[Command, Path, dict[str, str]]) -> None:
    c, root, env = host
    (root / "state" / "published").touch()
    res, took = run(c, env)
    assert res.returncode == 0, res.stderr
    assert "cp2 is published on cp1 but does not serve: restarting it" in res.stdout
    assert took >= join_mod.STUCK_GRACE_MS / 1000
    assert (root / "state" / "calls").read_text().startswith("pgrep"), "the restart waited for etcd to be down"
    assert (root / "manifests" / "etcd.yaml").read_text() == "kind: Pod\n"
    assert not list((root / "disabled").iterdir())


def test_a_joiner_that_starts_serving_is_left_alone(host: tuple[Command, Path, dict[str, str]]) -> None:
    c, root, env = host
    (root / "state" / "published").touch()
    timer = subprocess.Popen(["bash", "-c", f"sleep 0.5; touch {root / 'state' / 'serves'}"])
    res, _ = run(c, env)
    timer.wait()
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("cp2 serves")
    assert not (root / "state" / "calls").exists()


def test_an_unpublished_joiner_is_left_to_the_gate(host: tuple[Command, Path, dict[str, str]],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _, root, env = host
    monkeypatch.setattr(join_mod, "STUCK_WAIT_S", 1)
    res, took = run(command(inventory(root)), env)
    assert res.returncode == 0, res.stderr
    assert "neither serves nor is stuck after 1s: left to the gate" in res.stdout
    assert 1 <= took < 5
    assert (root / "manifests" / "etcd.yaml").exists()


def test_okd3_restarts_with_master_restart(tmp_path: Path) -> None:
    c = command(inventory(tmp_path, "okd3"))
    assert "/usr/local/bin/master-restart etcd; exit $?" in c.script
    assert c.host == "cp2" and c.mutates


@pytest.mark.parametrize("learners", [True, False])
def test_every_join_restarts_a_stuck_joiner_after_starting_it(tmp_path: Path, learners: bool) -> None:
    inv = inventory(tmp_path)
    ctx = Context(inv, None, Method.FORCE_NEW_CLUSTER, "20240101T000000Z", learners=learners)
    start = join(ctx, 1)[0]
    purposes = [c.purpose for c in start.commands]
    assert purposes[-2] == "move the etcd manifest back: the kubelet starts etcd"
    assert start.commands[-1] == unstick(ctx, inv.members[1])


@pytest.mark.parametrize("profile", ["okd3", "kubeadm"])
def test_the_command_is_one_line(tmp_path: Path, profile: str) -> None:
    """The dry run prints each command as `host$ script` followed by its mark on the next line."""
    c = command(inventory(tmp_path, profile))
    assert "\n" not in c.script and c.skip_if is not None and "\n" not in c.skip_if


def test_a_published_joiner_still_receiving_its_snapshot_is_not_restarted(
        host: tuple[Command, Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """A large snapshot arriving keeps the joiner silent for seconds: its data dir grows, so it is busy, not
    stuck; a restart would start the transfer over."""
    _, root, env = host
    monkeypatch.setattr(join_mod, "STUCK_WAIT_S", 3)
    (root / "state" / "published").touch()
    snap = root / "data" / "member" / "snap"
    snap.mkdir(parents=True)
    writer = subprocess.Popen(["bash", "-c", f"for i in $(seq 40); do head -c 65536 /dev/zero >> {snap / 'x.snap.db'}; "
                                             "sleep 0.1; done"])
    res, _ = run(command(inventory(root)), env)
    writer.wait()
    assert res.returncode == 0, res.stderr
    assert "neither serves nor is stuck after 3s: left to the gate" in res.stdout, res.stdout
    assert not (root / "state" / "calls").exists(), "restarted while its data was still arriving"
