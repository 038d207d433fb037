"""Hub constants: endpoint, repository types, API paths and the listing `expand` vocabulary.

Values come from huggingface_hub hf_api.py (sort keys, ``Expand*Property_T``) and the Hub's page size limit of 1,000
(HF staff, huggingface/deep-rl-class PR #533). The endpoint is read from the
environment once, the way huggingface_hub reads it; the Scrapy setting `HFSCRAPER_HUB_ENDPOINT` (which the
config layer fills from `HF_ENDPOINT`) takes precedence inside a crawl.
"""

from __future__ import annotations

import os
from typing import Final, Literal

#: The public Hub.
HF_DEFAULT_ENDPOINT: Final = "https://huggingface.co"
#: The Hub this process talks to when no setting says otherwise (`HF_ENDPOINT`, no trailing slash).
HF_ENDPOINT: Final = (os.getenv("HF_ENDPOINT") or HF_DEFAULT_ENDPOINT).rstrip("/")

RepoType = Literal["model", "dataset", "space"]

REPO_TYPE_MODEL: Final = "model"
REPO_TYPE_DATASET: Final = "dataset"
REPO_TYPE_SPACE: Final = "space"
REPO_TYPES: Final[tuple[RepoType, ...]] = (REPO_TYPE_MODEL, REPO_TYPE_DATASET, REPO_TYPE_SPACE)

#: Listing / repo-info path per repository type (append `/{id}` for one entity).
API_PATHS: Final[dict[str, str]] = {
    REPO_TYPE_MODEL: "/api/models",
    REPO_TYPE_DATASET: "/api/datasets",
    REPO_TYPE_SPACE: "/api/spaces",
}

#: Folder under the output directory per repository type.
OUTPUT_FOLDERS: Final[dict[str, str]] = {
    REPO_TYPE_MODEL: "models",
    REPO_TYPE_DATASET: "datasets",
    REPO_TYPE_SPACE: "spaces",
}

#: The largest page the Hub serves (`limit`).
MAX_PAGE_SIZE: Final = 1000

#: `sort` values the listings accept (sorting is always descending). Spaces have no downloads.
SORT_VALUES: Final[dict[str, frozenset[str]]] = {
    REPO_TYPE_MODEL: frozenset({"createdAt", "downloads", "lastModified", "likes", "likes30d", "trendingScore"}),
    REPO_TYPE_DATASET: frozenset({"createdAt", "downloads", "lastModified", "likes", "likes30d", "trendingScore"}),
    REPO_TYPE_SPACE: frozenset({"createdAt", "lastModified", "likes", "likes30d", "trendingScore"}),
}
DEFAULT_SORT: Final = "createdAt"

#: Every `expand` value per type (huggingface_hub's ExpandModelProperty_T and friends).
EXPAND_PROPERTIES: Final[dict[str, frozenset[str]]] = {
    REPO_TYPE_MODEL: frozenset(
        {
            "author", "baseModels", "cardData", "childrenModelCount", "config", "createdAt", "disabled",
            "downloads", "downloadsAllTime", "evalResults", "gated", "gguf", "inference",
            "inferenceProviderMapping", "lastModified", "library_name", "likes", "mask_token", "model-index",
            "pipeline_tag", "private", "resourceGroup", "safetensors", "sha", "siblings", "spaces", "tags",
            "transformersInfo", "trendingScore", "usedStorage", "widgetData",
        }
    ),
    REPO_TYPE_DATASET: frozenset(
        {
            "author", "cardData", "citation", "createdAt", "description", "disabled", "downloads",
            "downloadsAllTime", "gated", "lastModified", "likes", "mainSize", "paperswithcode_id", "private",
            "resourceGroup", "sha", "siblings", "tags", "trendingScore", "usedStorage",
        }
    ),
    REPO_TYPE_SPACE: frozenset(
        {
            "author", "cardData", "createdAt", "datasets", "disabled", "lastModified", "likes", "models",
            "private", "region", "resourceGroup", "runtime", "sdk", "sha", "siblings", "subdomain", "tags",
            "trendingScore", "usedStorage",
        }
    ),
}  # fmt: skip

#: Valid on `/api/<type>s/{id}` only: the listings answer 400 to these (hf_hub PR #3182).
LISTING_REJECTED_EXPAND: Final = frozenset({"baseModels", "childrenModelCount", "usedStorage"})

#: What a listing may be asked to expand, per type.
LISTING_EXPAND_PROPERTIES: Final[dict[str, frozenset[str]]] = {
    repo_type: values - LISTING_REJECTED_EXPAND for repo_type, values in EXPAND_PROPERTIES.items()
}

# Default listing expansions: every field the archive (metadata.json, the Parquet export) and the provenance
# graph read. Left out on purpose: trendingScore, inference and inferenceProviderMapping (they move on every
# crawl without describing the repository, so every metadata.json would be rewritten each run),
# widgetData/transformersInfo/mask_token (UI helpers), model-index/evalResults (large; the card carries
# them), resourceGroup/region (organisation internals). Spaces keep `runtime` (hardware and stage, asked for
# by the archive) although its stage moves. Spaces have no `gated` property (huggingface_hub hf_api.py
# ``ExpandSpaceProperty_T``).
DEFAULT_EXPAND_MODELS: Final[tuple[str, ...]] = (
    "author", "sha", "lastModified", "createdAt", "private", "gated", "disabled", "downloads",
    "downloadsAllTime", "likes", "tags", "pipeline_tag", "library_name", "cardData", "siblings", "spaces",
    "safetensors", "config", "gguf",
)  # fmt: skip
DEFAULT_EXPAND_DATASETS: Final[tuple[str, ...]] = (
    "author", "sha", "lastModified", "createdAt", "private", "gated", "disabled", "downloads",
    "downloadsAllTime", "likes", "tags", "cardData", "siblings", "description", "citation",
    "paperswithcode_id",
)  # fmt: skip
DEFAULT_EXPAND_SPACES: Final[tuple[str, ...]] = (
    "author", "sha", "lastModified", "createdAt", "private", "disabled", "likes", "tags", "cardData",
    "siblings", "sdk", "runtime", "subdomain", "models", "datasets",
)  # fmt: skip

DEFAULT_EXPAND: Final[dict[str, tuple[str, ...]]] = {
    REPO_TYPE_MODEL: DEFAULT_EXPAND_MODELS,
    REPO_TYPE_DATASET: DEFAULT_EXPAND_DATASETS,
    REPO_TYPE_SPACE: DEFAULT_EXPAND_SPACES,
}

#: Tag prefix the Hub puts on a model for each of its base models (https://huggingface.co/docs/hub/model-cards;
#: recorded in tests/data/hub_fixtures).
BASE_MODEL_TAG_PREFIX: Final = "base_model:"
