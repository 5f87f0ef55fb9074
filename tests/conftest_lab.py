"""Shared fixtures for tests that need the local lab (fake OKD or kubeadm masters).

Import them into a conftest with `from conftest_lab import lab_factory, requires_lab`
(after putting tests/ on sys.path, as tests/lab/conftest.py does).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from etcdrescue.lab import Lab, missing_prerequisites

_why_not = ("needs root" if os.geteuid() != 0 else "; ".join(missing_prerequisites()))
requires_lab = pytest.mark.skipif(bool(_why_not), reason=f"lab unavailable: {_why_not}")

LabFactory = Callable[..., Lab]


@pytest.fixture
def lab_factory(tmp_path: Path) -> Iterator[LabFactory]:
    """Make (and `up`) labs under tmp_path; every one is taken down even if the test fails."""
    labs: list[Lab] = []

    def make(members: int = 3, *, subnet: int, up: bool = True, **kw: Any) -> Lab:
        lab = Lab(tmp_path / f"lab{subnet}", members, subnet=subnet, **kw)
        labs.append(lab)
        if up:
            lab.up(timeout=60)
        return lab

    yield make
    errors = []
    for lab in labs:
        try:
            lab.down()
        except Exception as exc:  # keep taking the others down
            errors.append(exc)
    if errors:
        raise errors[0]
