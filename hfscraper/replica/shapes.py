"""The Hub's JSON shapes: which keys each response carries, in which order, with which JSON types.

Every order here is taken from real recorded responses in tests/data/hub_fixtures (tests/
test_replica_fidelity_shapes.py compares them key by key); where no recording exists the choice is an
inference, marked [I], that follows the recorded neighbours.

- Single model, default (35 cassettes, 2025-03): `_id, id, private, pipeline_tag, library_name, tags, downloads,
  likes, modelId, author, sha, lastModified, gated, disabled, mask_token, widgetData, model-index, config,
  cardData, transformersInfo, siblings, spaces, createdAt, safetensors, inference, usedStorage`; optional
  keys are omitted when the model lacks them (`model-index` is null when the card has none, absent
  without a card). Cassettes from 2025-01 put `inference` after `gated`: the server has since moved it.
- Single dataset, default (disabled-dataset capture, 2026): `_id, id, author, sha, lastModified, private, gated,
  disabled, tags, citation, description, downloads, likes, cardData, siblings, createdAt, usedStorage`.
- Listing items, default: models `_id, id, likes, trendingScore, private, downloads, tags, pipeline_tag,
  library_name, createdAt, modelId` (2025-11 capture); datasets start `_id, id, author, disabled, gated,
  lastModified, likes, trendingScore, private, ...` (2026-09 capture, truncated there).
- With `expand`: only `_id`, `id` and the requested keys, in one fixed projection order (EXPAND_ORDER) that
  agrees with both the models capture (`lastModified, likes, private, downloads, tags, pipeline_tag,
  library_name, siblings, createdAt`) and the datasets capture (`author, disabled, gated, lastModified, likes,
  private, sha, description, downloads, downloadsAllTime, tags, createdAt`); never `modelId`.
- `inferenceProviderMapping` is a dict keyed by provider on the single entity (the recorded `?expand=` answers)
  and a list on the listings (huggingface_hub's `ModelInfo` reads both, PR #3022: "the API returns a dict on
  model_info and a list on list_models"). No listing answer is recorded: each list item is the dict's value
  with the key as `provider`, put first [I] (`provider_mapping_list`).
- `securityStatus=true` on a model adds `securityRepoStatus: {"scansDone", "filesWithIssues"}` (the shape
  every public client and test that reads it uses; no recorded answer, and its place in the body is [I]: last).
- Tree entries of LFS files carry `xetHash` after `lfs` (huggingface.js live-test tree fixture).
- Space runtime objects: `stage, hardware{current, requested}, storage, gcTimeout, replicas{requested[, current]},
  devMode, domains[{domain, stage}]`; a static space has `stage, hardware, storage, replicas` only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# huggingface_hub hf_api.py Expand*Property_T.
EXPANDABLE: dict[str, tuple[str, ...]] = {
    "model": ("author", "baseModels", "cardData", "childrenModelCount", "config", "createdAt", "disabled",
              "downloads", "downloadsAllTime", "evalResults", "gated", "gguf", "inference",
              "inferenceProviderMapping", "lastModified", "library_name", "likes", "mask_token", "model-index",
              "pipeline_tag", "private", "resourceGroup", "safetensors", "sha", "siblings", "spaces", "tags",
              "transformersInfo", "trendingScore", "usedStorage", "widgetData"),
    "dataset": ("author", "cardData", "citation", "createdAt", "description", "disabled", "downloads",
                "downloadsAllTime", "gated", "lastModified", "likes", "mainSize", "paperswithcode_id", "private",
                "resourceGroup", "sha", "siblings", "tags", "trendingScore", "usedStorage"),
    "space": ("author", "cardData", "createdAt", "datasets", "disabled", "lastModified", "likes", "models",
              "private", "region", "resourceGroup", "runtime", "sdk", "sha", "siblings", "subdomain", "tags",
              "trendingScore", "usedStorage"),
}
# Valid on /api/models/{id} only; the listing answers 400 (huggingface_hub PR #3182, citing server code).
LIST_REFUSED: dict[str, frozenset[str]] = {
    "model": frozenset({"baseModels", "childrenModelCount", "usedStorage"}),
    "dataset": frozenset(),
    "space": frozenset(),
}

# Accepted although no longer in huggingface_hub's list: `xetEnabled` (recorded 2025-03 answer; hf_hub < 1.0
# asks for it) and `gitalyUid` (huggingface.js). Not part of the ground truth's `api`.
EXTRA_EXPANDABLE: frozenset[str] = frozenset({"xetEnabled", "gitalyUid"})

# One projection order for every expand (listing and single entity). The first keys are fixed by the two
# captures and the default listings; the placement of the rest follows the single-entity body [I].
EXPAND_ORDER: tuple[str, ...] = (
    "author", "disabled", "gated", "lastModified", "likes", "trendingScore", "private", "sha", "sdk",
    "citation", "description", "paperswithcode_id", "downloads", "downloadsAllTime", "tags", "pipeline_tag",
    "library_name", "mask_token", "widgetData", "model-index", "config", "cardData", "transformersInfo",
    "siblings", "spaces", "models", "datasets", "createdAt", "safetensors", "gguf", "inference",
    "inferenceProviderMapping", "evalResults", "runtime", "subdomain", "region", "mainSize", "usedStorage",
    "baseModels", "childrenModelCount", "resourceGroup", "xetEnabled", "gitalyUid",
)
_EXPAND_RANK = {k: n for n, k in enumerate(EXPAND_ORDER)}

# Listing items without expand (modelId is appended last for models).
LIST_DEFAULT: dict[str, tuple[str, ...]] = {
    "model": ("likes", "trendingScore", "private", "downloads", "tags", "pipeline_tag", "library_name", "createdAt"),
    # Captured prefix up to `private`; the rest as in the datasets expand capture [I].
    "dataset": ("author", "disabled", "gated", "lastModified", "likes", "trendingScore", "private", "sha",
                "description", "downloads", "tags", "createdAt"),
    "space": ("likes", "trendingScore", "private", "sdk", "tags", "createdAt"),  # [I] not recorded
}
# What `full=true` adds to the default listing item (hf_hub docstrings; exact set [I]).
LIST_FULL: dict[str, tuple[str, ...]] = {
    "model": ("author", "sha", "lastModified", "gated", "disabled", "siblings"),
    "dataset": ("cardData", "siblings"),
    "space": ("author", "sha", "lastModified", "cardData", "siblings"),
}

# Single-entity bodies without expand, in the recorded order.
INFO_DEFAULT: dict[str, tuple[str, ...]] = {
    "model": ("private", "pipeline_tag", "library_name", "tags", "downloads", "likes", "modelId", "author", "sha",
              "lastModified", "gated", "disabled", "mask_token", "widgetData", "model-index", "config", "cardData",
              "transformersInfo", "siblings", "spaces", "createdAt", "safetensors", "gguf", "inference",
              "usedStorage"),
    "dataset": ("author", "sha", "lastModified", "private", "gated", "disabled", "tags", "citation", "description",
                "paperswithcode_id", "downloads", "likes", "cardData", "siblings", "createdAt", "usedStorage"),
    # No recorded space body: huggingface_hub's SpaceInfo fields laid out like the dataset body [I].
    "space": ("author", "sha", "lastModified", "private", "gated", "disabled", "host", "subdomain", "tags", "likes",
              "sdk", "cardData", "runtime", "siblings", "models", "datasets", "createdAt", "usedStorage"),
}

# Header names of real responses, in wire order. The 2026 resolve capture gives the order
# (third_party_captures/resolve_header_examples.json); the 2025 cassettes give the set of an API JSON answer
# (vcrpy stored them sorted, so not their order); RateLimit/RateLimit-Policy are on every response since
# Sept 2025 (hub-docs rate-limits.md, https://huggingface.co/docs/hub/rate-limits). CloudFront's own headers come last.
_HEAD = ("Content-Type", "Content-Length", "Connection", "Date")
_MOON = ("X-Powered-By", "X-Request-Id", "RateLimit", "RateLimit-Policy", "cross-origin-opener-policy",
         "Referrer-Policy")
_CORS = ("Access-Control-Allow-Origin", "Vary", "Access-Control-Expose-Headers")
_CDN = ("X-Cache", "Via", "X-Amz-Cf-Pop", "X-Amz-Cf-Id")
_HEADERS: dict[str, tuple[str, ...]] = {
    "json": _HEAD + ("ETag",) + _MOON + _CORS + _CDN,
    "list": _HEAD + ("ETag", "Link") + _MOON + _CORS + _CDN,  # Link only when a next page exists
    "redirect": _HEAD + ("Location",) + _MOON + _CORS + _CDN,  # rename 307, text/plain body
    "error": _HEAD + ("ETag", "X-Error-Code", "X-Error-Message") + _MOON + _CORS + _CDN,
    # 307 of a small file to /api/resolve-cache/... (exactly the 2026 capture's names and order)
    "resolve_small": _HEAD + ("Location",) + _MOON + ("Access-Control-Max-Age",) + _CORS,
    # 302 of an LFS file to the CDN (X-Linked-*, X-Repo-Commit, Accept-Ranges, Cache-Control: 2026 capture)
    "resolve_lfs": _HEAD + ("Location", "X-Repo-Commit", "X-Linked-Etag", "X-Linked-Size", "Accept-Ranges",
                            "Cache-Control") + _MOON + ("Access-Control-Max-Age",) + _CORS,
}
ACCESS_CONTROL_EXPOSE_HEADERS = ("X-Repo-Commit,X-Request-Id,X-Error-Code,X-Error-Message,X-Total-Count,ETag,Link,"
                                 "Accept-Ranges,Content-Range,X-Xet-Access-Token,X-Xet-Token-Expiration,"
                                 "X-Xet-Refresh-Route,X-Xet-Cas-Url,X-Xet-Hash")


def response_headers(kind: str) -> list[str]:
    """Header names the Hub sends, in order; `kind` in json | list | redirect | error | resolve_small | resolve_lfs."""
    return list(_HEADERS[kind])


def normalize_type(repo_type: str) -> str:
    return {"models": "model", "datasets": "dataset", "spaces": "space"}.get(repo_type, repo_type)


def truth_expand(repo_type: str) -> tuple[str, ...]:
    """The expand list whose answer the ground truth's `api` holds: every listing-expandable property."""
    repo_type = normalize_type(repo_type)
    return tuple(k for k in EXPANDABLE[repo_type] if k not in LIST_REFUSED[repo_type])


def validate_expand(repo_type: str, expand: Iterable[str], *, listing: bool) -> list[str]:
    """The requested properties, deduplicated; ValueError (the Hub's 400) for unknown or refused ones."""
    repo_type = normalize_type(repo_type)
    refused = LIST_REFUSED[repo_type] if listing else frozenset()
    out: list[str] = []
    for key in expand:
        if (key not in EXPANDABLE[repo_type] and key not in EXTRA_EXPANDABLE) or key in refused:
            # The Hub's wording, which huggingface_hub's drift test parses: the valid values in brackets, nothing after.
            valid = sorted({*EXPANDABLE[repo_type], *EXTRA_EXPANDABLE} - refused, key=str.lower)
            raise ValueError(f'"expand" must be one of [{", ".join(valid)}]')
        if key not in out:
            out.append(key)
    return out


def _core(entity: Any) -> dict:
    return {"_id": entity.mongo_id, "id": entity.id}


def _ordered(keys: Iterable[str]) -> list[str]:
    return sorted(set(keys), key=lambda k: _EXPAND_RANK.get(k, len(_EXPAND_RANK)))


def _siblings(entity: Any, blobs: bool) -> list[dict]:
    if not blobs:
        return [{"rfilename": f.path} for f in entity.files]
    out = []
    for f in entity.files:
        item: dict[str, Any] = {"rfilename": f.path, "blobId": f.blob_sha1, "size": f.size}
        if f.lfs:
            item["lfs"] = {"size": f.size, "sha256": f.sha256, "pointerSize": f.pointer_size}
        out.append(item)
    return out


def _pick(entity: Any, fields: dict, key: str, blobs: bool = False) -> tuple[bool, Any]:
    if key == "siblings" and blobs:
        return True, _siblings(entity, True)
    if key == "private":
        return True, entity.private
    if key == "gated":
        return True, entity.gated
    if key == "disabled":
        return True, entity.disabled
    if key == "modelId":
        return True, entity.id
    if key in fields:
        return True, fields[key]
    return False, None


def provider_mapping_list(mapping: Any) -> Any:
    """A listing's `inferenceProviderMapping`: the single entity's `{provider: {...}}` as a list of
    `{"provider": provider, ...}` (anything else unchanged).

    >>> provider_mapping_list({"hf-inference": {"status": "live", "providerId": "a/b", "task": "fill-mask"}})
    [{'provider': 'hf-inference', 'status': 'live', 'providerId': 'a/b', 'task': 'fill-mask'}]
    """
    if not isinstance(mapping, dict):
        return mapping
    return [{"provider": provider, **value} for provider, value in mapping.items()]


def listing_value(key: str, value: Any) -> Any:
    """What a listing gives for `key` where the single entity (and the ground truth's `api`) gives `value`."""
    return provider_mapping_list(value) if key == "inferenceProviderMapping" else value


def _expanded(entity: Any, expand: Iterable[str], blobs: bool = False, listing: bool = False) -> dict:
    fields = entity.fields
    body = _core(entity)
    for key in _ordered(expand):
        present, value = _pick(entity, fields, key, blobs)
        if present:  # a property the entity lacks is left out, as the Hub does (e.g. pipeline_tag)
            body[key] = listing_value(key, value) if listing else value
    return body


def render_list_item(entity: Any, *, expand: list[str] | None, full: bool = False, card_data: bool = False,
                     config: bool = False) -> dict:
    """One item of GET /api/{type}s. With `expand` the other flags are ignored (huggingface_hub refuses
    to combine them; the Hub's projection is then just `_id`, `id` and the expanded keys)."""
    repo_type = normalize_type(entity.repo_type)
    if expand:
        return _expanded(entity, expand, listing=True)
    keys = list(LIST_DEFAULT[repo_type])
    if full:
        keys += LIST_FULL[repo_type]
    if card_data:
        keys.append("cardData")
    if config and repo_type == "model":
        keys.append("config")
    body = _expanded(entity, keys, listing=True)
    if repo_type == "model":
        body["modelId"] = entity.id
    return body


def render_info(entity: Any, *, expand: list[str] | None = None, blobs: bool = False, security: bool = False) -> dict:
    """The body of GET /api/{type}s/{id}[/revision/{rev}]: default fields, or `_id`, `id` + `expand`;
    `security` (`securityStatus=true`) adds a model's `securityRepoStatus`."""
    repo_type = normalize_type(entity.repo_type)
    if expand:
        body = _expanded(entity, expand, blobs)
    else:
        fields = entity.fields
        body = _core(entity)
        for key in INFO_DEFAULT[repo_type]:
            present, value = _pick(entity, fields, key, blobs)
            if present:
                body[key] = value
    if security and repo_type == "model":
        body["securityRepoStatus"] = security_repo_status(entity)
    return body


def security_repo_status(entity: Any) -> dict:
    # Every file of a synthetic repo scans clean (as security_file_status says per file) [I for values].
    return {"scansDone": True, "filesWithIssues": []}


def render_tree_entry(entity: Any, file: Any, *, expand: bool, xet: bool = True) -> dict:
    """One `{"type": "file", ...}` item of GET /api/{type}s/{id}/tree/{rev}. `xet=False` drops `xetHash`
    (the real Hub sends it for Xet-backed LFS files; clients may then try the Xet protocol)."""
    item: dict[str, Any] = {"type": "file", "oid": file.blob_sha1, "size": file.size}
    if file.lfs:
        item["lfs"] = {"oid": file.sha256, "size": file.size, "pointerSize": file.pointer_size}
        if xet:
            item["xetHash"] = file.xet_hash
    item["path"] = file.path
    if expand:
        commit = file.last_commit or {"id": entity.sha, "title": "Upload", "date": entity.fields["lastModified"]}
        item["lastCommit"] = {"id": commit["id"], "title": commit["title"], "date": commit["date"]}
        item["securityFileStatus"] = security_file_status(file)
    return item


def render_tree_directory(entity: Any, path: str, oid: str, *, expand: bool) -> dict:
    """One `{"type": "directory", ...}` tree item; `oid` is the folder's tree id."""
    item: dict[str, Any] = {"type": "directory", "oid": oid, "size": 0, "path": path}
    if expand:
        commits = [f.last_commit for f in entity.files if f.path.startswith(path + "/") and f.last_commit]
        latest = max(commits, key=lambda c: c["date"]) if commits else {
            "id": entity.sha, "title": "Upload", "date": entity.fields["lastModified"]}
        item["lastCommit"] = {"id": latest["id"], "title": latest["title"], "date": latest["date"]}
    return item


def security_file_status(file: Any) -> dict:
    # The keys huggingface_hub's BlobSecurityInfo reads (status, avScan, pickleImportScan) [I for values].
    return {"status": "safe", "avScan": {"virusFound": False, "virusNames": None}, "pickleImportScan": None}


def render_runtime(entity: Any) -> dict:
    """GET /api/spaces/{id}/runtime."""
    return entity.fields["runtime"]
