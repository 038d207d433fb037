"""Precomputed indexes that serve the Hub's repo listings in milliseconds.

``GET /api/models`` sorts descending on one field (``trendingScore`` by default)
and pages with a keyset cursor on ``(sort value, _id)``, exactly like the Hub's
Mongo cursors (the cursor of a real ``Link`` header decodes to one): ties are broken by ascending ``_id`` and entities
without a value come last.  Here every sort order is computed on first use as
a list of entity indexes plus a parallel list of comparable keys, so a page is a
``bisect`` plus a slice.  A filtered query intersects posting sets, sorts the
(usually small) result once, and is cached so that the following pages of the
same query are again a ``bisect`` plus a slice.

Cursors are ``base64(JSON)`` of the Mongo-like query the Hub itself puts there::

    {"$or": [{"likes": 294, "_id": {"$gt": "621ffdc1..."}}, {"likes": {"$lt": 294}}, {"likes": null}]}

Query parameters (`parse_listing_query`): every parameter a listing accepts is applied, and any other one is a
400 that names it, never silently ignored (a crawler or client that sends a filter the replica lacks must see it
fail, not get the whole listing back).  Per type (huggingface_hub 2.4.0 ``list_models``/
``list_datasets``/``list_spaces``):

- all: ``search`` (repeatable, every term a substring of the id), ``author``, ``filter`` (repeatable tags, all must
  match), ``sort``, ``direction`` (ignored: sorting is always descending), ``limit``, ``full``, ``cardData``,
  ``expand``/``expand[]``, ``cursor``;
- models: ``pipeline_tag``, ``config``, ``gated``, ``inference``, ``inference_provider``, ``apps``,
  ``num_parameters``; datasets: ``gated``; spaces: ``models``, ``datasets``, ``linked``.

What is known and what is the replica's own choice ([I], not known about the real Hub):

- ``gated=true`` lists only gated repos (``"auto"``/``"manual"``), ``gated=false`` only the others (hf_hub
  production tests ``test_list_models_gated_only``/``non_gated_only``).
- ``inference=warm``: models served by at least one provider (the model's ``inference`` is ``"warm"``); other values
  are a 400 [I] (hf_hub types the argument as ``Literal["warm"]``).
- ``inference_provider``: models whose ``inferenceProviderMapping`` names one of the providers (repeatable, or a
  comma list as huggingface.js sends it); ``all``: any provider.
- ``apps``: models that one of the apps runs (repeatable or a comma list).  Known: the llama.cpp family
  (``llama.cpp``, ``ollama``, ``lmstudio``, ``jan``, ``localai``) runs models with GGUF weights (hf_hub's
  production test: every ``apps=ollama`` model has a ``.gguf`` file); ``vllm`` runs transformers models with
  safetensors weights [I].  Any other app is a 400 [I]: the Hub knows more apps, the replica has no rule for them.
- ``num_parameters``: ``min:6B,max:128B``, ``min:6B`` or ``max:128B`` (hf_hub docstring); bounds inclusive, units
  K, M, B, T or none [I]; a model's count is ``safetensors.total``, else ``gguf.total``; a model with neither is
  not listed [I].
- ``models=X`` / ``datasets=X`` (spaces): spaces whose ``models``/``datasets`` list names X (hf_hub production
  tests); several values must all match [I].  ``linked=true`` adds each space's ``models`` and ``datasets`` to
  the listing items (hf_hub ``test_list_spaces_linked``), and so does a ``models``/``datasets`` filter (hf_hub's
  ``test_list_spaces_with_models`` reads ``models`` from such items without ``linked``).
- ``sort``: ``createdAt``, ``downloads`` (not spaces), ``lastModified``, ``likes``, ``trendingScore``, and
  ``likes30d`` (every type) and ``num_parameters`` (models), which huggingface.js sends (PR #1977).  Neither is a
  property a listing returns, so their values are the replica's: ``likes30d`` a stable per-repo share of
  ``likes`` [I], ``num_parameters`` the parameter count above.
- A comma in a ``filter`` value separates tags that must all match, as repeated ``filter=`` do [I: not known].
- ``limit`` above 1000 is clamped to 1000 and ``limit=0`` is a 400 [I: not known]; cursors never expire here
  (whether the Hub's do is not known).

Drift (`ListingIndex.drift`, ``--drift N``): on the real Hub ``downloads``, ``likes``, ``trendingScore`` and
``likes30d`` change all the time, so keyset paging over them lists a repo whose value fell behind the cursor
again, and never lists one whose value rose past it.  With drift on, before each page of such a sort that
carries a cursor, N repos already listed fall behind the cursor and N not yet listed rise past it,
deterministically in the seed and the page request's number.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import json
import random
import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Sort keys the listing accepts per repo type (huggingface_hub hf_api.py; `downloads` does not exist for spaces;
# `likes30d` and `num_parameters` from huggingface.js PR #1977).
SORTS: dict[str, tuple[str, ...]] = {
    "model": ("trendingScore", "lastModified", "createdAt", "downloads", "likes", "likes30d", "num_parameters"),
    "dataset": ("trendingScore", "lastModified", "createdAt", "downloads", "likes", "likes30d"),
    "space": ("trendingScore", "lastModified", "createdAt", "likes", "likes30d"),
}
DEFAULT_SORT = "trendingScore"
_DATE_SORTS = frozenset({"lastModified", "createdAt"})
#: Sorts whose values change while a crawl pages (what drift moves).
VOLATILE_SORTS = frozenset({"downloads", "likes", "trendingScore", "likes30d"})
# Entity attributes behind the volatile sorts (synth.Entity), so a drifted value is also what the item shows.
_ATTRIBUTES = {"downloads": "downloads", "likes": "likes", "trendingScore": "trending"}

# Query parameters per repo type (see the module docstring).
_COMMON_PARAMETERS = frozenset(
    {"search", "author", "filter", "sort", "direction", "limit", "full", "cardData", "expand", "expand[]", "cursor"}
)
PARAMETERS: dict[str, frozenset[str]] = {
    "model": _COMMON_PARAMETERS
    | {"pipeline_tag", "config", "gated", "inference", "inference_provider", "apps", "num_parameters"},
    "dataset": _COMMON_PARAMETERS | {"gated"},
    "space": _COMMON_PARAMETERS | {"models", "datasets", "linked"},
}
INFERENCE_VALUES = ("warm",)
_GGUF_APPS = ("llama.cpp", "ollama", "lmstudio", "jan", "localai")
APPS = (*_GGUF_APPS, "vllm")
_UNITS = {"": 1, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}
_NUMBER = re.compile(r"(\d+(?:\.\d+)?)([KMBT]?)", re.I)
_TRUE = frozenset({"true", "True", "TRUE", "1"})
_FALSE = frozenset({"false", "False", "FALSE", "0"})

# A sort key that orders ascending in the listing's order: present values first, larger first, then _id.
SortKey = tuple[int, float, str]


class InvalidCursor(ValueError):
    """A cursor that does not decode to a keyset of the current sort."""


class InvalidQuery(ValueError):
    """A listing query the replica refuses (the message is the 400's)."""


def _numeric(sort: str, value: Any) -> float | None:
    if value is None:
        return None
    if sort in _DATE_SORTS:
        # The Hub's dates are ISO 8601 with milliseconds and a 'Z'.
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    return float(value)


def sort_key(sort: str, value: Any, mongo_id: str) -> SortKey:
    number = _numeric(sort, value)
    if number is None:
        return (1, 0.0, mongo_id)
    return (0, -number, mongo_id)


def encode_cursor(sort: str, value: Any, mongo_id: str) -> str:
    """The opaque cursor that resumes after the entity ``(value, mongo_id)``."""
    if value is None:
        query: dict[str, Any] = {"$or": [{sort: None, "_id": {"$gt": mongo_id}}]}
    else:
        query = {"$or": [{sort: value, "_id": {"$gt": mongo_id}}, {sort: {"$lt": value}}, {sort: None}]}
    raw = json.dumps(query, separators=(",", ":")).encode()
    return base64.b64encode(raw).decode("ascii")


def decode_cursor(sort: str, cursor: str) -> SortKey:
    """The sort key of the entity a cursor resumes after; :class:`InvalidCursor` if it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        query = json.loads(base64.b64decode(padded.encode("ascii"), validate=False))
        first = query["$or"][0]
        mongo_id = first["_id"]["$gt"]
        if not isinstance(mongo_id, str) or sort not in first:
            raise InvalidCursor("cursor was made for another sort")
        return sort_key(sort, first[sort], mongo_id)
    except InvalidCursor:
        raise
    except (ValueError, KeyError, IndexError, TypeError, binascii.Error, UnicodeError) as exc:
        raise InvalidCursor(str(exc)) from exc


@dataclass(frozen=True)
class ListQuery:
    """The parts of a listing request that select and order entities (not the rendering)."""

    sort: str
    include_private: bool
    filters: frozenset[str] = frozenset()
    author: str | None = None
    search: tuple[str, ...] = ()
    pipeline_tag: str | None = None
    gated: bool | None = None
    inference: str | None = None
    providers: frozenset[str] = frozenset()  # "all": any provider
    apps: frozenset[str] = frozenset()
    num_parameters: tuple[float | None, float | None] | None = None
    models: frozenset[str] = frozenset()
    datasets: frozenset[str] = frozenset()

    @property
    def is_plain(self) -> bool:
        return not (
            self.filters
            or self.author
            or self.search
            or self.pipeline_tag
            or self.gated is not None
            or self.inference
            or self.providers
            or self.apps
            or self.num_parameters
            or self.models
            or self.datasets
        )


def parse_listing_query(
    repo_type: str, pairs: Sequence[tuple[str, str]], *, sort: str, include_private: bool
) -> ListQuery:
    """The selection of a listing request's ``(key, value)`` pairs; :class:`InvalidQuery` for a parameter this
    type's listing does not have or a value it cannot apply."""
    allowed = PARAMETERS[repo_type]
    for key, _ in pairs:
        if key not in allowed:
            raise InvalidQuery(
                f'"{key}" is not a query parameter of the {repo_type}s listing in this replica; '
                f"it has [{', '.join(sorted(allowed))}]"
            )

    def values(key: str) -> list[str]:
        return [v for k, v in pairs if k == key and v != ""]

    def listed(key: str) -> frozenset[str]:
        return frozenset(part.strip() for v in values(key) for part in v.split(",") if part.strip())

    def single(key: str) -> str | None:
        found = values(key)
        return found[0] if found else None

    inference = single("inference")
    if inference is not None and inference not in INFERENCE_VALUES:
        raise InvalidQuery(f'"inference" must be one of [{", ".join(INFERENCE_VALUES)}]')
    apps = listed("apps")
    unknown_apps = sorted(apps - set(APPS))
    if unknown_apps:
        raise InvalidQuery(
            f'"apps" {", ".join(unknown_apps)}: this replica knows only [{", ".join(APPS)}] '
            "(which models the Hub lists for other apps is not known)"
        )
    raw_params = single("num_parameters")
    return ListQuery(
        sort=sort,
        include_private=include_private,
        filters=listed("filter"),
        author=single("author"),
        search=tuple(values("search")),
        pipeline_tag=single("pipeline_tag"),
        gated=_boolean(single("gated"), "gated"),
        inference=inference,
        providers=listed("inference_provider"),
        apps=apps,
        num_parameters=parse_num_parameters(raw_params) if raw_params is not None else None,
        models=listed("models"),
        datasets=listed("datasets"),
    )


def linked_requested(pairs: Sequence[tuple[str, str]]) -> bool:
    """``linked=true`` (spaces): the items carry the space's ``models`` and ``datasets``."""
    value = next((v for k, v in pairs if k == "linked"), None)
    return bool(_boolean(value or None, "linked"))


def _boolean(value: str | None, name: str) -> bool | None:
    if value is None:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidQuery(f'"{name}" must be a boolean')


def parse_num_parameters(text: str) -> tuple[float | None, float | None]:
    """``min:6B,max:128B`` (either part optional) -> ``(6e9, 1.28e11)``."""
    low: float | None = None
    high: float | None = None
    for part in text.split(","):
        bound, _, number = part.strip().partition(":")
        match = _NUMBER.fullmatch(number.strip())
        if bound not in ("min", "max") or match is None:
            raise InvalidQuery(
                f'"num_parameters" must look like min:6B,max:128B (or min:6B, or max:128B), not {text!r}'
            )
        value = float(match.group(1)) * _UNITS[match.group(2).upper()]
        if bound == "min":
            low = value
        else:
            high = value
    return low, high


def likes30d(entity: Any) -> int:
    """The replica's stand-in for likes of the last 30 days (the Hub never returns it): a stable share of likes."""
    likes = int(sort_value(entity, "likes") or 0)
    share = int.from_bytes(hashlib.blake2b(entity.mongo_id.encode(), digest_size=2).digest(), "big") % 101
    return likes * share // 100


def parameter_count(fields: dict[str, Any]) -> float | None:
    """A model's parameter count: ``safetensors.total``, else ``gguf.total`` (None without either)."""
    for key in ("safetensors", "gguf"):
        block = fields.get(key)
        if isinstance(block, dict) and isinstance(block.get("total"), (int, float)):
            return float(block["total"])
    return None


@dataclass
class _Ordered:
    order: list[int]  # entity indexes in listing order
    keys: list[SortKey]  # parallel, ascending


@dataclass
class _Facets:
    """Posting sets of the filters that need an entity's fields (built once, on the first such query)."""

    gated: set[int]
    warm: set[int]
    providers: dict[str, set[int]]
    apps: dict[str, set[int]]
    parameters: list[float | None]
    models: dict[str, set[int]]
    datasets: dict[str, set[int]]


class ListingIndex:
    """Sort orders and posting sets for one repo type."""

    def __init__(self, repo_type: str, entities: Sequence[Any], cache_size: int = 256) -> None:
        self.repo_type = repo_type
        self.entities = list(entities)
        self.sorts = SORTS[repo_type]
        self._private = frozenset(i for i, e in enumerate(self.entities) if e.private)
        self._keys: dict[str, list[SortKey]] = {}
        self._rank: dict[str, list[int]] = {}
        self._plain: dict[tuple[str, bool], _Ordered] = {}
        # Values drift gave an entity (by _id), for sorts whose value is not an entity attribute (likes30d).
        self._drifted: dict[tuple[str, str], Any] = {}
        # The orders every crawl uses are built now (cheap: entity attributes); the others on first use.
        for sort in ("trendingScore", "lastModified", "createdAt", "downloads", "likes"):
            if sort in self.sorts:
                self._ensure(sort)
        # Posting sets for equality filters.
        self._tags: dict[str, set[int]] = {}
        self._authors: dict[str, set[int]] = {}
        self._pipeline: dict[str, set[int]] | None = None  # built on first use: it needs every entity's fields
        self._facets: _Facets | None = None  # likewise
        for i, e in enumerate(self.entities):
            for tag in entity_tags(e):
                self._tags.setdefault(str(tag), set()).add(i)
            self._authors.setdefault(_namespace(e.id).lower(), set()).add(i)
        # Substring search runs in C over one string of all ids, not per entity in Python.
        self._lowered = [e.id.lower() for e in self.entities]
        self._haystack = "\n".join(self._lowered) + "\n"
        self._starts: list[int] = []
        offset = 0
        for text in self._lowered:
            self._starts.append(offset)
            offset += len(text) + 1
        self._cache: OrderedDict[ListQuery, _Ordered] = OrderedDict()
        self._cache_size = cache_size

    def value(self, entity: Any, sort: str) -> Any:
        """The entity's current value for a sort key (drift included)."""
        drifted = self._drifted.get((sort, entity.mongo_id))
        if drifted is not None:
            return drifted
        if sort == "likes30d":
            return likes30d(entity)
        if sort == "num_parameters":
            return parameter_count(entity.fields)
        return sort_value(entity, sort)

    def _ensure(self, sort: str) -> list[SortKey]:
        """The keys of one sort, building its orders on first use."""
        keys = self._keys.get(sort)
        if keys is not None:
            return keys
        keys = [sort_key(sort, self.value(e, sort), e.mongo_id) for e in self.entities]
        order = sorted(range(len(keys)), key=keys.__getitem__)
        self._keys[sort] = keys
        self._plain[(sort, True)] = _Ordered(order, [keys[i] for i in order])
        public = [i for i in order if i not in self._private]
        self._plain[(sort, False)] = _Ordered(public, [keys[i] for i in public])
        return keys

    def _ranks(self, sort: str) -> list[int]:
        rank = self._rank.get(sort)
        if rank is None:
            self._ensure(sort)
            rank = [0] * len(self.entities)
            for position, index in enumerate(self._plain[(sort, True)].order):
                rank[index] = position
            self._rank[sort] = rank
        return rank

    def page(self, query: ListQuery, after: SortKey | None, limit: int) -> tuple[list[Any], bool]:
        """Up to ``limit`` entities after the cursor key, and whether more follow."""
        ordered = self._ordered(query)
        start = 0 if after is None else bisect.bisect_right(ordered.keys, after)
        chosen = ordered.order[start : start + limit]
        more = start + limit < len(ordered.order)
        return [self.entities[i] for i in chosen], more

    def cursor_after(self, query: ListQuery, entity: Any) -> str:
        return encode_cursor(query.sort, self.value(entity, query.sort), entity.mongo_id)

    def count(self, query: ListQuery) -> int:
        return len(self._ordered(query).order)

    def _ordered(self, query: ListQuery) -> _Ordered:
        self._ensure(query.sort)
        if query.is_plain:
            return self._plain[(query.sort, query.include_private)]
        cached = self._cache.get(query)
        if cached is not None:
            self._cache.move_to_end(query)
            return cached
        candidates = self._select(query)
        rank = self._ranks(query.sort)
        keys = self._keys[query.sort]
        order = sorted(candidates, key=rank.__getitem__)
        result = _Ordered(order, [keys[i] for i in order])
        self._cache[query] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result

    def _select(self, query: ListQuery) -> set[int]:
        sets: list[set[int]] = []
        for tag in query.filters:
            sets.append(self._tags.get(tag, set()))
        if query.author is not None:
            sets.append(self._authors.get(query.author.lower(), set()))
        if query.pipeline_tag is not None:
            if self._pipeline is None:
                self._pipeline = {}
                for i, e in enumerate(self.entities):
                    pipeline = e.fields.get("pipeline_tag")
                    if pipeline:
                        self._pipeline.setdefault(str(pipeline), set()).add(i)
            sets.append(self._pipeline.get(query.pipeline_tag, set()))
        for term in query.search:
            sets.append(self._search(term.lower()))
        sets.extend(self._facet_sets(query))
        sets.sort(key=len)
        result = set(sets[0]) if sets else set(range(len(self.entities)))
        for other in sets[1:]:
            result &= other
        if not query.include_private:
            result -= self._private
        return result

    def _facet_sets(self, query: ListQuery) -> list[set[int]]:
        """The posting sets of the filters that need the entities' fields (gated, inference, apps, ...)."""
        if query.gated is None and not (
            query.inference or query.providers or query.apps or query.num_parameters or query.models or query.datasets
        ):
            return []
        facets = self._build_facets()
        sets: list[set[int]] = []
        everyone = set(range(len(self.entities)))
        if query.gated is not None:
            sets.append(facets.gated if query.gated else everyone - facets.gated)
        if query.inference:
            sets.append(facets.warm)
        if query.providers:
            if "all" in query.providers:
                sets.append(set().union(*facets.providers.values()))
            else:
                sets.append(set().union(*(facets.providers.get(p, set()) for p in query.providers)))
        if query.apps:
            sets.append(set().union(*(facets.apps.get(a, set()) for a in query.apps)))
        if query.num_parameters is not None:
            low, high = query.num_parameters
            sets.append(
                {
                    i
                    for i, n in enumerate(facets.parameters)
                    if n is not None and (low is None or n >= low) and (high is None or n <= high)
                }
            )
        for model in query.models:
            sets.append(facets.models.get(model, set()))
        for dataset in query.datasets:
            sets.append(facets.datasets.get(dataset, set()))
        return sets

    def _build_facets(self) -> _Facets:
        if self._facets is not None:
            return self._facets
        facets = _Facets(set(), set(), {}, {}, [], {}, {})
        for i, e in enumerate(self.entities):
            if e.gated:
                facets.gated.add(i)
            fields = e.fields if self.repo_type in ("model", "space") else {}
            facets.parameters.append(parameter_count(fields) if self.repo_type == "model" else None)
            if self.repo_type == "model":
                if fields.get("inference") == "warm":
                    facets.warm.add(i)
                for provider in _providers(fields.get("inferenceProviderMapping")):
                    facets.providers.setdefault(provider, set()).add(i)
                for app in _apps(fields):
                    facets.apps.setdefault(app, set()).add(i)
            elif self.repo_type == "space":
                for key, target in (("models", facets.models), ("datasets", facets.datasets)):
                    for linked in fields.get(key) or ():
                        target.setdefault(str(linked), set()).add(i)
        self._facets = facets
        return facets

    # ------------------------------------------------------------------ drift
    def drift(self, sort: str, after: SortKey, limit: int, rng: random.Random, moves: int) -> list[str]:
        """Move ``moves`` repos already listed (before the cursor *after*) behind it, and ``moves`` repos not yet
        listed (past the page about to be served) before it, by changing their *sort* value; the ids moved."""
        if sort not in VOLATILE_SORTS or after[0] != 0:
            return []
        self._ensure(sort)
        moved: list[str] = []
        cursor_value = int(-after[1])
        for _ in range(moves):
            ordered = self._plain[(sort, True)]
            position = bisect.bisect_right(ordered.keys, after)
            if position > 0 and cursor_value >= 1:
                # Listed already, now less than the cursor's value: the next pages list it again.
                pick = ordered.order[rng.randrange(max(0, position - 3 * limit), position)]
                moved.append(self._set_value(pick, sort, rng.randrange(0, cursor_value)))
            ordered = self._plain[(sort, True)]
            position = bisect.bisect_right(ordered.keys, after)
            if position + limit < len(ordered.order):
                # Not listed yet, now more than the cursor's value: no later page lists it.
                pick = ordered.order[rng.randrange(position + limit, len(ordered.order))]
                moved.append(self._set_value(pick, sort, cursor_value + 1 + rng.randrange(0, cursor_value + 1)))
        return moved

    def _set_value(self, index: int, sort: str, value: int) -> str:
        entity = self.entities[index]
        old = self._keys[sort][index]
        new = sort_key(sort, value, entity.mongo_id)
        for include_private in (True, False):
            ordered = self._plain[(sort, include_private)]
            at = bisect.bisect_left(ordered.keys, old)
            if at < len(ordered.keys) and ordered.keys[at] == old:
                del ordered.keys[at], ordered.order[at]
                at = bisect.bisect_left(ordered.keys, new)
                ordered.keys.insert(at, new)
                ordered.order.insert(at, index)
        self._keys[sort][index] = new
        self._rank.pop(sort, None)
        self._drifted[(sort, entity.mongo_id)] = value
        attribute = _ATTRIBUTES.get(sort)
        if attribute is not None:
            if getattr(entity, "_fields", None) is not None:
                entity._fields[sort] = value
            else:
                setattr(entity, attribute, value)
        if sort == "likes":  # likes30d follows likes: rebuilt on next use
            for stale in [k for k in self._plain if k[0] == "likes30d"]:
                del self._plain[stale]
            self._keys.pop("likes30d", None)
            self._rank.pop("likes30d", None)
        for cached in [q for q in self._cache if q.sort in (sort, "likes30d")]:
            del self._cache[cached]
        return str(entity.id)

    def _search(self, term: str) -> set[int]:
        if not term:
            return set(range(len(self.entities)))
        found: set[int] = set()
        haystack, starts, lowered = self._haystack, self._starts, self._lowered
        position = haystack.find(term)
        while position != -1:
            index = bisect.bisect_right(starts, position) - 1
            # A match may straddle two ids (or an id containing the separator): check it.
            if term in lowered[index]:
                found.add(index)
                # Jump to the next id: one match per entity is enough.
                position = starts[index + 1] if index + 1 < len(starts) else len(haystack)
            else:
                position += 1
            position = haystack.find(term, position)
        return found


def _providers(mapping: Any) -> list[str]:
    """Provider names of an ``inferenceProviderMapping`` (a dict by provider, or a list of ``{"provider": ...}``)."""
    if isinstance(mapping, dict):
        return [str(p) for p in mapping]
    if isinstance(mapping, list):
        return [str(m["provider"]) for m in mapping if isinstance(m, dict) and "provider" in m]
    return []


def _apps(fields: dict[str, Any]) -> list[str]:
    siblings = [s.get("rfilename", "") for s in fields.get("siblings") or () if isinstance(s, dict)]
    apps: list[str] = []
    if "gguf" in fields or any(str(name).lower().endswith(".gguf") for name in siblings):
        apps.extend(_GGUF_APPS)
    if fields.get("library_name") == "transformers" and "safetensors" in fields:
        apps.append("vllm")
    return apps


def sort_value(entity: Any, sort: str) -> Any:
    """The entity's value for a sort key, cheaply when the entity can give it without building its fields."""
    getter = getattr(entity, "sort_value", None)
    return getter(sort) if getter is not None else entity.fields.get(sort)


def entity_tags(entity: Any) -> list[str]:
    tags = getattr(entity, "tags", None)
    return list(tags) if tags is not None else list(entity.fields.get("tags") or ())


def _namespace(repo_id: str) -> str:
    return repo_id.split("/", 1)[0] if "/" in repo_id else ""


def iter_pairs(raw_query: str) -> Iterable[str]:
    """The raw ``k=v`` pieces of a query string, in order and with the client's own encoding."""
    return (piece for piece in raw_query.split("&") if piece)
