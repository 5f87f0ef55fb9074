"""Every awk a master may have (mawk: Debian's, gawk: RHEL's, busybox: the odd one), for the scripts that
promise POSIX awk only: a PATH per awk with a shim dir in front, so the unchanged script calls `awk`."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

AWKS = [name for name in ("mawk", "gawk", "busybox") if shutil.which(name)] or ["awk"]

Env = dict[str, str]


@pytest.fixture(scope="session")
def awk_envs() -> Iterator[dict[str, Env]]:
    with tempfile.TemporaryDirectory() as root:
        envs: dict[str, Env] = {}
        for name in AWKS:
            shim = Path(root, name)
            shim.mkdir()
            if name == "busybox":
                (shim / "awk").write_text('#!/bin/sh\nexec busybox awk "$@"\n')
                (shim / "awk").chmod(0o755)
            elif name != "awk":
                (shim / "awk").symlink_to(shutil.which(name) or name)
            envs[name] = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}"}
        yield envs


@pytest.fixture(params=AWKS)
def env(request: Any, awk_envs: dict[str, Env]) -> Env:
    return awk_envs[request.param]


def bash(script: str, env: Env) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, timeout=10)
