"""What goes over the wire, as on the Hub: weight headers, the small-file 307, list/dict fields, security status,
revoked tokens; checked through huggingface_hub 2.4.0 (the official client) and against the recorded responses.

- `get_safetensors_metadata` reads real safetensors headers (one file, and shards named by
  `model.safetensors.index.json`) that agree with the listing's `safetensors`; GGUF headers agree with `gguf`.
- The small-file 307 carries exactly the recorded header set (no `X-Repo-Commit`, no `ETag`: the resolve-cache
  answer has them), and `hf_hub_download` / `get_hf_file_metadata` still get the commit and the ETag.
- `inferenceProviderMapping`: a dict from `model_info`, a list in the listing; the client reads both alike, and
  a crawl stores the listing's list byte for byte.
- Tree entries of LFS files carry `xetHash`; most model bodies carry `inference`.
- `model_info(securityStatus=True)` has `securityRepoStatus`; a revoked token gets the client's 401 error.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

huggingface_hub = pytest.importorskip("huggingface_hub")

from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url  # noqa: E402
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError  # noqa: E402

from hfscraper.hub import entity_folder_name  # noqa: E402
from tests.support.crawl import crawl  # noqa: E402
from tests.support.http import fetch  # noqa: E402
from tests.support.replica import replica_fixture  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "data" / "hub_fixtures"
REVOKED = "hf_" + "revokedTokenOfTheWireTests0000000000"  # built at run time: not a secret-scanner match
VALID = "hf_" + "validTokenOfTheWireTests000000000000"
# Hop-by-hop and server-specific names: not the Hub application's (tests/test_replica_headers.py says why).
GGUF_UINT32, GGUF_STRING, GGUF_ARRAY = 4, 8, 9  # GGUF value types (ggml docs/gguf.md)
NOT_COMPARED = {"connection", "date", "server", "content-length", "transfer-encoding"}

replica = replica_fixture(models=40, datasets=3, spaces=3, seed=11, extra_args=["--revoked-token", REVOKED])


pytestmark = pytest.mark.usefixtures("isolated_hf_client")


def models(replica: Any, has: Any) -> list[dict[str, Any]]:
    chosen = [
        e
        for e in replica.truth["models"]
        if not (e["private"] or e["gated"] or e["disabled"]) and has(e, {f["path"] for f in e["files"]})
    ]
    assert chosen, "the synthetic hub of this seed has no such model"
    return chosen


def listing_item(replica: Any, repo_id: str, expand: str) -> dict[str, Any]:
    author = repo_id.split("/")[0]
    page = fetch(f"{replica.url}/api/models?author={quote(author)}&expand={expand}&limit=1000")
    assert page.status == 200
    return next(item for item in page.json() if item["id"] == repo_id)


# ------------------------------------------------------------------------------------------- weight headers
def test_get_safetensors_metadata_single_file(replica: Any) -> None:
    api = HfApi(endpoint=replica.url, token=False)
    for entity in models(replica, lambda e, paths: "model.safetensors" in paths)[:3]:
        meta = api.get_safetensors_metadata(entity["id"])
        assert not meta.sharded and set(meta.weight_map.values()) == {"model.safetensors"}
        listed = listing_item(replica, entity["id"], "safetensors")["safetensors"]
        assert meta.parameter_count == listed["parameters"]
        assert sum(meta.parameter_count.values()) == listed["total"] == entity["api"]["safetensors"]["total"]
        # The tensors cover the file exactly (what safetensors itself checks on load).
        info = meta.files_metadata["model.safetensors"]
        size = next(f["size"] for f in entity["files"] if f["path"] == "model.safetensors")
        header = int.from_bytes(fetch_range(replica, entity["id"], "model.safetensors", 0, 7), "little")
        assert 8 + header + max(t.data_offsets[1] for t in info.tensors.values()) == size


def test_get_safetensors_metadata_sharded(replica: Any) -> None:
    api = HfApi(endpoint=replica.url, token=False)
    for entity in models(replica, lambda e, paths: "model.safetensors.index.json" in paths)[:2]:
        meta = api.get_safetensors_metadata(entity["id"])
        assert meta.sharded
        shards = sorted(p for p in (f["path"] for f in entity["files"]) if p.endswith(".safetensors"))
        assert sorted(meta.files_metadata) == sorted(set(meta.weight_map.values())) == shards
        listed = listing_item(replica, entity["id"], "safetensors")["safetensors"]
        assert meta.parameter_count == listed["parameters"]
        data_bytes = sum(
            t.data_offsets[1] - t.data_offsets[0] for f in meta.files_metadata.values() for t in f.tensors.values()
        )
        assert meta.metadata == {"total_size": data_bytes}


def test_gguf_header_agrees_with_the_listing(replica: Any) -> None:
    for entity in models(replica, lambda e, paths: any(p.endswith(".gguf") for p in paths))[:2]:
        path = next(f["path"] for f in entity["files"] if f["path"].endswith(".gguf"))
        header = read_gguf_header(fetch_range(replica, entity["id"], path, 0, 65535))
        listed = listing_item(replica, entity["id"], "gguf")["gguf"]
        kv = header["kv"]
        assert kv["version"] == 3 and kv["general.architecture"] == listed["architecture"]
        assert kv[f"{listed['architecture']}.context_length"] == listed["context_length"]
        assert kv.get("tokenizer.chat_template") == listed.get("chat_template")
        tokens = kv["tokenizer.ggml.tokens"]
        assert tokens[kv["tokenizer.ggml.bos_token_id"]] == listed["bos_token"]
        assert tokens[kv["tokenizer.ggml.eos_token_id"]] == listed["eos_token"]
        total = 0
        for tensor in header["tensors"]:
            count = 1
            for d in tensor["shape"]:
                count *= d
            total += count
        assert total == listed["total"]


def read_gguf_header(data: bytes) -> dict[str, Any]:
    """The key/values and tensor infos of a GGUF v3 header (only the value types the replica writes)."""
    if data[:4] != b"GGUF":
        raise ValueError("not a GGUF file")
    pos = 4
    version, n_tensors, n_kv = struct.unpack_from("<IQQ", data, pos)
    pos += 20

    def string() -> str:
        nonlocal pos
        (n,) = struct.unpack_from("<Q", data, pos)
        pos += 8
        text = data[pos : pos + n].decode()
        pos += n
        return text

    def value(kind: int) -> Any:
        nonlocal pos
        if kind == GGUF_STRING:
            return string()
        if kind == GGUF_UINT32:
            (v,) = struct.unpack_from("<I", data, pos)
            pos += 4
            return v
        if kind == GGUF_ARRAY:
            inner, n = struct.unpack_from("<IQ", data, pos)
            pos += 12
            return [value(inner) for _ in range(n)]
        raise ValueError(f"GGUF value type {kind} not read here")

    kv: dict[str, Any] = {"version": version}
    for _ in range(n_kv):
        key = string()
        (kind,) = struct.unpack_from("<I", data, pos)
        pos += 4
        kv[key] = value(kind)
    tensors = []
    for _ in range(n_tensors):
        name = string()
        (dims,) = struct.unpack_from("<I", data, pos)
        pos += 4
        shape = list(struct.unpack_from(f"<{dims}Q", data, pos))
        pos += 8 * dims
        kind, offset = struct.unpack_from("<IQ", data, pos)
        pos += 12
        tensors.append({"name": name, "shape": shape, "type": kind, "offset": offset})
    return {"kv": kv, "tensors": tensors, "data_start": pos + (-pos % int(kv.get("general.alignment", 32)))}


def fetch_range(replica: Any, repo_id: str, path: str, start: int, end: int) -> bytes:
    """Bytes start..end (inclusive) of a file, following the Hub's redirect to the CDN."""
    url = hf_hub_url(repo_id, path, endpoint=replica.url)
    head = fetch(url, method="HEAD")
    assert head.status == 302
    body = fetch(head.header("Location") or "", headers={"Range": f"bytes={start}-{end}"})
    assert body.status == 206
    return body.body


# ------------------------------------------------------------------------------------------ the small-file 307
def test_small_file_307_has_exactly_the_recorded_headers(replica: Any) -> None:
    captures = json.loads((FIXTURES / "third_party_captures" / "resolve_header_examples.json").read_text())
    example = next(e for e in captures["examples"] if e["status"] == 307 and len(e.get("headers", [])) > 3)
    recorded = {name.lower() for name, _ in example["headers"]} - NOT_COMPARED
    entity = models(replica, lambda e, paths: "config.json" in paths)[0]
    response = fetch(hf_hub_url(entity["id"], "config.json", endpoint=replica.url), method="HEAD")
    assert response.status == 307
    assert response.header_names() - NOT_COMPARED == recorded
    # The client still gets the commit and the blob's ETag (from the resolve-cache hop) and the bytes.
    file = next(f for f in entity["files"] if f["path"] == "config.json")
    meta = get_hf_file_metadata(hf_hub_url(entity["id"], "config.json", endpoint=replica.url), token=False)
    assert meta.commit_hash == entity["api"]["sha"] and meta.etag == file["blob_sha1"] and meta.size == file["size"]
    local = hf_hub_download(entity["id"], "config.json", endpoint=replica.url, token=False)
    assert Path(local).stat().st_size == file["size"]


# ------------------------------------------------------------------------------ list- and dict-shaped fields
def test_inference_provider_mapping_dict_on_info_list_in_listing(replica: Any, tmp_path: Path) -> None:
    entities = models(replica, lambda e, paths: "inferenceProviderMapping" in e["api"])
    api = HfApi(endpoint=replica.url, token=False)
    for entity in entities:
        info = fetch(f"{replica.url}/api/models/{quote(entity['id'])}?expand=inferenceProviderMapping").json()
        mapping = info["inferenceProviderMapping"]
        assert isinstance(mapping, dict) and mapping
        listed = listing_item(replica, entity["id"], "inferenceProviderMapping")["inferenceProviderMapping"]
        assert isinstance(listed, list)
        assert listed == [{"provider": name, **value} for name, value in mapping.items()]
        # The client reads both shapes into the same objects.
        from_info = api.model_info(entity["id"], expand=["inferenceProviderMapping"]).inference_provider_mapping
        assert [(m.provider, m.provider_id, m.status, m.task) for m in from_info or []] == [
            (m["provider"], m["providerId"], m["status"], m["task"]) for m in listed
        ]
    # A crawl that asks for it stores the listing's list as the listing gave it.
    result = crawl(
        replica,
        "models",
        tmp_path / "out",
        page_size=10,
        settings={"HFSCRAPER_CRAWL_EXPAND_MODELS": "author,sha,siblings,inferenceProviderMapping"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    written = result.metadata("model")
    for entity in entities:
        stored = written[entity_folder_name(entity["id"])]["inferenceProviderMapping"]
        listed = listing_item(replica, entity["id"], "inferenceProviderMapping")["inferenceProviderMapping"]
        assert json.dumps(stored, separators=(",", ":")) == json.dumps(listed, separators=(",", ":"))


def test_tree_lfs_entries_carry_xet_hash(replica: Any) -> None:
    recorded = json.loads(
        (FIXTURES / "huggingface_js_spec" / "tree_google-bert_bert-base-uncased_dd4bc8b.json").read_text()
    )
    recorded_lfs = next(i for i in recorded["items"] if "lfs" in i)
    entity = models(replica, lambda e, paths: any(f["lfs"] for f in e["files"]))[0]
    items = fetch(f"{replica.url}/api/models/{quote(entity['id'])}/tree/main?recursive=true").json()
    lfs = [i for i in items if "lfs" in i]
    assert lfs and all(set(i) == set(recorded_lfs) for i in lfs)
    assert all(len(i["xetHash"]) == 64 and int(i["xetHash"], 16) >= 0 for i in lfs)
    assert not any("xetHash" in i for i in items if "lfs" not in i)
    files = list(HfApi(endpoint=replica.url, token=False).list_repo_tree(entity["id"], recursive=True))
    assert {f.path: f.xet_hash for f in files if getattr(f, "lfs", None)} == {i["path"]: i["xetHash"] for i in lfs}


def test_most_model_bodies_carry_inference(replica: Any) -> None:
    public = models(replica, lambda e, paths: True)
    bodies = [fetch(f"{replica.url}/api/models/{quote(e['id'])}").json() for e in public]
    with_inference = [b for b in bodies if "inference" in b]
    assert len(with_inference) > len(bodies) / 2
    assert {b["inference"] for b in with_inference} <= {"warm", "cold"}


def test_security_status_adds_security_repo_status(replica: Any) -> None:
    entity = models(replica, lambda e, paths: True)[0]
    api = HfApi(endpoint=replica.url, token=False)
    assert api.model_info(entity["id"]).security_repo_status is None
    status = api.model_info(entity["id"], securityStatus=True).security_repo_status
    assert status == {"scansDone": True, "filesWithIssues": []}


# ------------------------------------------------------------------------------------------------ tokens
def test_revoked_token_gets_the_clients_401(replica: Any) -> None:
    entity = models(replica, lambda e, paths: True)[0]
    assert HfApi(endpoint=replica.url, token=VALID).model_info(entity["id"]).id == entity["id"]
    with pytest.raises(HfHubHTTPError) as raised:
        HfApi(endpoint=replica.url, token=REVOKED).model_info(entity["id"])
    assert raised.value.response.status_code == 401
    assert not isinstance(raised.value, RepositoryNotFoundError)  # the token, not the repo, is the problem
    assert "Invalid credentials in Authorization header" in str(raised.value)
    assert REVOKED not in str(raised.value)


def test_a_crawl_with_a_revoked_token_ends_with_one_clear_line(replica: Any, tmp_path: Path) -> None:
    mark = replica.mark()
    result = crawl(replica, "models", tmp_path / "out", env_overrides={"HF_TOKEN": REVOKED})
    assert result.returncode == 1
    assert result.stat("finish_reason") == "invalid_token"
    errors = [line for line in result.stderr.splitlines() if " ERROR: " in line]
    assert len(errors) == 1, result.stderr[-3000:]
    assert errors[0].endswith(
        "ERROR: Stopping the crawl: the Hub refused the token from HF_TOKEN (HTTP 401 Invalid credentials in "
        "Authorization header); renew it or unset it to crawl anonymously"
    )
    assert "Traceback" not in result.stderr
    assert REVOKED not in result.stderr + result.stdout
    assert not any(REVOKED.encode() in p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert len(replica.requests(since=mark, origin="hub")) == 1
