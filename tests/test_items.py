"""hfscraper.items: from_api / to_api round trips, field mapping, dates.

hypothesis is not installed, so the round-trip property is checked on recorded Hub JSON plus a few
hundred payloads from a seeded generator (varied keys, order, nesting, Unicode, nulls, odd dates).
"""

from __future__ import annotations

import dataclasses
import doctest
import json
import pickle
import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from itemadapter import ItemAdapter

from hfscraper import items as items_module
from hfscraper.items import (
    DatasetItem,
    HubEntityItem,
    ModelItem,
    SpaceItem,
    format_hub_datetime,
    item_class_for,
    parse_hub_datetime,
)
from tests.support.fixtures import entities_in

ITEM_CLASSES: list[type[HubEntityItem]] = [ModelItem, DatasetItem, SpaceItem]


def dumps(value: Any) -> str:
    """Byte-exact comparison: same keys, same order, same values and types."""
    return json.dumps(value, ensure_ascii=False, indent=2)


def assert_round_trip(cls: type[HubEntityItem], payload: dict[str, Any]) -> HubEntityItem:
    item = cls.from_api(json.loads(json.dumps(payload)))
    out = item.to_api()
    assert out == payload
    assert list(out) == list(payload)
    assert dumps(out) == dumps(payload)
    # and again from the output (idempotent)
    assert dumps(cls.from_api(json.loads(json.dumps(out))).to_api()) == dumps(payload)
    # An untouched item gives back a copy of the JSON it was built from: the same as building it from the fields.
    rebuilt = cls.from_api(json.loads(json.dumps(payload)))
    rebuilt.__dict__["_api_source"] = None
    assert dumps(rebuilt.to_api()) == dumps(out)
    return item


def test_to_api_follows_every_change_after_a_first_call() -> None:
    payload = {"_id": "1", "id": "a/b", "sha": "x", "lastModified": "2024-02-19T10:57:45.000Z", "likes": 1, "k": 1}
    item = ModelItem.from_api(dict(payload))
    first = item.to_api()
    first["likes"] = 99  # the caller's copy: the item does not change
    assert item.to_api() == payload
    item.sha = "y"
    assert item.to_api()["sha"] == "y"
    item = ModelItem.from_api(dict(payload))
    item.to_api()
    ItemAdapter(item)["likes"] = 5
    assert item.to_api()["likes"] == 5
    item = ModelItem.from_api(dict(payload))
    item.to_api()
    item.set_api_value("baseModels", {"models": []})
    assert item.to_api()["baseModels"] == {"models": []} and list(item.to_api())[-1] == "baseModels"
    item = ModelItem.from_api(dict(payload))
    item.to_api()
    item.files = [{"path": "README.md"}]  # not Hub JSON: the JSON stays the source's
    assert item.to_api() == payload


def test_doctests() -> None:
    assert doctest.testmod(items_module).failed == 0


# -- recorded Hub JSON --------------------------------------------------------------------------------------


def _recorded(hub_fixtures: Path) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(hub_fixtures.rglob("*.json")):
        for entity in entities_in(json.loads(path.read_text(encoding="utf-8")), require=("_id",)):
            found.append((path.name, entity))
    return found


def test_recorded_entities_round_trip(hub_fixtures: Path) -> None:
    recorded = _recorded(hub_fixtures)
    assert len(recorded) >= 40
    for name, payload in recorded:
        kind = ModelItem if "/spaces/" not in name and "dataset" not in name else DatasetItem
        for cls in (kind, *ITEM_CLASSES):
            assert_round_trip(cls, payload)


def test_recorded_model_fields(hub_fixtures: Path) -> None:
    path = hub_fixtures / "huggingface_hub_cassettes" / "api_models_gpt2.json"
    payload = json.loads(path.read_text())["response"]["body_json"]
    item = assert_round_trip(ModelItem, payload)
    assert isinstance(item, ModelItem)
    assert item.id == "gpt2" and item.mongo_id == "621ffdc036468d709f17434d"
    assert item.author == "openai-community" and item.model_id == "gpt2"
    assert item.last_modified == datetime(2024, 2, 19, 10, 57, 45, tzinfo=UTC)
    assert item.created_at == datetime(2022, 3, 2, 23, 29, 4, tzinfo=UTC)
    assert item.created_at.tzinfo is not None
    assert item.gated is False and item.disabled is False and item.private is False
    assert item.pipeline_tag == "text-generation" and item.library_name == "transformers"
    assert item.model_index is None and "model-index" in item.to_api()
    assert item.safetensors == {"parameters": {"F32": 137022720}, "total": 137022720}
    assert item.used_storage == 13632917530 and item.inference == "warm"
    assert item.siblings and item.siblings[0] == {"rfilename": ".gitattributes"}
    assert item.card_data == {"language": "en", "tags": ["exbert"], "license": "mit"}
    assert item.extra == {}


def test_recorded_dataset_fields(hub_fixtures: Path) -> None:
    path = hub_fixtures / "third_party_captures" / "dataset_info_hendrycks_competition_math_disabled.json"
    payload = json.loads(path.read_text())["response"]["body_json"]
    item = assert_round_trip(DatasetItem, payload)
    assert isinstance(item, DatasetItem)
    assert item.disabled is True and item.citation and item.citation.startswith("@article")
    assert item.description and "MATH" in item.description


def test_recorded_space_fields(hub_fixtures: Path) -> None:
    path = (
        hub_fixtures
        / "huggingface_hub_cassettes"
        / "api_spaces_user_tmp_test_space_revision_main_expand_xetEnabled.json"
    )
    payload = json.loads(path.read_text())["response"]["body_json"]
    item = assert_round_trip(SpaceItem, payload)
    assert not hasattr(item, "xet_enabled")  # not a space field: kept in extra
    assert item.extra.get("xetEnabled") == payload.get("xetEnabled")


# -- generated payloads ---------------------------------------------------------------------------------------

_KEYS = {
    ModelItem: ["_id", "id", "author", "sha", "lastModified", "createdAt", "private", "gated", "disabled",
                "downloads", "downloadsAllTime", "likes", "trendingScore", "tags", "pipeline_tag",
                "library_name", "cardData", "siblings", "spaces", "safetensors", "config", "gguf", "modelId",
                "model-index", "widgetData", "transformersInfo", "inference", "usedStorage", "baseModels",
                "childrenModelCount", "mask_token", "evalResults", "inferenceProviderMapping"],
    DatasetItem: ["_id", "id", "author", "sha", "lastModified", "createdAt", "private", "gated", "disabled",
                  "downloads", "downloadsAllTime", "likes", "trendingScore", "tags", "cardData", "siblings",
                  "description", "citation", "paperswithcode_id", "mainSize", "usedStorage"],
    SpaceItem: ["_id", "id", "author", "sha", "lastModified", "createdAt", "private", "disabled", "likes",
                "trendingScore", "tags", "cardData", "siblings", "sdk", "runtime", "subdomain", "host", "models",
                "datasets", "region"],
}  # fmt: skip
_UNKNOWN_KEYS = [
    "xetEnabled",
    "securityStatus",
    "newFieldFrom2027",
    "last_modified",
    "extra",
    "mongo_id",
    "ID",
    "",
    "ключ",
    "😀",
]
_TEXT = [
    "",
    "a",
    "gpt2",
    "ünïcödé",
    "e\u0301",
    "\u202ertl",
    "line\nbreak",
    "tab\t",
    'quote"back\\slash',
    "😀" * 3,
    "\u0000nul",
]


def _date(rng: random.Random) -> Any:
    base = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(
        seconds=rng.randrange(0, 10**9), milliseconds=rng.randrange(1000)
    )
    choice = rng.randrange(10)
    if choice < 6:
        return format_hub_datetime(base)  # the Hub's form, any millisecond value
    return rng.choice(
        [
            "2022-03-02T23:29:04.000Z",
            base.strftime("%Y-%m-%dT%H:%M:%SZ"),  # no milliseconds
            base.isoformat(),  # +00:00 and microseconds
            base.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z",  # 6 digits
            "2024-02-19T12:57:45.000+02:00",
            "not a date",
            None,
            1700000000,
            "",
            "2024-02-30T00:00:00.000Z",
        ]
    )


def _json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.randrange(-(10**12), 10**12)
    if kind == 3:
        return rng.choice([0.0, 1.5, -2.25, 1e300, 3.0])
    if kind in (4, 5):
        return rng.choice(_TEXT)
    if kind in (6, 7):
        return [_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = rng.sample(_TEXT + ["base_model", "license", "rfilename", "x"], rng.randrange(4))
    return {k: _json(rng, depth + 1) for k in keys}


def _payload(cls: type[HubEntityItem], seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    keys = [k for k in _KEYS[cls] if k != "id" and rng.random() < 0.6]
    keys += rng.sample(_UNKNOWN_KEYS, rng.randrange(3))
    keys.insert(rng.randrange(len(keys) + 1), "id")
    rng.shuffle(keys) if rng.random() < 0.5 else None
    payload: dict[str, Any] = {}
    for key in keys:
        if key == "id":
            payload[key] = rng.choice(["gpt2", "org/model", "../x", "é/ü", "a" * 300])
        elif key in ("lastModified", "createdAt"):
            payload[key] = _date(rng)
        elif key == "gated":
            payload[key] = rng.choice([False, "auto", "manual", None])
        else:
            payload[key] = _json(rng)
    return payload


@pytest.mark.parametrize("seed", range(400))
def test_generated_payloads_round_trip(seed: int) -> None:
    cls = ITEM_CLASSES[seed % 3]
    assert_round_trip(cls, _payload(cls, seed))
    # any class accepts any payload: unknown keys go to extra
    assert_round_trip(ITEM_CLASSES[(seed + 1) % 3], _payload(cls, seed))


# -- dates ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["2024-02-19T10:57:45.000Z", "2022-03-02T23:29:04.000Z", "2026-09-08T22:20:58.120Z", "2000-01-01T00:00:00.999Z",
     "2024-02-29T23:59:59.001Z", "0999-12-31T23:59:59.050Z"],
)  # fmt: skip
def test_millisecond_format_round_trips(text: str) -> None:
    parsed = parse_hub_datetime(text)
    assert parsed is not None and parsed.tzinfo is not None and parsed.utcoffset() == timedelta(0)
    assert format_hub_datetime(parsed) == text


def test_dates_are_aware_utc() -> None:
    item = ModelItem.from_api(
        {"id": "a", "lastModified": "2024-02-19T12:57:45.000+02:00", "createdAt": "2024-01-01T00:00:00Z"}
    )
    assert item.last_modified == datetime(2024, 2, 19, 10, 57, 45, tzinfo=UTC)
    assert item.created_at == datetime(2024, 1, 1, tzinfo=UTC)
    # the original text comes back while the value is untouched ...
    assert item.to_api()["lastModified"] == "2024-02-19T12:57:45.000+02:00"
    assert item.to_api()["createdAt"] == "2024-01-01T00:00:00Z"
    # ... and the Hub's form once it changes
    item.created_at = datetime(2025, 5, 6, 7, 8, 9, 10_000, tzinfo=UTC)
    assert item.to_api()["createdAt"] == "2025-05-06T07:08:09.010Z"


def test_unparseable_date_is_none_but_kept() -> None:
    item = DatasetItem.from_api({"id": "a", "createdAt": "soon", "lastModified": None})
    assert item.created_at is None and item.last_modified is None
    assert item.to_api() == {"id": "a", "createdAt": "soon", "lastModified": None}


def test_naive_datetime_is_taken_as_utc() -> None:
    assert format_hub_datetime(datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02T03:04:05.000Z"


# -- mapping and bookkeeping ------------------------------------------------------------------------------------


def test_camel_case_mapping() -> None:
    item = ModelItem.from_api(
        {"_id": "x", "id": "o/m", "downloadsAllTime": 5, "trendingScore": 1.5, "cardData": {}, "model-index": [],
         "widgetData": [], "transformersInfo": {}, "baseModels": {"relation": "finetune", "models": []},
         "childrenModelCount": 3, "inferenceProviderMapping": [], "usedStorage": 9, "modelId": "o/m"}
    )  # fmt: skip
    assert (item.mongo_id, item.downloads_all_time, item.trending_score) == ("x", 5, 1.5)
    assert (item.card_data, item.model_index, item.widget_data, item.transformers_info) == ({}, [], [], {})
    assert item.base_models == {"relation": "finetune", "models": []} and item.children_model_count == 3
    assert item.used_storage == 9 and item.model_id == "o/m" and item.extra == {}


def test_unknown_keys_go_to_extra_in_order() -> None:
    payload = {"zeta": 1, "id": "a", "alpha": {"b": 2}, "likes": 3, "last_modified": "x"}
    item = SpaceItem.from_api(payload)
    assert item.extra == {"zeta": 1, "alpha": {"b": 2}, "last_modified": "x"}
    assert list(item.extra) == ["zeta", "alpha", "last_modified"]
    assert list(item.to_api()) == list(payload)


def test_absent_stays_absent_null_stays_null() -> None:
    item = ModelItem.from_api({"id": "a", "pipeline_tag": None})
    assert item.to_api() == {"id": "a", "pipeline_tag": None}
    assert "library_name" not in item.to_api()


def test_fields_set_later_are_appended() -> None:
    item = ModelItem.from_api({"id": "a", "likes": 1})
    item.set_api_value("baseModels", {"relation": "adapter", "models": [{"_id": "1", "id": "b"}]})
    item.set_api_value("newKey", [1])
    item.set_api_value("createdAt", "2024-01-01T00:00:00.000Z")
    assert list(item.to_api()) == ["id", "likes", "baseModels", "newKey", "createdAt"]
    assert item.created_at == datetime(2024, 1, 1, tzinfo=UTC)
    item.likes = 7
    assert item.to_api()["likes"] == 7


def test_items_built_by_hand() -> None:
    item = DatasetItem(id="o/d", likes=1, created_at=datetime(2024, 1, 1, tzinfo=UTC), extra={"k": 1})
    assert item.to_api() == {"id": "o/d", "createdAt": "2024-01-01T00:00:00.000Z", "likes": 1, "k": 1}


def test_item_adapter_sees_fields_only() -> None:
    item = ModelItem.from_api({"id": "a", "_id": "b", "newKey": 1})
    adapter = ItemAdapter(item)
    assert adapter["id"] == "a" and adapter["mongo_id"] == "b" and adapter["extra"] == {"newKey": 1}
    assert "_api_order" not in adapter.field_names()
    assert {f.name for f in dataclasses.fields(item)} == set(adapter.field_names())


def test_pickle_keeps_order() -> None:
    payload = {"likes": 1, "id": "a", "createdAt": "2024-01-01T00:00:00Z", "x": 2}
    item = pickle.loads(pickle.dumps(ModelItem.from_api(payload)))
    assert dumps(item.to_api()) == dumps(payload)


@pytest.mark.parametrize("payload", [[], "x", None, {"_id": "a"}, {"id": 5}, {"id": None}])
def test_bad_payloads(payload: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        ModelItem.from_api(payload)


def test_every_class_maps_every_documented_listing_key() -> None:
    from hfscraper.constants import EXPAND_PROPERTIES

    for repo_type, values in EXPAND_PROPERTIES.items():
        cls = item_class_for(repo_type)
        missing = set(values) - set(cls.api_keys())
        assert not missing, (cls.__name__, missing)
    assert {"_id", "id", "modelId"} <= set(ModelItem.api_keys())


# -- from_api's direct construction ----------------------------------------------------------------------------


@dataclasses.dataclass(kw_only=True)
class _InitModel(ModelItem):
    """Built through `__init__` (a class of another module): what `from_api` makes directly for this module's."""


@dataclasses.dataclass(kw_only=True)
class _InitDataset(DatasetItem):
    pass


@dataclasses.dataclass(kw_only=True)
class _InitSpace(SpaceItem):
    pass


@dataclasses.dataclass(kw_only=True)
class _CountingModel(ModelItem):
    notes: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.notes.append("post_init ran")


def test_from_api_builds_the_item_init_builds(hub_fixtures: Path) -> None:
    payloads = [payload for _, payload in _recorded(hub_fixtures)]
    payloads += [{"id": "a/b"}, {"id": "a/b", "lastModified": "yesterday", "createdAt": None, "newKey": [1]}]
    for payload in payloads:
        for direct_cls, init_cls in ((ModelItem, _InitModel), (DatasetItem, _InitDataset), (SpaceItem, _InitSpace)):
            direct, built = direct_cls.from_api(payload), init_cls.from_api(payload)
            assert vars(direct) == vars(built)
            assert ItemAdapter(direct).asdict() == ItemAdapter(built).asdict()
            assert direct.to_api() == built.to_api() == payload
            assert direct._pending_stages is not built._pending_stages and direct.extra is not built.extra
            # Setting a field afterwards behaves the same way (the copy of the source is dropped).
            direct.likes = built.likes = 7
            assert vars(direct) == vars(built) and direct.to_api() == built.to_api()
    first, second = ModelItem.from_api({"id": "a/b"}), ModelItem.from_api({"id": "a/c"})
    first._pending_stages.add("files")
    first.extra["x"] = 1
    assert second._pending_stages == set() and second.extra == {}


def test_from_api_runs_a_subclass_post_init() -> None:
    item = _CountingModel.from_api({"id": "a/b", "likes": 3})
    assert item.notes == ["post_init ran"] and item.likes == 3 and item.to_api() == {"id": "a/b", "likes": 3}


def test_format_hub_datetime_gives_the_same_text_from_its_cache() -> None:
    rng = random.Random(3)
    offsets = [UTC, *(timezone(timedelta(minutes=m)) for m in (-720, -90, 0, 45, 330, 840))]
    values = []
    for _ in range(3000):
        instant = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(microseconds=rng.randrange(10**16))
        values.append(instant.astimezone(rng.choice(offsets)))
        values.append(instant.replace(tzinfo=None))  # naive: taken as UTC
    expected = [_reference_format(v) for v in values]
    items_module._FORMATTED.clear()
    assert [format_hub_datetime(v) for v in values] == expected  # first look
    assert [format_hub_datetime(v) for v in values] == expected  # from the cache
    assert [format_hub_datetime(v) for v in reversed(values)] == expected[::-1]
    assert len(items_module._FORMATTED) <= items_module._FORMATTED_MAX


def _reference_format(value: datetime) -> str:
    """format_hub_datetime's formula, computed afresh."""
    v = (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).astimezone(UTC)
    day = f"{v.year:04d}-{v.month:02d}-{v.day:02d}"
    return f"{day}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond // 1000:03d}Z"
