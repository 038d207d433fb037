"""hfscraper's configuration: one declared schema, four layers, strict validation.

Layers, lowest first (each overrides the one before it):

1. ``hfscraper/defaults.toml``, shipped inside the package and read with ``importlib.resources`` (a scrapyd
   egg carries it; a repository-root file would not be in the egg).
2. ``settings.toml`` in the project directory (the folder of the closest ``scrapy.cfg``, else the working
   directory), or, when ``$HFSCRAPER_SETTINGS`` is set, the file it names instead (it must exist).
3. The environment: ``HFSCRAPER_<NAME>`` for every setting below, plus ``HF_ENDPOINT`` (as huggingface_hub
   reads it; ``HFSCRAPER_HUB_ENDPOINT`` wins when both are set).
4. ``scrapy ... -s NAME=VALUE``: Scrapy applies it at 'cmdline' priority over the names ``settings.py`` sets at
   'project' priority; ``validate_scrapy_settings`` then parses and checks those strings with the same schema.

Settings (TOML key, Scrapy setting):

hub.endpoint                HFSCRAPER_HUB_ENDPOINT - the Hub's base URL (http or https, no trailing slash)
hub.token                   HFSCRAPER_HUB_TOKEN - a Secret, never a plain str; use ``resolve_token(settings)``
crawl.output_dir            HFSCRAPER_OUTPUT_DIR - where the entity tree is written
state.dir                   HFSCRAPER_STATE_DIR - crash-safe crawl state (one SQLite file per output folder)
state.adopt_output          HFSCRAPER_STATE_ADOPT_OUTPUT - this state file takes over an output folder of another one
state.tombstone_max_fraction HFSCRAPER_TOMBSTONE_MAX_FRACTION - most of a type's live entities one sweep may delete
state.tombstone_guard_min   HFSCRAPER_TOMBSTONE_GUARD_MIN - deletions a sweep may always record, whatever the fraction
hub.allow_other_endpoint    HFSCRAPER_CRAWL_ALLOW_OTHER_ENDPOINT - crawl another Hub into an output folder on purpose
export.dir                  HFSCRAPER_EXPORT_DIR - the Parquet export
export.batch_size           HFSCRAPER_EXPORT_BATCH_SIZE - rows per Parquet row group (and per batch held in memory)
export.deleted              HFSCRAPER_EXPORT_DELETED - ``flag`` tombstoned entities (``deleted``) or ``drop`` them
export.car                  HFSCRAPER_EXPORT_CAR - also write a CAR of each Parquet file (its CID is always given)
crawl.page_size             HFSCRAPER_CRAWL_PAGE_SIZE - listing page size (``limit``), 1 to 1000
crawl.sort                  HFSCRAPER_CRAWL_SORT - listing order; ``createdAt`` is the only stable one
crawl.max_items             HFSCRAPER_CRAWL_MAX_ITEMS - stop each spider after this many entities (0: no limit)
crawl.fetch_base_models     HFSCRAPER_CRAWL_FETCH_BASE_MODELS - one extra request per model with base models
crawl.include_private       HFSCRAPER_CRAWL_INCLUDE_PRIVATE - also store private repos a token can see
crawl.expand_models         HFSCRAPER_CRAWL_EXPAND_MODELS - ``expand`` fields of the model listing
crawl.expand_datasets       HFSCRAPER_CRAWL_EXPAND_DATASETS - ``expand`` fields of the dataset listing
crawl.expand_spaces         HFSCRAPER_CRAWL_EXPAND_SPACES - ``expand`` fields of the space listing
store.fsync                 HFSCRAPER_STORE_FSYNC - fsync each metadata.json before its rename
ratelimit.enabled           HFSCRAPER_RATELIMIT_ENABLED - pace requests by the Hub's RateLimit headers, pause on 429
ratelimit.max_wait          HFSCRAPER_RATELIMIT_MAX_WAIT - the longest pause after a 429, in seconds
ratelimit.reserve           HFSCRAPER_RATELIMIT_RESERVE - requests of each quota window left unspent
ratelimit.max_429_retries   HFSCRAPER_RATELIMIT_MAX_429_RETRIES - retries of one request after 429s
ratelimit.pacing            HFSCRAPER_RATELIMIT_PACING - pacers per process (``local``) or shared through Redis
distributed.role            HFSCRAPER_DISTRIBUTED_ROLE - ``off``, ``discovery`` (walks listings) or ``worker``
distributed.redis_url       HFSCRAPER_REDIS_URL - the Redis server discovery and workers share
distributed.namespace       HFSCRAPER_DISTRIBUTED_NAMESPACE - prefix of every Redis key of a distributed crawl
distributed.lease           HFSCRAPER_DISTRIBUTED_LEASE - seconds a silent worker's entities stay claimed
distributed.max_in_flight   HFSCRAPER_DISTRIBUTED_MAX_IN_FLIGHT - entities one worker holds at once
distributed.poll_interval   HFSCRAPER_DISTRIBUTED_POLL_INTERVAL - seconds between looks at an empty queue
distributed.max_attempts    HFSCRAPER_DISTRIBUTED_MAX_ATTEMPTS - tries of an entity whose stages fail
distributed.forever         HFSCRAPER_DISTRIBUTED_FOREVER - workers keep waiting after the listing is done
memory.mmap_threshold       HFSCRAPER_MEMORY_MMAP_THRESHOLD - glibc mmap threshold: a crawl's RSS stays flat (0: off)
memory.gc_threshold         HFSCRAPER_MEMORY_GC_THRESHOLD - allocations between two young-object garbage collections
progress.interval           HFSCRAPER_PROGRESS_INTERVAL - seconds between progress lines during a crawl (0: off)
capacity.check_interval     HFSCRAPER_CAPACITY_CHECK_INTERVAL - seconds between free-space checks in a crawl (0: off)
capacity.min_free_bytes     HFSCRAPER_CAPACITY_MIN_FREE_BYTES - bytes a crawl leaves free on the output and state disks
capacity.min_free_inodes    HFSCRAPER_CAPACITY_MIN_FREE_INODES - inodes a crawl leaves free there
capacity.min_free_fraction  HFSCRAPER_CAPACITY_MIN_FREE_FRACTION - the reserve as a fraction of the disk, if larger
files.enabled               HFSCRAPER_FILES_ENABLED - download each entity's chosen files into its folder
files.models                HFSCRAPER_FILES_MODELS - which files of a model (patterns, as allow_patterns)
files.datasets              HFSCRAPER_FILES_DATASETS - which files of a dataset
files.spaces                HFSCRAPER_FILES_SPACES - which files of a space
files.max_size              HFSCRAPER_FILES_MAX_SIZE - larger files are skipped without fetching their bytes
files.stream_threshold      HFSCRAPER_FILES_STREAM_THRESHOLD - larger LFS bodies stream to disk outside Scrapy
files.streams               HFSCRAPER_FILES_STREAMS - how many large files stream at once
files.retries               HFSCRAPER_FILES_RETRIES - new attempts after a checksum mismatch or a lost download
files.sizes_from            HFSCRAPER_FILES_SIZES_FROM - ``resolve`` (free) or ``paths-info`` (one API request)
previews.enabled            HFSCRAPER_PREVIEWS_ENABLED - dataset-viewer previews, space thumbnails and links
previews.datasets_server    HFSCRAPER_DATASETS_SERVER - the dataset viewer's base URL
previews.max_splits         HFSCRAPER_PREVIEWS_MAX_SPLITS - first rows of at most this many splits per dataset
previews.retry_min          HFSCRAPER_PREVIEWS_RETRY_MIN - seconds before a transient viewer answer is asked again
previews.retry_max          HFSCRAPER_PREVIEWS_RETRY_MAX - the longest wait between asks (the backoff doubles up to it)
ipfs.enabled                HFSCRAPER_IPFS_ENABLED - file CIDs, ipfs_cid.txt, a CAR and a pin per entity folder
ipfs.profile                HFSCRAPER_IPFS_PROFILE - the import parameters that decide every CID
ipfs.backend                HFSCRAPER_IPFS_BACKEND - where roots are pinned: ``embedded`` or ``kubo``
ipfs.api                    HFSCRAPER_IPFS_API - the kubo RPC base URL of the ``kubo`` backend
ipfs.car_dir                HFSCRAPER_IPFS_CAR_DIR - where the CARs go (default ``<output_dir>/car``)
ipfs.car_layout             HFSCRAPER_IPFS_CAR_LAYOUT - ``filestore`` (CARs built on demand), ``pack`` or ``entity``
ipfs.unpin_deleted          HFSCRAPER_IPFS_UNPIN_DELETED - unpin entities a full sweep marked deleted
ipfs.verify_add             HFSCRAPER_IPFS_VERIFY_ADD - also ``add`` each file on the node and compare CIDs
ipfs.timeout                HFSCRAPER_IPFS_TIMEOUT - the longest one call to the node may take, in seconds
ipfs.connect_timeout        HFSCRAPER_IPFS_CONNECT_TIMEOUT - the longest a connection to the node may take
provenance.enabled          HFSCRAPER_PROVENANCE_ENABLED - record each entity's relations; the graph files at the end
provenance.resolve_renames  HFSCRAPER_PROVENANCE_RESOLVE_RENAMES - look up ids only a card names, once (307 = renamed)
provenance.rebuild          HFSCRAPER_PROVENANCE_REBUILD - rebuild ``output_dir/provenance/`` when a crawl ends
provenance.entity_files     HFSCRAPER_PROVENANCE_ENTITY_FILES - also one relationship file per entity (an inode each)
provenance.graph_files      HFSCRAPER_PROVENANCE_GRAPH_FILES - also whole-graph text files: json, graphml, relationships
deltafetch.enabled          DELTAFETCH_ENABLED - skip entities stored before at the same sha and lastModified
deltafetch.reset            DELTAFETCH_RESET - forget which entities are complete, so every one is stored again

``DELTAFETCH_*`` keep scrapy-deltafetch's names (``hfscraper.middlewares.deltafetch`` offers its interface); their
environment variables are ``HFSCRAPER_DELTAFETCH_*``, like every other setting's.

A ``[scrapy]`` table passes plain Scrapy settings through (``CONCURRENT_REQUESTS = 16``); each name must be one
of Scrapy's own settings.

Every problem is a ``ConfigError`` whose ``str()`` is one line naming where the value came from, the key,
the value and what is allowed, e.g. ``hfscraper: settings.toml: crawl.page_sise: unknown key (did you mean
crawl.page_size?)``. ``docs/SETTINGS.md`` and ``defaults.toml`` are generated from ``SCHEMA``
(``python -m hfscraper.config --write``); a test fails when either differs from the schema.

To add a setting: add a ``Setting`` to ``SCHEMA``, list it above, and run ``python -m hfscraper.config --write``.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import hmac
import json
import math
import os
import sys
import tomllib
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final, NoReturn
from urllib.parse import urlsplit

from scrapy.settings import SETTINGS_PRIORITIES, BaseSettings, default_settings
from scrapy.utils.conf import closest_scrapy_cfg

from hfscraper import constants

__all__ = [
    "SCHEMA",
    "ConfigError",
    "Secret",
    "Setting",
    "load_config",
    "render_defaults_toml",
    "render_settings_doc",
    "resolve_token",
    "token_file_path",
    "validate_scrapy_settings",
]

#: The environment variable that names an override file replacing the root ``settings.toml``.
SETTINGS_FILE_ENV: Final = "HFSCRAPER_SETTINGS"
#: The override file's name in the project directory.
ROOT_FILE_NAME: Final = "settings.toml"
#: Every hfscraper Scrapy setting (and environment variable) starts with this.
PREFIX: Final = "HFSCRAPER_"
#: Scrapy setting names hfscraper also owns and validates, although they keep another component's naming
#: (scrapy-deltafetch's); their environment variables still start with PREFIX.
FOREIGN_PREFIXES: Final = ("DELTAFETCH_",)
#: ``HFSCRAPER_*`` environment variables that are not settings: the override file, and the flag
#: scripts/hermetic.sh sets inside its network namespace.
NON_SETTING_ENV: Final = frozenset({SETTINGS_FILE_ENV, "HFSCRAPER_IN_NETNS", "HFSCRAPER_TEST_KUBO"})
#: The TOML table whose keys are plain Scrapy settings.
SCRAPY_TABLE: Final = "scrapy"

# Value types a Setting may declare.
STR, PATH, URL, INT, FLOAT, BOOL, LIST, ENUM, SECRET = (
    "str", "path", "url", "int", "float", "bool", "list[str]", "enum", "secret",
)  # fmt: skip
TYPES: Final = (STR, PATH, URL, INT, FLOAT, BOOL, LIST, ENUM, SECRET)

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


# ---------------------------------------------------------------------------------------------------------
# Errors and secrets
# ---------------------------------------------------------------------------------------------------------


class ConfigError(ValueError):
    """A configuration value that stops the run.

    *where* says where the value came from and what it was (``settings.toml: crawl.page_size = 5000``,
    ``environment HFSCRAPER_CRAWL_PAGE_SIZE=5000``, ``-s HFSCRAPER_CRAWL_PAGE_SIZE=5000``); *problem* says
    what is wrong and what is allowed. ``str()`` is the single line to print.
    """

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(self.line)

    @property
    def line(self) -> str:
        return _one_line(f"hfscraper: {self.where}: {self.problem}")

    def __str__(self) -> str:
        return self.line


class Secret:
    """A string that never shows itself: ``str()`` is ``***``, ``repr()`` is ``'***'``.

    Scrapy prints setting values (``scrapy settings --get``, start-up logs, stats dumps); a Secret in a
    setting prints as ``***`` everywhere. ``reveal()`` gives the value to the one place that sends it (the
    Authorization header). It cannot be pickled, so it never lands in a JOBDIR or any other file.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret wraps a str")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return format("***", spec)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    # Settings.copy() deep-copies every value; a Secret is immutable, so a copy is itself.
    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret is not pickled: that would write the token to disk")


# ---------------------------------------------------------------------------------------------------------
# The schema
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One configuration key.

    Attributes:
        key: the TOML name, ``section.name``.
        name: the Scrapy setting name (also its environment variable).
        type: one of ``TYPES``.
        default: the packaged default (``None``: unset).
        doc: what it does, in a sentence or two (docs/SETTINGS.md and defaults.toml show it).
        minimum, maximum: the inclusive range of an int or float.
        choices: the allowed values of an enum, or of each element of a list.
        refused: values of a list that are valid Hub names but refused here, each with the reason.
        min_items: the fewest elements a list may have.
        secret: the value is a token: never shown, stored as a ``Secret``.
        env_aliases: other environment variables read for it, overridden by ``name``.
    """

    key: str
    name: str
    type: str
    default: Any
    doc: str
    minimum: int | float | None = None
    maximum: int | float | None = None
    choices: tuple[str, ...] = ()
    refused: tuple[tuple[str, str], ...] = ()
    min_items: int = 0
    secret: bool = False
    env_aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        assert self.type in TYPES, self.type
        assert self.name.startswith((PREFIX, *FOREIGN_PREFIXES)), self.name
        assert self.key.count(".") == 1, self.key

    @property
    def section(self) -> str:
        return self.key.partition(".")[0]

    @property
    def env_name(self) -> str:
        """The setting's own environment variable: its name, with ``HFSCRAPER_`` in front if it lacks it."""
        return self.name if self.name.startswith(PREFIX) else PREFIX + self.name

    @property
    def env_names(self) -> tuple[str, ...]:
        """Environment variables read by ``load_config``, lowest precedence first (a secret: none)."""
        return () if self.secret else (*self.env_aliases, self.env_name)

    def allowed(self) -> str:
        """What a valid value looks like, as the end of "must be ..."."""
        if self.type == INT:
            return "an integer" + _range_text(self.minimum, self.maximum)
        if self.type == FLOAT:
            return "a number" + _range_text(self.minimum, self.maximum)
        if self.type == BOOL:
            return "true or false"
        if self.type == ENUM:
            return "one of " + ", ".join(self.choices)
        if self.type == LIST:
            if not self.choices:
                return "a list of strings"
            return f"a list of {'at least one' if self.min_items else 'any'} of: " + ", ".join(self.choices)
        if self.type == URL:
            return "an http:// or https:// URL such as https://huggingface.co"
        if self.type == PATH:
            return "a non-empty path"
        if self.type == SECRET:
            return "a token without spaces or control characters"
        return "a non-empty string"


def _range_text(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f" from {minimum} to {maximum}"
    if minimum is not None:
        return f" of at least {minimum}"
    if maximum is not None:
        return f" of at most {maximum}"
    return ""


_REFUSED_HINTS: Final = {"baseModels": "; crawl.fetch_base_models = true fetches it per model"}


def _expand_setting(repo_type: str, plural: str, default: tuple[str, ...], doc: str) -> Setting:
    path = constants.API_PATHS[repo_type]
    refused = tuple(
        (value, f"the {path} listing refuses it (valid on {path}/{{id}} only{_REFUSED_HINTS.get(value, '')})")
        for value in sorted(constants.LISTING_REJECTED_EXPAND & constants.EXPAND_PROPERTIES[repo_type])
    )
    return Setting(
        f"crawl.expand_{plural}",
        f"HFSCRAPER_CRAWL_EXPAND_{plural.upper()}",
        LIST,
        list(default),
        doc,
        choices=tuple(sorted(constants.LISTING_EXPAND_PROPERTIES[repo_type], key=str.lower)),
        refused=refused,
        min_items=1,
    )


#: Every listing sort (the union of constants.SORT_VALUES, in the order the docs give them).
SORTS: Final = ("createdAt", "lastModified", "trendingScore", "downloads", "likes", "likes30d")

#: Every key, grouped by TOML section in the order docs and defaults.toml show them.
SCHEMA: Final[tuple[Setting, ...]] = (
    Setting(
        "hub.endpoint", "HFSCRAPER_HUB_ENDPOINT", URL, constants.HF_DEFAULT_ENDPOINT,
        "The Hub to crawl: its base URL, without a trailing slash (one is stripped). Set `HF_ENDPOINT`, as for "
        "huggingface_hub, to crawl a mirror or the bundled replica.",
        env_aliases=("HF_ENDPOINT",),
    ),
    Setting(
        "hub.token", "HFSCRAPER_HUB_TOKEN", SECRET, None,
        "Hub access token, the last resort after `HF_TOKEN` and the huggingface token file (`$HF_TOKEN_PATH`, "
        "else `$HF_HOME/token`, else `~/.cache/huggingface/token`). Prefer those two: a token in a settings "
        "file is easily committed. Held as a redacted Secret; never given with `-s` or `HFSCRAPER_HUB_TOKEN`.",
        secret=True,
    ),
    Setting(
        "crawl.output_dir", "HFSCRAPER_OUTPUT_DIR", PATH, "output",
        "Root of the entity tree: `<output_dir>/{models,datasets,spaces}/<folder>/metadata.json`.",
    ),
    Setting(
        "crawl.page_size", "HFSCRAPER_CRAWL_PAGE_SIZE", INT, constants.MAX_PAGE_SIZE,
        "Entities per listing page (the `limit` parameter). 1000 is the Hub's maximum and the cheapest: "
        "each page costs one request of the API quota.",
        minimum=1, maximum=constants.MAX_PAGE_SIZE,
    ),
    Setting(
        "crawl.sort", "HFSCRAPER_CRAWL_SORT", ENUM, constants.DEFAULT_SORT,
        "Listing order (always descending). `createdAt` is the default because a keyset over creation time is "
        "stable while a crawl runs: a repository created meanwhile lands before the cursor instead of shifting "
        "later pages, so nothing is skipped or seen twice. The other orders move repositories across the "
        "cursor as they change during the crawl, so only a `createdAt` crawl is a full sweep that marks "
        "entities it no longer found deleted. Spaces cannot be sorted by `downloads`.",
        choices=SORTS,
    ),
    Setting(
        "crawl.max_items", "HFSCRAPER_CRAWL_MAX_ITEMS", INT, 0,
        "Stop each spider after this many entities; 0 means no limit.",
        minimum=0,
    ),
    Setting(
        "crawl.fetch_base_models", "HFSCRAPER_CRAWL_FETCH_BASE_MODELS", BOOL, False,
        "Also fetch `baseModels`, which listings refuse: one extra API request per model that has base "
        "models. Off by default: the `base_model:` tags of the listing already carry each base and its "
        "relation, and at the free tier (1,000 API requests per 5 minutes) per-model calls take days over "
        "the whole Hub.",
    ),
    Setting(
        "crawl.include_private", "HFSCRAPER_CRAWL_INCLUDE_PRIVATE", BOOL, False,
        "Also store private repos that the token can see. Off by default: hfscraper mirrors the Hub's public "
        "metadata, and an archive (or an IPFS pin) of it must not leak a private repo just because the "
        "crawling account could read it. Skipped ones are counted under `hfscraper/spider/skipped/private`.",
    ),
    _expand_setting(
        constants.REPO_TYPE_MODEL, "models", constants.DEFAULT_EXPAND_MODELS,
        "`expand` fields asked of the model listing: what `metadata.json` holds besides `_id` and `id`. "
        "The default keeps every field the archive, the export and the provenance graph read.",
    ),
    _expand_setting(
        constants.REPO_TYPE_DATASET, "datasets", constants.DEFAULT_EXPAND_DATASETS,
        "`expand` fields asked of the dataset listing.",
    ),
    _expand_setting(
        constants.REPO_TYPE_SPACE, "spaces", constants.DEFAULT_EXPAND_SPACES,
        "`expand` fields asked of the space listing (`models` and `datasets` give the space's provenance edges).",
    ),
    Setting(
        "state.dir", "HFSCRAPER_STATE_DIR", PATH, "state",
        "Crash-safe crawl state, kept between runs to resume and re-run cheaply: one SQLite file (WAL mode) per "
        "output folder, `hfscraper-<folder name>-<hash of its path>.sqlite3`, with each listing's cursor, every "
        "crawl and each entity's version and tombstone. `scrapy status` shows it.",
    ),
    Setting(
        "state.adopt_output", "HFSCRAPER_STATE_ADOPT_OUTPUT", BOOL, False,
        "Let this crawl's state file take over an output folder that `<output>/.hfscraper-output.json` records "
        "for another state file: for a state folder moved or restored on purpose. Without it such a crawl is "
        "refused (one line, exit 2), because two state files writing into one output folder race on its "
        "entity folders and CARs. Give it once (`-s HFSCRAPER_STATE_ADOPT_OUTPUT=true`); the record then names "
        "the new state file.",
    ),
    Setting(
        "state.tombstone_max_fraction", "HFSCRAPER_TOMBSTONE_MAX_FRACTION", FLOAT, 0.05,
        "The most of a type's live entities that one full sweep may mark deleted. A sweep whose listing lacks "
        "more (and more than `state.tombstone_guard_min`) marks none, logs one WARNING with the numbers and "
        "ends incomplete with finish reason `tombstone_guard` (exit 1): a Hub outage answering short pages, or "
        "another Hub, must not tombstone the archive. If the Hub really deleted them, run the same command "
        "once with `-s HFSCRAPER_TOMBSTONE_MAX_FRACTION=1`, which turns the guard off.",
        minimum=0.0, maximum=1.0,
    ),
    Setting(
        "state.tombstone_guard_min", "HFSCRAPER_TOMBSTONE_GUARD_MIN", INT, 3,
        "Deletions one full sweep may always record, whatever `state.tombstone_max_fraction` says: in a small "
        "type (10 entities) a single deletion is already 10%.",
        minimum=0,
    ),
    Setting(
        "hub.allow_other_endpoint", "HFSCRAPER_CRAWL_ALLOW_OTHER_ENDPOINT", BOOL, False,
        "Crawl a Hub endpoint into an output folder that mirrors another one (recorded in "
        "`<output>/.hfscraper-output.json` and the crawl state). Without it such a crawl is refused (one line "
        "naming both endpoints, exit 2): a full sweep of another Hub would mark every entity of this one "
        "deleted. With it the record names the new endpoint.",
    ),
    Setting(
        "export.dir", "HFSCRAPER_EXPORT_DIR", PATH, "data/huggingface_hub_metadata",
        "Where `scrapy export` writes the unified Parquet files and their data card.",
    ),
    Setting(
        "export.batch_size", "HFSCRAPER_EXPORT_BATCH_SIZE", INT, 10_000,
        "Rows per Parquet row group in `scrapy export`: the export holds one batch of rows per merged "
        "stream (the previous export, each output folder) in memory at a time.",
        minimum=1, maximum=1_000_000,
    ),
    Setting(
        "export.deleted", "HFSCRAPER_EXPORT_DELETED", ENUM, "flag",
        "What `scrapy export` does with entities a full sweep tombstoned: `flag` keeps their last row with "
        "`deleted = true`, `drop` leaves them out of the files.",
        choices=("flag", "drop"),
    ),
    Setting(
        "export.car", "HFSCRAPER_EXPORT_CAR", BOOL, True,
        "Also write `car/<file>.car` beside each exported Parquet file (a CARv1 whose root is the file's CID, in "
        "the `ipfs.profile` profile); off, the data card gives only the CIDs.",
    ),
    Setting(
        "store.fsync", "HFSCRAPER_STORE_FSYNC", BOOL, False,
        "fsync each metadata.json before it is renamed into place, so a power loss cannot leave an empty or "
        "partial file. Slower; without it the rename is still atomic when the crawler itself crashes.",
    ),
    Setting(
        "ratelimit.enabled", "HFSCRAPER_RATELIMIT_ENABLED", BOOL, True,
        "Pace requests by the Hub's `RateLimit` headers, per host and bucket (`api`, `resolvers`, `pages`), so "
        "that no bucket runs dry, and pause every request to a host after a 429 "
        "(`RateLimitDownloaderMiddleware`). Off: 429s are retried by Scrapy's RetryMiddleware, at once.",
    ),
    Setting(
        "ratelimit.max_wait", "HFSCRAPER_RATELIMIT_MAX_WAIT", FLOAT, 600.0,
        "The longest pause after a 429, in seconds. The pause lasts until the window's reset (`RateLimit`'s `t`: "
        "the Hub's own 429 carries no `Retry-After`), or until `Retry-After` (seconds or a date) when a proxy adds "
        "one, else an exponential backoff; a longer one is cut to this. The Hub's windows are 5 minutes long, so "
        "the default never cuts a reset short.",
        minimum=0,
    ),
    Setting(
        "ratelimit.reserve", "HFSCRAPER_RATELIMIT_RESERVE", INT, 1,
        "Requests of each quota window that are never spent. The crawl cannot see requests the same client "
        "(token, else IP) sends from elsewhere, such as `huggingface-cli` in another terminal, and the Hub may "
        "count concurrent requests in another order than they were sent; one spare request absorbs such a "
        "miscount for 1/quota of the throughput (0.2% of the anonymous API quota). 0 spends every request.",
        minimum=0,
    ),
    Setting(
        "ratelimit.max_429_retries", "HFSCRAPER_RATELIMIT_MAX_429_RETRIES", INT, 10,
        "How often one request is retried after 429 answers before it fails. Separate from Scrapy's "
        "`RETRY_TIMES`: a 429 means \"not yet\", not that the request failed, and each retry waits for the "
        "pause first. A request's `max_retry_times` meta key overrides it.",
        minimum=0,
    ),
    Setting(
        "ratelimit.pacing", "HFSCRAPER_RATELIMIT_PACING", ENUM, "auto",
        "Where the pacers and 429 pauses live. `local`: in this process (one client identity per process). "
        "`redis`: in Redis (`distributed.redis_url`), so that every process of a distributed crawl, on any "
        "machine, spends one quota together: each send slot is reserved by an atomic script on Redis's clock. "
        "`auto`: `redis` when `distributed.role` is `discovery` or `worker`, else `local`.",
        choices=("auto", "local", "redis"),
    ),
    Setting(
        "distributed.role", "HFSCRAPER_DISTRIBUTED_ROLE", ENUM, "off",
        "Crawling on several machines through one Redis (scrapy-redis). `off`: one process does everything. "
        "`discovery`: walk the listing (cursor chain and checkpoint as usual) and push each entity's listing "
        "record to Redis; no entity stage runs. `worker`: take entities from Redis and run every stage "
        "(per-entity requests, files, previews, CIDs, pins, provenance); any number may run, on any machine.",
        choices=("off", "discovery", "worker"),
    ),
    Setting(
        "distributed.redis_url", "HFSCRAPER_REDIS_URL", STR, "redis://127.0.0.1:6379/0",
        "The Redis server shared by the discovery and the workers (`redis://[:password@]host:port/db`, "
        "`rediss://` for TLS); given to scrapy-redis as `REDIS_URL`.",
    ),
    Setting(
        "distributed.namespace", "HFSCRAPER_DISTRIBUTED_NAMESPACE", STR, "hfscraper",
        "The prefix of every Redis key (`<namespace>:<spider>:queue`, ...): separate crawls may share one Redis "
        "under different namespaces.",
    ),
    Setting(
        "distributed.lease", "HFSCRAPER_DISTRIBUTED_LEASE", FLOAT, 30.0,
        "Seconds a worker's claim on the entities it took lasts without a heartbeat (it renews it every third "
        "of that). When a worker dies, any live worker puts its entities back into the queue once the lease "
        "has run out.",
        minimum=1,
    ),
    Setting(
        "distributed.max_in_flight", "HFSCRAPER_DISTRIBUTED_MAX_IN_FLIGHT", INT, 16,
        "Entities one worker takes from the queue and holds at once; more go to other workers.",
        minimum=1,
    ),
    Setting(
        "distributed.poll_interval", "HFSCRAPER_DISTRIBUTED_POLL_INTERVAL", FLOAT, 1.0,
        "Seconds a worker waits before looking again at an empty queue.",
        minimum=0.05,
    ),
    Setting(
        "distributed.max_attempts", "HFSCRAPER_DISTRIBUTED_MAX_ATTEMPTS", INT, 3,
        "How often a worker tries an entity whose stages fail (a failed file, an error) before it gives up on "
        "it (`<namespace>:<spider>:failed` in Redis; the next crawl tries again).",
        minimum=1,
    ),
    Setting(
        "distributed.forever", "HFSCRAPER_DISTRIBUTED_FOREVER", BOOL, False,
        "Workers keep waiting for work after the discovery has finished the listing. Off: a worker ends once "
        "the listing is done and the queue and every worker's claimed entities are empty.",
    ),
    Setting(
        "memory.mmap_threshold", "HFSCRAPER_MEMORY_MMAP_THRESHOLD", INT, 128 * 1024,
        "Memory blocks of at least this many bytes get pages of their own from the system (glibc's "
        "`M_MMAP_THRESHOLD`, set when a crawl starts), so a crawl's resident memory stays flat however many "
        "entities it stores. glibc's default moves the threshold up to the largest block freed (listing pages "
        "are megabytes), after which those blocks fragment the heap and it grows for the whole crawl. 0 leaves "
        "glibc's default; ignored by other C libraries.",
        minimum=0, maximum=32 * 1024 * 1024,
    ),
    Setting(
        "memory.gc_threshold", "HFSCRAPER_MEMORY_GC_THRESHOLD", INT, 10_000,
        "Allocations of container objects between two collections of Python's youngest garbage generation "
        "(`gc.set_threshold`, set when a crawl starts; Python's default is 700). At 700 a listing page's thousands "
        "of decoded objects trigger full collections over every object the crawl holds again and again: a fifth "
        "of a crawl's CPU. 0 leaves Python's default.",
        minimum=0, maximum=1_000_000,
    ),
    Setting(
        "progress.interval", "HFSCRAPER_PROGRESS_INTERVAL", FLOAT, 30.0,
        "Seconds between the progress lines a crawl logs (INFO, one per spider): entities stored and skipped, "
        "per second since the start and over the last interval, listing pages, files downloaded and failed, CIDs, "
        "and the rate-limit budget left per bucket. They replace Scrapy's `LogStats` line; 0 turns them off and "
        "brings that line back (every `LOGSTATS_INTERVAL`).",
        minimum=0,
    ),
    Setting(
        "capacity.check_interval", "HFSCRAPER_CAPACITY_CHECK_INTERVAL", FLOAT, 1.0,
        "Seconds between the capacity checks of a crawl (`hfscraper.capacity`): two `statvfs` calls that "
        "estimate the bytes and inodes one entity costs on the output and state file systems and stop the "
        "crawl (finish reason `disk_full`, one line with the numbers) before either falls below its reserve. A "
        "crawl that would start below the reserve is refused (one line, exit 2). 0 turns the check off.",
        minimum=0,
    ),
    Setting(
        "capacity.min_free_bytes", "HFSCRAPER_CAPACITY_MIN_FREE_BYTES", INT, 1024**3,
        "Bytes the crawl leaves free on each file system it writes to (the reserve is the larger of this and "
        "`capacity.min_free_fraction` of the file system's size).",
        minimum=0,
    ),
    Setting(
        "capacity.min_free_inodes", "HFSCRAPER_CAPACITY_MIN_FREE_INODES", INT, 100_000,
        "Inodes the crawl leaves free on each file system it writes to (the larger of this and "
        "`capacity.min_free_fraction` of its inodes; ignored where the file system reports no inode limit).",
        minimum=0,
    ),
    Setting(
        "capacity.min_free_fraction", "HFSCRAPER_CAPACITY_MIN_FREE_FRACTION", FLOAT, 0.01,
        "The reserve as a fraction of each file system's size and inodes, where that is more than "
        "`capacity.min_free_bytes` or `capacity.min_free_inodes`.",
        minimum=0.0, maximum=0.5,
    ),
    Setting(
        "files.enabled", "HFSCRAPER_FILES_ENABLED", BOOL, True,
        "Download each entity's chosen files (`files.models`, `files.datasets`, `files.spaces`) into its folder, "
        "verified against the Hub's checksums, at the commit its `metadata.json` names. Costs one request of the "
        "`resolvers` quota per file (plus one per small file for its bytes), a separate quota from the listing's "
        "`api` one; over the whole Hub that is days, not minutes (see the README).",
    ),
    Setting(
        "files.models", "HFSCRAPER_FILES_MODELS", LIST,
        ["README.md", "config.json", "generation_config.json", "tokenizer_config.json"],
        "Which files of a model to download: patterns as huggingface_hub's `allow_patterns` (fnmatch on the "
        "path in the repository; `*` also matches `/`; a pattern ending in `/` takes a whole folder; a plain "
        "name is that top-level file). An empty list downloads none.",
    ),
    Setting(
        "files.datasets", "HFSCRAPER_FILES_DATASETS", LIST, ["README.md", "dataset_info.json", "dataset_infos.json"],
        "Which files of a dataset to download (patterns as for `files.models`).",
    ),
    Setting(
        "files.spaces", "HFSCRAPER_FILES_SPACES", LIST, ["README.md", "app.py", "requirements.txt"],
        "Which files of a space to download (patterns as for `files.models`).",
    ),
    Setting(
        "files.max_size", "HFSCRAPER_FILES_MAX_SIZE", INT, 10 * 1024 * 1024,
        "The largest file downloaded, in bytes; larger ones are skipped (`hfscraper/files/skipped/too_large`) "
        "before their bytes are fetched: an LFS file by the size in the Hub's redirect (`X-Linked-Size`), a file "
        "in git by its `Content-Length`.",
        minimum=0,
    ),
    Setting(
        "files.stream_threshold", "HFSCRAPER_FILES_STREAM_THRESHOLD", INT, 8 * 1024 * 1024,
        "LFS files larger than this (bytes) are streamed from the CDN straight to disk in 1 MiB pieces, outside "
        "Scrapy, which holds a whole response body in memory; smaller ones go through Scrapy's downloader (0: "
        "stream every CDN body). Bodies from the Hub's own origin (files kept in git, which the Hub limits to "
        "10 MB) always go through Scrapy, bounded by `files.max_size`.",
        minimum=0,
    ),
    Setting(
        "files.streams", "HFSCRAPER_FILES_STREAMS", INT, 4,
        "How many large files stream from the CDN at once (each holds about 1 MiB of memory).",
        minimum=1,
    ),
    Setting(
        "files.retries", "HFSCRAPER_FILES_RETRIES", INT, 2,
        "New attempts at a file after its bytes failed their checksum or its download was lost (after Scrapy's "
        "own retries of 5xx answers and broken connections). A file that still fails is not kept, is counted "
        "under `hfscraper/files/failed`, and leaves its entity to the next run (the crawl is incomplete).",
        minimum=0,
    ),
    Setting(
        "files.sizes_from", "HFSCRAPER_FILES_SIZES_FROM", ENUM, "resolve",
        "Where file sizes and checksums come from before a download. `resolve`: the Hub's redirect of each "
        "file, which costs nothing extra (an oversized LFS file is skipped at its redirect, before the CDN). "
        "`paths-info`: one extra `api` request per entity (`POST /api/<type>s/<id>/paths-info/<sha>`) that "
        "names the sizes and hashes of the chosen files, so oversized and unchanged files cost no `resolvers` "
        "request at all; at the free tier's 1,000 API requests per 5 minutes that is days over the whole Hub.",
        choices=("resolve", "paths-info"),
    ),
    Setting(
        "previews.enabled", "HFSCRAPER_PREVIEWS_ENABLED", BOOL, True,
        "Write `preview_info.json` for each dataset (what the dataset viewer says: `/is-valid`, `/splits`, "
        "`/first-rows`, `/info`, `/size`; a few requests per dataset to the viewer, not to the Hub) and "
        "`thumbnail_info.json` and `relationships.json` for each space (from the listing, no request).",
    ),
    Setting(
        "previews.datasets_server", "HFSCRAPER_DATASETS_SERVER", URL, "https://datasets-server.huggingface.co",
        "The dataset viewer's base URL. The Hub token is never sent there.",
    ),
    Setting(
        "previews.max_splits", "HFSCRAPER_PREVIEWS_MAX_SPLITS", INT, 5,
        "Fetch `/first-rows` for at most this many splits of a dataset (in the viewer's order); 0 fetches none.",
        minimum=0,
    ),
    Setting(
        "previews.retry_min", "HFSCRAPER_PREVIEWS_RETRY_MIN", FLOAT, 600.0,
        "Seconds after a transient answer of the dataset viewer (no answer, a timeout, a 5xx without the viewer's "
        "error code, a 429, not computed yet) before a crawl asks it about that dataset again. Until then the "
        "dataset's `preview_info.json` stays as it is (`\"final\": false`) and its previews stage pending; a "
        "new version of the dataset is asked at once. The wait doubles after each transient answer.",
        minimum=0,
    ),
    Setting(
        "previews.retry_max", "HFSCRAPER_PREVIEWS_RETRY_MAX", FLOAT, 86400.0,
        "The longest wait, in seconds, between two asks about a dataset whose viewer answers stay transient.",
        minimum=0,
    ),
    Setting(
        "ipfs.enabled", "HFSCRAPER_IPFS_ENABLED", BOOL, True,
        "Content-address every stored entity (`IpfsPipeline`, after the files are downloaded): the CID of each "
        "file in its folder, `ipfs_cid.txt` in the folder with the CID that `ipfs add -r --hidden` gives the "
        "folder (without `ipfs_cid.txt` and `tombstone.json`), a CAR of the folder with that root in "
        "`ipfs.car_dir` (importable with `ipfs dag import`), and a pin on `ipfs.backend`.",
    ),
    Setting(
        "ipfs.profile", "HFSCRAPER_IPFS_PROFILE", ENUM, "unixfs-v1-2025",
        "The import parameters, which decide every CID: `unixfs-v1-2025` (IPIP-499: CIDv1, raw leaves, 1 MiB "
        "chunks, 1024 links), `unixfs-v0-2015` (plain `ipfs add`: CIDv0, 256 KiB, 174 links) or `kubo-cidv1` "
        "(`ipfs add --cid-version=1`: raw leaves, 256 KiB, 174 links). Changing it re-addresses every entity "
        "the next time it is stored.",
        choices=("unixfs-v1-2025", "unixfs-v0-2015", "kubo-cidv1"),
    ),
    Setting(
        "ipfs.backend", "HFSCRAPER_IPFS_BACKEND", ENUM, "embedded",
        "Where each folder's root is pinned. `embedded`: no node; the CAR stays on disk and the pin (root CID, "
        "entity, time) is recorded in the crawl state. `kubo`: the CAR is imported into an IPFS node through "
        "its kubo RPC API (`ipfs.api`) with `dag/import`, the root the node pinned must equal the one computed "
        "here (a mismatch is an error), and `pin/ls` must list it. An IPFS Cluster peer's kubo-compatible "
        "proxy (port 9095) works too and pins cluster-wide.",
        choices=("embedded", "kubo"),
    ),
    Setting(
        "ipfs.api", "HFSCRAPER_IPFS_API", URL, "http://127.0.0.1:5001",
        "The kubo RPC base URL of the `kubo` backend (without `/api/v0`). Only the node is sent to: never the "
        "Hub token, and no proxy from the environment.",
    ),
    Setting(
        "ipfs.car_dir", "HFSCRAPER_IPFS_CAR_DIR", PATH, None,
        "Where the CARs are written (see `ipfs.car_layout`). Unset: `<output_dir>/car`, outside every entity "
        "folder.",
    ),
    Setting(
        "ipfs.car_layout", "HFSCRAPER_IPFS_CAR_LAYOUT", ENUM, "filestore",
        "`filestore`: no CAR is written (no byte, no inode): a CAR is determined by the entity folder and the "
        "profile, so `scrapy car TYPE ID` builds it from the folder on demand, byte for byte the `entity` "
        "layout's, and refuses when the folder no longer hashes to the recorded root (a re-crawl restores it); "
        "with the `kubo` backend, which imports the blocks from CARs, it means `pack`. `pack`: the entities "
        "addressed together share one CARv1 with one root each, `<car_dir>/packs/<type>/<time>-<pid>-<n>.car` "
        "(no inode per entity); packs no entity points into any more are deleted, sparse ones compacted. "
        "`entity`: one single-root CAR per entity folder, `<car_dir>/<type>/<folder>.car`. An entity moves to "
        "another layout when it is next addressed; until then its recorded CAR (or folder) serves it.",
        choices=("filestore", "pack", "entity"),
    ),
    Setting(
        "ipfs.unpin_deleted", "HFSCRAPER_IPFS_UNPIN_DELETED", BOOL, False,
        "Unpin the roots of entities that a full sweep marked deleted (`tombstone.json`), when the crawl that "
        "marked them ends and at the start of every later crawl. Off: an archive keeps what the Hub dropped.",
    ),
    Setting(
        "ipfs.verify_add", "HFSCRAPER_IPFS_VERIFY_ADD", BOOL, False,
        "With the `kubo` backend, also `add` each file of the folder on the node with the profile's parameters "
        "(`only-hash`, nothing stored) and require the node's CID to equal the one computed here: a second, "
        "independent check of the DAG, at the cost of sending every file once more. Files the node cannot "
        "build the profile's DAG for (more chunks than its 174 links per node) are not sent.",
    ),
    Setting(
        "ipfs.timeout", "HFSCRAPER_IPFS_TIMEOUT", FLOAT, 600.0,
        "The longest one call to the IPFS node may take, in seconds, uploading a CAR included.",
        minimum=0.1,
    ),
    Setting(
        "ipfs.connect_timeout", "HFSCRAPER_IPFS_CONNECT_TIMEOUT", FLOAT, 10.0,
        "The longest a connection to the IPFS node may take to open, in seconds.",
        minimum=0.1,
    ),
    Setting(
        "provenance.enabled", "HFSCRAPER_PROVENANCE_ENABLED", BOOL, True,
        "Record the relations each entity declares (`ProvenancePipeline`: base models with their relation, "
        "model -> dataset, space -> model and dataset) in the crawl state, and build the provenance graph "
        "(`output_dir/provenance/`, docs/PROVENANCE.md). Costs no request.",
    ),
    Setting(
        "provenance.resolve_renames", "HFSCRAPER_PROVENANCE_RESOLVE_RENAMES", BOOL, True,
        "Look up, once per id and ever, an id that only a model card names (no `base_model:` or `dataset:` tag) "
        "and that is not a crawled entity: one API request, `GET /api/<type>s/<id>` without following "
        "redirects; a 307 names the current id of a renamed repo, a 404 makes it a stub. Such ids are rare "
        "(the Hub tags every base it can resolve).",
    ),
    Setting(
        "provenance.rebuild", "HFSCRAPER_PROVENANCE_REBUILD", BOOL, True,
        "Rebuild the files under `output_dir/provenance/` from the crawl state when the crawl ends (the last "
        "crawler of a `crawlall`). Off: only the state is kept; `python -m hfscraper.provenance rebuild` "
        "writes them later.",
    ),
    Setting(
        "provenance.entity_files", "HFSCRAPER_PROVENANCE_ENTITY_FILES", BOOL, False,
        "Also write one relationship document per crawled entity, "
        "`output_dir/provenance/<type>_relationships/<folder>.json` (an inode each: five million for the whole "
        "Hub). Off: each document is answered on demand, byte for byte, from the Parquet files "
        "(`python -m hfscraper.provenance relationships model_relationships/<folder>.json`, docs/PROVENANCE.md).",
    ),
    Setting(
        "provenance.graph_files", "HFSCRAPER_PROVENANCE_GRAPH_FILES", LIST, [],
        "Whole-graph text files the rebuild writes besides its Parquet files (`provenance_nodes.parquet`, "
        "`provenance_edges.parquet`, `provenance_edges_by_target.parquet`, always written): `json` "
        "(`provenance_graph.json`, networkx node-link data), `graphml` (`provenance_graph.graphml`, for Gephi), "
        "`relationships` (`entity_relationships.json`). Each rewrites the whole graph at every crawl end "
        "(hundreds of bytes per entity); `python -m hfscraper.provenance graph --format json|graphml|"
        "relationships [OUT]` writes the same bytes on demand.",
        choices=("graphml", "json", "relationships"),
    ),
    Setting(
        "deltafetch.enabled", "DELTAFETCH_ENABLED", BOOL, True,
        "Skip an entity whose `sha`, `lastModified` and listing fields equal what the crawl state recorded when "
        "it was last stored, once it completed every pipeline stage: an unchanged Hub is re-crawled without "
        "rewriting a folder or downloading a file (`deltafetch/skipped`). Counters that change without a "
        "commit (downloads, likes) are then refreshed only when the repository changes. Requests with "
        "`meta[\"deltafetch_key\"]` are skipped once a response to that key produced a stored item; "
        "`meta[\"deltafetch_enabled\"] = false` opts a request out. Entities that the same crawl already "
        "stored are skipped whatever this says (a resumed crawl re-reads some pages).",
    ),
    Setting(
        "deltafetch.reset", "DELTAFETCH_RESET", BOOL, False,
        "At the start of the crawl, forget which entities of the spider's type completed their stages (and "
        "the spider's deltafetch keys), so that every entity is stored again; entity history and tombstones "
        "are kept.",
    ),
)  # fmt: skip

BY_KEY: Final[dict[str, Setting]] = {s.key: s for s in SCHEMA}
BY_NAME: Final[dict[str, Setting]] = {s.name: s for s in SCHEMA}
BY_ENV: Final[dict[str, Setting]] = {s.env_name: s for s in SCHEMA}
SECTIONS: Final[tuple[str, ...]] = tuple(dict.fromkeys(s.section for s in SCHEMA))
TOKEN: Final = BY_NAME["HFSCRAPER_HUB_TOKEN"]


# ---------------------------------------------------------------------------------------------------------
# Parsing one value
# ---------------------------------------------------------------------------------------------------------


class _Invalid(Exception):
    """A value that does not fit its setting; the caller adds where it came from."""


def _coerce(setting: Setting, value: Any, *, text: bool) -> Any:
    """Return *value* parsed and normalised for *setting*, or raise _Invalid with what is allowed.

    *text* says the value is a string from the environment or ``-s`` (so ``"5"`` is an integer, ``"a,b"`` a
    list); otherwise it is a TOML value, whose type must already be right.
    """
    must = f"must be {setting.allowed()}"
    kind = setting.type
    if kind in (STR, PATH, URL, ENUM, SECRET) and not isinstance(value, str):
        raise _Invalid(f"{must} (got {_type_name(value)})")

    if kind == SECRET:
        token = value.strip()
        if not token or any(not 33 <= ord(c) <= 126 for c in token):
            raise _Invalid(must + " (value hidden)")
        return Secret(token)
    if kind in (STR, PATH):
        if not value.strip() or "\x00" in value:
            raise _Invalid(must)
        return os.path.expanduser(value) if kind == PATH else value
    if kind == URL:
        return _parse_url(value, must)
    if kind == ENUM:
        value = value.strip() if text else value
        if value in setting.choices:
            return value
        raise _Invalid(must + _did_you_mean(value, setting.choices))
    if kind == BOOL:
        if isinstance(value, bool):
            return value
        if text and isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise _Invalid(must + (" (or 1/0, yes/no, on/off)" if text else f" (got {_type_name(value)})"))
    if kind in (INT, FLOAT):
        number = _parse_number(kind, value, text=text, must=must)
        if (setting.minimum is not None and number < setting.minimum) or (
            setting.maximum is not None and number > setting.maximum
        ):
            raise _Invalid(must)
        return number
    if kind == LIST:
        return _parse_list(setting, value, text=text, must=must)
    raise AssertionError(kind)


def _parse_url(value: str, must: str) -> str:
    url = value.strip().rstrip("/")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise _Invalid(must) from None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or any(c.isspace() for c in url)
    ):
        raise _Invalid(must)
    return url


def _parse_number(kind: str, value: Any, *, text: bool, must: str) -> int | float:
    if isinstance(value, bool):
        raise _Invalid(f"{must} (got a boolean)")
    if kind == INT and isinstance(value, int):
        return value
    if kind == FLOAT and isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise _Invalid(must)
        return float(value)
    if text and isinstance(value, str):
        try:
            number = int(value.strip(), 10) if kind == INT else float(value.strip())
        except ValueError:
            raise _Invalid(must) from None
        if isinstance(number, float) and not math.isfinite(number):
            raise _Invalid(must)
        return number
    raise _Invalid(f"{must} (got {_type_name(value)})")


def _parse_list(setting: Setting, value: Any, *, text: bool, must: str) -> list[str]:
    if text and isinstance(value, str):
        raw = value.strip()
        if raw.startswith("["):
            try:
                value = json.loads(raw)
            except ValueError:
                raise _Invalid(f"{must} (comma-separated, or a JSON array of strings)") from None
        else:
            value = [part.strip() for part in raw.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise _Invalid(f"{must} (got {_type_name(value)})")
    refused = dict(setting.refused)
    for element in value:
        if element in refused:
            raise _Invalid(f"{element!r}: {refused[element]}")
        if setting.choices and element not in setting.choices:
            raise _Invalid(f"{element!r} is not allowed{_did_you_mean(element, setting.choices)}; {must}")
    result = list(dict.fromkeys(value))  # duplicates are harmless: keep the first of each
    if len(result) < setting.min_items:
        raise _Invalid(must)
    return result


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


# ---------------------------------------------------------------------------------------------------------
# Showing values and suggesting names
# ---------------------------------------------------------------------------------------------------------

_MAX_SHOWN: Final = 120


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


def _show_toml(value: Any, *, secret: bool = False) -> str:
    """A TOML value as TOML would spell it (clipped, one line)."""
    if secret:
        return '"***"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    try:
        return _clip(json.dumps(value, ensure_ascii=False, default=str))
    except ValueError:
        return _clip(repr(value))


def _show_text(value: Any, *, secret: bool = False) -> str:
    """A value from the environment or ``-s``: as typed, unless it has characters a terminal would eat."""
    if secret:
        return "***"
    if isinstance(value, Secret):
        return str(value)
    if not isinstance(value, str):
        return _show_toml(value)
    return _clip(value if value.isprintable() else json.dumps(value))


def _closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate *word* most likely meant: same letters in another case, else the closest spelling."""
    by_lower: dict[str, str] = {}
    for candidate in candidates:
        by_lower.setdefault(candidate.lower(), candidate)
    if word.lower() in by_lower:
        return by_lower[word.lower()]
    matches = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[matches[0]] if matches else None


def _did_you_mean(word: str, candidates: Iterable[str]) -> str:
    match = _closest(word, candidates)
    return f" (did you mean {match}?)" if match and match != word else ""


def _suggest_key(dotted: str) -> str:
    """Did-you-mean for a TOML key: by its full name, else by its last part in any section."""
    match = _closest(dotted, BY_KEY)
    if match is None:
        leaves = {s.key.partition(".")[2]: s.key for s in SCHEMA}
        leaf = _closest(dotted.rpartition(".")[2], leaves)
        match = leaves[leaf] if leaf else None
    return f" (did you mean {match}?)" if match else ""


# ---------------------------------------------------------------------------------------------------------
# The layers
# ---------------------------------------------------------------------------------------------------------


def load_config(
    environ: Mapping[str, str] = os.environ, project_dir: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """Return every hfscraper setting (and the ``[scrapy]`` pass-through) as Scrapy setting names to values.

    Reads the packaged defaults, then the project's ``settings.toml`` (or ``$HFSCRAPER_SETTINGS``), then the
    environment. *project_dir* is where ``settings.toml`` is looked for; by default the folder of the closest
    ``scrapy.cfg``, else the working directory. Raises ConfigError on the first bad value.

    The token is not resolved here: ``HFSCRAPER_HUB_TOKEN`` holds only ``hub.token`` from a file (as a
    Secret); ``resolve_token(settings)`` applies ``HF_TOKEN`` and the token file at run time.
    """
    values: dict[str, Any] = {s.name: copy.deepcopy(s.default) for s in SCHEMA}
    _apply_toml(values, _packaged_defaults_text(), "hfscraper/defaults.toml (packaged)")
    override = _override_file(environ, project_dir)
    if override is not None:
        _apply_toml(values, _read_file(override), _display_path(override))
    _apply_environ(values, environ)
    return values


def _packaged_defaults_text() -> str:
    try:
        return resources.files("hfscraper").joinpath("defaults.toml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        # A packaging bug (package-data lost from an egg or wheel): say so instead of running on guesses.
        raise ConfigError("hfscraper/defaults.toml (packaged)", f"cannot be read ({exc})") from None


def _override_file(environ: Mapping[str, str], project_dir: str | os.PathLike[str] | None) -> Path | None:
    named = environ.get(SETTINGS_FILE_ENV, "")
    if named.strip():
        path = Path(named).expanduser()
        if not path.is_file():
            problem = "is not a file" if path.exists() else "no such file"
            raise ConfigError(f"environment {SETTINGS_FILE_ENV}={_show_text(named)}", problem)
        return path
    if project_dir is None:
        cfg = closest_scrapy_cfg()
        project_dir = Path(cfg).parent if cfg else Path.cwd()
    path = Path(project_dir) / ROOT_FILE_NAME
    return path if path.is_file() else None


def _read_file(path: Path) -> str:
    where = _display_path(path)
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(where, "is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(where, f"cannot be read ({exc.strerror or exc})") from None


def _display_path(path: Path) -> str:
    """The path relative to the working directory when it lies under it (``settings.toml``), else absolute."""
    absolute = Path(os.path.abspath(path))
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def _apply_toml(values: dict[str, Any], text: str, where: str) -> None:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(where, f"not valid TOML: {exc}") from None
    for section, table in data.items():
        if section == SCRAPY_TABLE:
            if not isinstance(table, dict):
                raise ConfigError(f"{where}: {section}", f"must be a table ([{section}])")
            for name, value in table.items():
                _check_scrapy_passthrough(name, value, where)
                values[name] = value
            continue
        if section not in SECTIONS:
            if isinstance(table, dict):
                problem = "unknown section" + _did_you_mean(section, (*SECTIONS, SCRAPY_TABLE))
                raise ConfigError(f"{where}: [{section}]", problem)
            raise ConfigError(f"{where}: {section}", "unknown key" + _suggest_key(section))
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: {section}", f"must be a table ([{section}])")
        for leaf, value in table.items():
            key = f"{section}.{leaf}"
            setting = BY_KEY.get(key)
            if setting is None:
                raise ConfigError(f"{where}: {key}", "unknown key" + _suggest_key(key))
            try:
                values[setting.name] = _coerce(setting, value, text=False)
            except _Invalid as exc:
                shown = _show_toml(value, secret=setting.secret)
                raise ConfigError(f"{where}: {key} = {shown}", str(exc)) from None


def _check_scrapy_passthrough(name: str, value: Any, where: str) -> None:
    """A ``[scrapy]`` entry must name one of Scrapy's settings and have the type of its default."""
    key = f"{SCRAPY_TABLE}.{name}"
    if name in BY_NAME:
        raise ConfigError(f"{where}: {key}", f"an hfscraper setting: set {BY_NAME[name].key} instead")
    names = [n for n in dir(default_settings) if n.isupper()]
    if name not in names:
        raise ConfigError(f"{where}: {key}", "not a Scrapy setting" + _did_you_mean(name, names))
    default = getattr(default_settings, name)
    if default is None:
        return
    if isinstance(default, bool):
        ok, want = isinstance(value, bool), "true or false"
    elif isinstance(default, (int, float)):
        ok, want = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
        if type(default) is int and default in (0, 1) and isinstance(value, bool):
            ok = True  # a flag spelt as an int, e.g. TELNETCONSOLE_ENABLED = 1
    elif isinstance(default, str):
        ok, want = isinstance(value, str), "a string"
    elif isinstance(default, dict):
        ok, want = isinstance(value, dict), "a table"
    elif isinstance(default, (list, tuple)):
        ok, want = isinstance(value, list), "an array"
    else:
        return
    if not ok:
        raise ConfigError(
            f"{where}: {key} = {_show_toml(value)}",
            f"must be {want}, like Scrapy's default {_show_toml(default)}",
        )


def _apply_environ(values: dict[str, Any], environ: Mapping[str, str]) -> None:
    for var in sorted(environ):
        if var.startswith(PREFIX) and var not in NON_SETTING_ENV and var not in BY_ENV:
            problem = "unknown setting" + _did_you_mean(var, (*BY_ENV, *NON_SETTING_ENV))
            raise ConfigError(f"environment {var}", problem)
    if TOKEN.name in environ:
        raise ConfigError(
            f"environment {TOKEN.name}=***",
            "not read: give the token as HF_TOKEN, the huggingface token file, or hub.token in settings.toml",
        )
    for setting in SCHEMA:
        for var in setting.env_names:  # aliases first, so the HFSCRAPER_ name wins
            if var not in environ:
                continue
            raw = environ[var]
            try:
                values[setting.name] = _coerce(setting, raw, text=True)
            except _Invalid as exc:
                alias = f" ({setting.key})" if var != setting.env_name else ""
                raise ConfigError(f"environment {var}={_show_text(raw)}{alias}", str(exc)) from None


# ---------------------------------------------------------------------------------------------------------
# Scrapy settings after -s
# ---------------------------------------------------------------------------------------------------------

_PRIORITY_NAMES: Final = {number: name for name, number in SETTINGS_PRIORITIES.items()}


def _scrapy_origin(name: str, priority: int | None, shown: str) -> str:
    """``-s NAME=VALUE`` for a command-line value, else the setting with the priority it was set at."""
    if priority == SETTINGS_PRIORITIES["cmdline"]:
        return f"-s {name}={shown}"
    at = f" ({_PRIORITY_NAMES.get(priority, priority)} priority)" if priority is not None else ""
    return f"setting {name}={shown}{at}"


def validate_scrapy_settings(settings: BaseSettings | MutableMapping[str, Any]) -> None:
    """Check every ``HFSCRAPER_*`` (and ``DELTAFETCH_*``) setting in *settings*, and normalise it in place.

    Values given with ``-s`` arrive as strings; they are parsed with the schema (``"50"`` becomes 50,
    ``"a,b"`` a list) and set back at the priority they came with. Unknown names get a did-you-mean.
    Call it once ``-s`` is applied (a command's ``process_options``); raises ConfigError.
    """
    for name in sorted(settings):
        if not name.startswith((PREFIX, *FOREIGN_PREFIXES)):
            continue
        value = settings[name]
        priority = settings.getpriority(name) if isinstance(settings, BaseSettings) else None
        from_cmdline = priority == SETTINGS_PRIORITIES["cmdline"]
        setting = BY_NAME.get(name)
        if setting is None:
            problem = "unknown setting" + _did_you_mean(name, BY_NAME)
            raise ConfigError(_scrapy_origin(name, priority, _show_text(value)), problem)
        if value is None and setting.default is None:
            continue  # an optional setting left unset (its packaged default is "none")
        if setting.secret:
            if value is None or isinstance(value, Secret):
                continue
            if from_cmdline:
                raise ConfigError(
                    _scrapy_origin(name, priority, "***"),
                    "a token is never given with -s (the process list and shell history would show it); "
                    "set HF_TOKEN or use the huggingface token file",
                )
        try:
            normalised = _coerce(setting, value, text=isinstance(value, str))
        except _Invalid as exc:
            shown = _show_text(value, secret=setting.secret)
            raise ConfigError(_scrapy_origin(name, priority, shown), str(exc)) from None
        if normalised != value or type(normalised) is not type(value):
            if isinstance(settings, BaseSettings):
                if not settings.frozen:
                    settings.set(name, normalised, priority=priority if priority is not None else "project")
            else:
                settings[name] = normalised


# ---------------------------------------------------------------------------------------------------------
# The token
# ---------------------------------------------------------------------------------------------------------


def token_file_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where huggingface_hub keeps the token: ``$HF_TOKEN_PATH``, else ``$HF_HOME/token``, else
    ``$XDG_CACHE_HOME/huggingface/token`` (``~/.cache/huggingface/token``)."""
    env = os.environ if environ is None else environ
    if env.get("HF_TOKEN_PATH"):
        return Path(env["HF_TOKEN_PATH"]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "token"
    cache = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else Path("~/.cache").expanduser()
    return cache / "huggingface" / "token"


def resolve_token(
    settings: BaseSettings | Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Secret | None:
    """The Hub token to send, as a Secret, or None for anonymous access.

    Looks, in order, at ``HF_TOKEN`` (empty means unset, as in huggingface_hub), the huggingface token file
    (see ``token_file_path``), then ``HFSCRAPER_HUB_TOKEN`` in *settings* (``hub.token`` of a settings file).
    Raises ConfigError (with the value hidden) for a token with spaces or control characters, or a token
    file that exists but cannot be read.
    """
    env = os.environ if environ is None else environ
    if env.get("HF_TOKEN", "").strip():
        return _checked_token("environment HF_TOKEN=***", env["HF_TOKEN"])
    path = token_file_path(env)
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        text = ""
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise ConfigError(f"token file {path}", f"cannot be read ({reason})") from None
    if text.strip():
        return _checked_token(f"token file {path}", text)
    value = settings.get(TOKEN.name) if settings is not None else None
    if isinstance(value, Secret):
        return value if value else None
    if isinstance(value, str) and value.strip():
        return _checked_token(f"setting {TOKEN.name}=***", value)
    return None


def _checked_token(where: str, raw: str) -> Secret:
    try:
        return _coerce(TOKEN, raw, text=True)
    except _Invalid as exc:
        raise ConfigError(where, str(exc)) from None


# ---------------------------------------------------------------------------------------------------------
# Generated files: docs/SETTINGS.md and hfscraper/defaults.toml
# ---------------------------------------------------------------------------------------------------------

_GENERATED_BY: Final = "python -m hfscraper.config --write"


def _toml_value(value: Any, indent: str = "") -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON string escapes are valid TOML basic strings
    if isinstance(value, list):
        if len(value) <= 3:
            return "[" + ", ".join(_toml_value(v) for v in value) + "]"
        lines = [f"{indent}    {_toml_value(v)}," for v in value]
        return "[\n" + "\n".join(lines) + f"\n{indent}]"
    raise TypeError(f"no TOML spelling for {value!r}")


def _wrap(text: str, prefix: str, width: int = 100) -> list[str]:
    lines: list[str] = []
    line = prefix
    for word in text.split():
        if len(line) + len(word) + 1 > width and line.strip() != prefix.strip():
            lines.append(line.rstrip())
            line = prefix
        line += word + " "
    lines.append(line.rstrip())
    return lines


def render_defaults_toml() -> str:
    """The text of ``hfscraper/defaults.toml``, generated from SCHEMA."""
    out = [
        "# hfscraper's packaged defaults: the lowest configuration layer, shipped inside the package so that a",
        "# scrapyd egg carries them. Override any key in settings.toml, $HFSCRAPER_SETTINGS, the environment",
        "# or with -s; docs/SETTINGS.md describes each one.",
        f"# Generated from the schema in hfscraper/config.py by `{_GENERATED_BY}`: do not edit by hand.",
    ]
    for section in SECTIONS:
        out += ["", f"[{section}]"]
        for setting in (s for s in SCHEMA if s.section == section):
            leaf = setting.key.partition(".")[2]
            out += _wrap(setting.doc, "# ")
            if setting.default is None:
                out.append(f"# {leaf} = (no default)")
            else:
                out.append(f"{leaf} = {_toml_value(setting.default)}")
    return "\n".join(out) + "\n"


def _md_default(setting: Setting) -> str:
    if setting.default is None:
        return "(none)"
    if setting.type == LIST:
        return ", ".join(f"`{v}`" for v in setting.default)
    return f"`{_toml_value(setting.default)}`"


def _md_env(setting: Setting) -> str:
    if setting.secret:
        return "`HF_TOKEN` (then the token file)"
    names = [f"`{n}`" for n in setting.env_names]
    return names[0] if len(names) == 1 else ", ".join(names) + " (the last wins)"


def _md_allowed(setting: Setting) -> str:
    text = setting.allowed()
    if setting.type == LIST and setting.choices:
        text = "a list of " + ("at least one" if setting.min_items else "any") + " of: "
        text += ", ".join(f"`{c}`" for c in setting.choices)
        if setting.refused:
            text += "; refused by the listing: " + ", ".join(f"`{v}`" for v, _ in setting.refused)
    elif setting.type == ENUM:
        text = "one of " + ", ".join(f"`{c}`" for c in setting.choices)
    return text


def render_settings_doc() -> str:
    """The text of ``docs/SETTINGS.md``, generated from SCHEMA."""
    out = [
        "# Settings",
        "",
        f"<!-- Generated from the schema in hfscraper/config.py by `{_GENERATED_BY}`; edit the schema, not",
        "this file. tests/test_config.py fails when the two differ. -->",
        "",
        "hfscraper reads its settings in layers; each overrides the one before it:",
        "",
        "1. **Packaged defaults**: `hfscraper/defaults.toml`, inside the package, so a scrapyd egg carries them.",
        "2. **Override file**: `settings.toml` in the project directory (the folder of `scrapy.cfg`, else the",
        "   working directory); or, when `HFSCRAPER_SETTINGS` is set, the file it names instead (a missing file",
        "   is an error). The repository's `settings.toml` is a commented example that changes nothing.",
        "3. **Environment**: `HFSCRAPER_<NAME>` for every setting below, plus `HF_ENDPOINT` and `HF_TOKEN` as",
        "   huggingface_hub reads them. Any other `HFSCRAPER_*` variable is an error (except",
        "   `HFSCRAPER_SETTINGS`, `HFSCRAPER_IN_NETNS`, which scripts/hermetic.sh sets, and",
        "   `HFSCRAPER_TEST_KUBO`, which runs the IPFS tests against a kubo binary).",
        "4. **Command line**: `scrapy crawl SPIDER -s HFSCRAPER_<NAME>=VALUE` (`scrapy crawl` and",
        "   `scrapy crawlall` check these values with the same rules before anything starts).",
        "",
        'In a file, values have their TOML types (`page_size = 50`, not `"50"`). In the environment and with',
        "`-s`, values are text: integers in decimal, booleans as `true`/`false` (or `1`/`0`, `yes`/`no`,",
        "`on`/`off`), lists comma-separated (`author,sha,tags`) or as a JSON array. Paths may start with `~`;",
        "relative paths are relative to the working directory of the crawl (under scrapyd that is scrapyd's",
        "own, so give absolute paths there).",
        "",
        "Every value is checked before anything runs. An unknown key, a wrong type or an impossible value",
        "stops the run (exit code 2) with one line naming where it came from, the key, the value and what is",
        "allowed, with a did-you-mean for typos:",
        "",
        "```",
        "hfscraper: settings.toml: crawl.page_sise: unknown key (did you mean crawl.page_size?)",
        "hfscraper: -s HFSCRAPER_CRAWL_PAGE_SIZE=5000: must be an integer from 1 to 1000",
        "```",
        "",
        "## All keys",
        "",
        "| TOML key | Scrapy setting | Type | Default |",
        "| --- | --- | --- | --- |",
    ]
    for s in SCHEMA:
        default = "(none)" if s.default is None else ("see below" if s.type == LIST else _md_default(s))
        out.append(f"| [`{s.key}`](#{s.key.replace('.', '')}) | `{s.name}` | {s.type} | {default} |")
    for section in SECTIONS:
        out += ["", f"## `[{section}]`"]
        for s in (s for s in SCHEMA if s.section == section):
            out += [
                "",
                f"### `{s.key}`",
                "",
                s.doc,
                "",
                "| | |",
                "| --- | --- |",
                f"| Scrapy setting | `{s.name}` |",
                f"| Environment | {_md_env(s)} |",
                f"| Type | {s.type}{' (shown as `***`)' if s.secret else ''} |",
                f"| Default | {_md_default(s)} |",
                f"| Allowed | {_md_allowed(s)} |",
            ]
    out += [
        "",
        "## The token",
        "",
        "The Hub token is looked up when a crawl starts (`hfscraper.config.resolve_token`), in this order:",
        "`HF_TOKEN` (an empty value counts as unset), the huggingface token file (`$HF_TOKEN_PATH`, else",
        "`$HF_HOME/token`, else `~/.cache/huggingface/token`, where `huggingface-cli login` writes it), then",
        "`hub.token` from the override file. It is held as a `Secret` whose text is `***`, so it never",
        "appears in logs, stats, `scrapy settings` output or error messages; it cannot be given with `-s`",
        "(the process list and shell history would show it).",
        "",
        f"## Plain Scrapy settings: `[{SCRAPY_TABLE}]`",
        "",
        f"The `[{SCRAPY_TABLE}]` table of a settings file passes Scrapy's own settings through, above the ones",
        "`hfscraper/settings.py` sets:",
        "",
        "```toml",
        f"[{SCRAPY_TABLE}]",
        "CONCURRENT_REQUESTS = 16",
        'LOG_LEVEL = "WARNING"',
        "```",
        "",
        "Each name must be one of Scrapy's settings (`scrapy.settings.default_settings`, with a did-you-mean),",
        "and its value must have the type of Scrapy's default (a number, a string, true/false, an array or a",
        "table). hfscraper's own settings go in their sections, not here.",
    ]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m hfscraper.config --write``: regenerate docs/SETTINGS.md and hfscraper/defaults.toml."""
    parser = argparse.ArgumentParser(prog="python -m hfscraper.config", description=main.__doc__)
    parser.add_argument("--write", action="store_true", help="write the generated files (else: check them)")
    args = parser.parse_args(argv)
    package = Path(__file__).resolve().parent
    targets = {
        package / "defaults.toml": render_defaults_toml(),
        package.parent / "docs" / "SETTINGS.md": render_settings_doc(),
    }
    stale = 0
    for path, text in targets.items():
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        if args.write:
            path.write_text(text, encoding="utf-8")
            sys.stderr.write(f"wrote {path}\n")
        else:
            stale += 1
            sys.stderr.write(f"{path} differs from the schema; run {_GENERATED_BY}\n")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
