"""Lines that tests want shown in the final summary of every pytest run (not only with `-s`)."""

from __future__ import annotations

LINES: list[str] = []


def record(line: str) -> None:
    LINES.append(line)
