"""`inventory from-ansible`: the three sample openshift-ansible inventories, each mapping rule and each
line reported for what was not mapped. Files are read by ansible-core; the mapping cases are built
directly (`AnsibleInventory`), as ansible-core would hand them over."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from etcdrescue.errors import InputError
from etcdrescue.inventory.ansible import AnsibleHost, AnsibleInventory, convert, read, to_draft
from etcdrescue.inventory.model import load_inventory

DATA = Path(__file__).parent / "data" / "ansible"


def members(text: str, tmp_path: Path) -> list[tuple[str, str, int, str, str]]:
    p = tmp_path / "inv.yaml"
    p.write_text(text, encoding="utf-8")
    inv = load_inventory(p)
    return [(m.name, m.host, m.port, m.peer_url, m.client_url) for m in inv.members]


def test_field_report_layout(tmp_path: Path) -> None:
    c = convert(DATA / "field-report.hosts")
    assert members(c.text, tmp_path) == [
        (f"master0{i}.okd.example.com", f"master0{i}.okd.example.com", 22, f"https://10.10.0.{i}:2380",
         f"https://10.10.0.{i}:2379") for i in (1, 2, 3)]
    d = c.draft
    assert (d.profile, d.cluster, d.ssh.user, d.ssh.port, d.ssh.sudo) == ("okd3", "okd.example.com", "root", 22, False)
    left_out = [u for u in d.unknown if u.startswith("host ")]
    assert left_out == [f"host {h}.okd.example.com (OSEv3, nodes): not an etcd member: left out"
                        for h in ("infra01", "infra02", "node01", "node02", "node03")]
    assert "variable openshift_node_group_name (on every member): not used" in d.unknown
    assert "variable os_sdn_network_plugin_name (on every member): not used" in d.unknown
    assert not any("openshift_ip" in u or "ansible_ssh_user" in u or "openshift_release" in u for u in d.unknown)
    assert all(f"#   - {u}" in c.text for u in d.unknown), "every report is a comment in the file too"


def test_separate_etcd_group_with_per_host_ssh(tmp_path: Path) -> None:
    c = convert(DATA / "separate-etcd.hosts", known_hosts="/srv/known_hosts")
    assert members(c.text, tmp_path) == [
        (f"etcd{i}.ocp.example.com", f"192.0.2.3{i}", 2201 if i < 3 else 2202, f"https://172.16.5.3{i}:2380",
         f"https://172.16.5.3{i}:2379") for i in (1, 2, 3)]
    d = c.draft
    assert (d.cluster, d.ssh.user, d.ssh.port, d.ssh.identity_file, d.ssh.known_hosts) == (
        "ocp-prod", "root", 2201, "/home/ops/.ssh/ocp_etcd", "/srv/known_hosts")
    assert "cluster: ocp-prod  # from openshift_clusterid" in c.text
    assert [u for u in d.unknown if u.startswith("host ")] == [
        "host master1.ocp.example.com (OSEv3, masters, nodes): not an etcd member: left out",
        "host master2.ocp.example.com (OSEv3, masters, nodes): not an etcd member: left out",
        "host master3.ocp.example.com (OSEv3, masters, nodes): not an etcd member: left out",
        "host lb.ocp.example.com (OSEv3, lb): not an etcd member: left out",
        "host node1.ocp.example.com (OSEv3, nodes): not an etcd member: left out"]
    assert "variable oreg_url (on every member): not used" in d.unknown
    assert not any("ansible_port" in u for u in d.unknown), "a member's own port is kept, not reported"


def test_yaml_inventory_with_become(tmp_path: Path) -> None:
    c = convert(DATA / "openshift.yml")
    assert [m[0] for m in members(c.text, tmp_path)] == [f"cp-{x}.okd.example.net" for x in "abc"]
    d = c.draft
    assert (d.ssh.user, d.ssh.sudo) == ("cloud-user", True)
    assert "name: cp-a.okd.example.net\n" in c.text, "openshift_hostname is etcd's name: nothing to check"
    assert d.unknown == ("host worker-1.okd.example.net (nodes, OSEv3): not an etcd member: left out",
                         "variable openshift_deployment_type (on every member): not used")


def inv(*hosts: tuple[str, dict[str, Any]], groups: dict[str, tuple[str, ...]] | None = None,
        dirs: tuple[str, ...] = ()) -> AnsibleInventory:
    names = tuple(h for h, _ in hosts)
    return AnsibleInventory("hosts", tuple(AnsibleHost(h, ("etcd",), v) for h, v in hosts),
                            groups if groups is not None else {"OSEv3": names, "etcd": names}, dirs)


def one(**v: Any) -> AnsibleInventory:
    return inv(("m1.x.org", v))


@pytest.mark.parametrize(("variables", "peer"), [
    ({"etcd_ip": "10.1.0.1", "openshift_ip": "10.2.0.1", "ansible_host": "10.3.0.1"}, "https://10.1.0.1:2380"),
    ({"openshift_ip": "10.2.0.1", "ansible_host": "10.3.0.1"}, "https://10.2.0.1:2380"),
    ({"ansible_host": "10.3.0.1"}, "https://10.3.0.1:2380"),
    ({"etcd_ip": "fd00::5", "etcd_peer_port": 7001, "etcd_client_port": "7002"}, "https://[fd00::5]:7001"),
])
def test_address_precedence(variables: dict[str, Any], peer: str) -> None:
    (m,) = to_draft(one(**variables)).members
    assert m.peer_url == peer
    assert m.client_url == peer.replace(":2380", ":2379").replace(":7001", ":7002")


def test_hostname_as_address_is_flagged() -> None:
    (m,) = to_draft(one()).members
    assert m.peer_url == "https://m1.x.org:2380" and dict(m.notes)["peer_url"].startswith("check: no etcd_ip")


def test_ssh_mapping() -> None:
    d = to_draft(one(ansible_ssh_host="10.3.0.9", ansible_ssh_port="2200", ansible_ssh_user="ops",
                     ansible_become="yes", ansible_ssh_private_key_file="/k/id"))
    assert (d.members[0].host, d.ssh.port, d.ssh.user, d.ssh.sudo, d.ssh.identity_file) == (
        "10.3.0.9", 2200, "ops", True, "/k/id")
    assert d.unknown == ()


@pytest.mark.parametrize(("variables", "report"), [
    ({"etcd_ip": "{{ hostvars[x].ip }}"}, "m1.x.org: etcd_ip={{ hostvars[x].ip }} is a template"),
    ({"etcd_ip": "10.0.0.1;id"}, "m1.x.org: etcd_ip=10.0.0.1;id is not a host name or address: not used"),
    ({"ansible_port": "ssh"}, "m1.x.org: ansible_port=ssh is not a port number: not used"),
    ({"ansible_user": "Bad User"}, "ansible_user=Bad User is not a user name etcdrescue accepts: root is used"),
    ({"ansible_ssh_private_key_file": "keys/id"}, "ansible_ssh_private_key_file=keys/id is not an absolute"),
    ({"ansible_user": "ops"}, "ssh user ops is not root and ansible_become is not set"),
    ({"ansible_user": "ops", "ansible_become": True, "ansible_become_user": "etcd"},
     "m1.x.org: ansible_become_user=etcd: etcdrescue becomes root only"),
    ({"ansible_user": "ops", "ansible_become": True, "ansible_become_method": "su"},
     "m1.x.org: ansible_become_method=su: only sudo is supported"),
    ({"openshift_hostname": "bad name"}, "m1.x.org: openshift_hostname=bad name is not a member name"),
    ({"openshift_release": "v3.9"}, "openshift_release=v3.9: before 3.10 etcd ran as a systemd unit"),
    ({"openshift_portal_net": "172.30.0.0/16"}, "variable openshift_portal_net (on every member): not used"),
])
def test_each_unmapped_thing_is_reported(variables: dict[str, Any], report: str) -> None:
    d = to_draft(one(**variables))
    assert any(u.startswith(report) for u in d.unknown), d.unknown


def test_members_disagreeing_on_a_single_setting_are_reported() -> None:
    d = to_draft(inv(("a.x", {"ansible_user": "root"}), ("b.x", {"ansible_user": "root"}),
                     ("c.x", {"ansible_user": "admin", "ansible_become": True})))
    assert d.ssh.user == "root"
    assert "ansible_user differs between members (c.x differ from root): root is used for all" in d.unknown


def test_group_fallbacks_and_vars_dirs_are_reported() -> None:
    d = to_draft(inv(("a.x", {}), groups={"masters": ("a.x",)}, dirs=("/inv/group_vars",)))
    assert "no [etcd] group: the [masters] hosts are taken as the etcd members" in d.unknown
    assert "no [OSEv3] group: not an openshift-ansible inventory? mapped with its rules anyway" in d.unknown
    assert "/inv/group_vars: variables there are not read: check they change nothing mapped here" in d.unknown


def test_refusals() -> None:
    with pytest.raises(InputError, match=r"no \[etcd\] or \[masters\] group"):
        to_draft(inv(("a.x", {}), groups={"nodes": ("a.x",)}))
    with pytest.raises(InputError, match="none of the \\[etcd\\] hosts could be mapped"):
        to_draft(inv(("a_b!", {})))


def test_unreadable_files_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read(tmp_path / "missing")
    bad = tmp_path / "hosts"
    bad.write_text("this is [not\n= an inventory\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"^.*hosts: not an Ansible INI inventory: Failed to parse inventory: "
                                         r"Expected key=value host variable assignment, got: is$"):
        read(bad)


def test_executable_inventory_is_parsed_not_run(tmp_path: Path) -> None:
    script = tmp_path / "hosts"
    marker = tmp_path / "ran"
    script.write_text(f"#!/bin/sh\ntouch {marker}\n", encoding="utf-8")
    script.chmod(0o755)
    with pytest.raises(InputError):
        read(script)
    assert not marker.exists(), "the script inventory plugin must never run the file"


def test_cli_reports_each_line_on_stderr_and_keeps_an_existing_file(tmp_path: Path) -> None:
    out = tmp_path / "inv.yaml"
    env_cmd = [sys.executable, "-m", "etcdrescue", "inventory", "from-ansible", str(DATA / "field-report.hosts")]
    res = subprocess.run([*env_cmd, "-o", str(out)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    checks = [line for line in res.stderr.splitlines() if line.startswith("etcdrescue: check: ")]
    assert len(checks) == 13 and res.stdout == ""
    assert load_inventory(out).cluster == "okd.example.com"
    before = out.read_bytes()
    again = subprocess.run([*env_cmd, "-o", str(out)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and again.stderr.strip().splitlines()[-1].endswith(
        "exists: refusing to overwrite it (choose another -o)")
    assert out.read_bytes() == before
