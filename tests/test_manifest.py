"""The kubeadm etcd manifest: parsed here, edited on the host by real bash and awk, checked by re-parsing.

Every script runs with `bash -c` on copies of kubeadm's manifests (tests/data/kubeadm) under every awk found on
this machine (mawk is Debian's, gawk RHEL's, busybox's the odd one), through a PATH shim so the unchanged script
calls `awk` and gets that one: the masters are not ours to choose, and the scripts promise POSIX awk only.
"""

from __future__ import annotations

import difflib
import json
import stat
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
import yaml
from awk_shims import AWKS, Env, bash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etcdrescue.platform.base import Severity
from etcdrescue.platform.manifest import (
    SEPARATOR,
    TMP_SUFFIX,
    ManifestError,
    command_items,
    edited_items,
    flags,
    flags_present,
    manifest_problem,
    set_flags_script,
    show_both,
    verify_edit,
)

DATA = Path(__file__).parent / "data" / "kubeadm"
MANIFESTS = sorted(p.name for p in DATA.glob("*.yaml"))
IPV6_CLUSTER = "cp1=https://[fd00::10]:2380,cp2=https://[fd00::11]:2380"

def recorded(name: str) -> str:
    return (DATA / name).read_text()


def edit(src: Path, dst: Path, values: Mapping[str, str], env: Env, drop: Sequence[str] = ()) -> bytes:
    """set_flags_script, then again from the same source and again in place: same bytes every time."""
    done = bash(set_flags_script(str(src), str(dst), values, drop), env)
    assert done.returncode == 0, done.stderr
    out = dst.read_bytes()
    assert bash(set_flags_script(str(src), str(dst), values, drop), env).returncode == 0
    assert dst.read_bytes() == out
    assert bash(set_flags_script(str(dst), str(dst), values, drop), env).returncode == 0
    assert dst.read_bytes() == out
    assert not list(dst.parent.glob(f".*{TMP_SUFFIX}"))
    return out


def present(path: Path, values: Mapping[str, str], env: Env, drop: Sequence[str] = ()) -> bool:
    return bash(flags_present(str(path), values, drop), env).returncode == 0


def changes(before: str, after: str) -> list[tuple[list[str], list[str]]]:
    """Each changed region as (old lines, new lines), lines with their endings: everything else is identical."""
    a, b = before.splitlines(keepends=True), after.splitlines(keepends=True)
    ops = difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes()
    return [(a[i1:i2], b[j1:j2]) for tag, i1, i2, j1, j2 in ops if tag != "equal"]


def both(pristine: Path, edited: Path) -> str:
    """What the engine hands verify_edit: show_both's stdout, produced by bash."""
    res = subprocess.run(["bash", "-c", show_both(str(pristine), str(edited))], capture_output=True, check=True,
                         timeout=10)
    return res.stdout.decode()


def setup(tmp_path: Path, text: str) -> tuple[Path, Path]:
    src = tmp_path / "etcd.yaml.pristine"
    src.write_text(text)
    return src, tmp_path / "etcd.yaml"


# --- the recorded manifests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MANIFESTS)
def test_recorded_manifests_are_kubeadm_shaped(name: str) -> None:
    """One `etcd` container, `etcd` first, flags sorted by flag name as kubeadm sorts them (so
    `--initial-cluster` comes before `--initial-cluster-state`, unlike a plain string sort), nothing to refuse."""
    text = recorded(name)
    items = command_items(text)
    assert items[0] == "etcd"
    keys = [i[2:].partition("=")[0] for i in items[1:]]
    assert keys == sorted(keys)
    assert manifest_problem(text) is None
    got = flags(text)
    assert {"name", "initial-cluster", "data-dir", "listen-peer-urls"} <= set(got)
    assert got["client-cert-auth"] == "true"


def test_recorded_manifest_details() -> None:
    old = flags(recorded("v1.24-init.yaml"))
    assert old["experimental-initial-corrupt-check"] == "true"
    assert old["experimental-watch-progress-notify-interval"] == "5s"
    new = flags(recorded("v1.34-init.yaml"))
    assert new["feature-gates"] == "InitialCorruptCheck=true"
    assert new["watch-progress-notify-interval"] == "5s"
    joined = flags(recorded("v1.31-joined.yaml"))
    assert joined["initial-cluster-state"] == "existing"
    assert len(joined["initial-cluster"].split(",")) == 3
    v6 = flags(recorded("v1.29-ipv6.yaml"))
    assert v6["initial-advertise-peer-urls"] == "https://[fd00::10]:2380"
    assert "initial-cluster-state" not in flags(recorded("v1.29-init.yaml"))


def test_bare_flag_is_true() -> None:
    text = recorded("v1.29-init.yaml").replace("- --client-cert-auth=true", "- --client-cert-auth")
    assert flags(text)["client-cert-auth"] == "true"


# --- editing -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MANIFESTS)
def test_replace_changes_exactly_that_line(tmp_path: Path, env: Env, name: str) -> None:
    text = recorded(name)
    src, dst = setup(tmp_path, text)
    old = flags(text)["name"]
    out = edit(src, dst, {"name": "m9"}, env).decode()
    assert changes(text, out) == [([f"    - --name={old}\n"], ["    - --name=m9\n"])]
    assert src.read_text() == text


@pytest.mark.parametrize("name", MANIFESTS)
def test_add_goes_after_the_last_flag(tmp_path: Path, env: Env, name: str) -> None:
    text = recorded(name)
    src, dst = setup(tmp_path, text)
    out = edit(src, dst, {"force-new-cluster": "true", "initial-cluster-token": "rescue"}, env).decode()
    last = command_items(text)[-1]
    lines = out.splitlines()
    at = lines.index(f"    - {last}")
    assert lines[at + 1: at + 3] == ["    - --force-new-cluster=true", "    - --initial-cluster-token=rescue"]
    assert changes(text, out) == [([], ["    - --force-new-cluster=true\n", "    - --initial-cluster-token=rescue\n"])]
    assert command_items(out) == [*command_items(text), "--force-new-cluster=true", "--initial-cluster-token=rescue"]


def test_exact_names_on_a_joined_node(tmp_path: Path, env: Env) -> None:
    """`--initial-cluster` is not `--initial-cluster-state` (nor `-token`): each edit touches only its own item."""
    text = recorded("v1.31-joined.yaml")
    src, dst = setup(tmp_path, text)
    out = edit(src, dst, {"initial-cluster": IPV6_CLUSTER}, env).decode()
    assert flags(out)["initial-cluster-state"] == "existing"
    assert flags(out)["initial-cluster"] == IPV6_CLUSTER
    assert len(changes(text, out)) == 1

    out = edit(src, dst, {"initial-cluster-state": "new"}, env).decode()
    assert flags(out)["initial-cluster"] == flags(text)["initial-cluster"]
    assert changes(text, out) == [(["    - --initial-cluster-state=existing\n"],
                                   ["    - --initial-cluster-state=new\n"])]


def test_state_is_added_not_mistaken_for_the_cluster(tmp_path: Path, env: Env) -> None:
    text = recorded("v1.29-init.yaml")
    src, dst = setup(tmp_path, text)
    values = {"initial-cluster": IPV6_CLUSTER, "initial-cluster-state": "existing"}
    out = edit(src, dst, values, env).decode()
    assert changes(text, out) == [
        (["    - --initial-cluster=cp1=https://10.0.0.11:2380\n"], [f"    - --initial-cluster={IPV6_CLUSTER}\n"]),
        ([], ["    - --initial-cluster-state=existing\n"]),
    ]
    assert verify_edit(values)(both(src, dst)) is None


def test_ipv6_values_and_comma_lists(tmp_path: Path, env: Env) -> None:
    text = recorded("v1.29-ipv6.yaml")
    src, dst = setup(tmp_path, text)
    values = {"listen-client-urls": "https://[::1]:2379,https://[fd00::10]:2379,https://[fe80::1%25eth0]:2379",
              "initial-cluster": IPV6_CLUSTER, "name": "cp-v6.example"}
    out = edit(src, dst, values, env).decode()
    got = flags(out)
    assert {k: got[k] for k in values} == values
    assert present(dst, values, env)
    assert verify_edit(values)(both(src, dst)) is None


@pytest.mark.parametrize("name", MANIFESTS)
def test_probe_before_and_after(tmp_path: Path, env: Env, name: str) -> None:
    text = recorded(name)
    src, dst = setup(tmp_path, text)
    current = {"name": flags(text)["name"], "data-dir": "/var/lib/etcd"}
    assert present(src, current, env)
    values = {"name": "m9", "initial-cluster-state": "existing", "force-new-cluster": "true"}
    assert not present(src, values, env)
    assert not present(src, {"initial-cluster": "x=https://y:2380"}, env)
    edit(src, dst, values, env)
    assert present(dst, values, env)
    assert present(dst, {"name": "m9"}, env)
    assert not present(dst, {"name": "m9", "data-dir": "/elsewhere"}, env)
    assert not present(tmp_path / "missing.yaml", values, env)


def test_probe_wants_every_item_of_a_duplicated_flag(tmp_path: Path, env: Env) -> None:
    """etcd keeps the last of two `--name`; the edit rewrites both, and the probe says yes only when both are."""
    text = recorded("v1.29-init.yaml").replace("    - --snapshot-count=10000\n",
                                               "    - --snapshot-count=10000\n    - --name=dup\n")
    src, dst = setup(tmp_path, text)
    assert not present(src, {"name": "cp1"}, env)
    out = edit(src, dst, {"name": "m9"}, env).decode()
    assert out.count("    - --name=m9\n") == 2
    assert present(dst, {"name": "m9"}, env)
    assert verify_edit({"name": "m9"})(both(src, dst)) is None


def test_mode_and_final_newline_kept(tmp_path: Path, env: Env) -> None:
    text = recorded("v1.34-init.yaml").rstrip("\n")
    src, dst = setup(tmp_path, text)
    src.chmod(0o600)
    out = edit(src, dst, {"name": "m9"}, env).decode()
    assert not out.endswith("\n")
    assert stat.S_IMODE(dst.stat().st_mode) == 0o600
    assert out.endswith("status: {}")


# --- finding the block ---------------------------------------------------------------------------------------

ODD = """\
apiVersion: v1
kind: Pod
metadata:
  name: etcd
  namespace: kube-system
spec:
    initContainers:
    -   name: etcd
        image: busybox
        command:
        - etcd
        - --name=init
    containers:
    -   name: sidecar
        command:
            - /bin/sidecar
            - --name=sidecar
    -
        name: "etcd"  # the one
        image: registry.k8s.io/etcd:3.5.10-0
        livenessProbe:
            exec:
                command:
                - etcdctl
                - --name=probe
        command:   # flags, one a line
            - etcd
            - --data-dir=/var/lib/etcd
            # a comment between items
            - "--name=quoted"
            - '--initial-cluster=cp1=https://10.0.0.1:2380'
            - --initial-cluster-state=new   # trailing comment
            - --snapshot-count=10000
        args:
            - --name=args
    hostNetwork: true
"""


def test_odd_layout_is_found_by_structure(tmp_path: Path, env: Env) -> None:
    """Deeper indentation, `name:` before `command:`, a bare `-` item, quoted name, an etcd init container, a
    probe's own `command:`, a sidecar with a `--name`, comments, quoted items: only the etcd container's items
    change, each keeping its quotes and trailing comment."""
    src, dst = setup(tmp_path, ODD)
    assert manifest_problem(ODD) is None
    values = {"name": "m9", "initial-cluster": IPV6_CLUSTER, "initial-cluster-state": "existing",
              "force-new-cluster": "true"}
    out = edit(src, dst, values, env).decode()
    assert changes(ODD, out) == [
        (['            - "--name=quoted"\n', "            - '--initial-cluster=cp1=https://10.0.0.1:2380'\n",
          "            - --initial-cluster-state=new   # trailing comment\n"],
         ['            - "--name=m9"\n', f"            - '--initial-cluster={IPV6_CLUSTER}'\n",
          "            - --initial-cluster-state=existing   # trailing comment\n"]),
        ([], ["            - --force-new-cluster=true\n"]),
    ]
    assert present(dst, values, env)
    assert verify_edit(values)(both(src, dst)) is None


def test_quoted_last_item_gives_quoted_new_item(tmp_path: Path, env: Env) -> None:
    text = recorded("v1.29-init.yaml").replace("- --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
                                               '- "--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt"')
    src, dst = setup(tmp_path, text)
    out = edit(src, dst, {"force-new-cluster": "true"}, env).decode()
    assert changes(text, out) == [([], ['    - "--force-new-cluster=true"\n'])]


def test_command_only_etcd_gets_flags_after_it(tmp_path: Path, env: Env) -> None:
    text = "kind: Pod\nspec:\n  containers:\n  - command:\n    - etcd\n    name: etcd\n"
    src, dst = setup(tmp_path, text)
    out = edit(src, dst, {"name": "m1"}, env).decode()
    assert out == "kind: Pod\nspec:\n  containers:\n  - command:\n    - etcd\n    - --name=m1\n    name: etcd\n"


@pytest.mark.parametrize("change", [
    ("apiVersion: v1\n", "---\napiVersion: v1\n"),
    ("spec:\n", "spec:   # the pod\n"),
    ("  containers:\n", "  containers: # one\n  # etcd below\n"),
    ("    name: etcd\n", "    name: 'etcd'\n"),
])
def test_harmless_variants_still_edit(tmp_path: Path, env: Env, change: tuple[str, str]) -> None:
    text = recorded("v1.29-init.yaml").replace(*change)
    assert manifest_problem(text) is None
    src, dst = setup(tmp_path, text)
    out = edit(src, dst, {"name": "m9"}, env).decode()
    assert len(changes(text, out)) == 1
    assert flags(out)["name"] == "m9"


REFUSED = {
    "flow list": ("  - command: [etcd, --name=cp1]\n", "flow list"),
    "flow list on the next line": ("  - command:\n      [etcd, --name=cp1]\n", "no - items"),
    "command a string": ("  - command: etcd --name=cp1\n", "on one line"),
    "multi-line item": ("  - command:\n    - etcd\n    - --name=cp1\n      --data-dir=/x\n", "spans lines"),
    "escaped quote": ('  - command:\n    - etcd\n    - "--name=c\\x70"\n', "escape"),
    "inner single quote": ("  - command:\n    - etcd\n    - '--name=it''s'\n", "escaped quote"),
    "no command": ("  - image: x\n", "no command: key"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_layouts_fail_loudly_and_leave_no_dst(tmp_path: Path, env: Env, case: str) -> None:
    block, message = REFUSED[case]
    text = f"apiVersion: v1\nkind: Pod\nspec:\n  containers:\n{block}    name: etcd\n"
    src, dst = setup(tmp_path, text)
    res = bash(set_flags_script(str(src), str(dst), {"name": "m9"}), env)
    assert res.returncode != 0
    assert message in res.stderr.decode()
    assert not dst.exists()
    assert list(tmp_path.iterdir()) == [src]
    assert not present(src, {"name": "m9"}, env)
    assert src.read_text() == text


@pytest.mark.parametrize("text", [
    "kind: Pod\nspec:\n  containers:\n  - command:\n    - etcd\n    name: kube-apiserver\n",
    "kind: Pod\nspec:\n  initContainers:\n  - command:\n    - etcd\n    name: etcd\n",
    "kind: Pod\nspec:\n  containers: [{name: etcd, command: [etcd]}]\n",
    "kind: Pod\nspec:\n  template:\n    containers:\n    - command:\n      - etcd\n      name: etcd\n",
    "kind: Pod\nspec:\n  containers:\n  - command:\n    - etcd\n    name: etcd\n"
    "  - command:\n    - etcd\n    name: etcd\n",
])
def test_no_single_etcd_container_fails(tmp_path: Path, env: Env, text: str) -> None:
    src, dst = setup(tmp_path, text)
    res = bash(set_flags_script(str(src), str(dst), {"name": "m9"}), env)
    assert res.returncode != 0 and b"named etcd" in res.stderr
    assert not dst.exists()


def test_failed_in_place_edit_leaves_the_file(tmp_path: Path, env: Env) -> None:
    text = "kind: Pod\nspec:\n  containers:\n  - command: [etcd]\n    name: etcd\n"
    path = tmp_path / "etcd.yaml"
    path.write_text(text)
    assert bash(set_flags_script(str(path), str(path), {"name": "m9"}), env).returncode != 0
    assert path.read_text() == text
    assert list(tmp_path.iterdir()) == [path]


def test_missing_source(tmp_path: Path, env: Env) -> None:
    res = bash(set_flags_script(str(tmp_path / "none.yaml"), str(tmp_path / "etcd.yaml"), {"name": "m9"}), env)
    assert res.returncode != 0 and b"not a regular file" in res.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("values", [
    {}, {"Name": "x"}, {"--name": "x"}, {"name": "a b"}, {"name": "$(reboot)"}, {"name": "a;b"}, {"name": "a#b"},
    {"name": "'x'"}, {"name": "a\\b"}, {"name": "a\nb"}, {"name": "x:"}, {"name": ":"},
])
def test_values_refused(values: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        set_flags_script("/a/etcd.yaml", "/b/etcd.yaml", values)
    with pytest.raises(ValueError):
        flags_present("/a/etcd.yaml", values)
    with pytest.raises(ValueError):
        verify_edit(values)


@pytest.mark.parametrize("path", ["etcd.yaml", "/a\\b/etcd.yaml", "/a\n/etcd.yaml"])
def test_paths_refused(path: str) -> None:
    with pytest.raises(ValueError):
        set_flags_script(path, "/b/etcd.yaml", {"name": "x"})
    with pytest.raises(ValueError):
        flags_present(path, {"name": "x"})


def test_tmp_is_a_dot_file_beside_dst() -> None:
    """The kubelet reads every non-dot file in its manifests dir as a pod: the half-way copy must not be one."""
    script = set_flags_script("/k/aside/etcd.yaml", "/etc/kubernetes/manifests/etcd.yaml", {"name": "x"})
    assert f"/etc/kubernetes/manifests/.etcd.yaml{TMP_SUFFIX}" in script


# --- verify_edit ---------------------------------------------------------------------------------------------


def output(pristine: str, edited: str) -> str:
    return f"{pristine}\n{SEPARATOR}\n{edited}"


@pytest.mark.parametrize("name", MANIFESTS)
def test_verify_accepts_the_real_edit(tmp_path: Path, name: str) -> None:
    text = recorded(name)
    src, dst = setup(tmp_path, text)
    values = {"initial-cluster": IPV6_CLUSTER, "initial-cluster-state": "new", "force-new-cluster": "true"}
    assert subprocess.run(["bash", "-c", set_flags_script(str(src), str(dst), values)], timeout=10).returncode == 0
    check = verify_edit(values)
    assert check(both(src, dst)) is None
    assert check(output(text, text)) is not None


BAD_EDITS = {
    "an item dropped": (lambda t: t.replace("    - --snapshot-count=10000\n", ""), "item"),
    "items reordered": (lambda t: t.replace("    - --cert-file=/etc/kubernetes/pki/etcd/server.crt\n", "").replace(
        "    - --data-dir=/var/lib/etcd\n",
        "    - --data-dir=/var/lib/etcd\n    - --cert-file=/etc/kubernetes/pki/etcd/server.crt\n"), "item 2"),
    "another key changed": (lambda t: t.replace("image: registry.k8s.io/etcd:3.5.10-0",
                                                "image: registry.k8s.io/etcd:3.5.9-0"), "spec.containers[0].image"),
    "a volume path changed": (lambda t: t.replace("path: /var/lib/etcd\n", "path: /var/lib/etcd2\n"),
                              "spec.volumes[1].hostPath.path"),
    "wanted value wrong": (lambda t: t.replace("--name=m9", "--name=m8"), "'--name=m8'"),
    "flag added twice": (lambda t: t.replace("    - --force-new-cluster=true\n",
                                             "    - --force-new-cluster=true\n    - --force-new-cluster=true\n"),
                         "items"),
    "port turned to a string": (lambda t: t.replace("port: 2381\n", "port: '2381'\n", 1),
                                "livenessProbe.httpGet.port"),
    "not YAML any more": (lambda t: t.replace("spec:\n", "spec: [\n"), "edited manifest: malformed YAML"),
}


@pytest.mark.parametrize("case", sorted(BAD_EDITS))
def test_verify_rejects_hand_made_bad_edits(tmp_path: Path, case: str) -> None:
    text = recorded("v1.29-init.yaml")
    src, dst = setup(tmp_path, text)
    values = {"name": "m9", "force-new-cluster": "true"}
    assert subprocess.run(["bash", "-c", set_flags_script(str(src), str(dst), values)], timeout=10).returncode == 0
    good = dst.read_text()
    assert verify_edit(values)(output(text, good)) is None
    spoil, expected = BAD_EDITS[case]
    bad = spoil(good)
    assert bad != good
    problem = verify_edit(values)(output(text, bad))
    assert problem is not None and expected in problem and "\n" not in problem


def test_verify_rejects_a_second_container_touched() -> None:
    text = ODD
    values = {"name": "m9"}
    good = text.replace('"--name=quoted"', '"--name=m9"')
    assert verify_edit(values)(output(text, good)) is None
    for spoiled, where in [(good.replace("--name=sidecar", "--name=m9"), "spec.containers[0].command"),
                           (good.replace("--name=init", "--name=m9"), "spec.initContainers[0].command"),
                           (good.replace("--name=probe", "--name=m9"), "livenessProbe.exec.command"),
                           (good.replace("--name=args", "--name=m9"), "spec.containers[1].args")]:
        problem = verify_edit(values)(output(text, spoiled))
        assert problem is not None and where in problem


def test_verify_wants_one_separator() -> None:
    text = recorded("v1.29-init.yaml")
    check = verify_edit({"name": "cp1"})
    assert check(output(text, text)) is None
    assert check(text) is not None
    assert check(output(text, output(text, text))) is not None


def test_show_both_without_final_newline(tmp_path: Path) -> None:
    text = recorded("v1.29-init.yaml")
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(text.rstrip("\n"))
    b.write_text(text)
    assert verify_edit({"name": "cp1"})(both(a, b)) is None


def test_edited_items_rule() -> None:
    items = ["etcd", "--a=1", "--ab=2", "--b", "--c=3"]
    assert edited_items(items, {"a": "9", "b": "x", "d": "4", "e": "5"}) == [
        "etcd", "--a=9", "--ab=2", "--b=x", "--c=3", "--d=4", "--e=5"]
    assert edited_items(["etcd"], {"a": "1"}) == ["etcd", "--a=1"]



def test_edited_items_rule_with_drop() -> None:
    items = ["etcd", "--a=1", "--x-a=2", "--b", "--c=3"]
    assert edited_items(items, {"d": "4"}, ("a", "b")) == ["etcd", "--x-a=2", "--c=3", "--d=4"]
    assert edited_items(items, {"d": "4"}, ("c",)) == ["etcd", "--a=1", "--x-a=2", "--b", "--d=4"]
    assert edited_items(items, {}, ("x-a", "nothere")) == ["etcd", "--a=1", "--b", "--c=3"]


# --- dropping items ------------------------------------------------------------------------------------------

TO_36 = {"watch-progress-notify-interval": "5s", "feature-gates": "InitialCorruptCheck=true"}
OLD_NAMES = ("experimental-initial-corrupt-check", "experimental-watch-progress-notify-interval")


@pytest.mark.parametrize("name", [n for n in MANIFESTS if "experimental-" in recorded(n)])
def test_drop_removes_exactly_those_lines(tmp_path: Path, env: Env, name: str) -> None:
    """The 3.5 names out, the 3.6 ones in after the last flag: a diff shows only those lines; the probe says no
    before and yes after, and the re-parsing check accepts it."""
    text = recorded(name)
    src, dst = setup(tmp_path, text)
    assert not present(src, TO_36, env, OLD_NAMES)
    out = edit(src, dst, TO_36, env, OLD_NAMES).decode()
    assert changes(text, out) == [
        (["    - --experimental-initial-corrupt-check=true\n",
          "    - --experimental-watch-progress-notify-interval=5s\n"], []),
        ([], ["    - --watch-progress-notify-interval=5s\n", "    - --feature-gates=InitialCorruptCheck=true\n"])]
    assert command_items(out) == edited_items(command_items(text), TO_36, OLD_NAMES)
    assert present(dst, TO_36, env, OLD_NAMES)
    assert not present(dst, TO_36, env, ("snapshot-count",))
    assert verify_edit(TO_36, OLD_NAMES)(both(src, dst)) is None
    assert verify_edit(TO_36)(both(src, dst)) is not None, "a drop the check was not told of is a wrong edit"
    assert src.read_text() == text


def test_dropping_the_last_flag_adds_in_its_place(tmp_path: Path, env: Env) -> None:
    text = recorded("v1.29-init.yaml")
    src, dst = setup(tmp_path, text)
    out = edit(src, dst, {"name": "m9", "max-learners": "2"}, env, ("trusted-ca-file",)).decode()
    assert changes(text, out)[-1] == (["    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt\n"],
                                      ["    - --max-learners=2\n"])
    assert command_items(out)[-2:] == ["--snapshot-count=10000", "--max-learners=2"]
    assert verify_edit({"name": "m9", "max-learners": "2"}, ("trusted-ca-file",))(both(src, dst)) is None


def test_a_drop_alone_and_a_bare_item(tmp_path: Path, env: Env) -> None:
    """A bare `--flag` item is that flag too; a drop without any value to set is an edit of its own."""
    gates = "    - --feature-gates=InitialCorruptCheck=true\n"
    text = recorded("v1.34-init.yaml").replace(gates, gates + "    - --strict-reconfig-check\n")
    src, dst = setup(tmp_path, text)
    assert present(src, {}, env, ("experimental-initial-corrupt-check",))
    assert not present(src, {}, env, ("strict-reconfig-check",))
    out = edit(src, dst, {}, env, ("strict-reconfig-check", "feature-gates")).decode()
    assert "strict-reconfig-check" not in out and "feature-gates" not in out
    assert out == recorded("v1.34-init.yaml").replace("    - --feature-gates=InitialCorruptCheck=true\n", "")
    assert present(dst, {}, env, ("strict-reconfig-check", "feature-gates"))
    assert verify_edit({}, ("strict-reconfig-check", "feature-gates"))(both(src, dst)) is None
    assert verify_edit({}, ("strict-reconfig-check",))(both(src, dst)) is not None


@pytest.mark.parametrize(("values", "drop"), [({}, ()), ({"a": "1"}, ("a",)), ({}, ("A",)), ({}, ("a;b",))])
def test_drops_refused(values: dict[str, str], drop: tuple[str, ...]) -> None:
    for make in (lambda: set_flags_script("/a", "/b", values, drop), lambda: flags_present("/a", values, drop),
                 lambda: verify_edit(values, drop)):
        with pytest.raises(ValueError):
            make()


# --- manifest_problem ----------------------------------------------------------------------------------------

BASE = recorded("v1.29-init.yaml")
BLOCK = "".join(f"    - {item}\n" for item in command_items(BASE))
FLOW = BASE.replace(f"  - command:\n{BLOCK}", f"  - command: {json.dumps(command_items(BASE))}\n")
PROBLEMS = {
    "not YAML": ("spec: [\n", "malformed YAML"),
    "not a mapping": ("- a\n- b\n", "not a pod"),
    "not a pod": (BASE.replace("kind: Pod", "kind: Deployment"), "not a pod"),
    "no containers": ("apiVersion: v1\nkind: Pod\nspec: {}\n", "not a pod"),
    "no etcd container": (BASE.replace("    name: etcd\n", "    name: etcd-main\n"), "no container named etcd"),
    "two etcd containers": (BASE.replace("  hostNetwork: true\n", "  - name: etcd\n    image: x\n"
                                         "  hostNetwork: true\n"), "2 containers named etcd"),
    "command a string": (BASE.replace("  - command:\n    - etcd\n", "  - command: etcd\n    args:\n"),
                         "not a list of strings"),
    "no command": (BASE.replace("  - command:\n    - etcd\n", "  - args:\n    - etcd\n"), "no command"),
    "a number item": (BASE.replace("- --snapshot-count=10000", "- 10000"), "not a list of strings"),
    "not starting with etcd": (BASE.replace("    - etcd\n", "    - /usr/local/bin/etcd\n"), "not etcd"),
    "a positional item": (BASE.replace("- --snapshot-count=10000", "- snapshot"), "not a --flag"),
    "single dash": (BASE.replace("- --snapshot-count=10000", "- -snapshot-count=10000"), "not a --flag"),
    "flow list": (FLOW, "flow list"),
    "multi-line item": (BASE.replace("- --snapshot-count=10000", "- --snapshot-count=\n      10000"),
                        "spans several lines"),
    "escape": (BASE.replace("- --snapshot-count=10000", '- "--snapshot-count=1\\x30000"'), "escape"),
    "flow container": ("kind: Pod\nspec:\n  containers:\n  - {name: etcd, command: [etcd]}\n", "block mapping"),
    "CRLF": (BASE.replace("\n", "\r\n"), "CRLF"),
    "indented document": ("  kind: Pod\n  spec:\n    containers:\n    - name: etcd\n      command:\n      - etcd\n",
                          "spec: is not"),
}


@pytest.mark.parametrize("case", sorted(PROBLEMS))
def test_manifest_problem(case: str) -> None:
    text, fragment = PROBLEMS[case]
    problem = manifest_problem(text)
    assert problem is not None, case
    assert fragment in problem.text and "\n" not in problem.text
    assert problem.severity is Severity.ALWAYS


@pytest.mark.parametrize("item", ["--force-new-cluster", "--force-new-cluster=true"])
def test_force_flag_refuses_only_a_flag_edit(item: str) -> None:
    text = BASE.replace("    - --snapshot-count=10000\n", f"    - --snapshot-count=10000\n    - {item}\n")
    problem = manifest_problem(text)
    assert problem is not None and problem.severity is Severity.FLAG_EDIT and "--force-new-cluster" in problem.text


@pytest.mark.parametrize("case", ["not YAML", "no etcd container", "command a string", "not a pod"])
def test_command_items_raise_manifest_error(case: str) -> None:
    with pytest.raises(ManifestError):
        command_items(PROBLEMS[case][0])


def test_flow_list_parses_but_is_refused(tmp_path: Path, env: Env) -> None:
    """PyYAML reads a flow list as a fine list of strings; the layout check and the editor see its limit."""
    assert FLOW != BASE
    assert command_items(FLOW) == command_items(BASE)
    assert yaml.safe_load(FLOW)["kind"] == "Pod"
    src, dst = setup(tmp_path, FLOW)
    res = bash(set_flags_script(str(src), str(dst), {"name": "m9"}), env)
    assert res.returncode == 3 and b"flow list" in res.stderr
    assert not dst.exists()


# --- random values -------------------------------------------------------------------------------------------

NAMES = ["name", "initial-cluster", "initial-cluster-state", "initial-cluster-token", "force-new-cluster",
         "data-dir", "feature-gates", "experimental-initial-corrupt-check", "watch-progress-notify-interval"]
name_st = st.one_of(st.sampled_from(NAMES), st.from_regex(r"[a-z][a-z0-9]{0,6}(-[a-z0-9]{1,6}){0,3}", fullmatch=True))
host_st = st.one_of(st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,12}[a-z0-9])?", fullmatch=True),
                    st.from_regex(r"\[[0-9a-f]{1,4}(:[0-9a-f]{0,4}){1,5}(%25[a-z0-9]{1,5})?\]", fullmatch=True))
url_st = st.builds(lambda s, h, p: f"{s}://{h}:{p}", st.sampled_from(["https", "http"]), host_st,
                   st.integers(1, 65535))
value_st = st.one_of(
    st.from_regex(r"[A-Za-z0-9._/+@=:,%\[\]-]{0,30}", fullmatch=True).filter(lambda v: not v.endswith(":")),
    url_st,
    st.lists(st.builds(lambda n, u: f"{n}={u}", st.from_regex(r"[a-z0-9][a-z0-9.-]{0,8}", fullmatch=True), url_st),
             min_size=1, max_size=4).map(",".join),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifest=st.sampled_from(MANIFESTS), awk=st.sampled_from(AWKS),
       values=st.dictionaries(name_st, value_st, min_size=1, max_size=4))
def test_random_values(awk_envs: dict[str, Env], manifest: str, awk: str, values: dict[str, str]) -> None:
    """Edit, then the parsed result holds exactly the wanted values, every other item as before and in order,
    the rest of the document equal; the probe agrees before and after; a rerun changes no byte."""
    env = awk_envs[awk]
    text = recorded(manifest)
    with tempfile.TemporaryDirectory() as d:
        src, dst = setup(Path(d), text)
        out = edit(src, dst, values, env).decode()
        got = flags(out)
        assert {k: got[k] for k in values} == values
        assert command_items(out) == edited_items(command_items(text), values)
        before = flags(text)
        assert all(got[k] == v for k, v in before.items() if k not in values)
        assert present(dst, values, env)
        assert present(src, values, env) == all(before.get(k) == v for k, v in values.items())
        assert verify_edit(values)(both(src, dst)) is None
        assert all(not old or all(line.startswith("    - --") for line in old + new) for old, new in changes(text, out))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifest=st.sampled_from(MANIFESTS), awk=st.sampled_from(AWKS), data=st.data(),
       values=st.dictionaries(name_st, value_st, max_size=3))
def test_random_drops(awk_envs: dict[str, Env], manifest: str, awk: str, values: dict[str, str],
                      data: st.DataObject) -> None:
    """Dropping any of a manifest's flags (and some it lacks) with any edit: the awk edit, its probe and the
    re-parsing check agree with `edited_items`."""
    env = awk_envs[awk]
    text = recorded(manifest)
    names = sorted((set(flags(text)) | {"feature-gates", "max-learners"}) - set(values))
    drop = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=4, unique=True))
    with tempfile.TemporaryDirectory() as d:
        src, dst = setup(Path(d), text)
        out = edit(src, dst, values, env, drop).decode()
        assert command_items(out) == edited_items(command_items(text), values, drop)
        assert not set(drop) & set(flags(out))
        assert present(dst, values, env, drop)
        assert present(src, values, env, drop) == (command_items(out) == command_items(text))
        assert verify_edit(values, drop)(both(src, dst)) is None
