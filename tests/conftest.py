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


#: Test modules that compare the replica or the crawler with the recorded Hub responses (besides every test that
#: takes the `hub_fixtures` fixture).
RECORDED_MODULES = frozenset({"test_replica_fidelity_shapes.py", "test_replica_headers.py", "test_replica_viewer.py"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in RECORDED_MODULES or "hub_fixtures" in getattr(item, "fixturenames", ()):
            item.add_marker("recorded")  # counted in the summary: none may be skipped
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

    outcomes = {
        outcome: sum(1 for r in terminalreporter.stats.get(outcome, []) if "recorded" in getattr(r, "keywords", {}))
        for outcome in ("passed", "failed", "skipped")
    }
    lines = list(report.LINES)
    if any(outcomes.values()):
        lines.append(
            f"recorded Hub responses: {outcomes['passed']} tests passed over them, {outcomes['failed']} failed, "
            f"{outcomes['skipped']} skipped"
        )
    if lines:
        terminalreporter.section("hfscraper")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture
def isolated_hf_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's own token, cache and telemetry out of tests that drive huggingface_hub against the
    replica (`pytestmark = pytest.mark.usefixtures("isolated_hf_client")`)."""
    import huggingface_hub

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_TELEMETRY", True, raising=False)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def hub_fixtures() -> Path:
    """The real recorded Hub responses, part of this repository (tests/data/hub_fixtures/README.md)."""
    if not FIXTURES_DIR.is_dir():
        pytest.fail(f"recorded Hub responses missing at {FIXTURES_DIR}: they belong to the repository")
    return FIXTURES_DIR
