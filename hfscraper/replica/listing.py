"""Precomputed indexes that serve the Hub's repo listings in milliseconds.

``GET /api/models`` sorts descending on one field (``trendingScore`` by default)
and pages with a keyset cursor on ``(sort value, _id)``, exactly like the Hub's
Mongo cursors (hub-api.md §1.2): ties are broken by ascending ``_id`` and entities
without a value come last.  Here every sort order is computed once at start-up as
a list of entity indexes plus a parallel list of comparable keys, so a page is a
``bisect`` plus a slice.  A filtered query (``filter``/``author``/``search``/
``pipeline_tag``) intersects precomputed posting sets, sorts the (usually small)
result once, and is cached so that the following pages of the same query are
again a ``bisect`` plus a slice.

Cursors are ``base64(JSON)`` of the Mongo-like query the Hub itself puts there::

    {"$or": [{"likes": 294, "_id": {"$gt": "621ffdc1..."}}, {"likes": {"$lt": 294}}, {"likes": null}]}
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Sort keys the listing accepts per repo type (hub-api.md §1.1; `downloads` does not exist for spaces).
SORTS: dict[str, tuple[str, ...]] = {
    "model": ("trendingScore", "lastModified", "createdAt", "downloads", "likes"),
    "dataset": ("trendingScore", "lastModified", "createdAt", "downloads", "likes"),
    "space": ("trendingScore", "lastModified", "createdAt", "likes"),
}
DEFAULT_SORT = "trendingScore"
_DATE_SORTS = frozenset({"lastModified", "createdAt"})

# A sort key that orders ascending in the listing's order: present values first, larger first, then _id.
SortKey = tuple[int, float, str]


class InvalidCursor(ValueError):
    """A cursor that does not decode to a keyset of the current sort."""


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

    @property
    def is_plain(self) -> bool:
        return not (self.filters or self.author or self.search or self.pipeline_tag)


@dataclass
class _Ordered:
    order: list[int]  # entity indexes in listing order
    keys: list[SortKey]  # parallel, ascending


class ListingIndex:
    """Sort orders and posting sets for one repo type."""

    def __init__(self, repo_type: str, entities: Sequence[Any], cache_size: int = 256) -> None:
        self.repo_type = repo_type
        self.entities = list(entities)
        self.sorts = SORTS[repo_type]
        self._public = [i for i, e in enumerate(self.entities) if not e.private]
        self._private = frozenset(i for i, e in enumerate(self.entities) if e.private)
        self._keys: dict[str, list[SortKey]] = {}
        self._rank: dict[str, list[int]] = {}
        self._plain: dict[tuple[str, bool], _Ordered] = {}
        for sort in self.sorts:
            keys = [sort_key(sort, sort_value(e, sort), e.mongo_id) for e in self.entities]
            order = sorted(range(len(keys)), key=keys.__getitem__)
            rank = [0] * len(order)
            for position, index in enumerate(order):
                rank[index] = position
            self._keys[sort] = keys
            self._rank[sort] = rank
            self._plain[(sort, True)] = _Ordered(order, [keys[i] for i in order])
            public = [i for i in order if i not in self._private]
            self._plain[(sort, False)] = _Ordered(public, [keys[i] for i in public])
        # Posting sets for equality filters.
        self._tags: dict[str, set[int]] = {}
        self._authors: dict[str, set[int]] = {}
        self._pipeline: dict[str, set[int]] | None = None  # built on first use: it needs every entity's fields
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

    def page(self, query: ListQuery, after: SortKey | None, limit: int) -> tuple[list[Any], bool]:
        """Up to ``limit`` entities after the cursor key, and whether more follow."""
        ordered = self._ordered(query)
        start = 0 if after is None else bisect.bisect_right(ordered.keys, after)
        chosen = ordered.order[start : start + limit]
        more = start + limit < len(ordered.order)
        return [self.entities[i] for i in chosen], more

    def cursor_after(self, query: ListQuery, entity: Any) -> str:
        return encode_cursor(query.sort, sort_value(entity, query.sort), entity.mongo_id)

    def count(self, query: ListQuery) -> int:
        return len(self._ordered(query).order)

    def _ordered(self, query: ListQuery) -> _Ordered:
        if query.is_plain:
            return self._plain[(query.sort, query.include_private)]
        cached = self._cache.get(query)
        if cached is not None:
            self._cache.move_to_end(query)
            return cached
        candidates = self._select(query)
        rank = self._rank[query.sort]
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
        sets.sort(key=len)
        result = set(sets[0]) if sets else set(range(len(self.entities)))
        for other in sets[1:]:
            result &= other
        if not query.include_private:
            result -= self._private
        return result

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
