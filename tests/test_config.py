"""hfscraper.config: layering, parsing, one-line errors, -s validation, the token, generated docs, packaging.

Fast and offline: in-process tests with temporary files, plus a few `scrapy` subprocesses in the real
project (they load hfscraper/settings.py exactly as a user's command does).
"""

from __future__ import annotations

import copy
import os
import pickle
import pprint
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
from scrapy.settings import Settings

import hfscraper.config as config
from hfscraper import constants
from hfscraper.config import (
    BY_NAME,
    SCHEMA,
    ConfigError,
    Secret,
    Setting,
    load_config,
    render_defaults_toml,
    render_settings_doc,
    resolve_token,
    token_file_path,
    validate_scrapy_settings,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
TOKEN_TEXT = "hf_tomlSECRETvalue0123456789"
ENV_TOKEN_TEXT = "hf_envSECRETvalue9876543210"
FILE_TOKEN_TEXT = "hf_fileSECRETvalue5555555555"


def defaults() -> dict[str, Any]:
    return {s.name: s.default for s in SCHEMA}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def error_of(fn: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as info:
        fn(*args, **kwargs)
    line = str(info.value)
    assert "\n" not in line and line.startswith("hfscraper: "), line
    return line


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project directory that is also the working directory (so paths show as `settings.toml`)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---------------------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------------------


class TestLayers:
    def test_packaged_defaults_load_without_root_file(self, project: Path) -> None:
        assert load_config(environ={}, project_dir=project) == defaults()

    def test_root_file_overrides_defaults(self, project: Path) -> None:
        write(project / "settings.toml", '[crawl]\npage_size = 50\n[state]\ndir = "/var/hf/state"\n')
        got = load_config(environ={}, project_dir=project)
        assert got["HFSCRAPER_CRAWL_PAGE_SIZE"] == 50
        assert got["HFSCRAPER_STATE_DIR"] == "/var/hf/state"
        assert got["HFSCRAPER_OUTPUT_DIR"] == "output"  # untouched keys keep their default

    def test_environment_overrides_root_file(self, project: Path) -> None:
        write(project / "settings.toml", "[crawl]\npage_size = 50\n")
        got = load_config(environ={"HFSCRAPER_CRAWL_PAGE_SIZE": "70"}, project_dir=project)
        assert got["HFSCRAPER_CRAWL_PAGE_SIZE"] == 70

    def test_cmdline_overrides_environment(self, project: Path) -> None:
        settings = Settings()
        settings.setdict(load_config(environ={"HFSCRAPER_CRAWL_PAGE_SIZE": "70"}, project_dir=project), "project")
        settings.set("HFSCRAPER_CRAWL_PAGE_SIZE", "90", priority="cmdline")  # what `-s` does
        validate_scrapy_settings(settings)
        assert settings["HFSCRAPER_CRAWL_PAGE_SIZE"] == 90
        assert settings.getpriority("HFSCRAPER_CRAWL_PAGE_SIZE") == 40  # still 'cmdline'

    def test_settings_env_replaces_root_file(self, project: Path) -> None:
        write(project / "settings.toml", "[crawl]\npage_size = 50\n")
        other = write(project / "other.toml", '[crawl]\nsort = "likes"\n')
        got = load_config(environ={"HFSCRAPER_SETTINGS": str(other)}, project_dir=project)
        assert got["HFSCRAPER_CRAWL_SORT"] == "likes"
        assert got["HFSCRAPER_CRAWL_PAGE_SIZE"] == 1000  # the root file was not read

    def test_settings_env_naming_a_missing_file_is_an_error(self, project: Path) -> None:
        line = error_of(load_config, environ={"HFSCRAPER_SETTINGS": "/nowhere/x.toml"}, project_dir=project)
        assert line == "hfscraper: environment HFSCRAPER_SETTINGS=/nowhere/x.toml: no such file"

    def test_root_file_is_found_next_to_scrapy_cfg(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        write(tmp_path / "scrapy.cfg", "[settings]\ndefault = hfscraper.settings\n")
        write(tmp_path / "settings.toml", "[crawl]\nmax_items = 5\n")
        (tmp_path / "sub" / "dir").mkdir(parents=True)
        monkeypatch.chdir(tmp_path / "sub" / "dir")
        assert load_config(environ={})["HFSCRAPER_CRAWL_MAX_ITEMS"] == 5

    def test_root_file_in_working_directory_without_scrapy_cfg(
        self, project: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(config, "closest_scrapy_cfg", lambda: "")
        write(project / "settings.toml", "[crawl]\nmax_items = 6\n")
        assert load_config(environ={})["HFSCRAPER_CRAWL_MAX_ITEMS"] == 6

    def test_hf_endpoint_and_its_hfscraper_override(self, project: Path) -> None:
        env = {"HF_ENDPOINT": "http://127.0.0.1:8080/"}
        assert load_config(environ=env, project_dir=project)["HFSCRAPER_HUB_ENDPOINT"] == "http://127.0.0.1:8080"
        env["HFSCRAPER_HUB_ENDPOINT"] = "https://mirror.example/hf"
        assert load_config(environ=env, project_dir=project)["HFSCRAPER_HUB_ENDPOINT"] == "https://mirror.example/hf"

    def test_scrapy_table_passes_scrapy_settings_through(self, project: Path) -> None:
        write(
            project / "settings.toml",
            '[scrapy]\nCONCURRENT_REQUESTS = 4\nLOG_LEVEL = "WARNING"\n'
            "TELNETCONSOLE_ENABLED = false\nDOWNLOAD_DELAY = 0.5\n",
        )
        got = load_config(environ={}, project_dir=project)
        assert got["CONCURRENT_REQUESTS"] == 4 and got["LOG_LEVEL"] == "WARNING"
        assert got["TELNETCONSOLE_ENABLED"] is False and got["DOWNLOAD_DELAY"] == 0.5

    def test_toml_token_is_kept_as_a_secret(self, project: Path) -> None:
        write(project / "settings.toml", f'[hub]\ntoken = "{TOKEN_TEXT}"\n')
        token = load_config(environ={}, project_dir=project)["HFSCRAPER_HUB_TOKEN"]
        assert isinstance(token, Secret) and token.reveal() == TOKEN_TEXT

    def test_returned_lists_are_fresh_copies(self, project: Path) -> None:
        first = load_config(environ={}, project_dir=project)
        first["HFSCRAPER_CRAWL_EXPAND_MODELS"].append("mutated")
        assert "mutated" not in load_config(environ={}, project_dir=project)["HFSCRAPER_CRAWL_EXPAND_MODELS"]

    def test_other_environment_variables_are_ignored(self, project: Path) -> None:
        env = {"HFSCRAPER_IN_NETNS": "1", "PATH": "/bin", "HF_HOME": "/x", "SCRAPY_SETTINGS_MODULE": "x"}
        assert load_config(environ=env, project_dir=project) == defaults()

    def test_committed_example_settings_toml_is_valid(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(REPO_ROOT)
        load_config(environ={}, project_dir=REPO_ROOT)  # raises on any bad key


# ---------------------------------------------------------------------------------------------------------
# Parsing each type from the environment (and -s, which is the same text)
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("var", "raw", "expected"),
    [
        ("HFSCRAPER_HUB_ENDPOINT", " https://huggingface.co/ ", "https://huggingface.co"),
        ("HFSCRAPER_HUB_ENDPOINT", "http://127.0.0.1:9/prefix//", "http://127.0.0.1:9/prefix"),
        ("HFSCRAPER_OUTPUT_DIR", "/data/hub", "/data/hub"),
        ("HFSCRAPER_OUTPUT_DIR", "~/hub", os.path.expanduser("~/hub")),
        ("HFSCRAPER_CRAWL_PAGE_SIZE", " 250 ", 250),
        ("HFSCRAPER_CRAWL_MAX_ITEMS", "0", 0),
        ("HFSCRAPER_CRAWL_FETCH_BASE_MODELS", "true", True),
        ("HFSCRAPER_CRAWL_FETCH_BASE_MODELS", "YES", True),
        ("HFSCRAPER_CRAWL_FETCH_BASE_MODELS", "1", True),
        ("HFSCRAPER_CRAWL_FETCH_BASE_MODELS", "off", False),
        ("HFSCRAPER_STORE_FSYNC", "False", False),
        ("HFSCRAPER_CRAWL_SORT", "likes", "likes"),
        ("HFSCRAPER_CRAWL_SORT", " lastModified ", "lastModified"),
        ("HFSCRAPER_CRAWL_EXPAND_MODELS", "author, sha,,tags,author", ["author", "sha", "tags"]),
        ("HFSCRAPER_CRAWL_EXPAND_SPACES", '["models", "datasets"]', ["models", "datasets"]),
    ],
)
def test_environment_values_are_parsed_to_their_type(var: str, raw: str, expected: Any, project: Path) -> None:
    assert load_config(environ={var: raw}, project_dir=project)[var] == expected


@pytest.mark.parametrize(
    ("type_", "raw", "expected"),
    [(config.STR, "abc", "abc"), (config.FLOAT, "0.25", 0.25), (config.FLOAT, "2", 2.0)],
)
def test_types_without_a_setting_yet_parse_too(type_: str, raw: str, expected: Any) -> None:
    setting = Setting("x.y", "HFSCRAPER_X_Y", type_, None, "test", minimum=0 if type_ == config.FLOAT else None)
    assert config._coerce(setting, raw, text=True) == expected


@pytest.mark.parametrize("raw", ["-1", "nan", "inf", "x"])
def test_float_rejects_out_of_range_and_non_finite(raw: str) -> None:
    setting = Setting("x.y", "HFSCRAPER_X_Y", config.FLOAT, None, "test", minimum=0)
    with pytest.raises(config._Invalid, match="must be a number of at least 0"):
        config._coerce(setting, raw, text=True)


# ---------------------------------------------------------------------------------------------------------
# Errors: one line each, with where, key, value, what is allowed and a did-you-mean
# ---------------------------------------------------------------------------------------------------------

SORTS = "createdAt, lastModified, trendingScore, downloads, likes, likes30d"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[crawl]\npage_sise = 5\n", "settings.toml: crawl.page_sise: unknown key (did you mean crawl.page_size?)"),
        (
            '[crawl]\npage_size = "50"\n',
            'settings.toml: crawl.page_size = "50": must be an integer from 1 to 1000 (got a string)',
        ),
        ("[crawl]\npage_size = 5000\n", "settings.toml: crawl.page_size = 5000: must be an integer from 1 to 1000"),
        ("[crawl]\npage_size = 0\n", "settings.toml: crawl.page_size = 0: must be an integer from 1 to 1000"),
        (
            "[crawl]\npage_size = true\n",
            "settings.toml: crawl.page_size = true: must be an integer from 1 to 1000 (got a boolean)",
        ),
        ("[crawl]\nmax_items = -1\n", "settings.toml: crawl.max_items = -1: must be an integer of at least 0"),
        (
            '[crawl]\nsort = "createdat"\n',
            f'settings.toml: crawl.sort = "createdat": must be one of {SORTS} (did you mean createdAt?)',
        ),
        ('[crawl]\nsort = "newest"\n', f'settings.toml: crawl.sort = "newest": must be one of {SORTS}'),
        ('[store]\nfsync = "yes"\n', 'settings.toml: store.fsync = "yes": must be true or false (got a string)'),
        (
            '[hub]\nendpoint = "ftp://hub"\n',
            'settings.toml: hub.endpoint = "ftp://hub": must be an http:// or https:// URL such as '
            "https://huggingface.co",
        ),
        ('[crawl]\noutput_dir = ""\n', 'settings.toml: crawl.output_dir = "": must be a non-empty path'),
        ("[crawl]\noutput_dir = 3\n", "settings.toml: crawl.output_dir = 3: must be a non-empty path (got an integer)"),
        ("[crwal]\npage_size = 5\n", "settings.toml: [crwal]: unknown section (did you mean crawl?)"),
        ('output_dir = "x"\n', "settings.toml: output_dir: unknown key (did you mean crawl.output_dir?)"),
        (
            '[crawl]\nendpoint = "https://x"\n',
            "settings.toml: crawl.endpoint: unknown key (did you mean hub.endpoint?)",
        ),
        ("crawl = 5\n", "settings.toml: crawl: must be a table ([crawl])"),
        (
            "[crawl\n",
            "settings.toml: not valid TOML: Expected ']' at the end of a table declaration (at line 1, column 7)",
        ),
        (
            "[scrapy]\nCONCURENT_REQUESTS = 4\n",
            "settings.toml: scrapy.CONCURENT_REQUESTS: not a Scrapy setting (did you mean CONCURRENT_REQUESTS?)",
        ),
        (
            "[scrapy]\nconcurrent_requests = 4\n",
            "settings.toml: scrapy.concurrent_requests: not a Scrapy setting (did you mean CONCURRENT_REQUESTS?)",
        ),
        (
            '[scrapy]\nCONCURRENT_REQUESTS = "16"\n',
            'settings.toml: scrapy.CONCURRENT_REQUESTS = "16": must be a number, like Scrapy\'s default 16',
        ),
        (
            '[scrapy]\nHFSCRAPER_OUTPUT_DIR = "x"\n',
            "settings.toml: scrapy.HFSCRAPER_OUTPUT_DIR: an hfscraper setting: set crawl.output_dir instead",
        ),
    ],
)
def test_file_errors_are_one_clear_line(toml: str, expected: str, project: Path) -> None:
    write(project / "settings.toml", toml)
    assert error_of(load_config, environ={}, project_dir=project) == f"hfscraper: {expected}"


@pytest.mark.parametrize(
    ("setting", "value", "problem"),
    [
        (
            "expand_models",
            '["author", "pipelinetag"]',
            "'pipelinetag' is not allowed (did you mean pipeline_tag?); must be a list of at least one of: ",
        ),
        (
            "expand_models",
            '["author", "baseModels"]',
            "'baseModels': the /api/models listing refuses it (valid on /api/models/{id} only; "
            "crawl.fetch_base_models = true fetches it per model)",
        ),
        (
            "expand_models",
            '["childrenModelCount"]',
            "'childrenModelCount': the /api/models listing refuses it (valid on /api/models/{id} only)",
        ),
        (
            "expand_datasets",
            '["usedStorage"]',
            "'usedStorage': the /api/datasets listing refuses it (valid on /api/datasets/{id} only)",
        ),
        ("expand_spaces", '["gated"]', "'gated' is not allowed; must be a list of at least one of: "),
        ("expand_spaces", "[]", "must be a list of at least one of: "),
        ("expand_spaces", '"models"', "must be a list of at least one of: "),
    ],
)
def test_expand_lists_allow_only_listing_fields_of_their_type(
    setting: str, value: str, problem: str, project: Path
) -> None:
    write(project / "settings.toml", f"[crawl]\n{setting} = {value}\n")
    line = error_of(load_config, environ={}, project_dir=project)
    assert line.startswith(f"hfscraper: settings.toml: crawl.{setting} = ")
    assert problem in line


def test_every_listing_expand_value_is_accepted(project: Path) -> None:
    for repo_type, plural in (("model", "models"), ("dataset", "datasets"), ("space", "spaces")):
        every = sorted(constants.LISTING_EXPAND_PROPERTIES[repo_type])
        env = {f"HFSCRAPER_CRAWL_EXPAND_{plural.upper()}": ",".join(every)}
        assert load_config(environ=env, project_dir=project)[f"HFSCRAPER_CRAWL_EXPAND_{plural.upper()}"] == every


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"HFSCRAPER_OUTPUT_DIRR": "x"},
            "environment HFSCRAPER_OUTPUT_DIRR: unknown setting (did you mean HFSCRAPER_OUTPUT_DIR?)",
        ),
        (
            {"HFSCRAPER_PAGE_SIZE": "5"},
            "environment HFSCRAPER_PAGE_SIZE: unknown setting (did you mean HFSCRAPER_CRAWL_PAGE_SIZE?)",
        ),
        (
            {"HFSCRAPER_CRAWL_PAGE_SIZE": "5000"},
            "environment HFSCRAPER_CRAWL_PAGE_SIZE=5000: must be an integer from 1 to 1000",
        ),
        (
            {"HFSCRAPER_CRAWL_PAGE_SIZE": "ten"},
            "environment HFSCRAPER_CRAWL_PAGE_SIZE=ten: must be an integer from 1 to 1000",
        ),
        (
            {"HFSCRAPER_STORE_FSYNC": "maybe"},
            "environment HFSCRAPER_STORE_FSYNC=maybe: must be true or false (or 1/0, yes/no, on/off)",
        ),
        (
            {"HFSCRAPER_CRAWL_SORT": "Likes"},
            f"environment HFSCRAPER_CRAWL_SORT=Likes: must be one of {SORTS} (did you mean likes?)",
        ),
        (
            {"HF_ENDPOINT": "localhost:8080"},
            "environment HF_ENDPOINT=localhost:8080 (hub.endpoint): must be an http:// or https:// URL such as "
            "https://huggingface.co",
        ),
        ({"HFSCRAPER_OUTPUT_DIR": " "}, "environment HFSCRAPER_OUTPUT_DIR= : must be a non-empty path"),
    ],
)
def test_environment_errors_are_one_clear_line(env: dict[str, str], expected: str, project: Path) -> None:
    assert error_of(load_config, environ=env, project_dir=project) == f"hfscraper: {expected}"


def test_control_characters_in_a_value_do_not_break_the_line(project: Path) -> None:
    line = error_of(load_config, environ={"HFSCRAPER_CRAWL_SORT": "likes\nEVIL"}, project_dir=project)
    assert line.startswith('hfscraper: environment HFSCRAPER_CRAWL_SORT="likes\\nEVIL": must be one of')


def test_long_values_are_clipped(project: Path) -> None:
    line = error_of(load_config, environ={"HFSCRAPER_CRAWL_SORT": "x" * 500}, project_dir=project)
    assert "x" * 119 + "…" in line and "x" * 121 not in line


# ---------------------------------------------------------------------------------------------------------
# -s: validate_scrapy_settings
# ---------------------------------------------------------------------------------------------------------


def cmdline_settings(**values: Any) -> Settings:
    settings = Settings()
    settings.setdict(load_config(environ={}, project_dir=Path("/nonexistent")), priority="project")
    for name, value in values.items():
        settings.set(name, value, priority="cmdline")
    return settings


class TestCmdline:
    def test_bad_value_names_dash_s(self) -> None:
        line = error_of(validate_scrapy_settings, cmdline_settings(HFSCRAPER_CRAWL_PAGE_SIZE="5000"))
        assert line == "hfscraper: -s HFSCRAPER_CRAWL_PAGE_SIZE=5000: must be an integer from 1 to 1000"

    def test_unknown_name_gets_did_you_mean(self) -> None:
        line = error_of(validate_scrapy_settings, cmdline_settings(HFSCRAPER_CRAWL_PAGESIZE="50"))
        assert line == (
            "hfscraper: -s HFSCRAPER_CRAWL_PAGESIZE=50: unknown setting (did you mean HFSCRAPER_CRAWL_PAGE_SIZE?)"
        )

    def test_unknown_name_at_another_priority_says_so(self) -> None:
        settings = cmdline_settings()
        settings.set("HFSCRAPER_OUTPUTDIR", "x", priority="spider")
        line = error_of(validate_scrapy_settings, settings)
        assert line == (
            "hfscraper: setting HFSCRAPER_OUTPUTDIR=x (spider priority): unknown setting "
            "(did you mean HFSCRAPER_OUTPUT_DIR?)"
        )

    def test_strings_are_parsed_and_normalised_in_place(self) -> None:
        settings = cmdline_settings(
            HFSCRAPER_CRAWL_PAGE_SIZE="50",
            HFSCRAPER_CRAWL_FETCH_BASE_MODELS="yes",
            HFSCRAPER_CRAWL_EXPAND_DATASETS="author, sha",
            HFSCRAPER_HUB_ENDPOINT="http://127.0.0.1:1234/",
        )
        validate_scrapy_settings(settings)
        assert settings["HFSCRAPER_CRAWL_PAGE_SIZE"] == 50
        assert settings["HFSCRAPER_CRAWL_FETCH_BASE_MODELS"] is True
        assert settings["HFSCRAPER_CRAWL_EXPAND_DATASETS"] == ["author", "sha"]
        assert settings["HFSCRAPER_HUB_ENDPOINT"] == "http://127.0.0.1:1234"
        assert {settings.getpriority(n) for n in ("HFSCRAPER_CRAWL_PAGE_SIZE", "HFSCRAPER_HUB_ENDPOINT")} == {40}

    def test_project_values_pass_unchanged(self) -> None:
        settings = cmdline_settings()
        before = settings.copy_to_dict()
        validate_scrapy_settings(settings)
        assert settings.copy_to_dict() == before

    def test_plain_mapping_works_too(self) -> None:
        values: dict[str, Any] = {"HFSCRAPER_CRAWL_MAX_ITEMS": "7", "LOG_LEVEL": "INFO"}
        validate_scrapy_settings(values)
        assert values == {"HFSCRAPER_CRAWL_MAX_ITEMS": 7, "LOG_LEVEL": "INFO"}
        line = error_of(validate_scrapy_settings, {"HFSCRAPER_CRAWL_MAX_ITEMS": "-3"})
        assert line == "hfscraper: setting HFSCRAPER_CRAWL_MAX_ITEMS=-3: must be an integer of at least 0"

    def test_token_on_the_command_line_is_refused_without_echoing_it(self) -> None:
        line = error_of(validate_scrapy_settings, cmdline_settings(HFSCRAPER_HUB_TOKEN=TOKEN_TEXT))
        assert line.startswith("hfscraper: -s HFSCRAPER_HUB_TOKEN=***: a token is never given with -s")
        assert TOKEN_TEXT not in line

    def test_frozen_settings_are_checked_not_changed(self) -> None:
        settings = cmdline_settings(HFSCRAPER_CRAWL_PAGE_SIZE="50")
        settings.freeze()
        validate_scrapy_settings(settings)
        assert settings["HFSCRAPER_CRAWL_PAGE_SIZE"] == "50"


# ---------------------------------------------------------------------------------------------------------
# The token
# ---------------------------------------------------------------------------------------------------------


class TestSecret:
    def test_never_shows_its_value(self) -> None:
        secret = Secret(TOKEN_TEXT)
        shown = [
            str(secret),
            repr(secret),
            f"{secret}",
            f"{secret!r}",
            "%s %r" % (secret, secret),  # noqa: UP031 - logging's way
            pprint.pformat({"HFSCRAPER_HUB_TOKEN": secret}),
            str([secret]),
        ]
        assert all(TOKEN_TEXT not in text and "***" in text for text in shown)
        assert secret.reveal() == TOKEN_TEXT

    def test_is_not_pickled_but_copies(self) -> None:
        secret = Secret(TOKEN_TEXT)
        with pytest.raises(TypeError, match="not pickled"):
            pickle.dumps(secret)
        assert copy.deepcopy(secret) is secret
        settings = Settings({"HFSCRAPER_HUB_TOKEN": secret})
        assert settings.copy()["HFSCRAPER_HUB_TOKEN"].reveal() == TOKEN_TEXT

    def test_equality(self) -> None:
        assert Secret("a") == Secret("a") and Secret("a") != Secret("b") and Secret("a") != "a"
        assert len({Secret("a"), Secret("a")}) == 1


class TestResolveToken:
    @pytest.fixture
    def home(self, tmp_path: Path) -> Path:
        return tmp_path

    def test_order_env_then_file_then_settings(self, home: Path) -> None:
        settings = {"HFSCRAPER_HUB_TOKEN": Secret(TOKEN_TEXT)}
        env = {"HF_HOME": str(home)}
        assert resolve_token(settings, env).reveal() == TOKEN_TEXT
        write(home / "token", FILE_TOKEN_TEXT + "\n")
        assert resolve_token(settings, env).reveal() == FILE_TOKEN_TEXT
        env["HF_TOKEN"] = ENV_TOKEN_TEXT
        assert resolve_token(settings, env).reveal() == ENV_TOKEN_TEXT

    def test_empty_values_mean_unset(self, home: Path) -> None:
        write(home / "token", "\n")
        assert resolve_token({"HFSCRAPER_HUB_TOKEN": None}, {"HF_TOKEN": "", "HF_HOME": str(home)}) is None
        assert resolve_token(None, {"HF_TOKEN": "  ", "HF_HOME": str(home)}) is None

    def test_token_file_locations(self, home: Path) -> None:
        assert token_file_path({"HF_TOKEN_PATH": str(home / "t"), "HF_HOME": "/x"}) == home / "t"
        assert token_file_path({"HF_HOME": str(home)}) == home / "token"
        assert token_file_path({"XDG_CACHE_HOME": str(home)}) == home / "huggingface" / "token"
        assert token_file_path({}) == Path("~/.cache/huggingface/token").expanduser()
        write(home / "t", FILE_TOKEN_TEXT)
        assert resolve_token(None, {"HF_TOKEN_PATH": str(home / "t")}).reveal() == FILE_TOKEN_TEXT

    def test_bad_token_error_hides_it(self, home: Path) -> None:
        line = error_of(resolve_token, None, {"HF_TOKEN": "hf_abc def" + TOKEN_TEXT})
        assert line == (
            "hfscraper: environment HF_TOKEN=***: must be a token without spaces or control characters (value hidden)"
        )
        write(home / "settings.toml", f'[hub]\ntoken = "{TOKEN_TEXT} x"\n')
        line = error_of(load_config, environ={}, project_dir=home)
        assert TOKEN_TEXT not in line and 'hub.token = "***"' in line

    def test_hfscraper_hub_token_in_the_environment_is_refused(self, home: Path) -> None:
        line = error_of(load_config, environ={"HFSCRAPER_HUB_TOKEN": TOKEN_TEXT}, project_dir=home)
        assert TOKEN_TEXT not in line and line.startswith("hfscraper: environment HFSCRAPER_HUB_TOKEN=***: not read")


# ---------------------------------------------------------------------------------------------------------
# Generated files and documentation
# ---------------------------------------------------------------------------------------------------------


class TestGenerated:
    def test_settings_doc_matches_the_schema(self) -> None:
        committed = (REPO_ROOT / "docs" / "SETTINGS.md").read_text(encoding="utf-8")
        assert committed == render_settings_doc(), "run: python -m hfscraper.config --write"

    def test_defaults_toml_matches_the_schema(self) -> None:
        committed = (REPO_ROOT / "hfscraper" / "defaults.toml").read_text(encoding="utf-8")
        assert committed == render_defaults_toml(), "run: python -m hfscraper.config --write"
        parsed = tomllib.loads(committed)
        for setting in SCHEMA:
            section, _, leaf = setting.key.partition(".")
            assert parsed[section].get(leaf) == setting.default, setting.key

    def test_every_setting_is_documented(self) -> None:
        doc = render_settings_doc()
        for setting in SCHEMA:
            assert setting.doc and f"### `{setting.key}`" in doc and f"`{setting.name}`" in doc
            assert setting.name in (config.__doc__ or ""), f"{setting.name} missing from the module docstring"

    def test_contract_names_exist(self) -> None:
        contracts = (REPO_ROOT / "docs" / "CONTRACTS.md").read_text(encoding="utf-8")
        for name in BY_NAME:
            if name != "HFSCRAPER_HUB_TOKEN" and "EXPAND" not in name:
                assert name in contracts, name

    def test_sorts_are_the_hubs(self) -> None:
        assert set(config.SORTS) == set().union(*constants.SORT_VALUES.values())

    def test_defaults_are_valid_values(self) -> None:
        for setting in SCHEMA:
            if setting.default is not None:
                assert config._coerce(setting, setting.default, text=False) == setting.default, setting.key


# ---------------------------------------------------------------------------------------------------------
# The real `scrapy` command line
# ---------------------------------------------------------------------------------------------------------


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The test process's environment without any hfscraper or Hub configuration of the developer's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("HFSCRAPER_") and k != "HFSCRAPER_IN_NETNS")
        and k not in {"HF_TOKEN", "HF_ENDPOINT", "HF_TOKEN_PATH", "SCRAPY_SETTINGS_MODULE"}
    }
    env["HF_HOME"] = str(tmp_path / "hf_home")
    env.update(extra)
    return env


def scrapy(*args: str, env: dict[str, str], cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scrapy", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


class TestCommandLine:
    def test_settings_get_shows_the_environment_value(self, tmp_path: Path) -> None:
        env = clean_env(tmp_path, HFSCRAPER_OUTPUT_DIR=str(tmp_path / "out-from-env"))
        result = scrapy("settings", "--get", "HFSCRAPER_OUTPUT_DIR", env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == str(tmp_path / "out-from-env")

    def test_bad_settings_file_stops_scrapy_with_one_line(self, tmp_path: Path) -> None:
        bad = write(tmp_path / "bad.toml", "[crawl]\npage_sise = 5\n")
        result = scrapy("list", env=clean_env(tmp_path, HFSCRAPER_SETTINGS=str(bad)))
        assert result.returncode == 2
        assert result.stderr.splitlines() == [
            f"hfscraper: {bad}: crawl.page_sise: unknown key (did you mean crawl.page_size?)"
        ]
        assert "Traceback" not in result.stderr and result.stdout == ""

    def test_bad_environment_value_stops_scrapy_crawl_with_one_line(self, tmp_path: Path) -> None:
        result = scrapy("crawl", "models", env=clean_env(tmp_path, HFSCRAPER_CRAWL_PAGE_SIZE="0"))
        assert result.returncode == 2
        assert result.stderr.splitlines() == [
            "hfscraper: environment HFSCRAPER_CRAWL_PAGE_SIZE=0: must be an integer from 1 to 1000"
        ]

    def test_settings_get_never_prints_the_token(self, tmp_path: Path) -> None:
        toml = write(tmp_path / "tok.toml", f'[hub]\ntoken = "{TOKEN_TEXT}"\n')
        result = scrapy(
            "settings", "--get", "HFSCRAPER_HUB_TOKEN", env=clean_env(tmp_path, HFSCRAPER_SETTINGS=str(toml))
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "***"
        assert TOKEN_TEXT not in result.stdout + result.stderr

    def test_crawler_start_up_log_never_prints_the_token(self, tmp_path: Path) -> None:
        spider = write(
            tmp_path / "token_spider.py",
            (
                "import scrapy\n"
                "from hfscraper.config import resolve_token\n\n"
                "class TokenSpider(scrapy.Spider):\n"
                "    name = 'token_check'\n\n"
                "    async def start(self):\n"
                "        token = resolve_token(self.settings)\n"
                "        setting = self.settings['HFSCRAPER_HUB_TOKEN']\n"
                "        self.logger.info('setting %r resolved %s %r', setting, token, token)\n"
                "        self.crawler.stats.set_value('token', token)\n"
                "        return\n"
                "        yield\n"
            ),
        )
        toml = write(tmp_path / "tok.toml", f'[hub]\ntoken = "{TOKEN_TEXT}"\n')
        home = tmp_path / "hf_home"
        home.mkdir()
        write(home / "token", FILE_TOKEN_TEXT)
        env = clean_env(tmp_path, HFSCRAPER_SETTINGS=str(toml), HF_TOKEN=ENV_TOKEN_TEXT)
        result = scrapy(
            "runspider",
            str(spider),
            "-s",
            "ITEM_PIPELINES={}",
            "-s",
            "LOG_LEVEL=DEBUG",
            "-s",
            "STATS_DUMP=True",
            env=env,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert "setting '***' resolved *** '***'" in output
        assert "'token': '***'" in output  # the stats dump
        for secret in (TOKEN_TEXT, ENV_TOKEN_TEXT, FILE_TOKEN_TEXT):
            assert secret not in output


# ---------------------------------------------------------------------------------------------------------
# Packaging: a scrapyd egg carries the defaults
# ---------------------------------------------------------------------------------------------------------


def test_scrapyd_egg_carries_the_packaged_defaults(tmp_path: Path) -> None:
    """Build the egg the way scrapyd-deploy does (its generated setup.py) and load the config from it."""
    pytest.importorskip("setuptools")
    build = tmp_path / "project"
    (build / "hfscraper").mkdir(parents=True)
    for name in ("pyproject.toml", "requirements.txt", "scrapy.cfg"):
        shutil.copy(REPO_ROOT / name, build / name)
    for name in ("__init__.py", "config.py", "constants.py", "settings.py", "defaults.toml"):
        shutil.copy(REPO_ROOT / "hfscraper" / name, build / "hfscraper" / name)
    write(
        build / "setup.py",
        (
            "from setuptools import setup, find_packages\n"
            "setup(name='project', version='1.0', packages=find_packages(),\n"
            "      entry_points={'scrapy': ['settings = hfscraper.settings']})\n"
        ),
    )
    subprocess.run(
        [sys.executable, "setup.py", "-q", "bdist_egg", "-d", "dist"],
        cwd=build,
        check=True,
        capture_output=True,
        timeout=120,
    )
    (egg,) = (build / "dist").glob("*.egg")
    with zipfile.ZipFile(egg) as archive:
        assert "hfscraper/defaults.toml" in archive.namelist()
        assert "settings = hfscraper.settings" in archive.read("EGG-INFO/entry_points.txt").decode()
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import hfscraper.config as c\n"
        "assert c.__file__.startswith(sys.argv[1]), c.__file__\n"
        "print(c.load_config(environ={}, project_dir=sys.argv[2])['HFSCRAPER_CRAWL_PAGE_SIZE'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(egg), str(empty)],
        cwd=empty,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1000"
