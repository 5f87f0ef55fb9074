"""The procedures a session can run, by name: the quorum recovery (`recover`), `reclaim-space`, a member's
replacement (`replace`), `fix-flags`."""

from __future__ import annotations

from ..errors import InputError
from .base import Procedure
from .flags import FIX_FLAGS
from .quorum import QUORUM_RECOVERY
from .reclaim import RECLAIM_SPACE
from .replace import REPLACE

PROCEDURES: dict[str, Procedure] = {p.name: p for p in (QUORUM_RECOVERY, RECLAIM_SPACE, REPLACE, FIX_FLAGS)}
DEFAULT = QUORUM_RECOVERY.name


def named(name: str) -> Procedure:
    try:
        return PROCEDURES[name]
    except KeyError:
        raise InputError(f"no procedure {name!r}: known are {', '.join(PROCEDURES)}") from None
