"""The lab's shapes by the inventory `profile:` that names their platform.

Apart from `shape.py` so that the dependency points one way: each shape module builds a `LabShape`
from `shape.py`'s types, and only this registry knows every shape.
"""

from __future__ import annotations

from . import kubeadm, okd3
from .shape import LabShape

SHAPES: dict[str, LabShape] = {s.platform: s for s in (okd3.SHAPE, kubeadm.SHAPE)}


def shape_named(name: str) -> LabShape:
    """The shape for an inventory `profile:` name."""
    try:
        return SHAPES[name]
    except KeyError:
        raise ValueError(f"no lab shape {name!r} (known: {', '.join(SHAPES)})") from None
