"""hfscraper.hub: URLs, Link and RateLimit parsing, id to folder name."""

from __future__ import annotations

import doctest
import json
import os
import unicodedata
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from hfscraper import hub
from hfscraper.constants import LISTING_EXPAND_PROPERTIES, REPO_TYPES
from hfscraper.hub import (
    HostileIdError,
    RateLimit,
    RateLimitPolicy,
    build_entity_url,
    build_list_url,
    check_expand,
    entity_folder_name,
    is_plain_id,
    parse_link_header,
    parse_link_next,
    parse_ratelimit,
    parse_ratelimit_policy,
)


def test_doctests() -> None:
    result = doctest.testmod(hub, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 15
    assert result.failed == 0


# -- URLs ---------------------------------------------------------------------------------------------------


class TestBuildListUrl:
    def test_parameters_in_order_and_repeated(self) -> None:
        url = build_list_url(
            "https://huggingface.co/",
            "model",
            search="llama",
            author="meta-llama",
            filters=["gguf", "base_model:finetune:org/x"],
            sort="createdAt",
            limit=1000,
            expand=["author", "cardData"],
        )
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc, parts.path) == ("https", "huggingface.co", "/api/models")
        assert parse_qsl(parts.query) == [
            ("search", "llama"),
            ("author", "meta-llama"),
            ("filter", "gguf"),
            ("filter", "base_model:finetune:org/x"),
            ("sort", "createdAt"),
            ("limit", "1000"),
            ("expand", "author"),
            ("expand", "cardData"),
        ]

    @pytest.mark.parametrize(
        ("repo_type", "path"), [("model", "/api/models"), ("dataset", "/api/datasets"), ("space", "/api/spaces")]
    )
    def test_path_per_type(self, repo_type: str, path: str) -> None:
        assert build_list_url("http://127.0.0.1:1", repo_type) == f"http://127.0.0.1:1{path}"

    def test_special_characters_are_encoded(self) -> None:
        url = build_list_url("http://h", "dataset", search="a&b=c d#e+f", filters=["x y"])
        assert parse_qsl(urlsplit(url).query) == [("search", "a&b=c d#e+f"), ("filter", "x y")]
        assert "#" not in url and " " not in url

    def test_endpoint_path_prefix_is_kept(self) -> None:
        assert build_list_url("http://h/mirror/", "model", limit=5) == "http://h/mirror/api/models?limit=5"

    @pytest.mark.parametrize("limit", [0, 1001, -1, True, "5", 2.0])
    def test_bad_limit(self, limit: object) -> None:
        with pytest.raises(ValueError, match="limit"):
            build_list_url("http://h", "model", limit=limit)  # type: ignore[arg-type]

    @pytest.mark.parametrize("endpoint", ["", "huggingface.co", "ftp://h", "http://", "http://h/?x=1"])
    def test_bad_endpoint(self, endpoint: str) -> None:
        with pytest.raises(ValueError, match="endpoint"):
            build_list_url(endpoint, "model")

    def test_unknown_type(self) -> None:
        with pytest.raises(ValueError, match="unknown repository type"):
            build_list_url("http://h", "collection")

    @pytest.mark.parametrize("value", ["baseModels", "childrenModelCount", "usedStorage"])
    def test_listing_refuses_single_entity_expands(self, value: str) -> None:
        with pytest.raises(ValueError, match="only valid on /api/models/"):
            build_list_url("http://h", "model", expand=[value])
        assert check_expand("model", [value], listing=False) == (value,)

    @pytest.mark.parametrize(
        ("repo_type", "value"), [("space", "gated"), ("space", "downloads"), ("dataset", "spaces"), ("model", "foo")]
    )
    def test_unknown_expand(self, repo_type: str, value: str) -> None:
        with pytest.raises(ValueError, match="unknown expand value"):
            check_expand(repo_type, [value])

    @pytest.mark.parametrize("repo_type", REPO_TYPES)
    def test_default_expands_are_valid_on_listings(self, repo_type: str) -> None:
        from hfscraper.constants import DEFAULT_EXPAND

        assert set(DEFAULT_EXPAND[repo_type]) <= LISTING_EXPAND_PROPERTIES[repo_type]
        assert check_expand(repo_type, DEFAULT_EXPAND[repo_type]) == DEFAULT_EXPAND[repo_type]


class TestBuildEntityUrl:
    def test_plain(self) -> None:
        assert (
            build_entity_url("http://h", "model", "gpt2", expand=["baseModels"])
            == "http://h/api/models/gpt2?expand=baseModels"
        )

    @pytest.mark.parametrize("repo_id", ["../../etc/passwd", "a/b/c", "a?b", "a#b", "", "x/..", "a b"])
    def test_refuses_non_plain_ids(self, repo_id: str) -> None:
        with pytest.raises(ValueError, match="non-plain"):
            build_entity_url("http://h", "model", repo_id)


# -- Link ---------------------------------------------------------------------------------------------------


class TestLinkNext:
    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            ('<https://h/api/models?cursor=abc%3D>; rel="next"', "https://h/api/models?cursor=abc%3D"),
            ("<https://h/n>; rel=next", "https://h/n"),
            ('<https://h/n>; REL="NEXT"', "https://h/n"),
            ('<https://h/n> ; rel = "next"', "https://h/n"),
            ('<https://h/a,b,c>; rel="next"', "https://h/a,b,c"),
            ('<https://h/p>; rel="prev", <https://h/n>; rel="next"', "https://h/n"),
            ('<https://h/l>; rel="last next"', "https://h/l"),
            ('<https://h/x>; title="a, <b>; rel=next", <https://h/n>; rel="next"', "https://h/n"),
            ('<https://h/x>; title="say \\"hi\\", rel=next"; rel=prev, <https://h/n>; rel=next', "https://h/n"),
            ('</api/models?cursor=x>; rel="next"', "/api/models?cursor=x"),
            ('<https://h/n>; rel="next"; rel="prev"', "https://h/n"),
            ('<https://h/p>; rel="prev"; rel="next"', None),  # only the first rel counts
            ('<https://h/n>; rel="nextpage"', None),
            ('<https://h/n>; anchor="#x"', None),
            ("", None),
            ("garbage", None),
            ('garbage, <https://h/n>; rel="next"', "https://h/n"),
            ('<https://h/n; rel="next"', None),  # unterminated target
            ('<>; rel="next"', None),
        ],
    )
    def test_parse(self, header: str, expected: str | None) -> None:
        assert parse_link_next(header) == expected

    def test_none_and_several_header_lines(self) -> None:
        assert parse_link_next(None) is None
        assert parse_link_next(['<https://h/p>; rel="prev"', '<https://h/n>; rel="next"']) == "https://h/n"

    def test_params_are_kept(self) -> None:
        (link,) = parse_link_header('<https://h/n>; rel="next"; type="application/json"; crossorigin')
        assert link.params == (("rel", "next"), ("type", "application/json"), ("crossorigin", None))

    def test_recorded_headers(self, hub_fixtures: Path) -> None:
        data = json.loads((hub_fixtures / "third_party_captures" / "link_header_examples.json").read_text())
        headers = [e["header"] for e in data["examples"] if "header" in e and "truncated" not in e["header"]]
        assert len(headers) >= 2
        for header in headers:
            value = header.split(":", 1)[1] if header.lower().startswith("link:") else header
            url = parse_link_next(value)
            assert url is not None and "/api/" in url and url.startswith(("https://", "http://"))
            assert "cursor=" in url and ">" not in url


# -- RateLimit ----------------------------------------------------------------------------------------------


class TestRateLimit:
    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            ('"api";r=499;t=293', RateLimit("api", 499, 293)),
            ('"resolvers";r=0;t=172', RateLimit("resolvers", 0, 172)),
            ('"pages" ; r = 94 ; t = 53', RateLimit("pages", 94, 53)),
            ("api;r=1;t=2", RateLimit("api", 1, 2)),
            ('"api";t=5;r=3', RateLimit("api", 3, 5)),
            ('"x";r=1, "api";r=2;t=3', RateLimit("api", 2, 3)),
            ('"api";r=-1;t=5', None),
            ('"api";r=1', None),
            ('"api";r=a;t=5', None),
            ("", None),
            (None, None),
        ],
    )
    def test_parse(self, header: str | None, expected: RateLimit | None) -> None:
        assert parse_ratelimit(header) == expected

    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            ('"fixed window";"api";q=500;w=300', RateLimitPolicy("api", 500, 300, "fixed window")),
            ('"fixed window";"resolvers";q=3000;w=300', RateLimitPolicy("resolvers", 3000, 300, "fixed window")),
            ('"pages";q=100;w=300', RateLimitPolicy("pages", 100, 300)),
            ('"fixed window";"api";w=300;q=10', RateLimitPolicy("api", 10, 300, "fixed window")),
            ('"api";q=500', None),
            ("q=500;w=300", None),
            ("", None),
        ],
    )
    def test_parse_policy(self, header: str, expected: RateLimitPolicy | None) -> None:
        assert parse_ratelimit_policy(header) == expected

    def test_frozen(self) -> None:
        with pytest.raises(AttributeError):
            RateLimit("api", 1, 2).remaining = 5  # type: ignore[misc]

    def test_recorded_headers(self, hub_fixtures: Path) -> None:
        data = json.loads((hub_fixtures / "third_party_captures" / "ratelimit_header_examples.json").read_text())
        seen = 0
        for example in data["examples"]:
            fields = {k.lower(): v for k, v in example.items() if isinstance(v, str)}
            if "ratelimit" not in fields or "ratelimit-policy" not in fields:
                continue
            limit = parse_ratelimit(fields["ratelimit"])
            policy = parse_ratelimit_policy(fields["ratelimit-policy"])
            assert limit is not None and policy is not None, example
            assert limit.bucket == policy.bucket
            assert limit.remaining <= policy.quota and policy.window == 300
            seen += 1
        assert seen >= 3


# -- entity folder names ------------------------------------------------------------------------------------


class TestEntityFolderName:
    @pytest.mark.parametrize(
        ("repo_id", "folder"),
        [
            ("gpt2", "gpt2"),
            ("openai-community/gpt2", "openai-community__gpt2"),
            ("meta-llama/Llama-3.1-8B-Instruct", "meta-llama__Llama-3.1-8B-Instruct"),
            ("a/b_", "a__b_"),
            ("user_/x", "user___x"),
            ("CON/CON", "CON__CON"),
            ("x" * 96 + "/" + "y" * 96, "x" * 96 + "__" + "y" * 96),
        ],
    )
    def test_plain(self, repo_id: str, folder: str) -> None:
        assert is_plain_id(repo_id)
        assert entity_folder_name(repo_id) == folder

    @pytest.mark.parametrize(
        "repo_id",
        [
            "../../etc/passwd", "..", ".", "/abs", "/", "a/", "/a", "a/b/c", "a//b", "a\\b", "..\\..\\x",
            "owner/x__y", "owner__x/y", "owner__x", "CON", "con", "nul.txt", "COM1", "LPT9.tar.gz",
            "a.", "a-", "-a", "_a", ".a", "a b", "é", "x" * 97, "x/" + "y" * 97, "a:b", "a*b", "a?b",
            "\u202egpj.exe", "~x", "a~b",
        ],
    )  # fmt: skip
    def test_encoded(self, repo_id: str) -> None:
        assert not is_plain_id(repo_id)
        folder = entity_folder_name(repo_id)
        assert folder.startswith("~")
        assert folder not in (".", "..") and "/" not in folder and "\\" not in folder and "\x00" not in folder
        assert len(folder) <= 200 and folder.isascii() and folder == folder.lower()

    @pytest.mark.parametrize(
        ("repo_id", "reason"),
        [
            ("", "empty"),
            ("a\x00b", "control_character"),
            ("a\nb", "control_character"),
            ("\x1b[31m", "control_character"),
            ("a\x7f", "control_character"),
            ("a\x85", "control_character"),
            ("x" * 1001, "too_long"),
            ("a\ud800b", "invalid_unicode"),
            (None, "not_a_string"),
            (42, "not_a_string"),
            (b"gpt2", "not_a_string"),
        ],
    )
    def test_refused(self, repo_id: object, reason: str) -> None:
        with pytest.raises(HostileIdError) as info:
            entity_folder_name(repo_id)
        assert info.value.reason == reason
        assert "\n" not in str(info.value)

    def test_length_limits(self) -> None:
        assert entity_folder_name("é" * 1000).startswith("~h")
        assert len(entity_folder_name("x" * 1000)) == 66
        short = entity_folder_name("../" * 20)  # 60 bytes -> 96 base32 characters
        assert len(short) == 97 and not short.startswith("~h")

    def test_hash_form_kicks_in_above_200(self) -> None:
        # 123 bytes -> 197 base32 chars + "~" = 198; 125 bytes -> 200 + 1 = 201 -> hashed
        assert not entity_folder_name("a." + "x" * 121).startswith("~h")
        assert len(entity_folder_name("a." + "x" * 121)) <= 200
        assert entity_folder_name("a." + "x" * 123).startswith("~h")

    def test_unicode_normalisation_forms_get_distinct_folders(self) -> None:
        nfc = unicodedata.normalize("NFC", "org/café")
        nfd = unicodedata.normalize("NFD", "org/café")
        assert nfc != nfd
        assert entity_folder_name(nfc) != entity_folder_name(nfd)

    def test_double_underscore_ambiguity_is_resolved(self) -> None:
        a = entity_folder_name("owner__x/y")
        b = entity_folder_name("owner/x__y")
        c = entity_folder_name("owner/x")
        assert len({a, b, c}) == 3

    def test_injective_on_many_ids(self) -> None:
        ids = {
            "a", "a/b", "a__b", "a/b__c", "a__b/c", "a_/b", "a/_b", "A/b", "a/B", "con", "CON", "x" * 300,
            "x" * 301, "é", "e\u0301", "../a", "..", ".", "a/b/c", "a\\b", "~", "~a", "a/b_", "a_/_b",
        } | {f"user{i}/model-{j}" for i in range(30) for j in range(30)}  # fmt: skip
        folders = {entity_folder_name(i) for i in ids}
        assert len(folders) == len(ids)

    def test_base32_length_never_equals_hash_form_length(self) -> None:
        # The hashed body ("h" + 64 hex) is 65 characters; unpadded base32 never has length 1 (mod 8).
        import base64

        for n in range(0, 200):
            assert len(base64.b32encode(b"x" * n).rstrip(b"=")) % 8 != 1

    def test_folder_names_are_safe_path_components(self, tmp_path: Path) -> None:
        hostile = ["../../x", "..", ".", "/abs", "a/b/c", "a\\..\\b", "CON", "\u202ex", "e\u0301", "x" * 999]
        for repo_id in hostile:
            folder = entity_folder_name(repo_id)
            target = (tmp_path / folder).resolve()
            assert target.parent == tmp_path.resolve()
            os.mkdir(target)
        assert len(os.listdir(tmp_path)) == len(hostile)
