"""Append-only JSON-lines record of a run: every step, command, result and gate.

Each line is flushed and fsync'ed, so after a crash the journal says exactly how
far the run got. Secret values are masked before anything is written.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

MASK = "********"


def default_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "etcdrescue"


class Journal:
    def __init__(self, path: Path, secrets: tuple[str, ...] = ()) -> None:
        self.path = path
        self.secrets = tuple(s for s in secrets if s)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file = os.fdopen(fd, "a", encoding="utf-8")
        self._lock = threading.Lock()

    @classmethod
    def create(cls, directory: Path, cluster: str, stamp: str, secrets: tuple[str, ...] = ()) -> Journal:
        return cls(directory / f"{cluster}-{stamp}.jsonl", secrets)

    def mask(self, text: str) -> str:
        """Masks each secret as written raw and as JSON escapes it (quotes, backslashes, non-ASCII)."""
        for s in self.secrets:
            for form in {s, json.dumps(s)[1:-1], json.dumps(s, ensure_ascii=False)[1:-1]}:
                text = text.replace(form, MASK)
        return text

    def write(self, event: str, **fields: Any) -> None:
        record = {"ts": round(time.time(), 3), "event": event, **fields}
        line = self.mask(json.dumps(record, default=str, ensure_ascii=False))
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def read_journal(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return out
