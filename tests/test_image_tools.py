"""The etcd image's own binaries as the recovery's tools: found by the survey, chosen by the pre-flight (after
`--etcd-tools` and the hosts' own of the server's minor), copied into place by the plan's first step."""

from __future__ import annotations

from dataclasses import replace

import pytest

from etcdrescue.inventory.model import parse_inventory
from etcdrescue.model import Context, Method
from etcdrescue.plan import build_plan
from etcdrescue.platform import PLATFORMS
from etcdrescue.platform.tools import TOOLS_ROOT, EtcdTools, ImageBinaries, Tool, matching_image, parse_images
from etcdrescue.preflight.verdict import HostFacts, choose_tools
from etcdrescue.probes import HostSurvey, parse_host_survey

PATHS = PLATFORMS["kubeadm"].default_paths
GOOD = HostSurvey(manifest=True, disabled=False, conf=True, data_dir=True, member=True, member_kb=1000,
                  free_kb=900000, etcd_pid=None, client_port_open=False, peer_port_open=False,
                  etcdctl=None, etcdutl=None, bash="5.2", tls=True)
LAYERS = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots"


def layer(n: int, ctl: str, utl: str = "") -> ImageBinaries:
    return ImageBinaries(f"{LAYERS}/{n}/fs/usr/local/bin", ctl, utl)


def host(i: int, *images: ImageBinaries, server: str | None = "3.6.17", etcdctl: Tool | None = None) -> HostFacts:
    return HostFacts(f"m{i}", reachable=True, survey=replace(GOOD, etcdctl=etcdctl, etcdutl=None, images=images),
                     server_version=server)


def lab_like(server: str = "3.6.17", before: str = "3.5.36") -> tuple[HostFacts, ...]:
    """Three nodes whose layers differ in number, each with the image it runs and the one before."""
    return tuple(host(i, layer(9 + 2 * i, before), layer(17 + 3 * i, server, server), server=server)
                 for i in range(1, 4))


def test_the_survey_line_parses_each_layer_with_its_versions() -> None:
    line = (f"images={LAYERS}/17/fs/usr/local/bin|3.6.17|3.6.17 {LAYERS}/9/fs/usr/local/bin|3.5.36| "
            f"{LAYERS}/4/fs/usr/local/bin||\n")
    assert parse_images(line.split("=", 1)[1]) == (layer(17, "3.6.17", "3.6.17"), layer(9, "3.5.36"))
    text = "manifest=yes\ntls=yes\n" + line
    assert parse_host_survey(text).images == (layer(17, "3.6.17", "3.6.17"), layer(9, "3.5.36"))


@pytest.mark.parametrize(("server", "expect"), [("3.6.17", 17), ("3.6.17-0", 17), ("3.5.36", 9), ("3.6.16", None),
                                                (None, None)])
def test_the_layer_matches_the_servers_very_version(server: str | None, expect: int | None) -> None:
    found = matching_image((layer(9, "3.5.36"), layer(17, "3.6.17", "3.6.17")), server)
    assert (found.directory if found else None) == (f"{LAYERS}/{expect}/fs/usr/local/bin" if expect else None)


def test_an_image_without_its_etcdutl_restores_with_etcdctl_only_before_36() -> None:
    assert layer(1, "3.5.36").etcdutl == "" and layer(1, "3.5.36", "3.5.36").etcdutl.endswith("/etcdutl")
    assert layer(1, "3.4.23", "").etcdutl == ""


def test_nodes_without_tools_use_their_images_copied_to_one_place() -> None:
    choice = choose_tools(lab_like(), PATHS, seed="m1", uploaded=None, restores=True)
    assert not choice.problems, choice.problems
    home = f"{TOOLS_ROOT}/3.6.17"
    assert choice.tools is not None
    assert (choice.tools.etcdctl, choice.tools.etcdutl, choice.tools.version) == (
        f"{home}/etcdctl", f"{home}/etcdutl", "3.6.17")
    assert choice.tools.copied_from == tuple((f"m{i}", f"{LAYERS}/{17 + 3 * i}/fs/usr/local/bin") for i in (1, 2, 3))
    seen = choice.on("m2")
    assert seen is not None, "the pre-flight runs them where they are"
    assert seen.etcdctl == f"{LAYERS}/23/fs/usr/local/bin/etcdctl"
    assert seen.etcdutl == f"{LAYERS}/23/fs/usr/local/bin/etcdutl"


def test_the_hosts_own_of_the_servers_minor_come_before_the_image() -> None:
    own = Tool("/usr/bin/etcdctl", "3.6.4")
    hosts = tuple(replace(h, survey=replace(h.survey, etcdctl=own)) for h in lab_like() if h.survey)
    choice = choose_tools(hosts, PATHS, seed="m1", uploaded=None, restores=False)
    assert choice.tools is not None and choice.tools.etcdctl == "etcdctl" and not choice.local


def test_the_hosts_own_of_another_minor_give_way_to_the_image() -> None:
    old = Tool("/usr/bin/etcdctl", "3.4.23")
    hosts = tuple(replace(h, survey=replace(h.survey, etcdctl=old)) for h in lab_like() if h.survey)
    choice = choose_tools(hosts, PATHS, seed="m1", uploaded=None, restores=True)
    assert choice.tools is not None and choice.tools.copied_from and not choice.warnings


def test_uploaded_tools_come_first() -> None:
    uploaded = EtcdTools(PATHS, f"{TOOLS_ROOT}/3.6.1/etcdctl", f"{TOOLS_ROOT}/3.6.1/etcdutl")
    choice = choose_tools(lab_like(), PATHS, seed="m1", uploaded=uploaded, uploaded_version="3.6.1", restores=True)
    assert choice.tools is uploaded and not choice.local


def test_a_node_whose_image_is_of_another_version_is_refused_naming_both() -> None:
    hosts = (*lab_like()[:2], host(3, layer(15, "3.5.36", "3.5.36")))
    choice = choose_tools(hosts, PATHS, seed="m1", uploaded=None, restores=True)
    assert choice.tools is None
    assert len(choice.problems) == 1 and choice.problems[0].startswith("m3: etcdctl not found"), choice.problems
    line = choice.problems[0]
    assert line.endswith(": etcd 3.6.17 runs there, its image layers hold etcdctl 3.5.36: give --etcd-tools DIR with "
                         f"etcdctl and etcdutl of 3.6 (layers: {LAYERS}/15/fs/usr/local/bin)"), line


def test_a_manifest_without_a_version_cannot_match_an_image() -> None:
    hosts = (*lab_like()[1:], host(1, layer(17, "3.6.17", "3.6.17"), server=None))
    choice = choose_tools(hosts, PATHS, seed="m1", uploaded=None, restores=True)
    assert choice.tools is None and "does not say which etcd version runs" in choice.problems[0]


def test_masters_on_different_versions_cannot_share_one_command_line() -> None:
    hosts = (*lab_like()[:2], host(3, layer(15, "3.7.4", "3.7.4"), server="3.7.4"))
    choice = choose_tools(hosts, PATHS, seed="m1", uploaded=None, restores=False)
    assert choice.tools is None and "different etcd versions" in choice.problems[0]


def test_restoring_on_36_needs_etcdutl_in_the_image() -> None:
    hosts = tuple(host(i, layer(17 + i, "3.6.17")) for i in range(1, 4))
    choice = choose_tools(hosts, PATHS, seed="m1", uploaded=None, restores=True)
    assert choice.tools is None and "no etcdutl 3.6.17" in choice.problems[0] and "of 3.6" in choice.problems[0]
    k8s35 = tuple(host(i, layer(17 + i, "3.5.36"), server="3.5.36") for i in range(1, 4))
    ok = choose_tools(k8s35, PATHS, seed="m1", uploaded=None, restores=True)
    assert ok.tools is not None and ok.tools.etcdutl == "" and ok.tools.restore_tool == "etcdctl"


INV = parse_inventory({"cluster": "c", "profile": "kubeadm", "members": [
    {"name": f"m{i}", "host": f"10.0.0.{i}", "peer_url": f"https://10.0.0.{i}:2380",
     "client_url": f"https://10.0.0.{i}:2379"} for i in (1, 2, 3)]})


def test_the_plan_first_copies_the_image_binaries_and_every_command_uses_the_copies() -> None:
    tools = choose_tools(lab_like(), INV.paths, seed="m1", uploaded=None, restores=True).tools
    assert tools is not None
    inv = replace(INV, platform=replace(INV.platform, tools=tools))
    plan = build_plan(Context(inv, "/var/lib/etcd-backup/snap.db", Method.SNAPSHOT_RESTORE, "20260101T000000Z"))
    first = plan.steps[0]
    assert first.key == "etcd-tools" and first.phase == "tools"
    assert [c.host for c in first.commands] == ["m1", "m1", "m2", "m2", "m3", "m3"]
    for cmd in first.commands:
        assert cmd.skip_if is not None and "version: 3.6.17" in cmd.skip_if
        source = dict(tools.copied_from)[cmd.host]
        assert f"cp {source}/" in cmd.script
    assert all(c.skip_if for c in first.undo) and all(c.script.startswith("mv ") for c in first.undo)
    later = " ".join(c.script for s in plan.steps[1:] for c in s.commands)
    assert f"{TOOLS_ROOT}/3.6.17/etcdctl" in later and f"{TOOLS_ROOT}/3.6.17/etcdutl snapshot restore" in later
    assert LAYERS not in later


def test_a_plan_with_the_hosts_own_tools_has_no_copy_step() -> None:
    plan = build_plan(Context(INV, None, Method.FORCE_NEW_CLUSTER, "20260101T000000Z"))
    assert plan.steps[0].key != "etcd-tools"


def test_some_with_their_own_tools_and_some_with_only_the_image_is_refused() -> None:
    hosts = (*lab_like()[1:], host(1, server="3.6.17", etcdctl=Tool("/usr/bin/etcdctl", "3.6.4")))
    choice = choose_tools(hosts, PATHS, seed="m1", uploaded=None, restores=False)
    assert choice.tools is None and choice.problems == (
        "one command line cannot serve every master: m2 has only its etcd image's etcdctl, m3 has only its etcd "
        "image's etcdctl, m1 its own etcdctl 3.6.4: give --etcd-tools DIR",)


@pytest.mark.parametrize(("version", "api"), [("", True), ("3.4.23", True), ("3.5.36", True), ("3.6.17", False),
                                              ("3.7.4", False)])
def test_etcdctl_is_told_the_v3_api_only_where_it_knows_another(version: str, api: bool) -> None:
    """3.6 removed the v2 API: its etcdctl warns "unrecognized environment variable" on every call given
    ETCDCTL_API, which would fill every output and journal entry."""
    tools = EtcdTools(PATHS, "etcdctl", version=version)
    assert str(tools.ctl(["https://127.0.0.1:2379"], "endpoint", "status")).startswith("ETCDCTL_API=3 ") is api
