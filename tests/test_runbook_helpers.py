"""The runbook's short forms run exactly what the engine runs: a program read from its shipped file edits and
probes like the quoted program in the engine's command, with real bash and every awk a master may have."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from awk_shims import Env, bash

from etcdrescue.command import q
from etcdrescue.documents.helpers import PROGRAMS, SUMS, Shelf
from etcdrescue.platform.envfile import env_has, set_env
from etcdrescue.platform.manifest import flags_present, set_flags_script

DATA = Path(__file__).parent / "data" / "kubeadm"
STAMP = "20240301T120000Z"
WANT = {"name": "cp2", "initial-cluster": "cp1=https://10.0.0.1:2380,cp2=https://10.0.0.2:2380",
        "initial-cluster-state": "existing"}


def shipped(tmp: Path, *scripts: str) -> tuple[Shelf, list[str]]:
    """A shelf whose files sit in `tmp/host` (standing in for the master's directory), and the short forms."""
    shelf = Shelf(STAMP)
    shelf.dir = str(tmp / "host")
    short = [shelf.command(s) for s in scripts]
    (tmp / "host").mkdir()
    for name, text in shelf.shipped().items():
        (tmp / "host" / name).write_text(text)
    return shelf, short


def test_every_program_is_shipped_under_its_own_name() -> None:
    assert set(PROGRAMS) == {"manifest-edit.awk", "manifest-probe.awk", "envfile-state.awk", "envfile-has.awk",
                             "rows.sh"}
    assert len(set(PROGRAMS.values())) == len(PROGRAMS)
    assert all("\n" not in name and "/" not in name for name in PROGRAMS)


@pytest.mark.parametrize("manifest", ["v1.29-init.yaml", "v1.31-joined.yaml"])
def test_manifest_edit_and_probe_from_files_match_the_engine(tmp_path: Path, env: Env, manifest: str) -> None:
    for side in ("engine", "runbook"):
        (tmp_path / side).mkdir()
        shutil.copy(DATA / manifest, tmp_path / side / "etcd.yaml")
    src = {side: str(tmp_path / side / "etcd.yaml") for side in ("engine", "runbook")}
    dst = {side: str(tmp_path / side / "edited.yaml") for side in ("engine", "runbook")}
    engine = [set_flags_script(src["runbook"], dst["runbook"], WANT), flags_present(dst["runbook"], WANT),
              flags_present(src["runbook"], WANT)]
    shelf, short = shipped(tmp_path, *engine)
    assert all(len(s) < len(e) // 3 for s, e in zip(short, engine, strict=True)), "the program is still inline"
    assert all(f'"$(cat {q(shelf.dir)}/manifest-' in s for s in short)
    assert bash(set_flags_script(src["engine"], dst["engine"], WANT), env).returncode == 0
    assert bash(short[0], env).returncode == 0
    assert Path(dst["runbook"]).read_bytes() == Path(dst["engine"]).read_bytes() != Path(src["engine"]).read_bytes()
    assert bash(short[1], env).returncode == 0 == bash(flags_present(dst["engine"], WANT), env).returncode
    assert bash(short[2], env).returncode == 1 == bash(flags_present(src["engine"], WANT), env).returncode


def test_envfile_edit_and_probe_from_files_match_the_engine(tmp_path: Path, env: Env) -> None:
    conf = "ETCD_NAME=old\n# ETCD_INITIAL_CLUSTER_STATE=new\nETCD_INITIAL_CLUSTER_STATE=new\n"
    paths = {side: tmp_path / f"{side}.conf" for side in ("engine", "runbook")}
    for p in paths.values():
        p.write_text(conf)
    items = {"ETCD_NAME": "m2", "ETCD_INITIAL_CLUSTER_STATE": "existing"}
    engine = [*(set_env(str(paths["runbook"]), k, v) for k, v in items.items()), env_has(str(paths["runbook"]), items)]
    _, short = shipped(tmp_path, *engine)
    assert all("awk -v" in s and '"$(cat ' in s for s in short)
    assert bash(short[2], env).returncode == 1
    for script in short[:2]:
        assert bash(script, env).returncode == 0
    for k, v in items.items():
        assert bash(set_env(str(paths["engine"]), k, v), env).returncode == 0
    assert paths["runbook"].read_text() == paths["engine"].read_text() != conf
    assert bash(short[2], env).returncode == 0 == bash(env_has(str(paths["engine"]), items), env).returncode


def test_digests_check_the_shipped_files(tmp_path: Path) -> None:
    """The check printed in the runbook passes on the files as shipped and fails on a changed one."""
    shelf, _ = shipped(tmp_path, set_flags_script("/etc/k/etcd.yaml", "/etc/k/e.yaml", WANT))
    sums = (tmp_path / "host" / SUMS).read_text()
    edit = (tmp_path / "host" / "manifest-edit.awk").read_bytes()
    assert sums == f"{hashlib.sha256(edit).hexdigest()}  manifest-edit.awk\n"
    check = shelf.check_script()
    assert subprocess.run(["bash", "-c", check], capture_output=True).returncode == 0
    (tmp_path / "host" / "manifest-edit.awk").write_bytes(edit.replace(b"exit 3", b"exit 0"))
    assert subprocess.run(["bash", "-c", check], capture_output=True).returncode != 0


def test_long_probes_ship_short_ones_print(tmp_path: Path) -> None:
    shelf = Shelf(STAMP)
    assert shelf.probe("test -e /x", "short.sh") == "test -e /x"
    long = "echo " + "a" * 700
    assert shelf.probe(long, "long.sh") == f"bash /var/lib/etcdrescue/runbook-{STAMP}/long.sh"
    assert shelf.shipped()["long.sh"] == long + "\n"
    assert set(shelf.shipped()) == {"long.sh", SUMS}
