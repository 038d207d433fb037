"""Listing filters through the official client (huggingface_hub 2.4.0): applied, never silently ignored (issue 15).

Every filter huggingface_hub's `list_models`/`list_datasets`/`list_spaces` sends is checked against the replica's
ground truth (`api` holds each entity's `gated`, `inference`, `inferenceProviderMapping`, `safetensors`, `gguf`,
`siblings`, a space's `models`/`datasets`), so a filter the replica ignored would list the whole type and fail.
A parameter the replica does not implement is a 400 that names it; the `expand` 400 has the Hub's bracketed
wording, which huggingface_hub's drift test parses.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, get_args

import pytest

huggingface_hub = pytest.importorskip("huggingface_hub")

from huggingface_hub import HfApi  # noqa: E402
from huggingface_hub.errors import HfHubHTTPError  # noqa: E402
from huggingface_hub.hf_api import (  # noqa: E402
    ExpandDatasetProperty_T,
    ExpandModelProperty_T,
    ExpandSpaceProperty_T,
)

from tests.support.replica import replica_fixture, run_replica  # noqa: E402

PLURAL = {"model": "models", "dataset": "datasets", "space": "spaces"}
EXPAND_TYPES = {"model": ExpandModelProperty_T, "dataset": ExpandDatasetProperty_T, "space": ExpandSpaceProperty_T}
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

replica = replica_fixture(models=300, datasets=60, spaces=80, seed=1)


pytestmark = pytest.mark.usefixtures("isolated_hf_client")


def api(replica: Any) -> HfApi:
    return HfApi(endpoint=replica.url, token=False)


def public(replica: Any, repo_type: str) -> list[dict[str, Any]]:
    return [e for e in replica.truth[PLURAL[repo_type]] if not e["private"]]


def ids_where(replica: Any, repo_type: str, keep: Any) -> set[str]:
    return {e["id"] for e in public(replica, repo_type) if keep(e["api"])}


def parameters(fields: dict[str, Any]) -> float | None:
    for key in ("safetensors", "gguf"):
        if isinstance(fields.get(key), dict):
            return float(fields[key]["total"])
    return None


def get(url: str) -> tuple[int, dict[str, Any] | list[Any]]:
    try:
        with _OPENER.open(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# ------------------------------------------------------------------------------------------------- filters
@pytest.mark.parametrize("repo_type", ["model", "dataset"])
def test_gated_lists_only_gated_or_only_ungated_repos(replica: Any, repo_type: str) -> None:
    lister = api(replica).list_models if repo_type == "model" else api(replica).list_datasets
    gated = list(lister(gated=True, expand=["gated"]))
    ungated = list(lister(gated=False, expand=["gated"]))
    expected = ids_where(replica, repo_type, lambda f: f["gated"])
    assert expected and {r.id for r in gated} == expected
    assert all(r.gated in ("auto", "manual") for r in gated)
    assert {r.id for r in ungated} == {e["id"] for e in public(replica, repo_type)} - expected
    assert all(r.gated is False for r in ungated)


def test_inference_warm_and_inference_provider(replica: Any) -> None:
    warm = list(api(replica).list_models(inference="warm", expand=["inference"]))
    expected = ids_where(replica, "model", lambda f: f.get("inference") == "warm")
    assert 0 < len(expected) < len(public(replica, "model"))
    assert {m.id for m in warm} == expected and all(m.inference == "warm" for m in warm)

    def served_by(provider: str) -> set[str]:
        return ids_where(replica, "model", lambda f: provider in (f.get("inferenceProviderMapping") or {}))

    by_provider = list(api(replica).list_models(inference_provider="hf-inference", expand=["inferenceProviderMapping"]))
    assert served_by("hf-inference") and {m.id for m in by_provider} == served_by("hf-inference")
    assert all(any(p.provider == "hf-inference" for p in m.inference_provider_mapping) for m in by_provider)
    anyone = ids_where(replica, "model", lambda f: bool(f.get("inferenceProviderMapping")))
    assert {m.id for m in api(replica).list_models(inference_provider="all")} == anyone
    assert not list(api(replica).list_models(inference_provider="no-such-provider"))
    with pytest.raises(HfHubHTTPError) as caught:
        list(api(replica).list_models(inference="cold"))  # type: ignore[arg-type]
    assert caught.value.response.status_code == 400


def test_apps_lists_the_models_an_app_runs(replica: Any) -> None:
    ollama = list(api(replica).list_models(apps="ollama", full=True))
    expected = ids_where(replica, "model", lambda f: any(s["rfilename"].endswith(".gguf") for s in f["siblings"]))
    assert 0 < len(expected) < len(public(replica, "model"))
    assert {m.id for m in ollama} == expected
    assert all(any(s.rfilename.endswith(".gguf") for s in m.siblings) for m in ollama)
    vllm = ids_where(replica, "model", lambda f: f.get("library_name") == "transformers" and "safetensors" in f)
    both = {m.id for m in api(replica).list_models(apps=["ollama", "vllm"])}
    assert vllm and both == expected | vllm
    with pytest.raises(HfHubHTTPError) as caught:
        list(api(replica).list_models(apps="an-app-nobody-knows"))
    assert caught.value.response.status_code == 400 and "apps" in caught.value.response.json()["error"]


def test_num_parameters_range(replica: Any) -> None:
    counts = {e["id"]: parameters(e["api"]) for e in public(replica, "model")}
    known = sorted(n for n in counts.values() if n is not None)
    low, high = known[len(known) // 4], known[3 * len(known) // 4]
    query = f"min:{low / 1e6:.6f}M,max:{high / 1e6:.6f}M"
    listed = {m.id for m in api(replica).list_models(num_parameters=query)}
    expected = {i for i, n in counts.items() if n is not None and low <= n <= high}
    assert 0 < len(expected) < len(counts) and listed == expected
    above = {m.id for m in api(replica).list_models(num_parameters=f"min:{high / 1e6:.6f}M")}
    assert above == {i for i, n in counts.items() if n is not None and n >= high}
    for bad in ("6B", "min:lots", "between:1B"):
        with pytest.raises(HfHubHTTPError) as caught:
            list(api(replica).list_models(num_parameters=bad))
        assert caught.value.response.status_code == 400


def test_spaces_linked_and_models_datasets_filters(replica: Any) -> None:
    plain = {s.id: s for s in api(replica).list_spaces()}
    linked = {s.id: s for s in api(replica).list_spaces(linked=True)}
    truth = {e["id"]: e["api"] for e in public(replica, "space")}
    with_models = [i for i, f in truth.items() if f.get("models")]
    assert with_models and set(linked) == set(plain) == set(truth)
    assert all(plain[i].models is None for i in with_models)
    assert all(linked[i].models == truth[i]["models"] for i in with_models)
    assert all(linked[i].datasets == truth[i].get("datasets") for i in truth)

    used = sorted(
        {m for i in with_models for m in truth[i]["models"]},
        key=lambda m: -sum(m in truth[i].get("models", ()) for i in truth),
    )
    model = used[0]
    by_model = list(api(replica).list_spaces(models=model))
    assert {s.id for s in by_model} == {i for i, f in truth.items() if model in f.get("models", ())}
    assert all(model in s.models for s in by_model)
    dataset = next(d for f in truth.values() for d in f.get("datasets", ()))
    by_dataset = list(api(replica).list_spaces(datasets=dataset))
    assert {s.id for s in by_dataset} == {i for i, f in truth.items() if dataset in f.get("datasets", ())}
    assert all(dataset in s.datasets for s in by_dataset)
    assert not list(api(replica).list_spaces(models="nobody/no-such-model"))


def test_sort_likes30d_and_num_parameters_are_accepted(replica: Any) -> None:
    for lister, repo_type in ((api(replica).list_models, "model"), (api(replica).list_spaces, "space")):
        listed = [r.id for r in lister(sort="likes30d")]  # type: ignore[operator]
        assert sorted(listed) == sorted(e["id"] for e in public(replica, repo_type))
    by_size = [m.id for m in api(replica).list_models(sort="num_parameters")]  # type: ignore[arg-type]
    models = public(replica, "model")

    def key(e: dict[str, Any]) -> tuple[int, float, str]:
        n = parameters(e["api"])
        return (1, 0.0, e["api"]["_id"]) if n is None else (0, -n, e["api"]["_id"])

    assert by_size == [e["id"] for e in sorted(models, key=key)]
    status, body = get(f"{replica.url}/api/spaces?sort=num_parameters")
    assert status == 400 and "sort" in body["error"]  # type: ignore[index]


@pytest.mark.parametrize(
    "path",
    [
        "/api/models?limit=5&foo=bar",
        "/api/models?skip=10",
        "/api/spaces?gated=true",
        "/api/datasets?apps=ollama",
        "/api/datasets?linked=true",
        "/api/spaces?pipeline_tag=text-generation",
    ],
)
def test_a_parameter_the_replica_does_not_implement_is_a_400(replica: Any, path: str) -> None:
    status, body = get(replica.url + path)
    name = path.rsplit("&", 1)[-1].split("?")[-1].split("=")[0]
    assert status == 400 and f'"{name}"' in body["error"]  # type: ignore[index]


# ------------------------------------------------------------------------------------------------- expand
@pytest.mark.parametrize("repo_type", ["model", "dataset", "space"])
def test_the_expand_400_names_the_valid_values_in_brackets(replica: Any, repo_type: str) -> None:
    repo_id = public(replica, repo_type)[0]["id"]
    with pytest.raises(HfHubHTTPError) as caught:
        api(replica).repo_info(repo_id, repo_type=repo_type, expand=["does_not_exist"])  # type: ignore[list-item]
    assert caught.value.response.status_code == 400
    message = caught.value.response.json()["error"]
    # What huggingface_hub's test_expand_*_property_type_is_up_to_date does with the real Hub's answer.
    assert message.startswith('"expand" must be one of ')
    values = set(message.replace('"expand" must be one of ', "").strip("[]").split(", "))
    values -= {"gitalyUid", "xetEnabled"}
    assert values == set(get_args(EXPAND_TYPES[repo_type]))

    status, body = get(f"{replica.url}/api/{PLURAL[repo_type]}?expand=does_not_exist")
    assert status == 400 and body["error"].startswith('"expand" must be one of [')  # type: ignore[index]
    assert body["error"].endswith("]")  # type: ignore[index]


def test_the_listing_expand_400_leaves_out_what_only_repo_info_gives(replica: Any) -> None:
    status, body = get(f"{replica.url}/api/models?expand=baseModels")
    assert status == 400
    listed = set(body["error"].replace('"expand" must be one of ', "").strip("[]").split(", "))  # type: ignore[index]
    assert "author" in listed and not listed & {"baseModels", "childrenModelCount", "usedStorage"}


# ------------------------------------------------------------------------------------------------- lazy hub
def test_the_lazy_hub_refuses_filters_it_cannot_apply(tmp_path: Path) -> None:
    with run_replica(tmp_dir=tmp_path, models=40, datasets=10, spaces=20, truth=False, extra_args=["--lazy"]) as lazy:
        for path in ("/api/models?gated=true", "/api/models?apps=ollama", "/api/models?num_parameters=min:1B",
                     "/api/models?inference=warm", "/api/spaces?models=a/b", "/api/models?sort=likes30d"):  # fmt: skip
            status, body = get(lazy.url + path)
            assert status == 400 and "--lazy" in body["error"], (path, body)  # type: ignore[index]
        status, _ = get(lazy.url + "/api/models?foo=1")
        assert status == 400
        status, items = get(lazy.url + "/api/spaces?linked=true&sort=createdAt&limit=40")
        assert status == 200 and any("models" in s for s in items)  # type: ignore[union-attr]
