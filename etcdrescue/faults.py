"""Fault injection for the resume tests: die like `kill -9` at a chosen point of a run.

Set ETCDRESCUE_FAULT to `after-step:<key>` or `after-command:<key>:<n>` (n counts the
step's commands from 1, skipped ones included). Unset in normal use: then this does nothing.
"""

from __future__ import annotations

import os
import signal


def maybe_die(point: str) -> None:
    if os.environ.get("ETCDRESCUE_FAULT") == point:
        os.kill(os.getpid(), signal.SIGKILL)
