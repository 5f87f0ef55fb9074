"""Bad input and unsafe situations: exit 2, one clear line, and nothing changed on any host."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from etcdrescue.lab import Lab

from .conftest import requires_lab
from .helpers import break_lab, etcdrescue, tree_digest

pytestmark = [pytest.mark.lab, requires_lab, pytest.mark.timeout(300)]

LabFactory = Callable[..., Lab]


def variant(lab: Lab, tmp: Path, name: str, edit: Callable[[dict[str, Any]], None]) -> str:
    data = yaml.safe_load(lab.inventory_path.read_text())
    edit(data)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_refusals_change_nothing(lab_factory: LabFactory, tmp_path: Path) -> None:
    b = break_lab(lab_factory(3, subnet=26), "openshift")
    lab, inv = b.lab, str(b.lab.inventory_path)
    empty_known = tmp_path / "known_hosts"
    empty_known.write_text("")
    cases: list[tuple[list[str], str]] = [
        (["-i", str(tmp_path / "nope.yaml")], "inventory file not found"),
        (["-i", variant(lab, tmp_path, "unknown", lambda d: d["members"][1].update(role="x"))],
         "members[1]: unknown key(s) role"),
        (["-i", variant(lab, tmp_path, "dup", lambda d: d["members"][2].update(name=d["members"][0]["name"]))],
         "members[2].name: duplicate name"),
        (["-i", variant(lab, tmp_path, "url", lambda d: d["members"][0].update(peer_url="https//x:2380"))],
         "members[0].peer_url: malformed URL"),
        (["-i", variant(lab, tmp_path, "rel", lambda d: d.update(paths={"data_dir": "var/lib/etcd"}))],
         "paths.data_dir: must be an absolute path"),
        (["-i", variant(lab, tmp_path, "hostile", lambda d: d["members"][0].update(name="m1;reboot"))],
         "members[0].name"),
        (["-i", inv, "--backup", "/var/lib/etcd/no-such-backup"], "backup /var/lib/etcd/no-such-backup not found"),
        (["-i", inv, "--backup", "/etc/etcd"], "has no member/snap/db"),
        (["-i", inv, "--backup", "relative/path"], "--backup must be an absolute path"),
        (["-i", inv, "--backup", str(b.backup), "--seed", "master09"], "no member named 'master09'"),
        (["-i", variant(lab, tmp_path, "hostkey", lambda d: d["ssh"].update(known_hosts=str(empty_known))),
          "--backup", str(b.backup)], "SHA256:"),
    ]
    before = tree_digest(lab)
    for args, expected in cases:
        res = etcdrescue("recover", *args, "--yes", timeout=60)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1, (args, res.stderr)
        assert expected in lines[0], (expected, lines[0])
    no_tty = etcdrescue("recover", "-i", inv, "--backup", str(b.backup), timeout=60)
    assert no_tty.returncode == 2 and "pass --yes" in no_tty.stderr
    assert tree_digest(lab) == before


def test_healthy_cluster_is_refused(lab_factory: LabFactory, tmp_path: Path) -> None:
    lab = lab_factory(3, subnet=27)
    before = tree_digest(lab)
    res = etcdrescue("recover", "-i", str(lab.inventory_path), "--yes", "--journal", str(tmp_path / "j"))
    assert res.returncode == 2
    assert "healthy quorum (3/3" in res.stderr
    check = etcdrescue("check", "-i", str(lab.inventory_path))
    assert check.returncode == 2 and "refusing to recover a working cluster" in check.stdout
    assert tree_digest(lab) == before
    assert not list((tmp_path / "j").glob("*.jsonl")), "no journal: only the lock dir"
