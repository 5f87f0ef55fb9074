"""The freshest survivor seeds a quorum restore, on both platforms: members stopped at different times hold
different data, and neither the inventory's order nor an operator's `--seed` may lose the newer writes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from etcdrescue.lab import Lab

from .conftest import requires_lab
from .helpers import etcdrescue, tree_digest

pytestmark = [pytest.mark.lab, requires_lab, pytest.mark.timeout(400)]

LabFactory = Callable[..., Lab]


@pytest.mark.parametrize(("profile", "etcd", "subnet"), [("okd3", "3.4", 108), ("kubeadm", "3.5", 109),
                                                      ("okd3", "3.5", 226), ("kubeadm", "3.7", 227)])
def test_freshest_member_seeds_the_quorum_restore(lab_factory: LabFactory, tmp_path: Path, profile: str, etcd: str,
                                                  subnet: int) -> None:
    lab = lab_factory(3, subnet=subnet, profile=profile, etcd=etcd)
    stale, fresh, last = lab.hosts[2], lab.hosts[1], lab.hosts[0]
    lab.put_keys("/early/", 100)
    lab.stop_etcd(stale)
    lab.put_keys("/late/", 200)
    lab.stop_etcd(fresh)  # `last` runs on alone: no quorum
    data = yaml.safe_load(lab.inventory_path.read_text())
    data["members"].reverse()  # the stale member first: inventory order alone would pick it
    inventory = tmp_path / "reversed.yaml"
    inventory.write_text(yaml.safe_dump(data))
    tools = [] if lab.host_tools else ["--etcd-tools", str(lab.bin_dir)]

    before = tree_digest(lab)
    refused = etcdrescue("recover", "-i", str(inventory), "--seed", stale.name, "--yes", *tools,
                         "--journal", str(tmp_path / "j"))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    line = refused.stderr.strip().splitlines()
    assert len(line) == 1 and f"{stale.name}: its data is behind" in line[0] and "--accept-older-seed" in line[0]
    assert tree_digest(lab) == before

    res = etcdrescue("recover", "-i", str(inventory), "--yes", *tools, "--journal", str(tmp_path / "j"))
    assert res.returncode == 0, res.stdout + res.stderr
    chosen = next(ln for ln in res.stdout.splitlines() if ln.strip().startswith("seed: "))
    assert "has the most recent data" in chosen and stale.name not in chosen.split(" has ")[0], chosen
    assert "Plan for lab: quorum restore" in res.stdout or "recovered lab" in res.stdout
    for h in lab.hosts:
        assert lab.healthy(h)
        assert len(lab.read_prefix("/late/", host=h)) == 200, f"{h.name}: newer writes lost"
    assert sorted(m["name"] for m in lab.member_list()) == sorted(h.name for h in lab.hosts)
    assert last.name in chosen or fresh.name in chosen
