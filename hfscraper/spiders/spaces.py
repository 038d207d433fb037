"""`scrapy crawl spaces`: every Space of the Hub's `/api/spaces` listing."""

from hfscraper.constants import REPO_TYPE_SPACE
from hfscraper.items import SpaceItem
from hfscraper.spiders.base import HubListingSpider


class SpacesSpider(HubListingSpider):
    name = "spaces"
    repo_type = REPO_TYPE_SPACE
    item_class = SpaceItem
    expand_setting = "HFSCRAPER_CRAWL_EXPAND_SPACES"
