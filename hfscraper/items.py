"""Hub entities as Scrapy items: `ModelItem`, `DatasetItem`, `SpaceItem`.

Each is a `@dataclass` with snake_case fields for the keys the Hub documents, plus `extra` for any key it
does not know. `from_api(payload)` takes one entity as the Hub's JSON returns it (a listing element or a
`/api/<type>s/{id}` body); `to_api()` gives that JSON back unchanged: the same keys in the same order with
the same values, dates in the Hub's `2024-02-19T10:57:45.000Z` form. That is what `metadata.json` holds.

Round-trip rules:
- key order is remembered by `from_api`; keys set afterwards (known fields that are not None, new `extra`
  keys) come after the remembered ones;
- a key that was present with `null` stays present with `null`; a field that was absent and is still None
  stays absent;
- `lastModified`/`createdAt` become timezone-aware `datetime`s; the original text is emitted again as long
  as the field was not changed (so an unusual form, or text that is not a date at all, in which case the
  field is None, survives); a changed date is written in the Hub's millisecond form;
- nested values (lists, dicts) are kept as they are, not copied: the item owns the payload it was built from.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any, ClassVar, Self

from hfscraper.constants import REPO_TYPE_DATASET, REPO_TYPE_MODEL, REPO_TYPE_SPACE

__all__ = [
    "DatasetItem",
    "HubEntityItem",
    "ModelItem",
    "SpaceItem",
    "format_hub_datetime",
    "item_class_for",
    "parse_hub_datetime",
]

_MISSING = object()


def parse_hub_datetime(value: object) -> datetime | None:
    """Parse the Hub's ISO 8601 timestamps into an aware UTC datetime; None for anything else.

    >>> parse_hub_datetime("2024-02-19T10:57:45.000Z")
    datetime.datetime(2024, 2, 19, 10, 57, 45, tzinfo=datetime.timezone.utc)
    >>> parse_hub_datetime("yesterday") is None
    True
    """
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_hub_datetime(value: datetime) -> str:
    """Format like the Hub: UTC, milliseconds, `Z` (a naive datetime is taken as UTC).

    >>> format_hub_datetime(datetime(2022, 3, 2, 23, 29, 4, 120999, tzinfo=UTC))
    '2022-03-02T23:29:04.120Z'
    """
    text = _FORMATTED.get(value)
    if text is not None:
        return text
    v = (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).astimezone(UTC)
    text = (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
        f".{v.microsecond // 1000:03d}Z"
    )
    if len(_FORMATTED) >= _FORMATTED_MAX:
        _FORMATTED.clear()
    _FORMATTED[value] = text
    return text


#: Dates formatted lately: a crawl formats each entity's `lastModified` three times (`hfscraper.state.item_version`,
#: for the page's checkpoint, deltafetch and the entity's record). Keyed by the datetime, whose equality is the
#: instant (aware ones; naive ones, taken as UTC, never equal an aware one), which is all the text depends on.
_FORMATTED: dict[datetime, str] = {}
_FORMATTED_MAX = 1 << 14


def _api(name: str | None = None, *, date: bool = False) -> Any:
    """A field that maps to the Hub key *name* (default: the field's own name)."""
    return field(default=None, metadata={"api": name, "date": date})


@dataclass(frozen=True)
class _FieldMap:
    api_to_attr: dict[str, str]
    attr_to_api: dict[str, str]
    dates: frozenset[str]  # API keys holding dates
    # Every field's default but `extra`'s (a new dict each time), for `from_api` to fill an item's attributes directly;
    # None for a class whose `__init__` or `__post_init__` may do more than this module's do.
    defaults: dict[str, Any] | None


@dataclass(kw_only=True)
class HubEntityItem:
    """One Hub repository, as the Hub's API describes it. Subclasses add the fields of one type.

    Attributes:
        id: the repository id (`owner/name`, or `name` for legacy repositories).
        mongo_id: the Hub's internal object id (`_id`).
        author: the owner's namespace.
        sha: the commit of the main branch.
        last_modified: the last commit's time (`lastModified`), aware, UTC.
        created_at: the creation time (`createdAt`), aware, UTC. `2022-03-02T23:29:04.000Z` for every
            repository created before the Hub stored creation dates.
        private: always False in an anonymous crawl.
        gated: `False`, `"auto"` or `"manual"` (models, datasets).
        disabled: True when the Hub has disabled the repository.
        downloads: downloads over the last 30 days (models, datasets).
        downloads_all_time: all downloads (`downloadsAllTime`).
        likes: number of likes.
        trending_score: the Hub's trending score (`trendingScore`).
        tags: the Hub's tags, including computed ones (`base_model:...`, `dataset:...`, `license:...`).
        card_data: the README's YAML header as JSON (`cardData`).
        siblings: the files of the main branch, `[{"rfilename": ...}, ...]`.
        used_storage: bytes used, all revisions (`usedStorage`, single-entity calls only).
        resource_group: the organisation's resource group (`resourceGroup`).
        extra: every key of the Hub's JSON that has no field here, in the Hub's order.
        files: not Hub JSON (never in `to_api()`): what the files stage did with each chosen file,
            `[{"path", "size", "sha256", "blob_sha1", "lfs", "status", "reason"}, ...]`
            (`hfscraper.pipelines.files`); None when that stage did not run.
    """

    repo_type: ClassVar[str] = ""

    id: str
    mongo_id: str | None = _api("_id")
    author: str | None = _api()
    sha: str | None = _api()
    last_modified: datetime | None = _api("lastModified", date=True)
    created_at: datetime | None = _api("createdAt", date=True)
    private: bool | None = _api()
    gated: bool | str | None = _api()
    disabled: bool | None = _api()
    downloads: int | None = _api()
    downloads_all_time: int | None = _api("downloadsAllTime")
    likes: int | None = _api()
    trending_score: float | None = _api("trendingScore")
    tags: list[str] | None = _api()
    card_data: dict[str, Any] | None = _api("cardData")
    siblings: list[dict[str, Any]] | None = _api()
    used_storage: int | None = _api("usedStorage")
    resource_group: dict[str, Any] | None = _api("resourceGroup")
    extra: dict[str, Any] = field(default_factory=dict, metadata={"api": None, "extra": True})
    files: list[dict[str, Any]] | None = field(default=None, metadata={"api": None, "crawl": True})

    def __post_init__(self) -> None:
        # Bookkeeping for to_api(), kept out of the dataclass fields so ItemAdapter and exporters never see it.
        self._api_order: list[str] = []
        self._api_raw: dict[str, tuple[Any, Any]] = {}
        # The Hub's JSON this item was built from, while no field was set since: to_api() is then a copy of it
        # (the same keys, order and values), without a walk over every field for each of millions of entities.
        self._api_source: dict[str, Any] | None = None
        # Crawl bookkeeping, never part of the Hub JSON: (cursor chain id, listing page number) of the page
        # that listed this entity (see hfscraper.extensions.checkpoint).
        self._crawl_page: tuple[str, int] | None = None
        # Stages a pipeline left unfinished without failing the entity (a preview the viewer could not give yet):
        # not recorded as complete, so the next crawl processes the entity again.
        self._pending_stages: set[str] = set()
        # This crawl already wrote the entity's feed row (it is processed again only to finish a pending stage): no
        # feed gets a second row for it.
        self._in_feed: bool = False

    # -- mapping ------------------------------------------------------------------------------------------

    @classmethod
    def _field_map(cls) -> _FieldMap:
        return _field_map_of(cls)

    @classmethod
    def api_keys(cls) -> tuple[str, ...]:
        """The Hub keys that have a field of their own, in field order."""
        return tuple(cls._field_map().attr_to_api.values())

    # -- conversion -----------------------------------------------------------------------------------------

    @classmethod
    def from_api(cls, payload: dict[str, Any]) -> Self:
        """Build an item from the Hub's JSON for one entity (see the module docstring for the rules).

        Raises TypeError when *payload* is not a dict and ValueError when it has no string `id`.
        """
        if not isinstance(payload, dict):
            raise TypeError(f"a Hub entity is a JSON object, not {type(payload).__name__}")
        if not isinstance(payload.get("id"), str):
            raise ValueError("a Hub entity needs a string 'id'")
        fmap = cls._field_map()
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        raw: dict[str, tuple[Any, Any]] = {}
        for key, value in payload.items():
            attr = fmap.api_to_attr.get(key)
            if attr is None:
                extra[key] = value
            elif key in fmap.dates:
                # Keep the text: to_api() gives it back unchanged (and unformatted) while the value is.
                parsed = parse_hub_datetime(value)
                kwargs[attr] = parsed
                raw[key] = (parsed, value)
            else:
                kwargs[attr] = value
        if fmap.defaults is None:
            item = cls(**kwargs, extra=extra)
            item._api_order = list(payload)
            item._api_raw = raw
            item._api_source = payload
            return item
        # What `cls(**kwargs, extra=extra)` and the three lines above make, without one __setattr__ call per field (a
        # third of this method's time, for every entity of a crawl).
        item = object.__new__(cls)
        values = item.__dict__
        values.update(fmap.defaults)
        values.update(kwargs)
        values["extra"] = extra
        values.update(_api_order=list(payload), _api_raw=raw, _api_source=payload, **_BOOKKEEPING)
        values["_pending_stages"] = set()
        return item

    def __setattr__(self, name: str, value: Any) -> None:
        if name[0] != "_" and name != "files":  # `files` and the bookkeeping are never Hub JSON
            self.__dict__["_api_source"] = None  # a field changed: to_api() builds the JSON from the fields again
        object.__setattr__(self, name, value)

    def _api_value(self, key: str, fmap: _FieldMap) -> Any:
        attr = fmap.api_to_attr.get(key)
        if attr is None:
            return self.extra.get(key, _MISSING)
        value = getattr(self, attr)
        if key in self._api_raw:
            parsed, original = self._api_raw[key]
            if value is parsed or (value is not None and parsed is not None and value == parsed):
                return original
        if key in fmap.dates and isinstance(value, datetime):
            return format_hub_datetime(value)
        return value

    def to_api(self) -> dict[str, Any]:
        """The Hub's JSON for this entity (see the module docstring for the rules)."""
        source = self.__dict__.get("_api_source")
        if source is not None:
            return dict(source)
        fmap = self._field_map()
        out: dict[str, Any] = {}
        for key in self._api_order:
            value = self._api_value(key, fmap)
            if value is not _MISSING:
                out[key] = value
        values = self.__dict__
        for attr, key in fmap.attr_to_api.items():
            if values[attr] is not None and key not in out:
                out[key] = self._api_value(key, fmap)
        for key, value in self.extra.items():
            if key not in out:
                out[key] = value
        return out

    def set_api_value(self, key: str, value: Any) -> None:
        """Set one Hub key (a field, or `extra` for unknown keys), keeping the key order of `to_api()`.

        Dates may be given as the Hub's text or as datetimes.
        """
        fmap = self._field_map()
        attr = fmap.api_to_attr.get(key)
        self._api_source = None
        if attr is None:
            self.extra[key] = value
        elif key in fmap.dates and not isinstance(value, datetime | None):
            parsed = parse_hub_datetime(value)
            setattr(self, attr, parsed)
            self._api_raw[key] = (parsed, value)
        else:
            setattr(self, attr, value)
            self._api_raw.pop(key, None)
        if key not in self._api_order:
            self._api_order.append(key)


#: The bookkeeping `__post_init__` starts an item with, but the three `from_api` sets and `_pending_stages` (a new set
#: each time). tests/test_items.py checks that an item `from_api` builds directly is the one `__init__` builds.
_BOOKKEEPING: dict[str, Any] = {"_crawl_page": None, "_in_feed": False}


@cache
def _field_map_of(cls: type[HubEntityItem]) -> _FieldMap:
    api_to_attr: dict[str, str] = {}
    attr_to_api: dict[str, str] = {}
    dates: set[str] = set()
    for f in dataclasses.fields(cls):
        if f.metadata.get("extra") or f.metadata.get("crawl"):
            continue
        key = f.metadata.get("api") or f.name
        api_to_attr[key] = f.name
        attr_to_api[f.name] = key
        if f.metadata.get("date"):
            dates.add(key)
    defaults: dict[str, Any] | None = None
    if cls.__module__ == __name__:  # this module's classes: the generated __init__ and HubEntityItem's __post_init__
        defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    return _FieldMap(api_to_attr, attr_to_api, frozenset(dates), defaults)


@dataclass(kw_only=True)
class ModelItem(HubEntityItem):
    """A model repository (`/api/models`).

    Attributes:
        model_id: legacy duplicate of `id` (`modelId`), only in default (non-expanded) answers.
        pipeline_tag: the task (`text-generation`, ...).
        library_name: the library (`transformers`, `gguf`, ...).
        mask_token: the fill-mask token.
        widget_data: inference widget examples (`widgetData`).
        model_index: evaluation results from the card (`model-index`).
        config: a summary of config.json (`architectures`, `model_type`, `tokenizer_config`, ...).
        transformers_info: auto class and processor (`transformersInfo`).
        spaces: ids of the Spaces that use this model.
        safetensors: parameter counts per dtype and in total.
        gguf: GGUF metadata (architecture, context length, total size).
        inference: inference status (`warm`, ...).
        inference_provider_mapping: providers serving the model (`inferenceProviderMapping`).
        eval_results: evaluation results (`evalResults`).
        base_models: the model tree entry `{"relation": ..., "models": [{"_id", "id"}, ...]}` (`baseModels`,
            single-entity calls only).
        children_model_count: number of models derived from this one (`childrenModelCount`).
        security_repo_status: security scan summary (`securityRepoStatus`).
        xet_enabled: whether the repository stores files with Xet (`xetEnabled`, no longer expandable).
    """

    repo_type: ClassVar[str] = REPO_TYPE_MODEL

    model_id: str | None = _api("modelId")
    pipeline_tag: str | None = _api()
    library_name: str | None = _api()
    mask_token: str | None = _api()
    widget_data: Any = _api("widgetData")
    model_index: Any = _api("model-index")
    config: dict[str, Any] | None = _api()
    transformers_info: dict[str, Any] | None = _api("transformersInfo")
    spaces: list[str] | None = _api()
    safetensors: dict[str, Any] | None = _api()
    gguf: dict[str, Any] | None = _api()
    inference: str | None = _api()
    inference_provider_mapping: Any = _api("inferenceProviderMapping")
    eval_results: Any = _api("evalResults")
    base_models: dict[str, Any] | None = _api("baseModels")
    children_model_count: int | None = _api("childrenModelCount")
    security_repo_status: dict[str, Any] | None = _api("securityRepoStatus")
    xet_enabled: bool | None = _api("xetEnabled")


@dataclass(kw_only=True)
class DatasetItem(HubEntityItem):
    """A dataset repository (`/api/datasets`).

    Attributes:
        description: the dataset's description (from its card or loading script).
        citation: the BibTeX citation.
        paperswithcode_id: the Papers with Code id.
        main_size: size information of the main revision (`mainSize`).
    """

    repo_type: ClassVar[str] = REPO_TYPE_DATASET

    description: str | None = _api()
    citation: str | None = _api()
    paperswithcode_id: str | None = _api()
    main_size: Any = _api("mainSize")


@dataclass(kw_only=True)
class SpaceItem(HubEntityItem):
    """A Space (`/api/spaces`).

    Attributes:
        sdk: `gradio`, `docker`, `static` or `streamlit`.
        runtime: stage, hardware, storage and replicas of the running app.
        subdomain: the app's `*.hf.space` subdomain.
        host: the app's URL.
        models: ids of the models the Space uses.
        datasets: ids of the datasets the Space uses.
        region: the region the app runs in.
    """

    repo_type: ClassVar[str] = REPO_TYPE_SPACE

    sdk: str | None = _api()
    runtime: dict[str, Any] | None = _api()
    subdomain: str | None = _api()
    host: str | None = _api()
    models: list[str] | None = _api()
    datasets: list[str] | None = _api()
    region: str | None = _api()


_ITEM_CLASSES: dict[str, type[HubEntityItem]] = {
    REPO_TYPE_MODEL: ModelItem,
    REPO_TYPE_DATASET: DatasetItem,
    REPO_TYPE_SPACE: SpaceItem,
}


def item_class_for(repo_type: str) -> type[HubEntityItem]:
    """The item class of a repository type (`model`, `dataset`, `space`)."""
    return _ITEM_CLASSES[repo_type]
