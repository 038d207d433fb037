"""The README and the commands cannot drift apart: every command is documented, every documented
make target exists, and the README keeps the two commands a fresh machine needs."""

from __future__ import annotations

import ast
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


# -- docs/: internal links, nothing outside the repository, every stat documented -------------------------------

DOCS = sorted((REPO_ROOT / "docs").glob("*.md"))
PAGES = [REPO_ROOT / "README.md", *DOCS]
#: Files outside this repository that comments used to cite instead of the facts (and any `../` path that leaves it).
OUTSIDE = re.compile(
    r"\.\./shared|hub-api\.md|scrapy-stack\.md|(?<![A-Za-z/])ipfs\.md|prior-art\.md|style\.md|design\.md"
)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def links(text: str) -> list[str]:
    """Markdown link targets outside code blocks and code spans."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    return LINK.findall(re.sub(r"`[^`\n]*`", "", text))


def anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", text, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_the_readme_is_short() -> None:
    assert len(README.splitlines()) <= 250


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_internal_links_resolve(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    broken = []
    for target in links(text):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        missing = not file.is_relative_to(REPO_ROOT) or not file.exists()
        if missing or (anchor and file.suffix == ".md" and anchor not in anchors(file.read_text(encoding="utf-8"))):
            broken.append(target)
    assert not broken, f"{page.name}: broken links {broken}"


def test_every_make_target_in_docs_exists() -> None:
    defined = set(re.findall(r"^([a-z][a-z-]*):", MAKEFILE, flags=re.MULTILINE))
    for page in DOCS:
        documented = set(re.findall(r"\bmake ([a-z][a-z-]*)", page.read_text(encoding="utf-8")))
        assert documented <= defined, f"{page.name} names make targets the Makefile lacks: {documented - defined}"


def repository_text_files() -> list[Path]:
    files = [REPO_ROOT / "README.md", REPO_ROOT / "Makefile", *DOCS]
    for folder in ("hfscraper", "tests", "bench", "scripts"):
        for path in (REPO_ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".md", ".sh", ".mjs", ".toml", ".cfg", ".txt", ""):
                parts = path.relative_to(REPO_ROOT).parts
                if "node_modules" not in parts and "__pycache__" not in parts and parts[:2] != ("tests", "data"):
                    files.append(path)
    return files


def test_nothing_points_outside_the_repository() -> None:
    found = []
    for path in repository_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line) and path != Path(__file__):
                found.append(f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()[:100]}")
    for page in PAGES:  # a relative link or path that leaves the repository
        for target in links(page.read_text(encoding="utf-8")):
            inside = (page.parent / target.partition("#")[0]).resolve().is_relative_to(REPO_ROOT)
            if not re.match(r"[a-z]+:", target) and not inside:
                found.append(f"{page.name}: {target}")
    assert not found, "references outside the repository:\n" + "\n".join(found)


# Stat keys: what the package passes to the stats collector, resolved through module constants (`STATS`,
# `STATS_PREFIX`), with every other f-string field written `{}`, and both sides of an `x if c else y`.
STAT_WRITERS = {"inc_value", "set_value", "max_value", "min_value"}
STAT_KEY = re.compile(r"^(hfscraper|deltafetch)/[a-z0-9_]+(/[a-z0-9_{}]+)*$")
#: What Scrapy's `get_retry_request(..., stats_base_key=BASE)` writes under BASE.
RETRY_SUFFIXES = ("/count", "/max_reached", "/reason_count/{}")


def _string_constants(tree: ast.AST) -> dict[str, str]:
    found = {}
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Assign, ast.AnnAssign)) or not isinstance(node.value, ast.Constant):
            continue
        for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
            if isinstance(target, ast.Name) and target.id.isupper() and isinstance(node.value.value, str):
                found[target.id] = node.value.value
    return found


def _render(node: ast.AST, consts: dict[str, str]) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Name) and node.id in consts:
        return [consts[node.id]]
    if isinstance(node, ast.Attribute) and node.attr in consts:
        return [consts[node.attr]]
    if isinstance(node, ast.IfExp):
        return _render(node.body, consts) + _render(node.orelse, consts)
    if isinstance(node, ast.JoinedStr):
        out = [""]
        for part in node.values:
            if isinstance(part, ast.Constant):
                alternatives = [str(part.value)]
            else:
                value = part.value  # type: ignore[attr-defined]
                alternatives = _render(value, consts) or ["{}"]
                if isinstance(value, ast.IfExp) and not all(
                    isinstance(side, ast.Constant) for side in (value.body, value.orelse)
                ):
                    alternatives = ["{}"]
            out = [a + b for a in out for b in alternatives]
        return out
    return []


def stat_keys_in_code() -> dict[str, str]:
    """Every stat key the package writes or reads, with one place it occurs."""
    keys: dict[str, str] = {}
    for path in sorted((REPO_ROOT / "hfscraper").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        consts = _string_constants(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            candidates = []
            if node.args:
                rendered = _render(node.args[0], consts)
                # The collector's own methods, and any helper given a literal stat path (`_stat`, `inc`, `get`).
                prefixed = [k for k in rendered if k.startswith(("hfscraper/", "deltafetch/"))]
                candidates += rendered if name in STAT_WRITERS else prefixed
            for keyword in node.keywords:
                if keyword.arg == "stats_base_key":
                    bases = _render(keyword.value, consts)
                    candidates += [base + suffix for base in bases for suffix in RETRY_SUFFIXES]
            for key in candidates:
                key = re.sub(r"\{[^}]*\}", "{}", key)
                if STAT_KEY.match(key) and not key.startswith("hfscraper/{}"):
                    keys.setdefault(key, f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    return keys


def stat_keys_in_docs() -> set[str]:
    text = (REPO_ROOT / "docs" / "STATS.md").read_text(encoding="utf-8")
    return {re.sub(r"\{[^}]*\}", "{}", k) for k in re.findall(r"^\| `([^`]+)` \|", text, flags=re.MULTILINE)}


def test_the_stat_collector_finds_keys_of_every_kind() -> None:
    keys = stat_keys_in_code()
    # a literal, a module-constant prefix, an f-string field, both sides of a conditional, a retry base key
    expected = {
        "hfscraper/spider/pages",
        "hfscraper/files/downloaded",
        "hfscraper/spider/bad_page/{}",
        "hfscraper/ipfs/pin/pinned",
        "hfscraper/ipfs/pin/unchanged",
        "hfscraper/ratelimit/max_reached",
    }
    assert expected <= set(keys)


def test_every_stat_key_is_in_docs_stats() -> None:
    missing = {k: where for k, where in stat_keys_in_code().items() if k not in stat_keys_in_docs()}
    listed = "\n".join(f"{key}  ({where})" for key, where in sorted(missing.items()))
    assert not missing, f"stat keys missing from docs/STATS.md:\n{listed}"


def test_every_documented_stat_key_is_written() -> None:
    stale = stat_keys_in_docs() - set(stat_keys_in_code())
    assert not stale, f"docs/STATS.md lists keys nothing writes: {sorted(stale)}"
