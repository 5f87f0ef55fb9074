from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conftest_lab import lab_factory, requires_lab

__all__ = ["lab_factory", "requires_lab"]
