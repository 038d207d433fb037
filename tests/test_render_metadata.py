"""`render_metadata` writes exactly the bytes of `json.dumps(payload, ensure_ascii=False, indent=2) + "\\n"`.

The fast path (orjson) must be invisible: every recorded Hub fixture, every entity the replica serves (hostile ids,
cards and file names included) and random JSON values render byte for byte as the seed's format, with the same
`escaped` flag and the same exceptions.
"""

from __future__ import annotations

import datetime
import enum
import json
import math
import random
import struct
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hfscraper import constants
from hfscraper.hub import build_list_url, parse_link_next
from hfscraper.items import item_class_for
from hfscraper.pipelines.entity_store import _prints_alike, render_metadata
from tests.support.fixtures import entities_in
from tests.support.replica import replica_fixture

replica = replica_fixture(
    models=40, datasets=15, spaces=15, seed=5, hostile_ids=True, hostile_cards=True, hostile_files=True
)


def seed_format(payload: Any) -> tuple[bytes, bool]:
    """The seed's `render_metadata`: the format metadata.json has always had."""
    try:
        return (json.dumps(payload, ensure_ascii=False, indent=2) + "\n").encode("utf-8"), False
    except UnicodeEncodeError:
        return (json.dumps(payload, ensure_ascii=True, indent=2) + "\n").encode("ascii"), True


def outcome(render: Any, payload: Any) -> tuple[str, Any]:
    try:
        return "ok", render(payload)
    except Exception as exc:  # the same exception type, from either
        return "raised", type(exc)


def assert_same(payload: Any) -> None:
    assert outcome(render_metadata, payload) == outcome(seed_format, payload), payload


def test_every_recorded_fixture_renders_as_before(hub_fixtures: Path) -> None:
    rendered = fast = 0
    for path in sorted(hub_fixtures.rglob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        for payload in [document, *entities_in(document)]:
            if not isinstance(payload, dict):
                continue
            assert_same(payload)
            rendered += 1
            fast += _prints_alike(payload)
    assert rendered >= 100
    assert fast >= rendered * 0.9  # the fixtures go through orjson (the comparison tests the fast path)


def _listing(url: str) -> Iterator[dict[str, Any]]:
    while url:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": "application/json"})) as answer:
            yield from json.loads(answer.read())
            url = parse_link_next(answer.headers.get_all("Link") or [])  # type: ignore[assignment]


def test_every_replica_entity_renders_as_before(replica: Any) -> None:
    seen = 0
    for repo_type in (constants.REPO_TYPE_MODEL, constants.REPO_TYPE_DATASET, constants.REPO_TYPE_SPACE):
        first = build_list_url(replica.url, repo_type, limit=25, expand=constants.DEFAULT_EXPAND[repo_type])
        for entry in _listing(first):
            payload = item_class_for(repo_type).from_api(entry).to_api()
            assert_same(payload)
            assert _prints_alike(payload) or not isinstance(entry.get("trendingScore", 0), int)
            seen += 1
    assert seen >= 70 + 20  # every ordinary entity and the hostile ones


# -- random JSON values ---------------------------------------------------------------------------------------

_CHARS = [chr(c) for c in range(0x80)] + ["é", "\u2028", "\u2029", "\ufeff", "\ufffe", "😀", "中", "\ud800", "\udfff"]


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(_CHARS) for _ in range(rng.randint(0, 12)))


def _float(rng: random.Random) -> float:
    pick = rng.random()
    if pick < 0.4:  # any bit pattern: every exponent, NaNs, infinities, subnormals
        return struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
    if pick < 0.7:  # the decimals a Hub payload carries
        return float(f"{rng.randint(-(10**9), 10**9)}e{rng.randint(-12, 20)}")
    return rng.choice([0.0, -0.0, 1e-4, -1e-4, 9.999999999999999e-05, 1e16, 1e-5, 1e-10, 5e-324, math.inf, math.nan])


def _int(rng: random.Random) -> int:
    bound = rng.choice([10, 2**31, 2**63, 2**64, 2**70])
    return rng.randint(-bound, bound) + rng.choice([0, 0, 0, -1, 1])


def _value(rng: random.Random, depth: int) -> Any:
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return _text(rng)
    if kind == 1:
        return _int(rng)
    if kind == 2:
        return _float(rng)
    if kind == 3:
        return rng.choice([True, False, None])
    if kind == 4:
        return rng.choice(["", "a", [], {}])
    if kind in (5, 6):
        return {_text(rng): _value(rng, depth + 1) for _ in range(rng.randint(0, 5))}
    return [_value(rng, depth + 1) for _ in range(rng.randint(0, 5))]


def test_random_json_values_render_as_before() -> None:
    rng = random.Random(20241214)
    fast = 0
    for _ in range(2500):
        payload = {_text(rng): _value(rng, 0) for _ in range(rng.randint(1, 6))}
        assert_same(payload)
        fast += _prints_alike(payload)
    assert 200 < fast < 2300  # both paths taken


def test_every_float_form_renders_as_before() -> None:
    rng = random.Random(7)
    for _ in range(20000):
        assert_same({"x": [_float(rng)]})
    for exponent in range(-330, 310):  # every decimal exponent, at and around the powers of ten
        power = float(f"1e{exponent}")
        for value in (power, math.nextafter(power, 0), float(f"1.5e{exponent}")):
            assert_same({"v": value, "n": -value})


class _Color(enum.Enum):
    RED = 1


class _Level(enum.IntEnum):
    HIGH = 3


class _Text(str):
    pass


@pytest.mark.parametrize(
    "payload",
    [
        {"lone": "\ud83d", "ok": "😀"},  # invalid Unicode: the ASCII fallback, escaped=True
        {"big": 2**64, "small": -(2**63) - 1, "edge": [2**64 - 1, -(2**63)]},
        {"nan": math.nan, "inf": -math.inf},
        {"tiny": 1.5e-05, "tinier": 1e-7},
        {"tuple": (1, [2, (3,)])},
        {1: "int key", False: "bool key", None: "null key", 2.5: "float key"},
        {"enum": _Level.HIGH, "text": _Text("sub")},
        {"when": datetime.datetime(2024, 1, 1)},  # not JSON: json.dumps's TypeError
        {"enum": _Color.RED},
        {"deep": json.loads("[" * 300 + "]" * 300)},
        {"escapes": '"\\/\b\f\n\r\t\x00\x1f\x7f\u2028'},
        {},
    ],
)
def test_edge_values_render_as_before(payload: dict[Any, Any]) -> None:
    assert_same(payload)


def test_a_self_referencing_payload_fails_as_before() -> None:
    payload: dict[str, Any] = {"id": "a/b"}
    payload["self"] = [payload]
    assert outcome(render_metadata, payload) == ("raised", ValueError) == outcome(seed_format, payload)
