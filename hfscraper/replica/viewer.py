"""The replica's dataset viewer (`datasets-server`): a third origin with the shapes of its OpenAPI spec.

Served on its own origin (by default `http://127.0.0.1:<another port>`; `GET /_replica/info` names it as
`datasets_server_url`), like `https://datasets-server.huggingface.co` beside `https://huggingface.co`, so the
token rule (sent to the Hub's origin only) is really tested. Endpoints and shapes follow the dataset-viewer docs
(https://huggingface.co/docs/dataset-viewer) and
`tests/data/hub_fixtures/datasets-server_openapi.json`:

- `GET /is-valid?dataset=`: `{"preview", "viewer", "search", "filter", "statistics"}` (all booleans).
- `GET /splits?dataset=`: `{"splits": [{"dataset", "config", "split"}], "pending": [], "failed": []}`.
- `GET /first-rows?dataset=&config=&split=`: `{"dataset", "config", "split", "features": [{"feature_idx", "name",
  "type"}], "rows": [{"row_idx", "row", "truncated_cells"}], "truncated"}`.
- `GET /info?dataset=`: `{"dataset_info": {<config>: {...}}, "pending": [], "failed": [], "partial"}`.
- `GET /size?dataset=`: `{"size": {"dataset", "configs", "splits"}, "pending": [], "failed": [], "partial"}`.

Errors carry `{"error": ...}`, `X-Error-Code`, `Cache-Control: no-cache` and `Access-Control-Allow-Origin: *`:
422 `MissingRequiredParameter` (no `dataset`, or no `config`/`split` on `/first-rows`); 401
`ExternalUnauthenticatedError` for a dataset that is missing, private or gated when no token came (404
`ExternalAuthenticatedError` with one that is not granted it); 404 `ResponseNotFound` for an unknown config or
split and for a disabled dataset; 500 `ResponseNotReadyError` while a response is not computed yet; 500
`UnexpectedError` (with `cause_exception`) when the dataset cannot be read; 500 `StreamingRowsError` on
`/first-rows` of a split whose rows cannot be streamed.

Which dataset behaves how is a pure function of the seed and the id (`viewer_status`), written into the ground
truth as each dataset's `viewer`: `ok`; `preview_only` (is-valid says preview only; info and size are `partial`);
`rows_error` (the last split's first rows fail with `StreamingRowsError`); `not_ready` (is-valid all false, every
other endpoint 500 `ResponseNotReadyError`); `error` (is-valid all false, every other endpoint 500
`UnexpectedError`: the dataset is empty, as every hostile-id dataset is); `unauthorized` (private or gated: 401
without a token); `not_found` (disabled: 404). Unknown ids are `unauthorized` too, as on the real service.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import parse_qsl

from hfscraper.replica.responses import Reply, dumps

JSON = "application/json"
OK_HEADERS = [("Content-Type", JSON), ("Cache-Control", "max-age=120"), ("Access-Control-Allow-Origin", "*")]
ERROR_HEADERS = [("Content-Type", JSON), ("Cache-Control", "no-cache"), ("Access-Control-Allow-Origin", "*")]
ENDPOINTS = ("/is-valid", "/splits", "/first-rows", "/info", "/size")
CONFIG = "default"
ROWS_SHOWN = 10

NOT_ACCESSIBLE = (
    "The dataset does not exist, or is not accessible without authentication (private or gated). Please check the "
    "spelling of the dataset name or retry with authentication."
)
NOT_READY = "The server is busier than usual and the response is not ready yet. Please retry later."
EMPTY = "The dataset is empty."
STREAMING = "Cannot load the dataset split (in streaming mode) to extract the first rows."

_FEATURE_TYPES = {"image": {"_type": "Image"}, "audio": {"_type": "Audio", "sampling_rate": 16000}}


def viewer_status(entity: Any, seed: int) -> str:
    """How the viewer treats this dataset (see the module docstring)."""
    if entity.private or entity.gated:
        return "unauthorized"
    if entity.disabled:
        return "not_found"
    if entity._extra == "hostile":
        return "error"
    draw = int.from_bytes(hashlib.blake2b(f"viewer:{seed}:{entity.id}".encode(), digest_size=8).digest(), "big")
    u = draw / 2**64
    if u < 0.05:
        return "error"
    if u < 0.09:
        return "not_ready"
    if u < 0.15:
        return "preview_only"
    if u < 0.19:
        return "rows_error"
    return "ok"


def _error(status: int, code: str, message: str, **extra: Any) -> Reply:
    return Reply(
        status=status, headers=[*ERROR_HEADERS, ("X-Error-Code", code)], body=dumps({"error": message, **extra}),
        kind="error",
    )  # fmt: skip


def _ok(payload: Any) -> Reply:
    return Reply(status=200, headers=list(OK_HEADERS), body=dumps(payload), kind="json")


class DatasetViewer:
    """Answers the viewer endpoints for the datasets of a synthetic Hub."""

    def __init__(self, hub: Any, seed: int, approved_tokens: frozenset[str] = frozenset()) -> None:
        self.hub = hub
        self.seed = seed
        self.approved_tokens = approved_tokens

    def reply(self, method: str, path: str, raw_query: str, authorization: str | None, base_url: str) -> Reply:
        if method not in ("GET", "HEAD"):
            return _error(405, "MethodNotAllowed", "Method not allowed.")
        if path not in ENDPOINTS:
            return _error(404, "ResponseNotFound", "Not found.")
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        dataset = query.get("dataset", "")
        if path == "/first-rows" and not (dataset and query.get("config") and query.get("split")):
            return _error(422, "MissingRequiredParameter", "Parameters 'dataset', 'config' and 'split' are required")
        if not dataset:
            return _error(422, "MissingRequiredParameter", "Parameter 'dataset' is required")
        token = _bearer(authorization)
        entity = self.hub.get("dataset", dataset)
        if entity is None or entity.private or (entity.gated and token not in self.approved_tokens):
            if token is None:
                return _error(401, "ExternalUnauthenticatedError", NOT_ACCESSIBLE)
            return _error(404, "ExternalAuthenticatedError", NOT_ACCESSIBLE)
        status = viewer_status(entity, self.seed)
        if status == "unauthorized":  # gated, and this token is granted it
            status = "ok"
        if status == "not_found":
            return _error(404, "ResponseNotFound", "Not found.")
        facts = _facts(entity)
        if path == "/is-valid":
            on = status in ("ok", "rows_error")
            preview = on or status == "preview_only"
            return _ok({"preview": preview, "viewer": on, "search": on, "filter": on, "statistics": on})
        if status == "not_ready":
            return _error(500, "ResponseNotReadyError", NOT_READY)
        if status == "error":
            return _error(
                500, "UnexpectedError", EMPTY, cause_exception="EmptyDatasetError",
                cause_message=f"The directory at hf://datasets/{dataset}@{entity.sha} doesn't contain any data files",
            )  # fmt: skip
        config = query.get("config")
        if config is not None and config != CONFIG:
            return _error(404, "ResponseNotFound", "Not found.")
        partial = status == "preview_only"
        if path == "/splits":
            return _ok({"splits": [_split(dataset, s) for s in facts["splits"]], "pending": [], "failed": []})
        if path == "/first-rows":
            split = query["split"]
            if split not in facts["splits"]:
                return _error(404, "ResponseNotFound", "Not found.")
            if status == "rows_error" and split == facts["splits"][-1]:
                return _error(
                    500, "StreamingRowsError", STREAMING, cause_exception="DatasetGenerationError",
                    cause_message="An error occurred while generating the dataset",
                )  # fmt: skip
            return _ok(_first_rows(dataset, entity, facts, split, base_url))
        if path == "/info":
            info = _dataset_info(dataset, facts)
            if config is not None:
                return _ok({"dataset_info": info, "partial": partial})
            return _ok({"dataset_info": {CONFIG: info}, "pending": [], "failed": [], "partial": partial})
        size = _size(dataset, facts)
        if config is not None:
            return _ok({"size": {"config": size["configs"][0], "splits": size["splits"]}, "partial": partial})
        return _ok({"size": size, "pending": [], "failed": [], "partial": partial})


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _facts(entity: Any) -> dict[str, Any]:
    from hfscraper.replica.synth import _DatasetGen  # the generator that also draws the card and the files

    gen = _DatasetGen(entity)
    rows = gen.rows
    n_train = rows if len(gen.splits) == 1 else rows * 4 // 5
    sizes = {"train": n_train, "test": rows - n_train}
    return {
        "name": gen.name,
        "kind": gen.kind,
        "splits": list(gen.splits),
        "rows": rows,
        "sizes": {s: sizes[s] for s in gen.splits},
        "description": gen._description(),
        "license": gen.license or "",
        "format": gen.kind[2],
    }


def _split(dataset: str, split: str) -> dict[str, str]:
    return {"dataset": dataset, "config": CONFIG, "split": split}


def _feature_type(dtype: str) -> dict[str, Any]:
    return dict(_FEATURE_TYPES.get(dtype, {"dtype": dtype, "_type": "Value"}))


def _cell(base_url: str, dataset: str, sha: str, split: str, index: int, name: str, dtype: str) -> Any:
    if dtype == "string":
        return f"{split} {name} {index}"
    if dtype in ("int64", "int32"):
        return index
    if dtype in ("float64", "float32"):
        return index + 0.5
    asset = f"{base_url}/cached-assets/{dataset}/--/{sha}/--/{CONFIG}/{split}/{index}/{name}"
    if dtype == "image":
        return {"src": f"{asset}/image.jpg", "height": 28, "width": 28}
    if dtype == "audio":
        return [{"src": f"{asset}/audio.wav", "type": "audio/wav"}]
    return None


def _first_rows(dataset: str, entity: Any, facts: dict[str, Any], split: str, base_url: str) -> dict[str, Any]:
    features = facts["kind"][3]
    count = min(facts["sizes"][split], ROWS_SHOWN)
    return {
        "dataset": dataset,
        "config": CONFIG,
        "split": split,
        "features": [
            {"feature_idx": n, "name": name, "type": _feature_type(dtype)} for n, (name, dtype) in enumerate(features)
        ],
        "rows": [
            {
                "row_idx": i,
                "row": {name: _cell(base_url, dataset, entity.sha, split, i, name, dtype) for name, dtype in features},
                "truncated_cells": [],
            }
            for i in range(count)
        ],
        "truncated": False,
    }


def _dataset_info(dataset: str, facts: dict[str, Any]) -> dict[str, Any]:
    rows = facts["rows"]
    return {
        "description": facts["description"],
        "citation": "",
        "homepage": "",
        "license": facts["license"],
        "features": {name: _feature_type(dtype) for name, dtype in facts["kind"][3]},
        "builder_name": facts["format"],
        "dataset_name": facts["name"],
        "config_name": CONFIG,
        "version": {"version_str": "0.0.0", "major": 0, "minor": 0, "patch": 0},
        "splits": {
            s: {"name": s, "num_bytes": n * 97, "num_examples": n, "dataset_name": facts["name"]}
            for s, n in facts["sizes"].items()
        },
        "download_size": rows * 41,
        "dataset_size": rows * 97,
    }


def _size(dataset: str, facts: dict[str, Any]) -> dict[str, Any]:
    rows, columns = facts["rows"], len(facts["kind"][3])
    return {
        "dataset": {
            "dataset": dataset, "num_bytes_original_files": rows * 41, "num_bytes_parquet_files": rows * 37,
            "num_bytes_memory": rows * 97, "num_rows": rows, "estimated_num_rows": None,
        },
        "configs": [{
            "dataset": dataset, "config": CONFIG, "num_bytes_original_files": rows * 41,
            "num_bytes_parquet_files": rows * 37, "num_bytes_memory": rows * 97, "num_rows": rows,
            "num_columns": columns, "estimated_num_rows": None,
        }],
        "splits": [
            {
                "dataset": dataset, "config": CONFIG, "split": s, "num_bytes_parquet_files": n * 37,
                "num_bytes_memory": n * 97, "num_rows": n, "num_columns": columns, "estimated_num_rows": None,
            }
            for s, n in facts["sizes"].items()
        ],
    }  # fmt: skip
