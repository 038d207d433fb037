"""The README and the commands cannot drift apart: every command is documented, every documented
make target exists, and the README keeps the two commands a fresh machine needs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from scrapy.commands import ScrapyCommand
from scrapy.utils.misc import walk_modules_iter

REPO_ROOT = Path(__file__).resolve().parent.parent
README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
MAKEFILE = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")


def project_commands() -> dict[str, type[ScrapyCommand]]:
    found = {}
    for module in walk_modules_iter("hfscraper.commands"):
        command = getattr(module, "Command", None)
        if isinstance(command, type) and issubclass(command, ScrapyCommand):
            found[module.__name__.rsplit(".", 1)[-1]] = command
    return found


def test_there_are_project_commands() -> None:
    assert {"crawl", "crawlall"} <= set(project_commands())


@pytest.mark.parametrize("name", sorted(project_commands()))
def test_every_command_has_a_description_and_is_in_the_readme(name: str) -> None:
    command = project_commands()[name]
    assert command.short_desc(command.__new__(command)).strip()
    assert f"scrapy {name}" in README, f"`scrapy {name}` is not documented in README.md"


def test_every_make_target_in_the_readme_exists() -> None:
    documented = set(re.findall(r"\bmake ([a-z][a-z-]*)", README))
    defined = set(re.findall(r"^([a-z][a-z-]*):", MAKEFILE, flags=re.MULTILINE))
    assert {"demo", "test"} <= documented
    assert documented <= defined, f"README names make targets the Makefile lacks: {documented - defined}"


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
