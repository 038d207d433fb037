"""Relation extraction: the edges and node attributes one Hub entity's JSON declares (pure functions).

`extract(repo_type, api)` takes the entity as the Hub's JSON gives it (`item.to_api()`, or a synthetic Hub's api
dict) and returns an `Extraction`: the entity's node attributes, its edges, and what was skipped and why. It never
raises on bad input: the card (`cardData`) is written by repository owners and may hold anything.

Rules (docs/PROVENANCE.md):
- base models: the Hub's `base_model:<relation>:<id>` tags (canonical, current ids; source `tag`); a plain
  `base_model:<id>` tag without a relation tag for the same id gives relation `base`. Only when the tags name no
  base at all: `cardData.base_model` (string or list, source `card`) with `cardData.base_model_relation` (else
  `base`). `baseModels` (per-entity call, source `api`) adds its bases and its relation.
- model -> dataset: `dataset:<id>` tags (source `tag`); only when there are none, `cardData.datasets` (string or
  list, source `card`).
- space -> model and space -> dataset: the space's `models` and `datasets` (source `api`).
- the reverse links the Hub gives: a model's `spaces` is an edge space -> model (source `api`), marked `reverse`
  (it is kept only while the space itself is not crawled; see `hfscraper.provenance.store`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from hfscraper.hub import HostileIdError, check_repo_id

#: Relations of a base-model edge; `base` is "some base, relation unknown".
RELATIONS: Final = ("finetune", "adapter", "quantized", "merge")
RELATION_UNKNOWN: Final = "base"
#: Edge kinds, as in the ground truth's relations.
KIND_BASE_MODEL: Final = "base_model"
KIND_DATASET: Final = "dataset"
KIND_MODEL: Final = "model"
#: Where an edge was read: the Hub's computed tags, the owner's card, an API field.
SOURCES: Final = ("api", "card", "tag")
#: Node types.
TYPES: Final = ("model", "dataset", "space")
#: At most this many targets are read from one field of one entity (a hostile card may list millions).
MAX_LINKS: Final = 1000
#: Longest id accepted (the Hub's own limit is 96 characters per part).
MAX_ID_LENGTH: Final = 256
#: Node attributes besides `type`, `id`, `scraped`, `deleted` (graph contract, docs/PROVENANCE.md).
NODE_ATTRIBUTES: Final = (
    "author", "pipeline_tag", "library_name", "downloads", "likes", "created_at", "last_modified",
)  # fmt: skip
_ATTRIBUTE_KEYS: Final = {
    "author": ("author", str), "pipeline_tag": ("pipeline_tag", str), "library_name": ("library_name", str),
    "downloads": ("downloads", int), "likes": ("likes", int), "created_at": ("createdAt", str),
    "last_modified": ("lastModified", str),
}  # fmt: skip


_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold_id(repo_id: str) -> str:
    """A Hub id's case-insensitive key (the Hub answers an id in any case): its ASCII letters lower-cased, as
    SQLite's `NOCASE` compares them (Hub ids are ASCII; other characters are compared as they are)."""
    return repo_id.translate(_ASCII_LOWER)


class Edge(NamedTuple):
    """One declared edge: from the dependent entity (`src`) to what it depends on (`dst`)."""

    src_type: str
    src_id: str
    dst_type: str
    dst_id: str
    kind: str
    relation: str
    source: str
    #: True when the edge was declared by its target (a model's `spaces`), not by its source.
    reverse: bool = False


@dataclass
class Extraction:
    """What one entity declares: its node attributes, its edges, and the skipped values per reason."""

    repo_type: str
    id: str
    node: dict[str, Any]
    edges: list[Edge] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    #: Ids named only by the card (no tag): candidates for the rename check (`hfscraper.provenance.renames`).
    card_only: list[tuple[str, str]] = field(default_factory=list)


def node_key(repo_type: str, repo_id: str) -> str:
    """The graph's node key: `model:org/name`."""
    return f"{repo_type}:{repo_id}"


def node_attributes(api: Mapping[str, Any]) -> dict[str, Any]:
    """The node attributes of an entity's JSON; a value of the wrong type becomes None."""
    out: dict[str, Any] = {}
    for name, (key, kind) in _ATTRIBUTE_KEYS.items():
        value = api.get(key)
        if kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63
        else:
            ok = isinstance(value, str) and len(value) <= 1000
        out[name] = value if ok else None
    return out


def _valid_id(value: object) -> str | None:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH or value != value.strip():
        return None
    try:
        return check_repo_id(value)
    except HostileIdError:
        return None


def _ids(value: object, skipped: Counter[str], what: str) -> list[str]:
    """Ids from a string or a list of strings (card or API field); anything else is counted under *what*."""
    if value is None:
        return []
    if isinstance(value, str):
        items: Iterable[object] = (value,)
    elif isinstance(value, list):
        if len(value) > MAX_LINKS:
            skipped[f"{what}/too_many"] += len(value) - MAX_LINKS
            value = value[:MAX_LINKS]
        items = value
    else:
        skipped[f"{what}/wrong_type"] += 1
        return []
    out: list[str] = []
    for raw in items:
        if isinstance(raw, dict) and what.endswith("baseModels"):
            raw = raw.get("id")
        repo_id = _valid_id(raw)
        if repo_id is None:
            skipped[f"{what}/bad_id"] += 1
        elif repo_id not in out:
            out.append(repo_id)
    return out


def extract(repo_type: str, api: Mapping[str, Any]) -> Extraction:
    """The node attributes and edges the entity's JSON declares (see the module docstring); never raises."""
    repo_id = api.get("id")
    if not isinstance(repo_id, str):
        repo_id = ""
    result = Extraction(repo_type, repo_id, node_attributes(api))
    if not repo_id:
        result.skipped["id/missing"] += 1
        return result
    if repo_type == "model":
        _model(result, api)
    elif repo_type == "space":
        _space(result, api)
    # datasets declare nothing (their dependents point at them)
    seen: set[tuple[str, str, str, str, str]] = set()
    edges: list[Edge] = []
    for edge in result.edges:
        key = (edge.src_type, edge.src_id, edge.dst_type, edge.dst_id, edge.source)
        if edge.src_type == edge.dst_type and fold_id(edge.src_id) == fold_id(edge.dst_id):
            result.skipped["self_link"] += 1
        elif key not in seen:
            seen.add(key)
            edges.append(edge)
    result.edges = edges
    return result


def _tags(api: Mapping[str, Any], skipped: Counter[str]) -> list[str]:
    tags = api.get("tags")
    if tags is None:
        return []
    if not isinstance(tags, list):
        skipped["tags/wrong_type"] += 1
        return []
    out = [t for t in tags[: MAX_LINKS * 4] if isinstance(t, str)]
    if len(out) != len(tags):
        skipped["tags/bad_tag"] += len(tags) - len(out)
    return out


def _card(api: Mapping[str, Any], skipped: Counter[str]) -> Mapping[str, Any]:
    card = api.get("cardData")
    if card is None:
        return {}
    if not isinstance(card, Mapping):
        skipped["card/wrong_type"] += 1
        return {}
    return card


def _model(result: Extraction, api: Mapping[str, Any]) -> None:
    me, skipped = result.id, result.skipped
    tags = _tags(api, skipped)
    card = _card(api, skipped)
    # Base models from the Hub's tags: {id: relation}, relation tags win over plain ones.
    bases: dict[str, str] = {}
    datasets: list[str] = []
    for tag in tags:
        if tag.startswith("base_model:"):
            rest = tag[len("base_model:") :]
            head, sep, tail = rest.partition(":")
            if sep:
                base = _valid_id(tail)
                if head not in RELATIONS or base is None:
                    skipped["tag/bad_base_model"] += 1
                    continue
                bases[base] = head
            else:
                base = _valid_id(rest)
                if base is None:
                    skipped["tag/bad_base_model"] += 1
                    continue
                bases.setdefault(base, RELATION_UNKNOWN)
        elif tag.startswith("dataset:"):
            dataset = _valid_id(tag[len("dataset:") :])
            if dataset is None:
                skipped["tag/bad_dataset"] += 1
            elif dataset not in datasets:
                datasets.append(dataset)
    for base, relation in bases.items():
        result.edges.append(Edge("model", me, "model", base, KIND_BASE_MODEL, relation, "tag"))
    if not bases:
        relation = card.get("base_model_relation")
        if relation is not None and relation not in RELATIONS:
            skipped["card/bad_base_model_relation"] += 1
        relation = relation if relation in RELATIONS else RELATION_UNKNOWN
        for base in _ids(card.get("base_model"), skipped, "card/base_model"):
            result.edges.append(Edge("model", me, "model", base, KIND_BASE_MODEL, relation, "card"))
            result.card_only.append(("model", base))
    # baseModels (a per-entity call): {"relation": ..., "models": [{"_id", "id"}, ...]}
    tree = api.get("baseModels")
    if tree is not None:
        if not isinstance(tree, Mapping):
            skipped["api/baseModels/wrong_type"] += 1
        else:
            relation = tree.get("relation")
            relation = relation if relation in RELATIONS else RELATION_UNKNOWN
            for base in _ids(tree.get("models"), skipped, "api/baseModels"):
                # The tags' relation wins for a base both name; baseModels adds its source.
                rel = bases.get(base, relation)
                if rel == RELATION_UNKNOWN:
                    rel = relation
                result.edges.append(Edge("model", me, "model", base, KIND_BASE_MODEL, rel, "api"))
    for dataset in datasets:
        result.edges.append(Edge("model", me, "dataset", dataset, KIND_DATASET, "dataset", "tag"))
    if not datasets:
        for dataset in _ids(card.get("datasets"), skipped, "card/datasets"):
            result.edges.append(Edge("model", me, "dataset", dataset, KIND_DATASET, "dataset", "card"))
            result.card_only.append(("dataset", dataset))
    for space in _ids(api.get("spaces"), skipped, "api/spaces"):
        result.edges.append(Edge("space", space, "model", me, KIND_MODEL, "model", "api", reverse=True))


def _space(result: Extraction, api: Mapping[str, Any]) -> None:
    me, skipped = result.id, result.skipped
    for model in _ids(api.get("models"), skipped, "api/models"):
        result.edges.append(Edge("space", me, "model", model, KIND_MODEL, "model", "api"))
    for dataset in _ids(api.get("datasets"), skipped, "api/datasets"):
        result.edges.append(Edge("space", me, "dataset", dataset, KIND_DATASET, "dataset", "api"))
