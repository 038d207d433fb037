"""The replica's dataset viewer answers in the shapes of the real one's OpenAPI spec (its recorded examples)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hfscraper.replica.synth import build_hub
from hfscraper.replica.viewer import DatasetViewer, viewer_status

SEED = 25


@pytest.fixture(scope="module")
def spec(hub_fixtures: Path) -> dict[str, Any]:
    return json.loads((hub_fixtures / "datasets-server_openapi.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def viewer() -> DatasetViewer:
    return DatasetViewer(build_hub(4, 40, 4, seed=SEED), SEED, frozenset({"hf_granted"}))


def example(spec: dict[str, Any], path: str, name: str | None = None, status: str = "200") -> Any:
    examples = spec["paths"][path]["get"]["responses"][status]["content"]["application/json"]["examples"]
    chosen = examples[name] if name is not None else next(iter(examples.values()))
    if "$ref" in chosen:
        chosen = spec["components"]["examples"][chosen["$ref"].rsplit("/", 1)[1]]
    return chosen["value"]


def ask(viewer: DatasetViewer, path: str, query: str, token: str | None = None) -> tuple[int, dict[str, str], Any]:
    reply = viewer.reply("GET", path, query, f"Bearer {token}" if token else None, "http://viewer")
    return reply.status, dict(reply.headers), json.loads(reply.body)


def dataset(viewer: DatasetViewer, status: str) -> str:
    return next(e.id for e in viewer.hub.entities("dataset") if viewer_status(e, SEED) == status and "/" in e.id)


#: Objects keyed by the dataset's own names (features, splits, a row's columns): compared by type only.
DATA_KEYED = frozenset({"features", "splits", "row"})


def keys_like(ours: Any, theirs: Any, where: str) -> None:
    """Same keys in the same order, recursively through the first element of lists; same JSON types at leaves."""
    if isinstance(theirs, dict):
        if where.rsplit(".", 1)[-1] in DATA_KEYED:
            assert isinstance(ours, dict), where
            return
        assert isinstance(ours, dict) and list(ours) == list(theirs), (where, list(ours), list(theirs))
        for key in theirs:
            keys_like(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(theirs, list):
        assert isinstance(ours, list), where
        if theirs and ours:
            keys_like(ours[0], theirs[0], f"{where}[0]")
    elif theirs is not None and ours is not None:
        assert type(ours) is type(theirs) or {type(ours), type(theirs)} <= {int, float}, (where, ours, theirs)


def test_ok_answers_have_the_specs_shapes(spec: dict[str, Any], viewer: DatasetViewer) -> None:
    repo_id = dataset(viewer, "ok")
    q = f"dataset={repo_id}"
    status, headers, body = ask(viewer, "/is-valid", q)
    assert status == 200 and body == example(spec, "/is-valid")
    assert headers["Cache-Control"] == "max-age=120" and headers["Access-Control-Allow-Origin"] == "*"
    keys_like(ask(viewer, "/splits", q)[2], example(spec, "/splits"), "splits")
    split = ask(viewer, "/splits", q)[2]["splits"][0]["split"]
    rows = ask(viewer, "/first-rows", f"{q}&config=default&split={split}")[2]
    theirs = example(spec, "/first-rows")
    keys_like({k: v for k, v in rows.items() if k != "rows"}, {k: v for k, v in theirs.items() if k != "rows"}, "rows")
    assert list(rows["rows"][0]) == list(theirs["rows"][0]) == ["row_idx", "row", "truncated_cells"]
    info = ask(viewer, "/info", q)[2]
    mnist = example(spec, "/info", "dataset metadata")
    assert list(info) == list(mnist)
    per_config = next(iter(info["dataset_info"].values()))
    glue = example(spec, "/info", "config metadata")
    assert list(per_config) == list(glue["dataset_info"])
    keys_like(ask(viewer, "/info", f"{q}&config=default")[2], glue, "info?config")
    keys_like(ask(viewer, "/size", q)[2], example(spec, "/size", "dataset size"), "size")
    keys_like(ask(viewer, "/size", f"{q}&config=default")[2], example(spec, "/size", "config size"), "size?config")


def test_errors_have_the_specs_codes_and_texts(spec: dict[str, Any], viewer: DatasetViewer) -> None:
    components = spec["components"]
    inexistent = components["examples"]["InexistentDatasetError"]["value"]
    for repo_id in ("nobody/nothing", dataset(viewer, "unauthorized")):
        status, headers, body = ask(viewer, "/is-valid", f"dataset={repo_id}")
        assert (status, headers["X-Error-Code"], body) == (401, "ExternalUnauthenticatedError", inexistent)
        assert headers["Cache-Control"] == "no-cache"
        status, headers, body = ask(viewer, "/is-valid", f"dataset={repo_id}", token="hf_not_granted")
        assert (status, headers["X-Error-Code"], body) == (404, "ExternalAuthenticatedError", inexistent)
    status, headers, body = ask(viewer, "/is-valid", "")
    assert (status, headers["X-Error-Code"], body) == (
        422, "MissingRequiredParameter", components["examples"]["MissingDatasetParameterError"]["value"]
    )  # fmt: skip
    status, headers, body = ask(viewer, "/first-rows", f"dataset={dataset(viewer, 'ok')}")
    assert (status, body) == (422, components["examples"]["MissingDatasetConfigSplitParameterError"]["value"])
    status, headers, body = ask(viewer, "/splits", f"dataset={dataset(viewer, 'not_ready')}")
    assert (status, headers["X-Error-Code"], body) == (
        500, "ResponseNotReadyError", components["examples"]["ResponseNotReadyError"]["value"]
    )  # fmt: skip
    status, headers, body = ask(viewer, "/splits", f"dataset={dataset(viewer, 'error')}")
    empty = example(spec, "/splits", "error in the dataset itself", status="500")
    assert status == 500 and body["error"] == empty["error"] and body["cause_exception"] == empty["cause_exception"]
    status, headers, body = ask(viewer, "/splits", f"dataset={dataset(viewer, 'ok')}&config=nope")
    assert (status, body) == (404, components["examples"]["InexistentConfigError"]["value"])
    codes = {s["const"] for k, s in components["schemas"].items() if k.startswith("X-Error-Code-")}
    assert {"ExternalUnauthenticatedError", "ExternalAuthenticatedError", "MissingRequiredParameter",
            "ResponseNotReadyError", "UnexpectedError", "StreamingRowsError", "ResponseNotFound"} <= codes  # fmt: skip


def test_a_granted_token_sees_a_gated_dataset(viewer: DatasetViewer) -> None:
    gated = next(e for e in viewer.hub.entities("dataset") if e.gated and not e.private)
    assert ask(viewer, "/is-valid", f"dataset={gated.id}", token="hf_granted")[0] == 200
