"""The item pipelines: one stage of an entity's processing each (their order and priorities: docs/CONTRACTS.md)."""

from __future__ import annotations

from scrapy.exceptions import DropItem


class StageFailed(DropItem):
    """Raised by a stage's pipeline when the entity could not be completed and must be tried again.

    The item is dropped (no later pipeline, no feed row, not recorded in the state), and its listing page
    counts as failed: the checkpoint stops before it, the crawl cannot complete, and the next run reads that
    page again. Logged by Scrapy at DEBUG only: the pipeline logs its own one-line reason.
    """

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message, log_level="DEBUG")
        self.stage = stage
