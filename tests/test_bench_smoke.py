"""The bench scripts (bench/) at their smallest: one round of each recovery, one check, one start-up each.
The hand-written script polls every 0.2 s (POLL) and, as every recovery in the suite, the stop settles 1 s.

They share one 3-member lab; each must finish and print its figures. The figures themselves are for
docs/performance.md, not asserted beyond being there and plausible.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest_lab import requires_lab

from etcdrescue.lab import Lab

pytestmark = [pytest.mark.lab, requires_lab]

BENCH = Path(__file__).resolve().parents[1] / "bench"
SUBNET = int(os.environ.get("BENCH_SMOKE_SUBNET") or 196)  # another when sessions share the machine


def bench(script: str, *args: str) -> str:
    res = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                         timeout=300, stdin=subprocess.DEVNULL, cwd=BENCH, env={**os.environ, "POLL": "0.2"})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res.stdout


def seconds(text: str, label: str) -> list[float]:
    """The min, median and max printed after `label`."""
    m = re.search(re.escape(label) + r"\s+min (\d+\.\d+)s  median (\d+\.\d+)s  max (\d+\.\d+)s", text)
    assert m, f"no figures for {label!r} in:\n{text}"
    return [float(x) for x in m.groups()]


@pytest.fixture(scope="module")
def lab_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("bench") / "lab"
    yield root
    if (root / "lab.json").exists():
        Lab.load(root).down()


def test_recovery_then_preflight(lab_root: Path) -> None:
    """One tool round and one script round on a fresh lab with 4 MiB of extra data, then `check` on the same
    lab broken again."""
    out = bench("recovery.py", "--rounds", "1", "--members", "3", "--subnet", str(SUBNET), "--root", str(lab_root),
                "--data-mib", "4")
    for kind in ("tool", "script"):
        low, median, high = seconds(out, f"{kind:6} wall ")
        assert 0 < low <= median <= high
        etcd = seconds(out, f"{kind:6} etcd ")[1]
        assert 0 < etcd < median  # some etcd start -> /health true was seen, and it is part of the wall
        logins = re.search(rf"ssh logins in the last {kind} run: master01 (\d+), master02 (\d+), master03 (\d+)", out)
        assert logins and all(int(n) >= 1 for n in logins.groups()), out
    assert re.search(r"ratio of medians tool/script: \d+\.\d\d", out), out
    assert re.search(r"gate notice latency .*: min -?\d+\.\d+s", out), out
    assert re.search(r"filled 4 MiB of extra data", out), out  # and their count is checked after each recovery
    assert seconds(out, "one copy of the db (cp + fsync)")[1] > 0
    assert re.search(r"tool   wall / \(etcd \+ one copy\): per round \d+\.\d\d; median \d+\.\d\d", out), out

    out = bench("gates.py", "--rounds", "2", "--subnet", str(SUBNET), "--root", str(lab_root))
    for label in ("side by side", "one by one"):
        assert seconds(out, label)[1] > 0

    out = bench("preflight.py", "--runs", "1", "--subnet", str(SUBNET), "--root", str(lab_root))
    assert seconds(out, "check wall ")[1] > 0
    assert 0 < seconds(out, "pre-flight proper")[1] < seconds(out, "check wall ")[1]
    assert re.search(r"ssh logins per check: median [1-9]", out), out


def test_startup() -> None:
    out = bench("startup.py", "--runs", "1")
    tool, bare = seconds(out, "python3 -m etcdrescue --help")[1], seconds(out, "python3 -c pass")[1]
    assert bare > 0 and tool > 0
    assert re.search(r"^\s+\d+\.\d{3}s  etcdrescue\.", out, re.M), out  # the tool's own imports are listed
