"""`scrapy crawl models`: every model of the Hub's `/api/models` listing."""

from hfscraper.constants import REPO_TYPE_MODEL
from hfscraper.items import ModelItem
from hfscraper.spiders.base import HubListingSpider


class ModelsSpider(HubListingSpider):
    name = "models"
    repo_type = REPO_TYPE_MODEL
    item_class = ModelItem
    expand_setting = "HFSCRAPER_CRAWL_EXPAND_MODELS"
