"""The declared Parquet schema of the export, and a defensive row builder from the Hub's JSON.

One schema per entity type (`MODEL_SCHEMA`, `DATASET_SCHEMA`, `SPACE_SCHEMA`) and one for all entities
(`ALL_SCHEMA`: a `type` column first, then the union of the three). A per-type schema is the all-entities schema
without `type` and without the other types' own columns, in the same order. Nothing is ever inferred:

- Hub lists of ids or tags are `list<string>`; `siblings` is `list<struct<path, size, sha256>>` (size and sha256
  null where neither the Hub's JSON nor the files stage knows them);
- `last_modified`, `created_at` and the crawl's own times are `timestamp('ms', tz='UTC')`; counts are `int64`;
- free-form objects (`cardData`, `config`, `safetensors`, `runtime`, ...) are JSON text, their shape being arbitrary
  and untrusted; `license`, `languages`, `base_models`, `datasets`, `pipeline_tag` and `library_name` are promoted
  to columns of their own;
- keys of the Hub's JSON that the schema does not know go, as a JSON object, into `extra` (never a crash);
- `deleted`, `deleted_at` and `crawled_at` are the crawl's bookkeeping (a tombstoned entity is flagged, not lost).

`RowBuilder.row(repo_type, payload, ...)` maps one entity's JSON (`metadata.json`, `item.to_api()`) to a dict
keyed by `ALL_SCHEMA`'s names. A value of the wrong type (a string count, a list where a string belongs, a date
that is not one, NaN in a JSON object) becomes null and is counted in `RowBuilder.counts` under
`invalid/<column>`; unknown keys are counted under `extra/<key>`.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import pyarrow as pa

from hfscraper.constants import REPO_TYPE_DATASET, REPO_TYPE_MODEL, REPO_TYPE_SPACE
from hfscraper.items import parse_hub_datetime

__all__ = [
    "ALL_SCHEMA",
    "DATASET_SCHEMA",
    "MODEL_SCHEMA",
    "SCHEMAS",
    "SCHEMA_VERSION",
    "SPACE_SCHEMA",
    "TYPES",
    "RowBuilder",
    "schema_for",
]

#: Bump when a column changes; stored in every file's schema metadata.
SCHEMA_VERSION: Final = "hfscraper-export/1"
TYPES: Final = (REPO_TYPE_MODEL, REPO_TYPE_DATASET, REPO_TYPE_SPACE)

TIMESTAMP: Final = pa.timestamp("ms", tz="UTC")
# List items are named `element`, as Parquet's compliant nested types name them, so a file read back has exactly
# the declared schema.
STRINGS: Final = pa.list_(pa.field("element", pa.string()))
SIBLING: Final = pa.struct([("path", pa.string()), ("size", pa.int64()), ("sha256", pa.string())])
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

# Column kinds: how a Hub value becomes a cell.
STR, INT, FLOAT, BOOL, TS, LIST, JSON, GATED = "str", "int", "float", "bool", "ts", "list", "json", "gated"
_ARROW: Final = {
    STR: pa.string(), INT: pa.int64(), FLOAT: pa.float64(), BOOL: pa.bool_(), TS: TIMESTAMP, LIST: STRINGS,
    JSON: pa.string(), GATED: pa.string(),
}  # fmt: skip


class _Col:
    __slots__ = ("description", "key", "kind", "name", "types")

    def __init__(self, name: str, key: str | None, kind: str, types: Iterable[str], description: str) -> None:
        self.name, self.key, self.kind, self.types, self.description = name, key, kind, frozenset(types), description


_ALL3 = TYPES
_M, _D, _S = (REPO_TYPE_MODEL,), (REPO_TYPE_DATASET,), (REPO_TYPE_SPACE,)

#: Every column after `type`: (name, Hub key or None for derived ones, kind, types, description).
COLUMNS: Final[tuple[_Col, ...]] = tuple(
    _Col(*spec)
    for spec in (
        ("id", "id", STR, _ALL3, "repository id (`owner/name`)"),
        ("mongo_id", "_id", STR, _ALL3, "the Hub's internal object id (`_id`)"),
        ("author", "author", STR, _ALL3, "owner namespace"),
        ("sha", "sha", STR, _ALL3, "commit of the main branch"),
        ("last_modified", "lastModified", TS, _ALL3, "last commit time (`lastModified`)"),
        ("created_at", "createdAt", TS, _ALL3, "creation time (`createdAt`)"),
        ("private", "private", BOOL, _ALL3, "private repository"),
        ("gated", "gated", GATED, _M + _D, "`false`, `auto` or `manual`"),
        ("disabled", "disabled", BOOL, _ALL3, "disabled by the Hub"),
        ("downloads", "downloads", INT, _M + _D, "downloads over the last 30 days"),
        ("downloads_all_time", "downloadsAllTime", INT, _M + _D, "all-time downloads (`downloadsAllTime`)"),
        ("likes", "likes", INT, _ALL3, "likes"),
        ("trending_score", "trendingScore", FLOAT, _ALL3, "trending score (`trendingScore`)"),
        ("tags", "tags", LIST, _ALL3, "the Hub's tags"),
        ("license", None, STR, _ALL3, "license: `cardData.license`, else the `license:` tag"),
        ("languages", None, LIST, _ALL3, "`cardData.language` as a list"),
        ("base_models", None, LIST, _ALL3, "base model ids: `baseModels.models[].id`, else `cardData.base_model`"),
        ("datasets", None, LIST, _ALL3, "dataset ids: a space's `datasets`, else `cardData.datasets`"),
        ("pipeline_tag", "pipeline_tag", STR, _ALL3, "task: `pipeline_tag`, else `cardData.pipeline_tag`"),
        ("library_name", "library_name", STR, _ALL3, "library: `library_name`, else `cardData.library_name`"),
        ("card_data", "cardData", JSON, _ALL3, "the README's YAML header (`cardData`), JSON text"),
        ("siblings", "siblings", "siblings", _ALL3, "files of the main branch: path, size, sha256 (null if unknown)"),
        ("used_storage", "usedStorage", INT, _ALL3, "bytes used, all revisions (`usedStorage`)"),
        ("resource_group", "resourceGroup", JSON, _ALL3, "`resourceGroup`, JSON text"),
        # models
        ("model_id", "modelId", STR, _M, "legacy duplicate of `id` (`modelId`)"),
        ("mask_token", "mask_token", STR, _M, "fill-mask token"),
        ("spaces", "spaces", LIST, _M, "ids of the Spaces using the model"),
        ("safetensors_total", None, INT, _M, "parameter count (`safetensors.total`)"),
        ("safetensors", "safetensors", JSON, _M, "`safetensors`, JSON text"),
        ("gguf", "gguf", JSON, _M, "`gguf`, JSON text"),
        ("config", "config", JSON, _M, "`config`, JSON text"),
        ("transformers_info", "transformersInfo", JSON, _M, "`transformersInfo`, JSON text"),
        ("widget_data", "widgetData", JSON, _M, "`widgetData`, JSON text"),
        ("model_index", "model-index", JSON, _M, "`model-index`, JSON text"),
        ("eval_results", "evalResults", JSON, _M, "`evalResults`, JSON text"),
        ("inference", "inference", STR, _M, "inference status"),
        ("inference_provider_mapping", "inferenceProviderMapping", JSON, _M, "`inferenceProviderMapping`, JSON"),
        ("base_models_info", "baseModels", JSON, _M, "`baseModels` (relation and models), JSON text"),
        ("children_model_count", "childrenModelCount", INT, _M, "models derived from this one"),
        ("security_repo_status", "securityRepoStatus", JSON, _M, "`securityRepoStatus`, JSON text"),
        ("xet_enabled", "xetEnabled", BOOL, _M, "`xetEnabled`"),
        # datasets
        ("description", "description", STR, _D, "description"),
        ("citation", "citation", STR, _D, "BibTeX citation"),
        ("paperswithcode_id", "paperswithcode_id", STR, _D, "Papers with Code id"),
        ("main_size", "mainSize", JSON, _D, "`mainSize`, JSON text"),
        # spaces
        ("sdk", "sdk", STR, _S, "`gradio`, `docker`, `static` or `streamlit`"),
        ("runtime", "runtime", JSON, _S, "`runtime` (stage, hardware), JSON text"),
        ("subdomain", "subdomain", STR, _S, "the app's subdomain"),
        ("host", "host", STR, _S, "the app's URL"),
        ("models", "models", LIST, _S, "ids of the models the Space uses"),
        ("region", "region", STR, _S, "region the app runs in"),
        # catch-all and bookkeeping
        ("extra", None, JSON, _ALL3, "every key of the Hub's JSON without a column, as a JSON object (or null)"),
        ("deleted", None, BOOL, _ALL3, "a full sweep no longer found the entity (tombstoned)"),
        ("deleted_at", None, TS, _ALL3, "when it was tombstoned"),
        ("crawled_at", None, TS, _ALL3, "when the crawl that stored this version started"),
    )
)
_BY_NAME: Final = {c.name: c for c in COLUMNS}
_NOT_NULL: Final = frozenset({"type", "id", "deleted"})
#: Per type, the Hub keys that feed a column (directly or as the source of a promoted one); others go to `extra`.
_KNOWN_KEYS: Final[dict[str, frozenset[str]]] = {
    t: frozenset(c.key for c in COLUMNS if c.key and t in c.types) | ({"datasets"} if t == REPO_TYPE_SPACE else set())
    for t in TYPES
}


def _field(name: str, kind: str) -> pa.Field:
    arrow = pa.list_(pa.field("element", SIBLING)) if kind == "siblings" else _ARROW[kind]
    return pa.field(name, arrow, nullable=name not in _NOT_NULL)


def _schema(names: Iterable[str], repo_type: str) -> pa.Schema:
    fields = [pa.field("type", pa.string(), nullable=False)] if repo_type == "all" else []
    fields += [_field(n, _BY_NAME[n].kind) for n in names]
    return pa.schema(fields, metadata={"format": SCHEMA_VERSION, "entity_type": repo_type})


def _names_for(repo_type: str) -> list[str]:
    return [c.name for c in COLUMNS if repo_type in c.types]


ALL_SCHEMA: Final = _schema([c.name for c in COLUMNS], "all")
MODEL_SCHEMA: Final = _schema(_names_for(REPO_TYPE_MODEL), REPO_TYPE_MODEL)
DATASET_SCHEMA: Final = _schema(_names_for(REPO_TYPE_DATASET), REPO_TYPE_DATASET)
SPACE_SCHEMA: Final = _schema(_names_for(REPO_TYPE_SPACE), REPO_TYPE_SPACE)
SCHEMAS: Final[dict[str, pa.Schema]] = {
    "all": ALL_SCHEMA, REPO_TYPE_MODEL: MODEL_SCHEMA, REPO_TYPE_DATASET: DATASET_SCHEMA, REPO_TYPE_SPACE: SPACE_SCHEMA,
}  # fmt: skip


def schema_for(repo_type: str) -> pa.Schema:
    """The declared schema of `model`, `dataset`, `space` or `all`."""
    return SCHEMAS[repo_type]


def describe(name: str) -> str:
    """One line about a column (for the data card)."""
    if name == "type":
        return "`model`, `dataset` or `space`"
    return _BY_NAME[name].description


# ---------------------------------------------------------------------------------------------------------
# The row builder
# ---------------------------------------------------------------------------------------------------------


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: Arrow refuses them
        return False
    return True


def to_json(value: Any) -> str | None:
    """Compact JSON text (key order kept), or None when *value* is not JSON (NaN, cycles, odd types)."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return None
    return text if _utf8(text) else json.dumps(value, separators=(",", ":"), allow_nan=False)


def _ms(value: datetime) -> int:
    return (value - datetime(1970, 1, 1, tzinfo=UTC)) // _MS


_MS: Final = datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)


class RowBuilder:
    """Builds rows of `ALL_SCHEMA` from Hub JSON, counting what it had to null or put into `extra`."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def _bad(self, column: str) -> None:
        self.counts[f"invalid/{column}"] += 1

    # -- cells ------------------------------------------------------------------------------------------

    def cell(self, column: str, kind: str, value: Any) -> Any:
        """*value* as a cell of *kind*, or None (counted) when it has the wrong type."""
        if value is None:
            return None
        if kind == STR:
            if isinstance(value, str) and _utf8(value):
                return value
        elif kind == INT:
            if isinstance(value, int) and not isinstance(value, bool) and _INT64_MIN <= value <= _INT64_MAX:
                return value
            if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
                return int(value)
        elif kind == FLOAT:
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value)):
                return float(value)
        elif kind == BOOL:
            if isinstance(value, bool):
                return value
        elif kind == GATED:
            if isinstance(value, bool):
                return "true" if value else "false"
            if isinstance(value, str) and _utf8(value):
                return value
        elif kind == TS:
            parsed = value if isinstance(value, datetime) else parse_hub_datetime(value)
            if parsed is not None:
                try:
                    if parsed.tzinfo is None:
                        parsed = parsed.replace(tzinfo=UTC)
                    return _ms(parsed)
                except (OverflowError, ValueError):
                    pass
        elif kind == LIST:
            if isinstance(value, str) and _utf8(value):
                return [value]
            if isinstance(value, list):
                good = [v for v in value if isinstance(v, str) and _utf8(v)]
                if len(good) != len(value):
                    self._bad(column)
                return good
        elif kind == JSON:
            text = to_json(value)
            if text is not None:
                return text
        self._bad(column)
        return None

    def siblings(self, value: Any, files: Iterable[Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
        """The Hub's `siblings` with size and sha256 from the Hub's JSON (`size`, `lfs`) or the files stage."""
        if value is None:
            return None
        if not isinstance(value, list):
            self._bad("siblings")
            return None
        known: dict[str, Mapping[str, Any]] = {}
        for record in files or ():
            if isinstance(record, Mapping) and isinstance(record.get("path"), str):
                known[record["path"]] = record
        out = []
        for sibling in value:
            path = sibling.get("rfilename") if isinstance(sibling, dict) else None
            if not isinstance(path, str) or not _utf8(path):
                self._bad("siblings")
                continue
            lfs = sibling.get("lfs") if isinstance(sibling.get("lfs"), dict) else {}
            record = known.get(path, {})
            size = sibling.get("size", lfs.get("size", record.get("size")))
            sha256 = lfs.get("sha256", record.get("sha256"))
            size = size if isinstance(size, int) and not isinstance(size, bool) and 0 <= size <= _INT64_MAX else None
            sha256 = sha256 if isinstance(sha256, str) and len(sha256) == 64 and _utf8(sha256) else None
            out.append({"path": path, "size": size, "sha256": sha256})
        return out

    # -- rows -------------------------------------------------------------------------------------------

    def row(
        self,
        repo_type: str,
        payload: Mapping[str, Any],
        *,
        files: Iterable[Mapping[str, Any]] | None = None,
        deleted_at: Any = None,
        crawled_at: Any = None,
    ) -> dict[str, Any]:
        """One row of `ALL_SCHEMA` (the `type` column set). Raises ValueError only when there is no string id."""
        entity_id = payload.get("id")
        if not isinstance(entity_id, str) or not entity_id or not _utf8(entity_id):
            raise ValueError("a Hub entity needs a string 'id'")
        row: dict[str, Any] = {"type": repo_type}
        for col in COLUMNS:
            if col.key is None or col.kind == "siblings" or repo_type not in col.types:
                row[col.name] = None
            else:
                row[col.name] = self.cell(col.name, col.kind, payload.get(col.key))
        row["siblings"] = self.siblings(payload.get("siblings"), files)
        card = payload.get("cardData")
        card = card if isinstance(card, dict) else {}
        self._promote(row, repo_type, payload, card)
        known = _KNOWN_KEYS[repo_type]
        extra = {k: v for k, v in payload.items() if k not in known}
        for key in extra:
            self.counts[f"extra/{key}"] += 1
        row["extra"] = self.cell("extra", JSON, extra) if extra else None
        row["deleted_at"] = self.cell("deleted_at", TS, deleted_at)
        row["deleted"] = deleted_at is not None
        row["crawled_at"] = self.cell("crawled_at", TS, crawled_at)
        return row

    def _promote(self, row: dict[str, Any], repo_type: str, payload: Mapping[str, Any], card: dict[str, Any]) -> None:
        license_ = card.get("license")
        if isinstance(license_, list) and len(license_) == 1:
            license_ = license_[0]
        row["license"] = self.cell("license", STR, license_)
        if row["license"] is None:
            tags = row["tags"] or []
            row["license"] = next((t.removeprefix("license:") for t in tags if t.startswith("license:")), None)
        row["languages"] = self.cell("languages", LIST, card.get("language"))
        base = payload.get("baseModels")
        ids = None
        if isinstance(base, dict) and isinstance(base.get("models"), list):
            ids = [m.get("id") for m in base["models"] if isinstance(m, dict)]
        row["base_models"] = self.cell("base_models", LIST, ids if ids else card.get("base_model"))
        datasets = payload.get("datasets") if repo_type == REPO_TYPE_SPACE else None
        row["datasets"] = self.cell("datasets", LIST, datasets if datasets is not None else card.get("datasets"))
        for name in ("pipeline_tag", "library_name"):
            if row[name] is None and payload.get(name) is None:
                row[name] = self.cell(name, STR, card.get(name))
        if repo_type == REPO_TYPE_MODEL:
            safetensors = payload.get("safetensors")
            total = safetensors.get("total") if isinstance(safetensors, dict) else None
            row["safetensors_total"] = self.cell("safetensors_total", INT, total)

