"""A Hub of millions of entities in constant memory: ``python -m hfscraper.replica --lazy``.

`build_hub` (synth.py) draws every entity's structure up front and `ListingIndex` (listing.py) sorts every order at
start-up, so the regular replica's memory grows with the Hub (a few hundred MB at 300,000 entities). `LazyHub`
holds only the counts, the seed and the (small) set of changed entities: entity *i* of a type is drawn on demand
from ``(seed, type, i)`` (and the counts), so the same ids, records and pages come back every time, after a
restart too. Records come from synth.py's own generators (`_ModelGen`, `_DatasetGen`, `_SpaceGen`) over a
`synth.Entity` whose structure is drawn here, so they have the regular replica's shapes.

What makes the listings arithmetic:
- Ids end with ``-<i>`` (``owner/Llama-3.1-8b-Instruct-41231``), so they are unique and an id (or ``_id``,
  which holds the type and *i* after its 8 time digits) leads back to its entity without any table.
- ``createdAt`` is monotone in *i*: the first 12% of a type are the Hub's legacy repos, all created
  2022-03-02T23:29:04Z (one big tie, as on the Hub: ordered by ascending ``_id``, which ascends with *i*), the
  others strictly increasing up to 2026-08-29. ``lastModified`` is strictly increasing in *i* too (and never
  before ``createdAt``), except for changed entities (below).
- So ``sort=createdAt`` (the crawler's default), ``sort=lastModified`` and ``sort=trendingScore`` (every lazy
  entity's score is 0, so the Hub's tie-break, ascending ``_id``, orders it; that is also the order of a listing
  without ``sort``) map a position to an index with arithmetic, and a keyset cursor (listing.py's format) to a
  position with a binary search over those virtual keys. Other sorts and every filter (``search``, ``author``,
  ``filter``, ``pipeline_tag``, ``gated``, ``inference``, ``inference_provider``, ``apps``, ``num_parameters``,
  spaces' ``models``/``datasets``) answer 400 with a message that says so, never a silently different listing;
  ``linked=true`` is served (it only adds fields), ``--drift`` is refused at start-up.

Relations point at other lazy entities by index: a model's base models are earlier models (log-uniform, so early
models become popular bases), its datasets and a space's models/datasets any index (Zipf-like). Reverse relations
(a model's ``spaces``, ``childrenModelCount``) would need the whole Hub and are left empty.

Statuses: a few per thousand gated (auto/manual) or disabled, as in the regular replica; no private repos (a
private repo is invisible to the crawler's listing anyway, and skipping it would break the arithmetic) and no
renames.

Changes (for incremental crawls): ``POST /_replica/mutate`` with ``{"changed_fraction": 0.01}`` (all types, or
``"type": "model"``) or ``{"type": "model", "touch": [ids]}``, or ``--changed-fraction F`` at start-up (the same
change as the first such call). A changed entity gets a new ``sha`` and a ``lastModified`` newer than every other
entity of its type; the changed set (a dict of at most the changed entities) is all the state a change adds.
Its previous commit stays readable (`LazyHub.original` gives its sha and date; hfscraper.replica.history derives
the rest of its history, as for every entity). Deleting, restoring and editing are refused (400).
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from hfscraper.replica import synth
from hfscraper.replica.listing import ListQuery, SortKey, encode_cursor, sort_value
from hfscraper.replica.server import BadRequest

REPO_TYPES = ("model", "dataset", "space")
_PLURAL = {"models": "model", "datasets": "dataset", "spaces": "space"}
_TYPE_CODE = {"model": 1, "dataset": 2, "space": 3}
LEGACY_PERCENT = 12  # share of each type created at OLD_CREATED_TS (the regular replica draws 12% too)
NEW_START = synth.OLD_CREATED_TS + 86400  # the first non-legacy creation date
LAST_TS = synth.END_TS - 3 * 86400  # the newest unchanged createdAt / lastModified
LAZY_SORTS = ("createdAt", "lastModified", "trendingScore")
CACHE_SIZE = 4096  # entities kept after drawing (a page and the bases its models name)
OWNER_CACHE_SIZE = 8192  # owner names kept (drawing one costs about as much as the rest of an entity; the head is Zipf)
_MIX = 0x9E3779B97F4A7C15


def _suffix_hash(seed: int, code: int, i: int) -> int:
    """Six hex digits of noise for an ``_id`` (cheap: ``_id`` is computed in every cursor comparison)."""
    x = (i * _MIX + seed * 0xBF58476D1CE4E5B9 + code) & 0xFFFFFFFFFFFFFFFF
    x ^= x >> 31
    return (x * 0x94D049BB133111EB >> 40) & 0xFFFFFF


class LazyType:
    """Dates, ``_id`` and listing orders of one type's *n* entities, all arithmetic in the index."""

    def __init__(self, hub: LazyHub, repo_type: str, n: int) -> None:
        self.hub, self.repo_type, self.n = hub, repo_type, n
        self.code = _TYPE_CODE[repo_type]
        self.legacy = n * LEGACY_PERCENT // 100
        self.span = LAST_TS - NEW_START
        # Changed entities: index -> (lastModified, sha); and their indexes in listing order / ascending.
        self.changed: dict[int, tuple[int, str]] = {}
        self.changed_order: list[int] = []
        self.changed_sorted: list[int] = []
        self.touches = 0

    # ------------------------------------------------------------------ per index
    def created(self, i: int) -> int:
        if i < self.legacy:
            return synth.OLD_CREATED_TS
        return NEW_START + (i - self.legacy) * self.span // (self.n - self.legacy)

    def base_modified(self, i: int) -> int:
        # >= created(i): i/n >= (i - legacy)/(n - legacy) for every i <= n.
        return NEW_START + i * self.span // self.n

    def modified(self, i: int) -> int:
        change = self.changed.get(i)
        return change[0] if change is not None else self.base_modified(i)

    def mongo_id(self, i: int) -> str:
        return f"{self.created(i):08x}{self.code:x}{i:09x}{_suffix_hash(self.hub.seed, self.code, i):06x}"

    def sha(self, i: int) -> str:
        change = self.changed.get(i)
        if change is not None:
            return change[1]
        return self.base_sha(i)

    def base_sha(self, i: int) -> str:
        return hashlib.blake2b(f"{self.hub.seed}:{self.repo_type}:{i}".encode(), digest_size=20).hexdigest()

    def index_of_mongo_id(self, mongo_id: str) -> int | None:
        if len(mongo_id) != 24 or mongo_id[8:9] != f"{self.code:x}":
            return None
        try:
            i = int(mongo_id[9:18], 16)
        except ValueError:
            return None
        return i if 0 <= i < self.n and self.mongo_id(i) == mongo_id else None

    # ------------------------------------------------------------------ listing orders
    def index_at(self, sort: str, p: int) -> int:
        """The index of the entity at position *p* (0 = first) of the listing in order *sort*."""
        if sort == "trendingScore":
            return p  # every score is 0: ascending _id
        if sort == "createdAt":
            fresh = self.n - self.legacy
            return self.n - 1 - p if p < fresh else p - fresh  # newest first, then the legacy tie by _id
        if p < len(self.changed_order):
            return self.changed_order[p]
        # The q-th newest unchanged entity is the j-th smallest unchanged index.
        j = self.n - len(self.changed) - 1 - (p - len(self.changed_order))
        i = j
        while True:
            moved = j + bisect.bisect_right(self.changed_sorted, i)
            if moved == i:
                return i
            i = moved

    def key_at(self, sort: str, p: int) -> SortKey:
        i = self.index_at(sort, p)
        if sort == "trendingScore":
            return (0, -0.0, self.mongo_id(i))
        stamp = self.created(i) if sort == "createdAt" else self.modified(i)
        return (0, -float(stamp), self.mongo_id(i))

    # ------------------------------------------------------------------ changes
    def touch(self, indexes: list[int]) -> dict[str, Any]:
        """Give *indexes* a new sha and lastModified newer than every other entity's; their order is *indexes*'."""
        self.touches += 1
        newest = max([self.base_modified(self.n - 1), *(m for m, _ in self.changed.values())]) + 3600
        out = {}
        for rank, i in enumerate(indexes):
            sha = hashlib.blake2b(
                f"{self.hub.seed}:{self.repo_type}:{i}:touch:{self.touches}".encode(), digest_size=20
            ).hexdigest()
            self.changed[i] = (newest + rank, sha)
            out[i] = self.changed[i]
        self.changed_sorted = sorted(self.changed)
        self.changed_order = sorted(self.changed, key=lambda k: (-self.changed[k][0], self.mongo_id(k)))
        return out


class LazyEntities:
    """The entities of one type as a read-only sequence: ``hub.models[i]`` draws model *i* (synth's generators
    index ``hub.models``/``hub.datasets``/``hub.spaces`` to reach bases and linked repos)."""

    def __init__(self, hub: LazyHub, repo_type: str) -> None:
        self.hub, self.repo_type = hub, repo_type

    def __len__(self) -> int:
        return self.hub.types[self.repo_type].n

    def __getitem__(self, i: int) -> synth.Entity:
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.hub.entity(self.repo_type, i)

    def __iter__(self) -> Iterator[synth.Entity]:
        return (self.hub.entity(self.repo_type, i) for i in range(len(self)))


class LazyListing:
    """`ListingIndex`'s interface (``page``, ``cursor_after``, ``count``) over a `LazyType`'s arithmetic."""

    def __init__(self, kind: LazyType) -> None:
        self.kind = kind
        self.repo_type = kind.repo_type

    def _check(self, query: ListQuery) -> None:
        if query.sort not in LAZY_SORTS:
            raise BadRequest(
                f'this replica runs in --lazy mode: "sort" must be one of [{", ".join(LAZY_SORTS)}] '
                f"(got {query.sort!r})"
            )
        if not query.is_plain:
            raise BadRequest(
                "this replica runs in --lazy mode: search, author, filter, pipeline_tag, gated, inference, "
                "inference_provider, apps, num_parameters, models and datasets are not supported"
            )

    def page(self, query: ListQuery, after: SortKey | None, limit: int) -> tuple[list[Any], bool]:
        self._check(query)
        kind, sort = self.kind, query.sort
        start = 0 if after is None else bisect.bisect_right(_Keys(kind, sort), after)
        end = min(start + limit, kind.n)
        entities = [kind.hub.entity(self.repo_type, kind.index_at(sort, p)) for p in range(start, end)]
        return entities, end < kind.n

    def cursor_after(self, query: ListQuery, entity: Any) -> str:
        return encode_cursor(query.sort, sort_value(entity, query.sort), entity.mongo_id)

    def count(self, query: ListQuery) -> int:
        self._check(query)
        return self.kind.n


class _Keys:
    """The sort keys of one listing order as a virtual sequence, for `bisect`."""

    def __init__(self, kind: LazyType, sort: str) -> None:
        self.kind, self.sort = kind, sort

    def __len__(self) -> int:
        return self.kind.n

    def __getitem__(self, p: int) -> SortKey:
        return self.kind.key_at(self.sort, p)


class _MongoIds:
    """``by_mongo_id.get(_id)`` for the CDN origin, without a table."""

    def __init__(self, hub: LazyHub) -> None:
        self.hub = hub

    def get(self, mongo_id: str, default: Any = None) -> Any:
        for repo_type, kind in self.hub.types.items():
            i = kind.index_of_mongo_id(mongo_id)
            if i is not None:
                return self.hub.entity(repo_type, i)
        return default


class LazyHub:
    """`synth.SyntheticHub`'s interface (what server.py and the generators use) over entities drawn on demand."""

    lazy = True

    def __init__(self, models: int, datasets: int, spaces: int, seed: int = 0) -> None:
        self.seed = seed
        counts = {"model": models, "dataset": datasets, "space": spaces}
        self.types = {t: LazyType(self, t, counts[t]) for t in REPO_TYPES}
        self.models = LazyEntities(self, "model")
        self.datasets = LazyEntities(self, "dataset")
        self.spaces = LazyEntities(self, "space")
        self.owner_count = max(8, (models + datasets + spaces) // 7)
        self.by_mongo_id = _MongoIds(self)
        self._cache: OrderedDict[tuple[str, int], synth.Entity] = OrderedDict()
        self._owners: dict[int, str] = {}

    # ------------------------------------------------------------------ SyntheticHub's interface
    def entities(self, repo_type: str) -> LazyEntities:
        return {"model": self.models, "dataset": self.datasets, "space": self.spaces}[_PLURAL.get(repo_type, repo_type)]

    def get(self, repo_type: str, repo_id: str) -> synth.Entity | None:
        """The entity whose id is exactly *repo_id*: its index is the id's last ``-<digits>``."""
        entity = self.find(repo_type, repo_id)
        return entity if entity is not None and entity.id == repo_id else None

    def find(self, repo_type: str, repo_id: str) -> synth.Entity | None:
        """The entity *repo_id* names in any case (the Hub's look-up): the index is in the id, so no table."""
        repo_type = _PLURAL.get(repo_type, repo_type)
        _, _, digits = repo_id.rpartition("-")
        if not digits.isdigit() or not digits.isascii() or (len(digits) > 1 and digits[0] == "0"):
            return None
        i = int(digits)
        if i >= self.types[repo_type].n:
            return None
        entity = self.entity(repo_type, i)
        return entity if synth.fold_id(entity.id) == synth.fold_id(repo_id) else None

    def resolve_rename(self, repo_type: str, repo_id: str) -> str | None:
        return None  # no renames in a lazy Hub

    def counts(self) -> dict[str, int]:
        return {t + "s": kind.n for t, kind in self.types.items()}

    def listing_indexes(self) -> dict[str, LazyListing]:
        return {t: LazyListing(kind) for t, kind in self.types.items()}

    # ------------------------------------------------------------------ changes
    def mutate(self, change: dict[str, Any]) -> dict[str, Any]:
        """``POST /_replica/mutate`` in lazy mode: ``changed_fraction`` (a deterministic subset, per type) and/or
        ``touch`` (ids); ``type`` names one type (required with ``touch``; default all types)."""
        if change.get("delete") or change.get("restore"):
            raise ValueError("this replica runs in --lazy mode: delete and restore are not supported")
        named = change.get("type")
        repo_types = [_PLURAL.get(named + "s", named)] if named else list(REPO_TYPES)
        for repo_type in repo_types:
            if repo_type not in self.types:
                raise ValueError(f"unknown type {named!r}")
        touch = list(change.get("touch", ()))
        if touch and not named:
            raise ValueError('"touch" needs "type"')
        fraction = change.get("changed_fraction")
        if fraction is not None and not (isinstance(fraction, (int, float)) and 0 <= fraction <= 1):
            raise ValueError('"changed_fraction" must be a number between 0 and 1')
        result: dict[str, Any] = {"touched": {}, "changed": {}, "unknown": []}
        for repo_type in repo_types:
            kind = self.types[repo_type]
            indexes: list[int] = []
            if fraction:
                # A fresh subset per call, the same for the same seed and call number (restarts included).
                draw = random.Random(f"{self.seed}:{repo_type}:changed:{kind.touches + 1}")
                indexes = sorted(draw.sample(range(kind.n), round(kind.n * fraction)))
            for repo_id in touch:
                entity = self.get(repo_type, repo_id)
                if entity is None:
                    result["unknown"].append(repo_id)
                elif entity._idx not in indexes:
                    indexes.append(entity._idx)
            if not indexes:
                continue
            result["changed"][repo_type + "s"] = len(kind.touch(indexes))
        self._cache.clear()
        for repo_id in touch:  # a touch by id answers like the regular replica's
            entity = self.get(repo_types[0], repo_id)
            if entity is not None:
                result["touched"][repo_id] = {"sha": entity.sha, "lastModified": entity.sort_value("lastModified")}
        return result

    def original(self, entity: synth.Entity) -> tuple[str, int] | None:
        """A changed entity's sha and lastModified before its change (its previous commit), None if unchanged
        (hfscraper.replica.history derives the history from it: nothing is kept per entity)."""
        kind = self.types[entity.repo_type]
        if entity._idx not in kind.changed:
            return None
        return kind.base_sha(entity._idx), kind.base_modified(entity._idx)

    # ------------------------------------------------------------------ drawing entities
    def entity(self, repo_type: str, i: int) -> synth.Entity:
        """Entity *i* of a type (0 <= i < its count), drawn or from the cache of recently drawn ones."""
        key = (repo_type, i)
        entity = self._cache.get(key)
        if entity is not None:
            self._cache.move_to_end(key)
            return entity
        entity = self._cache[key] = _DRAW[repo_type](self, i)
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return entity

    def owner(self, k: int) -> str:
        """Owner *k*'s name, in the regular replica's styles (names may repeat: ids are unique anyway)."""
        name = self._owners.get(k)
        if name is None:
            if len(self._owners) >= OWNER_CACHE_SIZE:
                self._owners.clear()  # bounded: the Zipf head comes back at once
            name = self._owners[k] = self._draw_owner(k)
        return name

    def _draw_owner(self, k: int) -> str:
        r = random.Random(f"{self.seed}:owner:{k}")
        style = r.random()
        syl = "".join(r.choice(synth._SYLLABLES) for _ in range(r.randint(2, 4)))
        if style < 0.35:
            return syl
        if style < 0.6:
            return f"{syl}-{r.choice(synth._ORG_WORDS)}"
        if style < 0.8:
            number = str(r.randint(1, 99)) if r.random() < 0.3 else ""
            return syl.capitalize() + r.choice(("AI", "Labs", "", "X")) + number
        return f"{syl}{r.randint(1, 9999)}"

    def _pick_owner(self, r: random.Random) -> str:
        n = self.owner_count
        k = int(n ** r.random()) - 1 if r.random() < 0.5 else r.randrange(n)  # a Zipf-like head of prolific owners
        return self.owner(k)

    def _new(self, repo_type: str, i: int, r: random.Random, name: str, legacy_chance: float) -> synth.Entity:
        kind = self.types[repo_type]
        owner = self._pick_owner(r)
        if r.random() < 0.01:
            name = _long_name(r, name)
        name = f"{synth._clean_name(name[:80])}-{i}"
        ownerless = i < kind.legacy and r.random() < legacy_chance
        e = synth.Entity(repo_type, name if ownerless else f"{owner}/{name}", kind.mongo_id(i), kind.sha(i))
        e.author = "" if ownerless else owner
        e.created = kind.created(i)
        e.modified = kind.modified(i)
        e._hub = self  # type: ignore[assignment]
        e._idx = i
        e._salt = r.getrandbits(48)
        if repo_type != "space":
            e.downloads = 0 if r.random() < 0.3 else int(2.718281828 ** (r.random() * 15)) - 1
            e.downloads_all = e.downloads * (1 + r.randrange(20)) + r.randrange(100)
            e.likes = int((e.downloads + 1) ** 0.45 * r.random())
        else:
            e.likes = int(2.718281828 ** (r.random() * 8)) - 1
        u = r.random()
        if u < 0.003 and repo_type != "space":
            e.gated = "auto"
        elif u < 0.006 and repo_type != "space":
            e.gated = "manual"
        elif u < 0.008:
            e.disabled = True
            e.downloads = 0
        return e


def _rng(hub: LazyHub, repo_type: str, i: int) -> random.Random:
    return random.Random(f"hfscraper-lazy:{hub.seed}:{repo_type}:{i}")


def _long_name(r: random.Random, stem: str) -> str:
    parts, target = [stem], r.randint(60, 80)
    while len("-".join(parts)) < target:
        parts.append(r.choice(synth._SYLLABLES + synth._ORG_WORDS + synth._SIZES))
    return "-".join(parts)


def _zipf_index(r: random.Random, n: int) -> int:
    return int(n ** r.random()) - 1 if r.random() < 0.6 else r.randrange(n)


def _draw_model(hub: LazyHub, i: int) -> synth.Entity:
    r = _rng(hub, "model", i)
    relation = None
    bases: list[int] = []
    if i > 0 and r.random() < 0.45:
        relation = synth._weighted(r, synth._RELATIONS)
        want = r.choice((2, 2, 3, 4)) if relation == "merge" else 1
        for _ in range(want * 4):
            j = int(i ** r.random()) - 1  # log-uniform over earlier models: early ones become popular bases
            if j not in bases:
                bases.append(j)
                if len(bases) == want:
                    break
        if relation == "merge" and len(bases) < 2:
            relation, bases = "finetune", bases[:1]
    kind = synth._pick_arch(r)
    arch = synth._ARCHS[kind]
    if bases:
        name = f"{r.choice(arch.families)}-{r.choice(synth._SUFFIX[relation])}"
    else:
        parts = [r.choice(arch.families)]
        if r.random() < 0.4:
            parts.append(r.choice(synth._VERSIONS))
        if r.random() < 0.6:
            parts.append(r.choice(synth._SIZES))
        suffix = r.choice(synth._SUFFIX[None])
        if suffix:
            parts.append(suffix)
        name = ("_" if r.random() < 0.1 else "-").join(parts)
    if r.random() < 0.15:
        name = name.lower()
    e = hub._new("model", i, r, name, 0.0 if bases else 0.15)
    e._kind = kind
    e._relation = relation
    e._bases = tuple(bases)
    flags = 0
    if r.random() < 0.3:
        flags |= 1  # a single base written as a one-element list
    if r.random() < 0.4:
        flags |= 2  # base_model_relation written in the card
    if r.random() < 0.6:
        flags |= 1 << 11  # a quantized model is GGUF
    if r.random() < 0.4:
        flags |= 1 << 10  # a single dataset written as a string
    e._flags = flags
    n_datasets = len(hub.datasets)
    if n_datasets and r.random() < 0.25:
        want = r.choice((1, 1, 1, 2, 3))
        picked: list[int] = []
        for _ in range(want * 3):
            k = _zipf_index(r, n_datasets)
            if k not in picked:
                picked.append(k)
            if len(picked) == want:
                break
        e._datasets = tuple(picked)
    if not bases and r.random() < 0.005:
        e._unknown_base = f"removed-org-{r.randrange(10**6)}/{name[:40]}"
    return e


def _draw_dataset(hub: LazyHub, i: int) -> synth.Entity:
    r = _rng(hub, "dataset", i)
    kind = r.randrange(len(synth._DS_KINDS))
    name = r.choice(synth._DS_KINDS[kind][4]) + r.choice(synth._DS_SUFFIX)
    if r.random() < 0.2:
        name = name.replace("_", "-") if "_" in name else name.replace("-", "_")
    if r.random() < 0.1:
        name = name.upper() if r.random() < 0.3 else name.capitalize()
    e = hub._new("dataset", i, r, name, 0.25)
    e._kind = kind
    return e


def _draw_space(hub: LazyHub, i: int) -> synth.Entity:
    r = _rng(hub, "space", i)
    name = r.choice(synth._SPACE_WORDS)
    if r.random() < 0.5:
        name += ("-" if r.random() < 0.7 else "_") + r.choice(synth._SYLLABLES + synth._VERSIONS)
    e = hub._new("space", i, r, name, 0.0)
    sdk = synth._weighted(r, synth._SDKS)
    e._kind = [s[0] for s in synth._SDKS].index(sdk)
    n_models, n_datasets = len(hub.models), len(hub.datasets)
    if n_models and r.random() < 0.6:
        e._models = _distinct(r, n_models, r.choice((1, 1, 2, 3)))
    if n_datasets and r.random() < 0.2:
        e._datasets = _distinct(r, n_datasets, r.choice((1, 1, 2)))
    return e


def _distinct(r: random.Random, n: int, k: int) -> tuple[int, ...]:
    out: list[int] = []
    for _ in range(k * 3):
        j = _zipf_index(r, n)
        if j not in out:
            out.append(j)
        if len(out) == k:
            break
    return tuple(out)


_DRAW = {"model": _draw_model, "dataset": _draw_dataset, "space": _draw_space}
