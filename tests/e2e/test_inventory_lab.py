"""Inventories written for the operator, used as is on the real lab (subnets 130, 132).

One okd3 lab and one kubeadm lab, each shared by the module's tests in order: discover while
healthy, break the quorum, discover again (from a survivor and from a broken member), recover with
what discover wrote; on okd3 then break it again and recover with an inventory imported from an
openshift-ansible file (tests/data/ansible/separate-etcd.hosts, its addresses rewritten to the lab's).
Discovery is read-only: every file etcd's platform keeps on every master hashes the same before and
after (`tree_digest`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from etcdrescue.inventory.model import load_inventory
from etcdrescue.lab import Lab
from etcdrescue.platform.kubeadm import DEFAULT_PATHS as KUBEADM

from .conftest import requires_lab
from .helpers import PRE, etcdrescue, hide_image, host_file, tree_digest

pytestmark = [pytest.mark.lab, requires_lab, pytest.mark.timeout(300)]

DATA = Path(__file__).resolve().parents[1] / "data" / "ansible"
ETCD_NAMES = [f"etcd{i}.ocp.example.com" for i in (1, 2, 3)]


def lab_at(tmp_path_factory: pytest.TempPathFactory, subnet: int, **kw: object) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp(f"inv{subnet}"), 3, subnet=subnet, **kw)  # type: ignore[arg-type]
    try:
        lab.up(timeout=60)
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="module")
def okd3_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from lab_at(tmp_path_factory, 130, names=ETCD_NAMES)


@pytest.fixture(scope="module")
def kubeadm_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from lab_at(tmp_path_factory, 132, profile="kubeadm", etcd="3.5")


def discover(lab: Lab, host: int, out: Path, *extra: str) -> tuple[str, str]:
    """`inventory discover` of one lab host, read-only: (the inventory written, stderr)."""
    before = tree_digest(lab)
    res = etcdrescue("inventory", "discover", lab.hosts[host].ip, "--port", str(lab.ssh_port),
                     "--identity", str(lab.identity_file), "--known-hosts", str(lab.known_hosts),
                     "-o", str(out), *extra, timeout=120)
    assert res.returncode == 0, res.stderr
    assert tree_digest(lab) == before, "discover changed a file on a master"
    return out.read_text(), res.stderr


def assert_matches_lab(lab: Lab, path: Path, profile: str) -> None:
    inv = load_inventory(path)
    assert inv.platform.name == profile
    assert [(m.name, m.host, m.port, m.peer_url, m.client_url) for m in inv.members] == [
        (h.name, h.ip, lab.ssh_port, h.peer_url, h.client_url) for h in lab.hosts]


def break_quorum(lab: Lab) -> None:
    lab.wait_healthy()
    lab.put_keys(PRE, 50)
    time.sleep(0.6)  # let the db catch up with the WAL before two members are destroyed
    lab.break_quorum(lab.hosts[1:])


def recover(lab: Lab, inventory: Path, journal: Path, *extra: str) -> None:
    res = etcdrescue("recover", "-i", str(inventory), "--yes", "--journal", str(journal), *extra)
    assert res.returncode == 0, res.stdout + res.stderr
    lab.wait_healthy(timeout=30)
    assert sorted(m["name"] for m in lab.member_list()) == sorted(h.name for h in lab.hosts)
    assert len(lab.read_prefix(PRE)) == 50


def test_okd3_discover_healthy(okd3_lab: Lab, tmp_path: Path) -> None:
    text, err = discover(okd3_lab, 0, tmp_path / "inv.yaml")
    assert_matches_lab(okd3_lab, tmp_path / "inv.yaml", "okd3")
    assert "live member list" in text and err == f"inventory written to {tmp_path / 'inv.yaml'} (3 members)\n"
    assert text.count("# check: taken from the peer URL") == 2


def test_okd3_discover_without_quorum_then_recover(okd3_lab: Lab, tmp_path: Path) -> None:
    break_quorum(okd3_lab)
    survivor, err = discover(okd3_lab, 0, tmp_path / "survivor.yaml", "--cluster", "lab")
    assert "etcdrescue: check: quorum lost: 127.0.130.1's etcd is not healthy" in err
    assert "#   - quorum lost:" in survivor and "live member list" in survivor
    broken, err = discover(okd3_lab, 1, tmp_path / "broken.yaml", "--cluster", "lab", "--profile", "okd3")
    assert "etcdrescue: check: etcd on 127.0.130.2 did not answer the member list" in err
    assert "initial cluster" in broken
    for name in ("survivor.yaml", "broken.yaml"):
        assert_matches_lab(okd3_lab, tmp_path / name, "okd3")
    recover(okd3_lab, tmp_path / "broken.yaml", tmp_path / "j")


def test_okd3_recover_with_an_imported_ansible_inventory(okd3_lab: Lab, tmp_path: Path) -> None:
    """separate-etcd.hosts, pointed at the lab: etcd_ip and ansible_host the lab's addresses, its SSH port and key."""
    text = (DATA / "separate-etcd.hosts").read_text()
    text = re.sub(r"ansible_host=192\.0\.2\.3(\d)", r"ansible_host=127.0.130.\1", text)
    text = re.sub(r"etcd_ip=172\.16\.5\.3(\d)", r"etcd_ip=127.0.130.\1", text)
    text = re.sub(r"ansible_port=220\d", f"ansible_port={okd3_lab.ssh_port}", text)
    text = text.replace("/home/ops/.ssh/ocp_etcd", str(okd3_lab.identity_file))
    hosts = tmp_path / "hosts"
    hosts.write_text(text, encoding="utf-8")
    res = etcdrescue("inventory", "from-ansible", str(hosts), "--known-hosts", str(okd3_lab.known_hosts),
                     "-o", str(tmp_path / "imported.yaml"))
    assert res.returncode == 0, res.stderr
    assert "etcdrescue: check: host lb.ocp.example.com (OSEv3, lb): not an etcd member: left out" in res.stderr
    assert_matches_lab(okd3_lab, tmp_path / "imported.yaml", "okd3")
    break_quorum(okd3_lab)
    recover(okd3_lab, tmp_path / "imported.yaml", tmp_path / "j")


def test_kubeadm_discover_healthy_without_host_tools(kubeadm_lab: Lab, tmp_path: Path) -> None:
    """No etcdctl on kubeadm hosts: the node's own etcd image's etcdctl, run where the runtime unpacked it, reads
    the live member list, so even the first node gives all three. Without that image, the manifest's
    --initial-cluster is all there is, and it differs per node (the first one's names only itself)."""
    lab = kubeadm_lab
    live, _ = discover(lab, 0, tmp_path / "live.yaml")
    assert "live member list" in live
    assert_matches_lab(lab, tmp_path / "live.yaml", "kubeadm")
    full = lab.release.full
    hidden = hide_image(lab, 0, full)
    try:
        first, err = discover(lab, 0, tmp_path / "first.yaml")
    finally:
        hidden.rename(hidden.with_name("bin"))
    assert f"no etcdctl on 127.0.132.1 (PATH or the usual places, nor etcdctl {full} in an unpacked etcd image)" in err
    assert "only one member is known" in err
    assert [m["name"] for m in yaml.safe_load(first)["members"]] == [lab.hosts[0].name]
    discover(lab, 2, tmp_path / "last.yaml")
    assert_matches_lab(lab, tmp_path / "last.yaml", "kubeadm")


def test_kubeadm_discover_with_the_manifest_aside_then_recover(kubeadm_lab: Lab, tmp_path: Path) -> None:
    lab = kubeadm_lab
    break_quorum(lab)
    manifest, disabled = host_file(lab, 2, KUBEADM.manifest), host_file(lab, 2, KUBEADM.disabled_manifest)
    disabled.parent.mkdir(exist_ok=True)
    manifest.rename(disabled)  # what the recovery's stop step does: etcd stopped, flags in the disabled dir
    lab.wait_stopped(2)
    text, err = discover(lab, 2, tmp_path / "inv.yaml", "--cluster", "lab")
    assert f"the etcd manifest is not in {KUBEADM.pod_dir} on 127.0.132.3: etcd is stopped there" in err
    assert "profile: kubeadm" in text
    assert_matches_lab(lab, tmp_path / "inv.yaml", "kubeadm")
    recover(lab, tmp_path / "inv.yaml", tmp_path / "j", "--etcd-tools", str(lab.bin_dir))
