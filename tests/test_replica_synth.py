"""Unit tests of the replica's synthetic Hub: determinism, counts, relation consistency, file hashes."""

from __future__ import annotations

import hashlib
import io
import json
import re
import time

import pytest
import yaml

from hfscraper.replica import shapes
from hfscraper.replica.synth import (
    HOSTILE_IDS,
    OLD_CREATED_TS,
    Entity,
    RepoFile,
    build_hub,
    git_blob_sha1,
    hub_date,
)

DATE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z\Z")
HEX24 = re.compile(r"[0-9a-f]{24}\Z")
HEX40 = re.compile(r"[0-9a-f]{40}\Z")
# Hub-legal repo names: [\w.-], no "--"/"..", no leading/trailing "-"/".", at most 96 characters.
NAME = re.compile(r"(?!.*--)(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9_.-]{0,94}[A-Za-z0-9_]\Z|[A-Za-z0-9_]\Z")
OWNER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\Z")


@pytest.fixture(scope="module")
def hub():
    return build_hub(1500, 400, 400, seed=7, hostile_ids=True, big_file_mib=2)


def ordinary(entities):
    return [e for e in entities if not e._extra]


def test_determinism():
    a = json.dumps(build_hub(150, 40, 40, seed=3).truth())
    b = json.dumps(build_hub(150, 40, 40, seed=3).truth())
    c = json.dumps(build_hub(150, 40, 40, seed=4).truth())
    assert a == b
    assert a != c


def test_counts(hub):
    assert len(ordinary(hub.models)) == 1500
    assert len(ordinary(hub.datasets)) == 400
    assert len(ordinary(hub.spaces)) == 400
    assert len(hub.models) == 1500 + 1 + len(HOSTILE_IDS)  # the big-file model and every hostile id
    truth = hub.truth()
    assert truth["counts"] == {"models": len(hub.models), "datasets": len(hub.datasets), "spaces": len(hub.spaces)}
    assert [len(truth[k]) for k in ("models", "datasets", "spaces")] == list(truth["counts"].values())
    plain = build_hub(10, 3, 2, seed=1)
    assert plain.counts() == {"models": 10, "datasets": 3, "spaces": 2}


def test_ids_dates_and_lookups(hub):
    mongo_ids = set()
    for repo_type in ("model", "dataset", "space"):
        lowered = set()
        for e in hub.entities(repo_type):
            assert HEX24.match(e.mongo_id) and HEX40.match(e.sha)
            mongo_ids.add(e.mongo_id)
            # An ObjectId starts with its creation time, as the Hub's do (621ffdc0 = the "old repo" date).
            assert int(e.mongo_id[:8], 16) == e.created
            f = e.fields
            assert DATE.match(f["createdAt"]) and DATE.match(f["lastModified"])
            assert f["lastModified"] >= f["createdAt"]
            assert hub.get(repo_type, e.id) is e
            if e._extra:
                continue
            assert e.id.lower() not in lowered  # no two repos differ only by case
            lowered.add(e.id.lower())
            owner, _, name = e.id.rpartition("/")
            assert NAME.match(name), e.id
            assert owner == "" or OWNER.match(owner), e.id
            assert hub.get(repo_type, e.id.swapcase()) is None or e.id.swapcase() == e.id
            assert hub.find(repo_type, e.id.swapcase()) is e  # the Hub's look-up: any case
    assert len(mongo_ids) == sum(hub.counts().values())
    assert any("/" not in e.id for e in ordinary(hub.models))  # legacy ids like "gpt2"
    assert any(len(e.id.rpartition("/")[2]) > 60 for e in ordinary(hub.models))
    assert any(e.fields["createdAt"] == "2022-03-02T23:29:04.000Z" for e in hub.models)
    assert hub_date(OLD_CREATED_TS) == "2022-03-02T23:29:04.000Z"


def test_owners_are_zipf_like():
    big = build_hub(5000, 0, 0, seed=2)
    counts: dict[str, int] = {}
    for e in big.models:
        counts[e.author] = counts.get(e.author, 0) + 1
    top = sorted(counts.values(), reverse=True)
    assert top[0] >= 50 and top[0] > 10 * (sum(top) / len(top))


def test_statuses_and_renames(hub):
    for repo_type in ("model", "dataset", "space"):
        es = ordinary(hub.entities(repo_type))
        assert any(e.private for e in es) and any(e.disabled for e in es)
        assert any(e.renamed_from for e in es)
        if repo_type != "space":
            assert {e.gated for e in es} >= {False, "auto", "manual"}
        for e in es:
            for old in e.renamed_from:
                assert hub.resolve_rename(repo_type, old) == e.id
                assert hub.get(repo_type, old) is None
        share = sum(bool(e.private or e.gated or e.disabled or e.renamed_from) for e in es) / len(es)
        assert share < 0.1  # a handful per thousand (plus the guaranteed one of each kind)
    assert hub.resolve_rename("model", "no/such-repo") is None


def test_relations_are_consistent(hub):
    models = {e.id: e for e in hub.models}
    children: dict[str, int] = {}
    renamed_card_seen = merge_seen = 0
    relations_seen = set()
    for e in hub.models:
        tags = e.fields["tags"]
        card = e.fields.get("cardData") or {}
        card_bases = card.get("base_model", [])
        card_bases = [card_bases] if isinstance(card_bases, str) else card_bases
        for rel in e.relations:
            target = rel["target"]
            if rel["kind"] == "base_model" and rel["source"] == "tag":
                base = models[target]  # exists, under its current id
                assert not base.private and not e.private or not base.private
                assert f"base_model:{target}" in tags and f"base_model:{rel['relation']}:{target}" in tags
                relations_seen.add(rel["relation"])
                # The card names the base by its id (in any case: ids are case-insensitive) or by an old id that
                # redirects to it.
                named = {c.lower() for c in card_bases}
                assert target.lower() in named or any(hub.resolve_rename("model", c) == target for c in card_bases)
                renamed_card_seen += target.lower() not in named
                if not e.private:
                    children[target] = children.get(target, 0) + 1
            elif rel["kind"] == "base_model":
                # Deliberately unknown: only the card names it, it is no repo, and no tag or baseModels says it.
                assert rel["source"] == "card" and target not in models and hub.resolve_rename("model", target) is None
                assert target in card_bases and not any(target in t for t in tags)
            elif rel["kind"] == "dataset":
                ds = hub.get("dataset", target)
                # The tag names it as the card does, possibly in another case (the Hub copies the card's ids).
                assert ds is not None and not ds.private and f"dataset:{target}".lower() in {t.lower() for t in tags}
            assert rel["target_type"] in ("model", "dataset")
        bases = [r for r in e.relations if r["kind"] == "base_model" and r["source"] == "tag"]
        if bases:
            assert e.fields["baseModels"]["relation"] == bases[0]["relation"]
            assert [m["id"] for m in e.fields["baseModels"]["models"]] == [r["target"] for r in bases]
            merge_seen += len(bases) > 1
        else:
            assert "baseModels" not in e.fields
    assert relations_seen == {"finetune", "adapter", "quantized", "merge"}
    assert renamed_card_seen > 0 and merge_seen > 0
    for e in hub.models:
        assert e.fields["childrenModelCount"] == children.get(e.id, 0)
    # Chains several levels deep.
    depth: dict[str, int] = {}
    for e in hub.models:
        bases = [r["target"] for r in e.relations if r["kind"] == "base_model" and r["source"] == "tag"]
        depth[e.id] = 1 + max(depth[b] for b in bases) if bases else 0
    assert max(depth.values()) >= 4


def test_spaces_link_models_and_datasets(hub):
    users: dict[str, list] = {}
    for s in hub.spaces:
        f = s.fields
        assert f["sdk"] in ("gradio", "docker", "static", "streamlit") and f["subdomain"] and f["runtime"]["stage"]
        for rel in s.relations:
            assert rel["source"] == "api" and rel["relation"] is None
            target = hub.get(rel["target_type"], rel["target"])
            assert target is not None and not target.private
            listed = f["models" if rel["kind"] == "model" else "datasets"]
            assert rel["target"].lower() in {x.lower() for x in listed}  # as the owner wrote it: any case
            if rel["kind"] == "model" and not s.private:
                users.setdefault(rel["target"], []).append(s)
    assert users
    for m in hub.models:
        expected = sorted(users.get(m.id, []), key=lambda s: (-s.likes, s.id))[:100]
        assert m.fields["spaces"] == [s.id for s in expected]


def test_private_entities_are_never_referenced(hub):
    for repo_type in ("model", "dataset", "space"):
        for e in hub.entities(repo_type):
            for rel in e.relations:
                target = hub.get(rel["target_type"], rel["target"])
                assert target is None or not target.private


def test_files_hashes_match_content(hub):
    sample = hub.models[:60] + hub.datasets[:30] + hub.spaces[:30]
    lfs_seen = 0
    for e in sample:
        files = e.files
        assert [f.path for f in files] == sorted(f.path for f in files)
        assert [s["rfilename"] for s in e.fields["siblings"]] == [f.path for f in files]
        for f in files:
            data = b"".join(f.iter_content(1000))
            assert len(data) == f.size and f.read() == data
            assert hashlib.sha256(data).hexdigest() == f.sha256
            if f.lfs:
                lfs_seen += 1
                pointer = f.pointer.decode()
                assert pointer == f"version https://git-lfs.github.com/spec/v1\noid sha256:{f.sha256}\nsize {f.size}\n"
                assert f.blob_sha1 == git_blob_sha1(f.pointer)  # git stores the pointer for an LFS file
                assert 1024 <= f.size <= 16384
            else:
                assert f.blob_sha1 == git_blob_sha1(data)
                assert f.blob_sha1 == hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            assert f.read(3, 10) == data[3:10] and f.read(f.size - 2) == data[-2:]
    assert lfs_seen > 20
    # Regenerated on demand, identical each time.
    assert [(f.path, f.sha256) for f in hub.models[0].files] == [(f.path, f.sha256) for f in hub.models[0].files]


def test_model_files_and_readme_match_fields(hub):
    checked = 0
    for e in ordinary(hub.models)[:300]:
        files = {f.path: f for f in e.files}
        assert ".gitattributes" in files
        card = e.fields.get("cardData")
        if "README.md" in files:
            text = files["README.md"].read().decode()
            if card is not None:
                assert text.startswith("---\n")
                front = text.split("---\n", 2)[1]
                assert yaml.safe_load(front) == card  # the card's YAML is exactly cardData
                checked += 1
            else:
                assert not text.startswith("---")
        else:
            assert card is None
        config = e.fields.get("config")
        if config and "architectures" in config:
            full = json.loads(files["config.json"].read())
            assert full["architectures"] == config["architectures"] and full["model_type"] == config["model_type"]
        if e.fields.get("library_name") == "transformers" and e.fields.get("pipeline_tag") == "text-generation":
            assert "generation_config.json" in files
        if "safetensors" in e.fields and e.fields.get("library_name") != "peft":
            assert any(p.endswith(".safetensors") for p in files)
    assert checked > 100
    assert any("/" in f.path for e in hub.models[:300] for f in e.files)  # some files in sub-folders


def test_dataset_and_space_files(hub):
    for d in ordinary(hub.datasets)[:50]:
        paths = [f.path for f in d.files]
        assert any(p.endswith((".parquet", ".jsonl", ".csv")) for p in paths)
        if "cardData" in d.fields:
            readme = d.file("README.md").read().decode()
            assert yaml.safe_load(readme.split("---\n", 2)[1]) == d.fields["cardData"]
    for s in ordinary(hub.spaces)[:50]:
        paths = [f.path for f in s.files]
        assert "README.md" in paths
        if s.fields["sdk"] in ("gradio", "streamlit"):
            assert "app.py" in paths and "requirements.txt" in paths
            app = s.file("app.py").read().decode()
            assert all(m in app for m in s.fields.get("models", []))
        readme = s.file("README.md").read().decode()
        assert yaml.safe_load(readme.split("---\n", 2)[1]) == s.fields["cardData"]


def test_card_shapes_vary(hub):
    kinds = set()
    for e in ordinary(hub.models):
        card = e.fields.get("cardData")
        if card is None:
            kinds.add("no card")
            continue
        for key in ("base_model", "datasets", "language"):
            if key in card:
                kinds.add(f"{key}:{type(card[key]).__name__}")
        if "base_model_relation" in card:
            kinds.add("relation")
    assert kinds >= {"no card", "base_model:str", "base_model:list", "datasets:str", "datasets:list",
                     "language:str", "language:list", "relation"}


def test_big_file_streams(hub):
    e = hub.get("model", "big-files/huge-model-2MiB")
    f = e.file("model.safetensors")
    assert f.lfs and f.size == 2 << 20
    h = hashlib.sha256()
    for chunk in f.iter_content(300_000):
        assert len(chunk) <= 300_000
        h.update(chunk)
    assert h.hexdigest() == f.sha256
    assert f.read((1 << 20) - 3, (1 << 20) + 3) == b"".join(f.iter_content())[(1 << 20) - 3:(1 << 20) + 3]


def test_hostile_ids(hub):
    ids = {e.id for e in hub.models}
    assert {"../../etc/passwd", "/abs/path", "a/b/c", "..", ".", "CON", "owner__x/y", "owner/x__y"} <= ids
    assert "unicode/caf\u00e9" in ids and "unicode/cafe\u0301" in ids
    assert any("\x00" in i for i in ids) and any(len(i) > 5000 for i in ids) and any("\\" in i for i in ids)
    assert any("\u202e" in i for i in ids)
    assert hub.get("dataset", "../../etc/passwd") is not None and hub.get("space", "CON") is not None
    for e in hub.models:
        if e._extra == "hostile":
            assert e.relations == [] and not e.private
            shapes.render_info(e)  # renders like any other entity
            json.dumps(e.fields)
    assert all(not e._extra for e in build_hub(20, 5, 5).models)


def test_listing_values_equal_truth_api(hub):
    # metadata.json holds listing values; CONTRACTS.md: each equals the truth's api[key] (in the listing's shape:
    # inferenceProviderMapping is a list there, a dict on the single entity).
    for repo_type in ("model", "dataset", "space"):
        expand = list(shapes.truth_expand(repo_type))
        for e in hub.entities(repo_type)[:40]:
            api = shapes.render_info(e, expand=expand)
            for item in (shapes.render_list_item(e, expand=None),
                         shapes.render_list_item(e, expand=None, full=True, card_data=True, config=True),
                         shapes.render_list_item(e, expand=expand)):
                for key, value in item.items():
                    if key != "modelId":
                        assert shapes.listing_value(key, api[key]) == value, (e.id, key)


def test_truth_format(hub):
    small = build_hub(60, 20, 20, seed=5)
    truth = small.truth()
    assert set(truth) == {"seed", "counts", "models", "datasets", "spaces"} and truth["seed"] == 5
    for repo_type in ("models", "datasets", "spaces"):
        for ent in truth[repo_type]:
            keys = ["id", "private", "gated", "disabled", "renamed_from", "api", "files", "relations"]
            viewer = ["viewer"] if repo_type == "datasets" else []  # how the replica's dataset viewer answers
            assert list(ent) == [*keys, *viewer]
            assert ent["gated"] in (False, "auto", "manual")
            assert ent["api"]["_id"] and ent["api"]["id"] == ent["id"]
            assert "modelId" not in ent["api"] and "baseModels" not in ent["api"]
            for f in ent["files"]:
                assert list(f) == ["path", "size", "sha256", "blob_sha1", "lfs"]
            for rel in ent["relations"]:
                assert list(rel) == ["kind", "relation", "target", "target_type", "source"]
                assert rel["kind"] in ("base_model", "dataset", "model", "space")
                assert rel["source"] in ("tag", "card", "api")
    buf = io.StringIO()
    small.write_truth(buf)
    assert json.loads(buf.getvalue()) == json.loads(json.dumps(truth))


def test_pinned_entity():
    f = RepoFile.from_bytes("a.txt", b"hello")
    e = Entity("model", "o/n", "0" * 24, "1" * 40, fields={"likes": 3, "tags": ["x"]}, files=[f], relations=[])
    assert e.fields["likes"] == 3 and e.files == [f] and e.relations == [] and e.tags == ["x"]
    assert e.sort_value("likes") == 3
    assert shapes.render_list_item(e, expand=["likes"]) == {"_id": "0" * 24, "id": "o/n", "likes": 3}


def test_expand_validation():
    assert shapes.validate_expand("model", ["likes", "likes", "baseModels"], listing=False) == ["likes", "baseModels"]
    for bad, listing in ((["baseModels"], True), (["usedStorage"], True), (["nope"], False), (["sdk"], False)):
        with pytest.raises(ValueError):
            shapes.validate_expand("models", bad, listing=listing)
    assert shapes.validate_expand("dataset", ["usedStorage"], listing=True) == ["usedStorage"]


def test_speed_smoke():
    start = time.perf_counter()
    hub = build_hub(20_000, 5_000, 5_000, seed=11)
    elapsed = time.perf_counter() - start
    print(f"build_hub(20_000, 5_000, 5_000) took {elapsed:.2f} s")
    assert len(hub.models) == 20_000
    assert elapsed < 60
