"""Bad input exits 2 with one line naming it, before anything runs on any host: here, hosts that cannot be
reached or resolved, at every door (the lock, the upload of --etcd-tools, the pre-flight)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

UNREACHABLE = "127.0.254.1"
"""Loopback, where nothing listens on port 22."""


def inventory(tmp_path: Path, second_host: str) -> Path:
    known = tmp_path / "known_hosts"
    known.write_text("")
    members = [{"name": f"m{i}", "host": host, "peer_url": f"https://127.0.254.{i}:2380",
                "client_url": f"https://127.0.254.{i}:2379"}
               for i, host in enumerate((UNREACHABLE, second_host, "127.0.254.3"), 1)]
    path = tmp_path / "inv.yaml"
    path.write_text(yaml.safe_dump({"cluster": "gone", "profile": "okd3", "members": members,
                                    "ssh": {"user": "root", "known_hosts": str(known), "config": "none"}}))
    return path


@pytest.mark.parametrize("extra", [["recover", "--yes"], ["recover", "--yes", "--etcd-tools", "TOOLS"],
                                   ["check", "--etcd-tools", "TOOLS"], ["recover", "--dry-run"]],
                         ids=["recover", "recover-tools", "check-tools", "dry-run"])
@pytest.mark.parametrize("second", ["127.0.254.2", "no-such-host.invalid"], ids=["unreachable", "unresolvable"])
def test_unreachable_or_unresolvable_hosts_are_bad_input(tmp_path: Path, extra: list[str], second: str) -> None:
    etcdctl = shutil.which("etcdctl")
    if etcdctl is None:
        pytest.skip("needs etcdctl (Debian etcd-client) for --etcd-tools")
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "etcdctl").symlink_to(etcdctl)
    args = [str(tools) if a == "TOOLS" else a for a in extra]
    journal = ["--journal", str(tmp_path / "j")] if args[0] == "recover" else []
    res = subprocess.run([sys.executable, "-m", "etcdrescue", *args, "-i", str(inventory(tmp_path, second)), *journal],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                         env={**os.environ, "GRPC_VERBOSITY": "NONE"})
    assert res.returncode == 2, res.stdout + res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("etcdrescue: ") and ("m1" in last or UNREACHABLE in last), last
    assert not list((tmp_path / "j").glob("*.jsonl"))
