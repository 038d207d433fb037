"""`scrapy crawl datasets`: every dataset of the Hub's `/api/datasets` listing."""

from hfscraper.constants import REPO_TYPE_DATASET
from hfscraper.items import DatasetItem
from hfscraper.spiders.base import HubListingSpider


class DatasetsSpider(HubListingSpider):
    name = "datasets"
    repo_type = REPO_TYPE_DATASET
    item_class = DatasetItem
    expand_setting = "HFSCRAPER_CRAWL_EXPAND_DATASETS"
