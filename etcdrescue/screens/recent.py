"""Recently used inventories, so an operator under pressure does not have to type paths.

Stored as a small JSON list next to the journals ($XDG_STATE_HOME/etcdrescue/recent.json,
default ~/.local/state/etcdrescue); a missing or damaged file just means "no history".
Entries whose inventory file is gone are not offered.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..journal import default_dir

LIMIT = 8


def recent_file() -> Path:
    return default_dir() / "recent.json"


def load_recent() -> list[dict[str, str]]:
    try:
        data = json.loads(recent_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(data, list):
        return []
    return [{"inventory": str(d["inventory"]), "backup": str(d.get("backup") or "")}
            for d in data if isinstance(d, dict) and isinstance(d.get("inventory"), str)
            and Path(d["inventory"]).is_file()]


def remember(inventory: str, backup: str | None) -> None:
    """Put `inventory` first; failures to write are ignored (history is a convenience)."""
    inventory = str(Path(inventory).expanduser().absolute())
    items = [d for d in load_recent() if d["inventory"] != inventory]
    items.insert(0, {"inventory": inventory, "backup": backup or ""})
    path = recent_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(items[:LIMIT], indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass
