"""hfscraper's benchmarks, run against the bundled Hub replica on loopback (`make bench`, `python -m bench.run`).

Each benchmark is a module with `NAME` and `run(*, smoke: bool) -> BenchResult`; `bench/run.py` lists them in
`BENCHMARKS`, runs them, and writes `bench/results/<date>.json` and `bench/RESULTS.md`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Row:
    """One measured value and its goal.

    Attributes:
        benchmark: the benchmark's name (`quota`).
        metric: what was measured (`api_rate_share`).
        value: the measurement.
        unit: how to read it (`share of quota`, `s`, `count`).
        goal: the goal as text (`>= 0.90`), or "" when the row only informs.
        met: whether the goal was met, None without a goal.
    """

    benchmark: str
    metric: str
    value: float | int | str
    unit: str = ""
    goal: str = ""
    met: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BenchResult:
    """What one benchmark run produced: its rows, plus details for the JSON file (config, raw counts)."""

    rows: list[Row]
    details: dict[str, Any] = field(default_factory=dict)
