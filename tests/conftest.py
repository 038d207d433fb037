"""Shared fixtures: the Hub replica (a real HTTP server on loopback) and the live-test opt-in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES_DIR = REPO_ROOT / "tests" / "data" / "hub_fixtures"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--live",
        action="store_true",
        default=False,
        help="also run tests marked 'live' that talk to the real huggingface.co (never in CI)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--live"):
        return
    skip_live = pytest.mark.skip(reason="talks to the real Hub; opt in with --live")
    for item in items:
        if "live" in item.keywords:
            item.add_marker(skip_live)


def pytest_sessionfinish(session: pytest.Session) -> None:
    # Under pytest-xdist (`make test` runs 4 workers) each worker hands its summary lines to the controller.
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        from tests.support import report

        workeroutput["hfscraper_lines"] = list(report.LINES)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    from tests.support import report

    report.LINES.extend(getattr(node, "workeroutput", {}).get("hfscraper_lines", []))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.support import report

    if report.LINES:
        terminalreporter.section("hfscraper")
        for line in report.LINES:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def hub_fixtures() -> Path:
    """The real recorded Hub responses (never copied into this repo)."""
    if not FIXTURES_DIR.is_dir():
        pytest.skip(f"recorded Hub responses not found at {FIXTURES_DIR}")
    return FIXTURES_DIR
