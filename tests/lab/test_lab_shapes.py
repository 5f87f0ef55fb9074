"""Lab shapes (okd3, kubeadm) and etcd releases (3.4 to 3.7): file texts without root, real labs with it.

Real labs use subnets 170-179 and 220-221 only: other suites run labs in parallel on other subnets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import paramiko
import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from etcdrescue.commands import lab as labcmd
from etcdrescue.lab import Lab, LabError, files, host, kubeadm, okd3
from etcdrescue.lab.base import LabHost
from etcdrescue.lab.shape import HostContext
from etcdrescue.lab.shapes import SHAPES, shape_named
from etcdrescue.lab.versions import RELEASES, pinned, release
from etcdrescue.platform import PLATFORMS, PROFILES
from etcdrescue.platform import kubeadm as kubeadm_platform
from etcdrescue.platform import okd3 as okd3_platform
from etcdrescue.probes import parse_snapshot_status

from .conftest import requires_lab

LabFactory = Callable[..., Lab]
F = TypeVar("F", bound=Callable[..., None])


def lab_test(fn: F) -> F:
    """A test on a real lab (root); the unit tests in this module run anywhere."""
    marked: F = pytest.mark.lab(requires_lab(pytest.mark.timeout(180)(fn)))
    return marked


HOSTS = tuple(LabHost(f"master{i:02d}.lab.example", f"127.0.9.{i}", 2222, Path("/nowhere")) for i in (1, 2, 3))
BASE_FLAGS = {
    "advertise-client-urls", "cert-file", "client-cert-auth", "data-dir", "initial-advertise-peer-urls",
    "initial-cluster", "key-file", "listen-client-urls", "listen-metrics-urls", "listen-peer-urls", "name",
    "peer-cert-file", "peer-client-cert-auth", "peer-key-file", "peer-trusted-ca-file", "snapshot-count",
    "trusted-ca-file",
}
EXPERIMENTAL = {"experimental-initial-corrupt-check": "true", "experimental-watch-progress-notify-interval": "5s"}
"""What kubeadm <= 1.33 (and 1.34/1.35 with an etcd image tag < 3.6.0) writes: 3.5's names."""
GATED = {"feature-gates": "InitialCorruptCheck=true", "watch-progress-notify-interval": "5s"}
"""What kubeadm 1.34+ writes for an etcd 3.6+ image (kubernetes#132838, #133023): the names 3.7 still has."""
ETCD_FLAGS = BASE_FLAGS | set(EXPERIMENTAL)


def context(index: int, etcd: str = "3.5") -> HostContext:
    return HostContext(HOSTS[index], HOSTS, release(etcd), "block")


def flags_of(manifest: str) -> tuple[list[str], dict[str, str]]:
    """The etcd container's command list, and its `--flag=value` items as a dict."""
    pod = yaml.safe_load(manifest)
    (container,) = [c for c in pod["spec"]["containers"] if c["name"] == "etcd"]
    command = container["command"]
    return command, dict(item[2:].split("=", 1) for item in command[1:])


# -- file texts (no root) ------------------------------------------------------------------------


def test_kubeadm_etcd_manifest_is_kubeadms_command_list() -> None:
    pod = yaml.safe_load(kubeadm.etcd_manifest(context(1), settled=False))
    assert (pod["metadata"]["name"], pod["metadata"]["namespace"]) == ("etcd", "kube-system")
    assert pod["spec"]["hostNetwork"] is True and pod["status"] == {}
    assert [c["name"] for c in pod["spec"]["containers"]] == ["etcd"]
    assert pod["spec"]["containers"][0]["image"] == f"registry.k8s.io/etcd:{release('3.5').full}-0"

    command, flags = flags_of(kubeadm.etcd_manifest(context(1), settled=False))
    assert all(item.startswith("--") and "=" in item for item in command[1:])
    names = [item[2:].split("=", 1)[0] for item in command[1:]]
    assert command[0] == "etcd" and names == sorted(names)  # kubeadm sorts by flag name
    assert set(flags) == ETCD_FLAGS | {"initial-cluster-state"}
    ca = kubeadm_platform.DEFAULT_PATHS.ca
    assert flags["trusted-ca-file"] == flags["peer-trusted-ca-file"] == ca
    assert flags["cert-file"] == "/etc/kubernetes/pki/etcd/server.crt"
    assert flags["data-dir"] == kubeadm_platform.DEFAULT_PATHS.data_dir == "/var/lib/etcd"
    assert flags["name"] == HOSTS[1].name and flags["listen-metrics-urls"] == "http://127.0.9.2:2381"
    assert flags["listen-client-urls"] == flags["advertise-client-urls"] == HOSTS[1].client_url
    assert flags["initial-cluster"] == ",".join(f"{h.name}={h.peer_url}" for h in HOSTS)
    assert flags["initial-cluster-state"] == "new"  # the lab bootstraps every member as one new cluster

    # what `kubeadm init` and `kubeadm join` leave: the lab writes it once the cluster is up
    _, first = flags_of(kubeadm.etcd_manifest(context(0), settled=True))
    assert set(first) == ETCD_FLAGS and first["initial-cluster"] == f"{HOSTS[0].name}={HOSTS[0].peer_url}"
    _, joiner = flags_of(kubeadm.etcd_manifest(context(1), settled=True))
    assert joiner["initial-cluster-state"] == "existing"
    assert joiner["initial-cluster"] == ",".join(f"{h.name}={h.peer_url}" for h in HOSTS[:2])


@pytest.mark.parametrize("minor", RELEASES)
def test_kubeadm_manifest_flags_are_the_ones_kubeadm_writes_for_each_minor(minor: str) -> None:
    pod = yaml.safe_load(kubeadm.etcd_manifest(context(0, minor), settled=True))
    _, flags = flags_of(kubeadm.etcd_manifest(context(0, minor), settled=True))
    style = GATED if minor >= "3.6" else EXPERIMENTAL
    assert set(flags) == BASE_FLAGS | set(style) and {k: flags[k] for k in style} == style
    (etcd,) = pod["spec"]["containers"]
    assert etcd["image"] == f"registry.k8s.io/etcd:{release(minor).full}-0"
    probes = {k: etcd[k]["httpGet"]["path"] for k in ("livenessProbe", "readinessProbe", "startupProbe") if k in etcd}
    if minor == "3.4":  # 3.4 has no /livez or /readyz: the lab keeps the /health probes it answers
        assert probes == {"livenessProbe": "/health?exclude=NOSPACE&serializable=true",
                          "startupProbe": "/health?serializable=false"}
    else:  # kubeadm 1.31+
        assert probes == {"livenessProbe": "/livez", "readinessProbe": "/readyz", "startupProbe": "/readyz"}
    apiserver = yaml.safe_load(kubeadm.apiserver_manifest(context(0, minor)))
    assert apiserver["spec"]["containers"][0]["image"] == f"registry.k8s.io/kube-apiserver:{kubeadm.KUBEADM[minor]}"


def test_pins_are_one_per_built_minor() -> None:
    """etcd-versions.txt (read by scripts/build-etcd too) pins one patch of each minor the lab builds."""
    pins = pinned()
    assert list(pins) == [m for m in RELEASES if m != "3.4"]
    assert all(release(m).full == v and v.startswith(m + ".") for m, v in pins.items())
    assert pinned("# comment\n3.6 3.6.9  # why\n\n") == {"3.6": "3.6.9"}
    with pytest.raises(LabError, match="version of that minor"):
        pinned("3.6 3.5.36\n")


@pytest.mark.parametrize("minor", [m for m in RELEASES if m != "3.4"])
def test_each_built_release_takes_its_kubeadm_manifest_and_refuses_the_other_style(minor: str) -> None:
    """The flags are not cosmetic: 3.5 refuses `--feature-gates`, 3.7 every `--experimental-*` flag (exit 2,
    "flag provided but not defined"); 3.6 takes both names. `--version` parses the flags, then exits."""
    binaries = release(minor).binaries()
    for name, program in binaries.items():
        out = subprocess.run([str(program), "version" if name != "etcd" else "--version"], capture_output=True,
                             text=True, timeout=30).stdout
        assert f"{'etcd Version' if name == 'etcd' else name + ' version'}: {release(minor).full}" in out

    def starts(flags: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(binaries["etcd"]), *(f"--{k}={v}" for k, v in flags.items()), "--version"],
                              capture_output=True, text=True, timeout=30)

    command, _ = flags_of(kubeadm.etcd_manifest(context(0, minor), settled=True))
    own = subprocess.run([str(binaries["etcd"]), *command[1:], "--version"], capture_output=True, text=True,
                         timeout=30)
    assert own.returncode == 0 and f"etcd Version: {release(minor).full}" in own.stdout, own.stderr
    other = starts(EXPERIMENTAL if minor >= "3.6" else GATED)
    if minor == "3.6":
        assert other.returncode == 0, other.stderr
    else:
        assert other.returncode == 2 and "flag provided but not defined" in other.stderr, other.stderr


def test_kubeadm_writes_four_manifests_only_one_is_etcd() -> None:
    written = kubeadm.SHAPE.initial_files(context(2, "3.4"))
    assert [f.path for f in written] == [f"/etc/kubernetes/manifests/{n}.yaml" for n in
                                         ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")]
    assert {f.mode for f in written} == {0o600}
    rules = kubeadm.SHAPE.kubelet
    pods = [yaml.safe_load(f.text) for f in written]
    assert [p["metadata"]["name"] for p in pods] == ["etcd", "kube-apiserver", "kube-controller-manager",
                                                     "kube-scheduler"]
    assert [rules.is_etcd_pod(p) for p in pods] == [True, False, False, False]
    assert "registry.k8s.io/etcd:3.4.23-0" in written[0].text
    apiserver = pods[1]["spec"]["containers"][0]["command"]
    names = [item[2:].split("=", 1)[0] for item in apiserver[1:]]
    assert "--etcd-servers=https://127.0.0.1:2379" in apiserver and names == sorted(names)


def test_kubelet_rules_turn_pods_into_argv() -> None:
    rules = kubeadm.SHAPE.kubelet
    pod = yaml.safe_load(kubeadm.etcd_manifest(context(0), settled=True))
    start = rules.start(pod)
    assert start.argv == tuple(pod["spec"]["containers"][0]["command"]) and start.cwd == "/"
    pod["spec"]["containers"][0]["args"] = ["--log-level=debug"]
    assert rules.start(pod).argv[-1] == "--log-level=debug"
    del pod["spec"]["containers"][0]["command"]
    with pytest.raises(ValueError):
        rules.start(pod)
    assert rules.is_etcd_pod("not a pod") is False and rules.fallback_file is None

    old = okd3.SHAPE.kubelet
    start = old.start(yaml.safe_load(okd3.manifest("quoted")))
    assert start.argv[:2] == ("bash", "-c") and "exec etcd" in start.argv[2] and start.cwd == "/var/lib/etcd"
    assert old.is_etcd_pod({"metadata": {"name": "master-etcd"}}) is True
    assert old.is_etcd_pod({"kind": "Pod"}) is None and old.fallback_file == "etcd.yaml"


def test_shapes_take_the_platforms_paths() -> None:
    assert okd3.SHAPE.paths is okd3_platform.DEFAULT_PATHS
    assert kubeadm.SHAPE.paths is kubeadm_platform.DEFAULT_PATHS
    assert PROFILES == labcmd.PROFILES == (okd3_platform.NAME, kubeadm_platform.NAME)
    assert PROFILES == tuple(PLATFORMS) == tuple(SHAPES)
    assert RELEASES == labcmd.ETCD_RELEASES
    for name in PROFILES:
        shape = shape_named(name)
        lab = Lab(Path("/nowhere"), 1, profile=name)
        p = shape.paths
        for path in (p.manifest, p.disabled_manifest, p.etcd_conf, p.data_dir, p.ca, p.cert, p.key):
            assert lab.host_path(0, path).is_relative_to(lab.hosts[0].dir), path
        assert all(lab.host_path(0, c.cert) for h in lab.hosts for c in shape.certificates(h))
    inventory = files.inventory("c", 2222, "/id", "/kh", HOSTS, kubeadm.SHAPE.platform)
    assert "profile: kubeadm\n" in inventory


def test_okd3_runtimes_docker_or_crio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An okd3 master runs docker (default) or CRI-O: the CRI-O one has crictl and no docker (a whiteout hides the
    machine's own). A kubeadm node runs containerd (default) or CRI-O, both with crictl: they differ in where the
    etcd image is unpacked."""
    monkeypatch.setattr(Lab, "_require_root", lambda self: None)
    assert Lab(tmp_path / "d", 1).runtime.name == "docker"  # type: ignore[union-attr]
    lab = Lab(tmp_path / "c", 1, subnet=9, runtime="crio")
    lab.create()
    local = lab.hosts[0].dir / "usr-local-bin"
    assert (local / "crictl").read_text() == okd3.CRICTL
    assert (local / "docker").is_char_device() and os.major((local / "docker").stat().st_rdev) == 0
    assert json.loads((lab.root / "lab.json").read_text())["runtime"] == "crio"
    assert Lab.load(lab.root).runtime.name == "crio"  # type: ignore[union-attr]
    with pytest.raises(LabError, match="runtime must be one of docker, crio"):
        Lab(tmp_path / "x", 1, runtime="podman")
    with pytest.raises(LabError, match="runtime must be one of containerd, crio"):
        Lab(tmp_path / "x", 1, profile="kubeadm", runtime="docker")
    assert Lab(tmp_path / "k", 1, profile="kubeadm").image_layer.startswith("/var/lib/containerd/")
    crio = Lab(tmp_path / "kc", 1, subnet=8, profile="kubeadm", runtime="crio")
    crio.create()
    layers = crio.host_path(0, "/var/lib/containers/storage/overlay")
    assert [p.name for p in layers.glob("*/diff/usr/local/bin/etcdctl")] == ["etcdctl"]
    assert not list(crio.host_path(0, "/var/lib/containerd").rglob("etcdctl"))


def test_lab_refuses_unknown_shapes() -> None:
    with pytest.raises(LabError, match="no lab shape"):
        Lab(Path("/nowhere"), profile="okd4")
    with pytest.raises(LabError, match="etcd must be one of"):
        Lab(Path("/nowhere"), etcd="3.8")
    with pytest.raises(LabError, match="manifest_style"):
        Lab(Path("/nowhere"), profile="kubeadm", manifest_style="quoted")


def test_kubeadm_kubelet_reads_every_file_but_runs_only_etcd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pods, run = tmp_path / "manifests", tmp_path / "run"
    pods.mkdir()
    run.mkdir()
    monkeypatch.setattr(host, "RUN", run)
    for f in kubeadm.SHAPE.initial_files(context(0)):
        (pods / Path(f.path).name).write_text(f.text)
    etcd = (pods / "etcd.yaml").read_bytes()
    (pods / "etcd.yaml").rename(pods / "etcd.manifest")  # any extension is a pod
    (pods / "old").mkdir()
    (pods / "old/etcd.yaml").write_bytes(etcd)
    (pods / ".etcd.yaml.swp").write_bytes(etcd)
    (pods / "notes.txt").write_text("{not: [yaml")
    kubelet = host.Supervisor(tmp_path, "127.0.0.1", 2222, kubeadm.SHAPE.kubelet, None, pods)
    try:
        assert kubelet.find_manifest() == etcd and kubelet.manifest_file == str(pods / "etcd.manifest")
        (pods / "etcd.yaml.bak").write_bytes(etcd)
        assert kubelet.find_manifest() == etcd
        (pods / "etcd.manifest").unlink()
        (pods / "etcd.yaml.bak").unlink()
        assert kubelet.find_manifest() is None  # the copy in a sub-directory is not a pod
    finally:
        kubelet.log.close()
    log = (run / "kubelet.log").read_text()
    assert f"duplicate static pod etcd in {pods}: etcd.manifest, etcd.yaml.bak; using etcd.manifest" in log
    assert "notes.txt is not a pod manifest" in log


def test_a_pod_whose_program_is_missing_crash_loops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A command that cannot be executed is a container that fails to start: backed off, never fatal to PID 1."""
    monkeypatch.setattr(host, "RUN", tmp_path)
    pod = yaml.safe_load(kubeadm.etcd_manifest(context(0), settled=True))
    pod["spec"]["containers"][0]["command"][0] = "etcd-not-installed"
    kubelet = host.Supervisor(tmp_path, "127.0.0.1", 2222, kubeadm.SHAPE.kubelet, None, tmp_path / "pods")
    try:
        kubelet.start_etcd(yaml.safe_dump(pod).encode())
    finally:
        kubelet.log.close()
    assert kubelet.etcd is None and kubelet.last_exit == 127 and kubelet.next_start > time.monotonic()
    assert "exec etcd-not-installed:" in (tmp_path / "etcd.log").read_text()
    assert "cannot start etcd (start #1)" in (tmp_path / "kubelet.log").read_text()
    assert "last_exit=127" in (tmp_path / "state").read_text()


# -- real labs (root) ------------------------------------------------------------------------------


def wait_for(cond: Callable[[], object], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def pgrep(lab: Lab, index: int) -> list[int]:
    return [int(p) for p in lab.exec(index, "pgrep -x etcd || true").stdout.split()]


def server_version(lab: Lab, index: int = 0) -> str:
    c = lab.client(index)
    try:
        return str(c.status().version)
    finally:
        c.close()


def ssh_run(lab: Lab, index: int, cmd: str) -> str:
    h = lab.host(index)
    c = paramiko.SSHClient()
    c.load_host_keys(str(lab.known_hosts))
    c.set_missing_host_key_policy(paramiko.RejectPolicy())
    c.connect(h.ip, port=h.ssh_port, username="root", key_filename=str(lab.identity_file),
              look_for_keys=False, allow_agent=False, timeout=10)
    try:
        _, out, _ = c.exec_command(cmd, timeout=60)
        out.channel.recv_exit_status()
        return str(out.read().decode())
    finally:
        c.close()


@pytest.fixture(scope="module")
def kubeadm35(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One 3-member kubeadm lab on etcd 3.5 for the tests below (the last one breaks it)."""
    lab = Lab(tmp_path_factory.mktemp("kubeadm35") / "lab", 3, subnet=170, profile="kubeadm", etcd="3.5")
    try:
        lab.up(timeout=60)
        yield lab
    finally:
        lab.down()


@lab_test
def test_kubeadm_lab_comes_up_on_35(kubeadm35: Lab) -> None:
    lab = kubeadm35
    assert all(lab.healthy(h) for h in lab.hosts) and server_version(lab) == release("3.5").full
    assert sorted(m["name"] for m in lab.member_list(2)) == [h.name for h in lab.hosts]
    for i, h in enumerate(lab.hosts):
        manifests = lab.host_path(h, "/etc/kubernetes/manifests")
        assert sorted(p.name for p in manifests.iterdir()) == [
            "etcd.yaml", "kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml"]
        assert (manifests / "etcd.yaml").stat().st_mode & 0o777 == 0o600
        _, flags = flags_of((manifests / "etcd.yaml").read_text())
        assert flags.get("initial-cluster-state") == (None if i == 0 else "existing")  # kubeadm's steady state
        comms = lab.exec(h, "ps -e -o comm=").stdout.split()
        assert comms.count("etcd") == 1 and not [c for c in comms if c.startswith("kube")]
        assert lab.state(h)["manifest"] == "/etc/kubernetes/manifests/etcd.yaml"

    pki = lab.host_path(1, "/etc/kubernetes/pki")
    assert {p.name for p in (pki / "etcd").iterdir()} == {
        f"{n}.{ext}" for n in ("ca", "server", "peer", "healthcheck-client") for ext in ("crt", "key")}
    health = x509.load_pem_x509_certificate((pki / "etcd/healthcheck-client.crt").read_bytes())
    assert list(health.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH]
    server = x509.load_pem_x509_certificate((pki / "etcd/server.crt").read_bytes())
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert lab.hosts[1].name in sans.get_values_for_type(x509.DNSName)
    # kubeadm's own etcd client identity works against the lab's etcd
    res = subprocess.run([str(lab.etcdctl), "--endpoints", lab.hosts[1].client_url, "--cacert",
                          str(pki / "etcd/ca.crt"), "--cert", str(pki / "etcd/healthcheck-client.crt"),
                          "--key", str(pki / "etcd/healthcheck-client.key"), "endpoint", "health"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr

    assert "profile: kubeadm\n" in lab.inventory_path.read_text()
    cfg = json.loads((lab.root / "lab.json").read_text())
    assert (cfg["profile"], cfg["etcd"], cfg["etcd_build"], cfg["host_tools"]) == (
        "kubeadm", "3.5", release("3.5").full, False)
    again = Lab.load(lab.root)
    assert (again.profile, again.release.minor, again.host_tools) == ("kubeadm", "3.5", False)
    assert again.status()[2]["healthy"]


@lab_test
def test_kubeadm_hosts_have_no_etcd_tools(kubeadm35: Lab) -> None:
    lab = kubeadm35
    res = lab.exec(0, "command -v etcd etcdctl etcdutl; echo rc=$?; ls /usr/bin/etcdctl 2>&1 || true")
    assert res.stdout.splitlines()[0] == "rc=1" and "No such file" in res.stdout
    assert ssh_run(lab, 2, "command -v etcdctl etcdutl || echo none").split() == ["none"]
    assert "/usr/local/bin" in ssh_run(lab, 2, "echo $PATH")


@lab_test
def test_kubeadm_kubelet_stand_in(kubeadm35: Lab) -> None:
    lab = kubeadm35
    h = lab.hosts[0]
    manifest = lab.host_path(h, kubeadm.PATHS.manifest)
    aside = lab.host_path(h, "/etc/kubernetes/etcd.yaml.aside")
    before = pgrep(lab, 0)

    # a backup copy left in the manifests dir is a second etcd pod
    shutil.copy2(manifest, manifest.with_name("etcd.yaml.bak"))
    log = lab.host_path(h, "/run/etcdlab/kubelet.log")
    wait_for(lambda: "duplicate static pod etcd" in log.read_text(), what="duplicate pod warning")
    assert "etcd.yaml, etcd.yaml.bak; using etcd.yaml" in log.read_text()
    os.replace(manifest, aside)
    time.sleep(1)
    assert pgrep(lab, 0) == before  # the .bak still defines the same pod: nothing to do
    assert lab.state(h)["manifest"] == "/etc/kubernetes/manifests/etcd.yaml.bak"

    # a sub-directory is not read: the copy moved there is no pod, and etcd stops
    sub = manifest.with_name("old")
    sub.mkdir()
    os.replace(manifest.with_name("etcd.yaml.bak"), sub / "etcd.yaml")
    lab.wait_stopped(h)
    assert pgrep(lab, 0) == []
    os.replace(aside, manifest)
    lab.wait_healthy([h])
    shutil.rmtree(sub)

    # changed manifest bytes restart etcd on the new command line
    before = pgrep(lab, 0)
    original = manifest.read_text()
    manifest.write_text(original.replace("--snapshot-count=10000", "--snapshot-count=10001"))
    wait_for(lambda: pgrep(lab, 0) not in ([], before), what="etcd restart after manifest change")
    cmdline = lab.exec(h, "tr '\\0' ' ' < /proc/$(pgrep -x etcd)/cmdline").stdout
    assert cmdline.startswith("etcd --advertise-client-urls=") and "--snapshot-count=10001" in cmdline
    lab.wait_healthy([h])
    before = pgrep(lab, 0)
    manifest.write_text(original)
    wait_for(lambda: pgrep(lab, 0) not in ([], before), what="etcd restart on the original manifest")
    lab.wait_healthy()


@lab_test
def test_kubeadm_lab_helpers(kubeadm35: Lab) -> None:
    lab = kubeadm35
    lab.put_keys("/shapes/", 20)
    assert len(lab.read_prefix("/shapes/", host=2)) == 20
    snap = lab.snapshot_save(1)
    assert snap.startswith("/var/lib/etcd/snapshot-") and snap.endswith(".db")
    res = subprocess.run([str(lab.bin_dir / "etcdutl"), "snapshot", "status", str(lab.host_path(1, snap)), "-w",
                          "json"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["totalKey"] >= 20
    with pytest.raises(LabError, match="okd3 backup"):
        lab.backup_openshift(0)

    lab.stop_etcd(2)
    assert lab.host_path(2, "/etc/kubernetes/manifests-disabled/etcd.yaml").is_file()
    assert lab.status()[2]["manifest"] == "disabled" and pgrep(lab, 2) == []
    lab.start_etcd(2)
    assert lab.status()[2]["manifest"] == "enabled" and lab.healthy(2)


@lab_test
def test_kubeadm_break_quorum_crash_loops(kubeadm35: Lab) -> None:
    """Last on this lab: it stays broken."""
    lab = kubeadm35
    lab.break_quorum([1, 2])
    wait_for(lambda: not lab.healthy(0), timeout=15, what="survivor to lose quorum")
    broken = lab.hosts[1]
    wait_for(lambda: int(lab.state(broken)["restarts"]) >= 4, timeout=20, what="crash loop")
    st = lab.status()[1]
    assert st["manifest"] == "enabled" and st["last_exit"] not in (None, "0") and not st["healthy"]
    assert "wal" in lab.host_path(broken, "/run/etcdlab/etcd.log").read_text()


@lab_test
@pytest.mark.parametrize(("minor", "subnet"), [("3.6", 220), ("3.7", 221)])
def test_kubeadm_lab_on_36_and_37(lab_factory: LabFactory, minor: str, subnet: int) -> None:
    """kubeadm 1.34+ manifests run the built release; its image has no shell: `crictl exec` runs a program."""
    lab = lab_factory(3, subnet=subnet, profile="kubeadm", etcd=minor)
    v = release(minor).full
    assert all(lab.healthy(h) for h in lab.hosts) and server_version(lab, 1) == v
    assert sorted(m["name"] for m in lab.member_list(2)) == [h.name for h in lab.hosts]
    _, flags = flags_of(lab.host_path(1, kubeadm.PATHS.manifest).read_text())
    assert {k: flags[k] for k in GATED} == GATED and not [k for k in flags if k.startswith("experimental-")]
    assert lab.exec(0, "command -v etcd etcdctl etcdutl || echo none").stdout.split() == ["none"]
    pki = "/etc/kubernetes/pki/etcd"
    res = lab.exec(0, f"crictl exec $(crictl ps -q --name etcd) etcdctl --cacert {pki}/ca.crt "
                      f"--cert {pki}/healthcheck-client.crt --key {pki}/healthcheck-client.key "
                      f"--endpoints {lab.hosts[0].client_url} endpoint status -w json")
    assert res.returncode == 0, res.stderr
    status = json.loads(res.stdout)[0]["Status"]
    assert status["version"] == v and "storageVersion" in status  # a 3.6+ server's own answer
    assert lab.exec(0, "crictl exec -i etcdlab0000etcd /usr/local/bin/etcdutl version").stdout.startswith(
        f"etcdutl version: {v}")
    layers = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots"
    images = lab.exec(0, f'for f in {layers}/*/fs/usr/local/bin/etcdctl; do "$f" version | head -1; done').stdout
    before = release(RELEASES[RELEASES.index(minor) - 1]).full  # the node was upgraded: the old image stays
    assert sorted(images.splitlines()) == sorted([f"etcdctl version: {v}", f"etcdctl version: {before}"])
    assert lab.exec(0, f"ls {layers}").stdout != lab.exec(1, f"ls {layers}").stdout, "layer numbers are per node"
    snap = lab.snapshot_save(1)  # a 3.6+ server's snapshot records its storage version
    res = subprocess.run([str(lab.bin_dir / "etcdutl"), "snapshot", "status", str(lab.host_path(1, snap)), "-w",
                          "json"], capture_output=True, text=True, timeout=30)
    assert parse_snapshot_status(res.stdout).storage_version == f"{minor}.0", res.stdout + res.stderr
    for shell in ("sh -c 'etcdctl version'", "/bin/sh -c true", "bash -c true"):
        res = lab.exec(0, f"crictl exec etcdlab0000etcd {shell}")
        assert res.returncode == 1 and "executable file not found in $PATH" in res.stderr, (shell, res.stderr)
    lab.stop_etcd(2)
    res = lab.exec(2, "crictl exec etcdlab0000etcd etcdctl version")
    assert res.returncode == 1 and "is not running" in res.stderr, "no container to exec into while etcd is down"
    lab.stop_etcd(1)  # master01 alone, without quorum: a linearizable member list fails, a serializable one answers
    listing = (f"crictl exec etcdlab0000etcd etcdctl --cacert {pki}/ca.crt --cert {pki}/healthcheck-client.crt "
               f"--key {pki}/healthcheck-client.key --endpoints {lab.hosts[0].client_url} --command-timeout=3s "
               "member list -w json")
    assert lab.exec(0, listing).returncode != 0
    own = lab.exec(0, f"{listing} --consistency=s")
    assert own.returncode == 0, own.stderr
    assert sorted(m["name"] for m in json.loads(own.stdout)["members"]) == [h.name for h in lab.hosts]


@lab_test
def test_okd3_lab_on_35(lab_factory: LabFactory) -> None:
    lab = lab_factory(3, subnet=171, etcd="3.5")
    v = release("3.5").full
    assert server_version(lab, 2) == v
    assert lab.host_path(0, okd3.PATHS.manifest).read_text() == okd3.manifest("block")
    res = lab.exec(1, "command -v etcd etcdctl etcdutl; etcdctl version; etcdutl version")
    lines = res.stdout.splitlines()
    assert lines[:3] == ["/usr/bin/etcd", "/usr/bin/etcdctl", "/usr/bin/etcdutl"], res.stdout + res.stderr
    assert f"etcdctl version: {v}" in lines and f"etcdutl version: {v}" in lines
    assert f"etcdctl version: {v}" in ssh_run(lab, 0, "etcdctl version")
    assert f'"etcd-version":"{v}"' in lab.exec(0, "master-logs etcd etcd").stdout
    for c in ("etcd", "api", "controllers"):  # the platform's own check, on the docker lab: docker answers
        assert lab.exec(0, okd3_platform.RUNNING.format(container=c)).returncode == 0, c
    assert lab.exec(0, okd3_platform.RUNNING.format(container="kube-proxy")).returncode == 1
    lab.put_keys("/okd35/", 10)
    time.sleep(0.5)  # the live db copy must see the writes
    d = lab.backup_openshift(2)
    res = lab.exec(2, f"etcdutl snapshot status {d}/member/snap/db -w json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["totalKey"] >= 10


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "etcdrescue", *args], capture_output=True, text=True, timeout=120)


@lab_test
def test_cli_kubeadm_lab_on_34_with_host_tools(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    try:
        up = run_cli("lab", "up", "--root", str(root), "--subnet", "172", "--profile", "kubeadm", "--etcd", "3.4",
                     "--host-tools")
        assert up.returncode == 0, up.stderr
        assert up.stdout == f"{root / 'inventory.yaml'}\n" and "etcdctl snapshot on master01" in up.stderr
        lab = Lab.load(root)
        assert (lab.profile, lab.release.minor, lab.host_tools) == ("kubeadm", "3.4", True)
        assert server_version(lab) == "3.4.23"
        backup = (root / labcmd.BACKUP_NOTE).read_text().strip()
        assert backup.endswith(".db") and lab.host_path(0, backup).stat().st_size > 0
        res = lab.exec(1, "command -v etcd etcdctl etcdutl")
        assert res.stdout.split() == ["/usr/bin/etcd", "/usr/bin/etcdctl"]  # 3.4 has no etcdutl

        st = run_cli("lab", "status", "--root", str(root))
        assert st.returncode == 0 and "kubeadm, etcd 3.4.23" in st.stdout and st.stdout.count(" healthy ") == 3
        wrong = run_cli("lab", "up", "--root", str(root), "--profile", "okd3")
        assert wrong.returncode == 2 and "holds a kubeadm lab" in wrong.stderr

        broke = run_cli("lab", "break", "--root", str(root))
        assert broke.returncode == 0, broke.stderr
        assert not any(lab.healthy(h) for h in lab.hosts)
        wal = lab.host_path(2, "/var/lib/etcd/member/wal/0000000000000000-0000000000000000.wal")
        assert wal.read_bytes()[:4] == b"\xde\xad\xbe\xef"

        down = run_cli("lab", "down", "--root", str(root), "--destroy")
        assert down.returncode == 0 and not root.exists()
    finally:
        if (root / "lab.json").exists():
            Lab.load(root).down()
