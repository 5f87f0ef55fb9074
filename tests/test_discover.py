"""`inventory discover` on recorded host answers: each source of members, each note, each refusal.

The host is a fake `run` that answers the scripts discovery sends by what they ask (the real
scripts, matched on the command they run); the lab tests (tests/e2e/test_inventory_lab.py) send
the same scripts to real masters.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from etcdrescue.errors import InputError
from etcdrescue.inventory.discover import Target, discover_with, initial_cluster
from etcdrescue.inventory.writer import render, scalar

DATA = Path(__file__).parent / "data"
CONF = """\
ETCD_NAME=master02.example.com
ETCD_LISTEN_PEER_URLS=https://10.0.0.12:2380
#ETCD_INITIAL_CLUSTER=old=https://10.9.9.9:2380
ETCD_INITIAL_CLUSTER=master01.example.com=https://10.0.0.11:2380,master02.example.com=https://10.0.0.12:2380,\
master03.example.com=https://10.0.0.13:2380
ETCD_ADVERTISE_CLIENT_URLS=https://10.0.0.12:2379
"""
OKD3_ONLY = "okd3=yes\nkubeadm=no\n"
ETCDCTL = "etcdctl=/usr/bin/etcdctl\netcdctl_on_path=yes\netcdctl_version=3.4.23\n"
NO_ETCDCTL = "etcdctl=\netcdctl_on_path=no\netcdctl_version=\n"
LAB_CONF = CONF.replace("10.0.0.1", "127.0.49.").replace("example.com", "lab.example")
"""The settings of the lab member whose etcdctl answers were recorded in tests/data."""
TARGET = Target("10.0.0.12", port=22, known_hosts="/root/.ssh/known_hosts")

Answers = dict[str, tuple[int, str, str]]


def host(answers: Answers, sent: list[str] | None = None) -> Callable[[str, float], tuple[int, str, str]]:
    """A fake master: the first key found in a script picks the answer; an unknown script fails the test."""
    def run(script: str, timeout: float) -> tuple[int, str, str]:
        assert timeout <= 30, "every call is bounded"
        if sent is not None:
            sent.append(script)
        for key, answer in answers.items():
            if key in script:
                return answer
        raise AssertionError(f"unexpected script: {script}")
    return run


def okd3(**over: tuple[int, str, str]) -> Answers:
    base: Answers = {"echo okd3=": (0, OKD3_ONLY, ""), "cat /etc/etcd/etcd.conf": (0, CONF, ""),
                     "test -e /etc/origin/node/pod/etcd.yaml": (0, "", ""), "command -v": (0, NO_ETCDCTL, "")}
    return {**over, **base} if not over else {**over, **{k: v for k, v in base.items() if k not in over}}


def loaded(text: str) -> dict:
    return yaml.safe_load(text)


def test_okd3_without_etcdctl_uses_the_initial_cluster_and_says_where_hosts_come_from() -> None:
    found = discover_with(host(okd3()), TARGET)
    doc = loaded(found.text)
    assert doc["profile"] == "okd3" and doc["cluster"] == "example.com"
    assert [(m["name"], m["host"], m["peer_url"], m["client_url"]) for m in doc["members"]] == [
        ("master01.example.com", "10.0.0.11", "https://10.0.0.11:2380", "https://10.0.0.11:2379"),
        ("master02.example.com", "10.0.0.12", "https://10.0.0.12:2380", "https://10.0.0.12:2379"),
        ("master03.example.com", "10.0.0.13", "https://10.0.0.13:2380", "https://10.0.0.13:2379"),
    ]
    lines = found.text.splitlines()
    assert "    host: 10.0.0.11  # check: taken from the peer URL" in lines
    assert "    host: 10.0.0.12" in lines, "the host we reached is its own SSH address, no check needed"
    assert "    client_url: https://10.0.0.11:2379  # check: the peer URL's host on port 2379" in lines
    assert "    client_url: https://10.0.0.12:2379" in lines, "its own client URL is read, not derived"
    assert any("no etcdctl on 10.0.0.12" in u for u in found.draft.unknown)
    assert "initial cluster" in found.text and "cluster: example.com  # check: chosen by etcdrescue" in found.text


def test_live_member_list_with_quorum_is_the_source() -> None:
    answers = okd3(**{"command -v": (0, ETCDCTL, ""),
                      "member list": (0, (DATA / "healthy_member_list.json").read_text(), ""),
                      "endpoint health": (0, (DATA / "healthy_endpoint_health.json").read_text(), "")})
    answers["cat /etc/etcd/etcd.conf"] = (0, LAB_CONF, "")
    sent: list[str] = []
    found = discover_with(host(answers, sent), Target("127.0.49.2"), cluster="lab")
    doc = loaded(found.text)
    assert [m["name"] for m in doc["members"]] == [f"master0{i}.lab.example" for i in (1, 2, 3)], \
        "in the initial cluster's order, not the member IDs'"
    assert all("check: the peer URL's host" not in line for line in found.text.splitlines()), \
        "client URLs come from the member list"
    assert found.draft.unknown == () and "live member list" in found.text
    ctl = next(s for s in sent if "member list" in s)
    assert "--dial-timeout=3s" in ctl and "--command-timeout=5s" in ctl and "--cacert /etc/etcd/ca.crt" in ctl
    assert "--endpoints https://127.0.49.2:2379" in ctl
    assert doc["cluster"] == "lab"


def test_quorum_lost_is_said_and_the_members_own_view_used() -> None:
    answers = okd3(**{"command -v": (0, ETCDCTL, ""),
                      "member list": (0, (DATA / "unstarted_member_list.json").read_text(), ""),
                      "endpoint health": (1, (DATA / "noquorum_endpoint_health.json").read_text(), "")})
    answers["cat /etc/etcd/etcd.conf"] = (0, LAB_CONF.replace("master01.lab.example=", "master09.lab.example="), "")
    found = discover_with(host(answers), Target("127.0.49.2"))
    unknown = "\n".join(found.draft.unknown)
    assert "quorum lost: 127.0.49.2's etcd is not healthy (context deadline exceeded)" in unknown
    assert f"member {4724276693496905262:x} (https://127.0.49.4:2380) was added but never started" in unknown
    assert "master09.lab.example is in the initial cluster but not in the live member list" in unknown
    assert len(loaded(found.text)["members"]) == 3
    assert found.text.count("\n#   - ") == len(found.draft.unknown)


@pytest.mark.parametrize(("version", "serializable"), [("3.4.23", False), ("3.5.36", False), ("3.6.17", True),
                                                    ("3.7.4", True)])
def test_a_quorum_less_member_is_asked_for_its_own_view_where_etcdctl_can(version: str, serializable: bool) -> None:
    """etcdctl 3.5+ lists members linearizably (no answer without a quorum); 3.6+ can ask `--consistency=s`."""
    answers = okd3(**{"command -v": (0, ETCDCTL.replace("3.4.23", version), ""),
                      "member list": (0, (DATA / "unstarted_member_list.json").read_text(), ""),
                      "endpoint health": (1, (DATA / "noquorum_endpoint_health.json").read_text(), "")})
    answers["cat /etc/etcd/etcd.conf"] = (0, LAB_CONF, "")
    sent: list[str] = []
    discover_with(host(answers, sent), Target("127.0.49.2"))
    ctl = next(s for s in sent if "member list" in s)
    assert ("--consistency=s" in ctl) == serializable, ctl


def test_member_list_unanswered_falls_back_to_the_config() -> None:
    answers = okd3(**{"command -v": (0, ETCDCTL, ""),
                      "member list": (1, "", "Error: context deadline exceeded\n")})
    found = discover_with(host(answers), TARGET)
    assert any("did not answer the member list (Error: context deadline exceeded)" in u for u in found.draft.unknown)
    assert len(loaded(found.text)["members"]) == 3


def test_kubeadm_manifest_moved_aside_is_read_and_the_stop_said() -> None:
    manifest = (DATA / "kubeadm" / "v1.31-joined.yaml").read_text()
    answers: Answers = {"echo okd3=": (0, "okd3=no\nkubeadm=yes\n", ""),
                        "cat /etc/kubernetes/manifests/etcd.yaml": (0, manifest, ""),
                        "test -e /etc/kubernetes/manifests/etcd.yaml": (1, "", ""),
                        "command -v": (0, NO_ETCDCTL, ""), "echo images=": (0, "images=\n", "")}
    found = discover_with(host(answers), Target("10.0.0.13"))
    doc = loaded(found.text)
    assert any("nor etcdctl 3.5.15 in an unpacked etcd image): the live member list was not read" in u
               for u in found.draft.unknown), found.draft.unknown
    assert doc["profile"] == "kubeadm"
    assert [m["name"] for m in doc["members"]] == ["cp2", "cp1", "cp3"]
    assert any("not in /etc/kubernetes/manifests" in u and "etcd is stopped" in u for u in found.draft.unknown)
    assert doc["cluster"] == "etcd", "no common domain: a neutral name, flagged for checking"


def test_kubeadm_init_node_lists_only_itself_and_says_so() -> None:
    manifest = (DATA / "kubeadm" / "v1.29-ipv6.yaml").read_text()
    answers: Answers = {"echo okd3=": (0, "okd3=no\nkubeadm=yes\n", ""),
                        "cat /etc/kubernetes/manifests/etcd.yaml": (0, manifest, ""),
                        "test -e": (0, "", ""), "command -v": (0, NO_ETCDCTL, ""), "echo images=": (0, "images=\n", "")}
    found = discover_with(host(answers), Target("fd00::10"))
    (member,) = loaded(found.text)["members"]
    assert member["peer_url"] == "https://[fd00::10]:2380" and member["host"] == "fd00::10"
    assert any("only one member is known" in u for u in found.draft.unknown)


def test_kubeadm_without_etcdctl_asks_with_its_etcd_images_etcdctl_in_place() -> None:
    """No etcdctl on the node: the layer whose etcdctl is the manifest's etcd version (not the older image's) asks
    the member list and health, run where the runtime unpacked it."""
    manifest = (DATA / "kubeadm" / "v1.31-joined.yaml").read_text()
    layer = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/{}/fs/usr/local/bin"
    images = f"images={layer.format(9)}|3.4.23| {layer.format(17)}|3.5.15|3.5.15 \n"
    members = (DATA / "healthy_member_list.json").read_text()
    answers: Answers = {"echo okd3=": (0, "okd3=no\nkubeadm=yes\n", ""),
                        "cat /etc/kubernetes/manifests/etcd.yaml": (0, manifest, ""),
                        "test -e": (0, "", ""), "command -v": (0, NO_ETCDCTL, ""), "echo images=": (0, images, ""),
                        "member list": (0, members, ""),
                        "endpoint health": (0, (DATA / "healthy_endpoint_health.json").read_text(), "")}
    sent: list[str] = []
    found = discover_with(host(answers, sent), Target("10.0.0.13"))
    asked = [s for s in sent if "member list" in s or "endpoint health" in s]
    assert len(asked) == 2 and all(f"{layer.format(17)}/etcdctl " in s for s in asked), asked
    assert any("the live member list" in line for line in found.draft.source), found.draft.source


@pytest.mark.parametrize(("detect", "message"), [
    ("okd3=no\nkubeadm=no\n", "no etcd settings found"),
    ("okd3=yes\nkubeadm=yes\n", "settings of several platforms found (okd3, kubeadm): give --profile"),
])
def test_platform_detection_refuses_none_or_both(detect: str, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        discover_with(host({"echo okd3=": (0, detect, "")}), TARGET)


def test_given_profile_is_not_detected() -> None:
    sent: list[str] = []
    discover_with(host(okd3(), sent), TARGET, profile="okd3")
    assert not any("echo okd3=" in s for s in sent)


def test_settings_without_initial_cluster_are_refused() -> None:
    answers = okd3(**{"cat /etc/etcd/etcd.conf": (0, "ETCD_NAME=a\n", "")})
    with pytest.raises(InputError, match="sets no initial-cluster"):
        discover_with(host(answers), TARGET)


def test_a_value_the_inventory_refuses_is_an_error_not_a_file() -> None:
    conf = CONF.replace("master03.example.com=", "bad$(name)=")
    with pytest.raises(InputError, match=r"would not load: .*members\[2\]\.name"):
        discover_with(host(okd3(**{"cat /etc/etcd/etcd.conf": (0, conf, "")})), TARGET)


def test_bad_target_and_cluster_refused_before_connecting() -> None:
    from etcdrescue.inventory.discover import discover

    with pytest.raises(InputError, match="not a valid host"):
        discover(Target("-oProxyCommand=x"))
    with pytest.raises(InputError, match="not a valid user"):
        discover(Target("10.0.0.1", user="root;id"))
    with pytest.raises(InputError, match="--cluster"):
        discover(Target("10.0.0.1"), cluster="a b")


def test_initial_cluster_parsing() -> None:
    assert initial_cluster("a=https://x:2380,b=https://y:2380,a=https://z:2380") == {
        "a": ["https://x:2380", "https://z:2380"], "b": ["https://y:2380"]}
    with pytest.raises(InputError, match="not name=peer-url"):
        initial_cluster("https://x:2380")


@pytest.mark.parametrize("value", ["true", "22", "null", "a b", "#x", "x: y", "", "~", "-x", "[fd00::1]"])
def test_scalars_read_back_as_written(value: str) -> None:
    assert yaml.safe_load(f"k: {scalar(value)}")["k"] == value


def test_render_writes_notes_as_comments_that_cannot_break_the_yaml() -> None:
    from etcdrescue.inventory.writer import InventoryDraft, MemberDraft, SSHDraft

    draft = InventoryDraft("c", "okd3", SSHDraft(), (MemberDraft("a", "h", "https://h:2380", "https://h:2379",
                                                                 notes=(("host", "two\nlines # and a hash"),)),),
                           source=("from\nsomewhere",), unknown=("x\ny",))
    text = render(draft)
    assert yaml.safe_load(text)["members"][0]["host"] == "h"
    assert "    host: h  # two lines # and a hash" in text.splitlines()
    assert "#   - x y" in text.splitlines()
