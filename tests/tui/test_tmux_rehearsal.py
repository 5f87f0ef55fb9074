"""A whole rehearsal as a person sees it: `etcdrescue rehearse` in a real 80x24 tmux pane,
walked by keys only, judged on the pane's text (capture-pane), not on the app's objects.

The tmux server is this test's own (`-L`), so nothing else's sessions are touched, and it is
killed even when an assertion fails; a lab the rehearsal could not tear down is destroyed here.
Subnet 140.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from etcdrescue.lab import Lab

from .conftest import flat, requires_lab

pytestmark = [pytest.mark.lab, requires_lab, pytest.mark.timeout(180),
              pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]

SUBNET = 140
REPO = Path(__file__).resolve().parents[2]


class Pane:
    """One tmux session of an 80x24 window on a private server."""

    def __init__(self, socket: str, command: str) -> None:
        self.socket = socket
        self.tmux("new-session", "-d", "-s", "wizard", "-x", "80", "-y", "24", command)
        self.socket_path = Path(self.tmux("display-message", "-p", "#{socket_path}").strip())

    def tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10)
        if done.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def text(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "wizard")

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.tmux("send-keys", "-t", "wizard", key)
            time.sleep(0.15)

    def wait_for(self, needle: str, timeout: float, each: Callable[[str], object] | None = None) -> str:
        """The pane's text once it shows `needle`; `each` sees every capture before that."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            if needle in text:
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"no {needle!r} on the pane after {timeout}s; it shows:\n{text}")
            if each is not None:
                each(text)
            time.sleep(0.3)

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)
        self.socket_path.unlink(missing_ok=True)


def test_rehearsal_walked_by_keys_at_80x24(tmp_path: Path) -> None:
    root, journal = tmp_path / "lab", tmp_path / "journal"
    env = [f"PYTHONPATH={REPO}", f"XDG_STATE_HOME={tmp_path / 'state'}", "ETCDRESCUE_DOWN_SETTLE=1"]
    command = shlex.join(["env", *env, sys.executable, "-m", "etcdrescue", "rehearse", "--subnet", str(SUBNET),
                          "--root", str(root), "--journal", str(journal), "--keys", "50"])
    pane = Pane(f"etcdrescue-test-{os.getpid()}", f"{command}; echo REHEARSE-EXIT=$?; sleep 120")
    try:
        inventory = pane.wait_for("Inventory file", timeout=90)
        assert "REHEARSAL" in inventory.splitlines()[0]
        pane.keys("Enter")

        preflight = pane.wait_for("recovery can start", timeout=30)
        rows = [line for line in preflight.splitlines() if re.match(r" master0[123] ", line)]
        assert len(rows) == 3, preflight
        for row in rows:  # the data and free columns whole: a figure with its unit, never `122.2` alone
            assert len(re.findall(r"\b\d+(?:\.\d)? (?:KiB|MiB|GiB)\b", row)) == 2, row
        assert "member.lab.example" not in preflight and "master01.lab.example · ID" in flat(preflight)
        pane.keys("n")

        plan = pane.wait_for("Plan for rehearsal", timeout=15)
        total = re.search(r"Plan for rehearsal: (\d+) steps", plan)
        assert total, plan
        pane.keys("Down", "Down", "v")
        step = flat(pane.wait_for("esc closes", timeout=10))
        assert f"[3/{total[1]}] Rewrite master01.lab.example's etcd.conf for a one-member cluster" in step, step
        assert "why:" in step and "master01.lab.example$ " in step
        pane.keys("Escape", "s")

        def confirm(text: str) -> None:
            assert "FAILED" not in text, text
            if "Yes (y)" in text:
                pane.keys("y")

        pane.wait_for("n: summary", timeout=90, each=confirm)
        # the log follows the output to its end: the last step restarts master03's controllers (etcdctl 3.4.23
        # cannot bump revisions)
        run = pane.wait_for("gate passed: master-controllers running again on master03", timeout=5)
        assert "Recovered in " in run and "every step done" in run, run
        pane.keys("n")

        summary = pane.wait_for("RECOVERED rehearsal: 3/3 members healthy", timeout=15)
        assert "member.etcdrescue-" in summary
        pane.keys("q")

        end = pane.wait_for("REHEARSE-EXIT=", timeout=60)
        assert "REHEARSAL PASSED" in end and "lab torn down" in end and "REHEARSE-EXIT=0" in end, end
    finally:
        pane.kill()
        if (root / "lab.json").exists():
            time.sleep(1)  # the rehearsal, hung up on by the dead pane, stops before its lab is taken down
            Lab.load(root).destroy()
