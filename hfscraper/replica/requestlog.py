"""The replica's request log: one JSON object per request, in memory and optionally in a file.

Each entry records what a test needs to check a client's behaviour, never a
secret: ``seq``, ``time`` (epoch seconds), ``origin`` (``hub``|``cdn``|``viewer``),
``method``, ``path`` (path plus query string, as received), ``status``,
``bucket`` (rate-limit bucket, null on the CDN), ``auth`` (whether an
``Authorization`` header arrived; the token itself is never logged), ``fault``
(the injected fault kind, or null) and ``ms`` (time to the response, rounded).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import IO, Any


class RequestLog:
    def __init__(self, path: str | Path | None = None) -> None:
        self.entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        if path is not None:
            # Line-buffered append: every entry is on disk as soon as it is logged, even if the process is killed.
            self._file = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 (closed by close())

    def add(
        self,
        *,
        origin: str,
        method: str,
        path: str,
        status: int,
        bucket: str | None,
        auth: bool,
        fault: str | None,
        started: float,
    ) -> dict[str, Any]:
        with self._lock:
            entry = {
                "seq": len(self.entries),
                "time": round(time.time(), 6),
                "origin": origin,
                "method": method,
                "path": path,
                "status": status,
                "bucket": bucket,
                "auth": auth,
                "fault": fault,
                "ms": round((time.monotonic() - started) * 1000, 3),
            }
            self.entries.append(entry)
            if self._file is not None:
                self._file.write(json.dumps(entry, ensure_ascii=False) + "\n")
            return entry

    def since(self, seq: int = 0, origin: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            chosen = self.entries[max(0, seq) :]
        if origin is not None:
            chosen = [e for e in chosen if e["origin"] == origin]
        return chosen

    def counts(self) -> dict[str, int]:
        with self._lock:
            counts = {"total": len(self.entries), "hub": 0, "cdn": 0, "viewer": 0}
            for entry in self.entries:
                counts[entry["origin"]] = counts.get(entry["origin"], 0) + 1
            return counts

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
