"""Walking the recorded Hub responses (tests/data/hub_fixtures)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def entities_in(value: Any, *, require: tuple[str, ...] = ()) -> Iterator[dict[str, Any]]:
    """Every dict with a string `id` (and every key of *require*) anywhere inside the decoded JSON *value*."""
    if isinstance(value, dict):
        if isinstance(value.get("id"), str) and all(key in value for key in require):
            yield value
        for v in value.values():
            yield from entities_in(v, require=require)
    elif isinstance(value, list):
        for v in value:
            yield from entities_in(v, require=require)
