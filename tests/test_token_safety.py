"""The Hub token, end to end: real `scrapy` subprocesses against the replica with an approved token.

It reaches the Hub on every Hub request and nothing else: not the CDN a `resolve` URL redirects to, not a
request as the scheduler (and JOBDIR) holds it, and no file the crawl writes (output, JOBDIR, state
directory, feed, log, stats dump, stdout, stderr), in any of the spellings a leak could take.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import pickle
import re
import secrets
import string
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from tests.support.crawl import REPO_ROOT, _scrapy_command, crawl, parse_stats, public
from tests.support.replica import ReplicaHandle, run_replica

ALPHABET = string.ascii_letters + string.digits
TOKEN = "hf_" + "".join(secrets.choice(ALPHABET) for _ in range(37))


def spellings(secret: str) -> set[bytes]:
    """Byte strings that would reveal *secret*: raw, URL-encoded, hex, and base64 at each of the three
    alignments it can have inside a longer base64 text (standard and URL-safe alphabets)."""
    raw = secret.encode()
    found = {raw, quote(secret, safe="").encode(), quote_plus(secret).encode(), binascii.hexlify(raw)}
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * shift + raw)
            # only the characters whose 6 bits all come from the secret's bytes
            found.add(text[-(-shift * 8 // 6) : (shift + len(raw)) * 8 // 6])
    assert all(len(s) >= 20 for s in found)
    return found


def files_containing(roots: list[Path], needles: set[bytes]) -> list[str]:
    hits = []
    for root in roots:
        paths = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in paths:
            data = path.read_bytes()
            hits += [f"{path}: {n[:12]!r}..." for n in needles if n in data]
    return hits


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaHandle]:
    with run_replica(
        tmp_dir=tmp_path_factory.mktemp("replica"), models=60, datasets=30, spaces=30, seed=5, approved_tokens=[TOKEN]
    ) as hub:
        yield hub


def probe(replica: ReplicaHandle, workdir: Path, urls: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """`scrapy runspider tests/support/auth_probe.py` with the project's settings (see that file)."""
    command = [*_scrapy_command(), "runspider", str(REPO_ROOT / "tests" / "support" / "auth_probe.py")]
    command += ["-a", f"urls={json.dumps(urls)}", "-a", f"record={workdir / 'probe'}"]
    command += ["-s", f"JOBDIR={workdir / 'jobdir' / 'probe'}", "-s", "LOG_LEVEL=DEBUG"]
    command += ["-s", f"LOG_FILE={workdir / 'probe.log'}", "-s", "RETRY_TIMES=3"]
    command += ["-s", f"HFSCRAPER_STATE_DIR={workdir / 'state'}", "-s", f"HFSCRAPER_OUTPUT_DIR={workdir / 'out'}"]
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def crawl_env(replica: ReplicaHandle, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HFSCRAPER_", "HF_")) or k == "HFSCRAPER_IN_NETNS"}
    env.update({"HF_ENDPOINT": replica.url, "HF_HOME": str(home), "HF_TOKEN": "", **extra})
    return env


def test_token_reaches_the_hub_and_nothing_else(replica: ReplicaHandle, tmp_path: Path) -> None:
    out, jobdir, state = tmp_path / "out", tmp_path / "jobdir", tmp_path / "state"
    log, feed = tmp_path / "crawl.log", tmp_path / "feed-%(name)s.jsonl"
    mark = replica.mark()

    result = crawl(
        replica,
        "",
        out,
        command_name="crawlall",
        page_size=20,
        settings={
            "JOBDIR": str(jobdir),
            "HFSCRAPER_STATE_DIR": str(state),
            "LOG_LEVEL": "DEBUG",
            "LOG_FILE": str(log),
            "STATS_DUMP": "True",
        },
        options=["-o", str(feed)],
        env_overrides={"HF_TOKEN": TOKEN},
    )
    log_text = log.read_text(encoding="utf-8")
    assert result.returncode == 0, result.stderr[-3000:] + log_text[-3000:]
    for repo_type in ("model", "dataset", "space"):
        assert len(result.metadata(repo_type)) == len(public(replica.truth, repo_type))
    dumps = [
        parse_stats(m.group(0) + "\n2000-01-01 ")  # (parse_stats wants the next log line's date after the dump)
        for m in re.finditer(r"Dumping Scrapy stats:\n\{.*?\}", log_text, re.S)
    ]
    assert len(dumps) == 3
    # the approved token sees private repos in the listings (and the spiders leave them out)
    assert sum(d.get("hfscraper/spider/skipped/private", 0) for d in dumps) == sum(
        1 for t in ("models", "datasets", "spaces") for e in replica.truth[t] if e["private"]
    )
    assert sum(d.get("hfscraper/auth/sent", 0) for d in dumps) == len(replica.requests(since=mark, origin="hub"))
    assert "Overridden settings" in log_text and "DEBUG" in log_text  # the log really is at DEBUG

    # A resolve URL of an LFS file (302 to the CDN), of a small file (307 to resolve-cache on the Hub),
    # and a Hub URL that fails once with 503 (retried), through the project's middleware chain.
    model = next(
        e for e in public(replica.truth, "model") if e["gated"] and any(f["lfs"] for f in e["files"])
    )
    lfs = next(f for f in model["files"] if f["lfs"])
    small = next(f for f in model["files"] if not f["lfs"])
    flaky = f"/api/models/{model['id']}"
    replica.set_faults([{"kind": "5xx", "rate": 1.0, "count": 1, "path": "^" + re.escape(flaky) + "$"}])
    cdn_mark = len(replica.requests(origin="cdn"))
    hub_mark = replica.mark()
    try:
        run = probe(
            replica,
            tmp_path,
            [
                f"{replica.url}/{model['id']}/resolve/main/{lfs['path']}",
                f"{replica.url}/{model['id']}/resolve/main/{small['path']}",
                replica.url + flaky,
            ],
            crawl_env(replica, tmp_path / "hf-home", HF_TOKEN=TOKEN),
        )
    finally:
        replica.set_faults([])
    probe_log = (tmp_path / "probe.log").read_text(encoding="utf-8")
    assert run.returncode == 0, run.stderr[-3000:] + probe_log[-3000:]
    responses = [json.loads(line) for line in (tmp_path / "probe" / "responses.jsonl").read_text().splitlines()]
    assert sorted(r["status"] for r in responses) == [200, 200, 200], responses
    scheduled = [json.loads(line) for line in (tmp_path / "probe" / "scheduled.jsonl").read_text().splitlines()]
    assert any(s["redirect_urls"] and s["url"].startswith(replica.cdn_url) for s in scheduled)
    assert any(s["redirect_urls"] and "/api/resolve-cache/" in s["url"] for s in scheduled)
    assert any(s["retry_times"] == 1 for s in scheduled)
    assert not any(s["authorization"] for s in scheduled)
    with open(tmp_path / "probe" / "scheduled.pickles", "rb") as f:
        requests = []
        while True:
            try:
                requests.append(pickle.load(f))
            except EOFError:
                break
    assert len(requests) == len(scheduled) >= 5
    assert not any(
        k.lower() == b"authorization" for r in requests for k in (r["headers"] or {}) if isinstance(k, bytes)
    )

    # the CDN never saw the header; every Hub request carried it (gated files were served: the token worked)
    cdn = replica.requests(origin="cdn")[cdn_mark:]
    assert cdn and not any(r["auth"] for r in cdn)
    hub = replica.requests(since=hub_mark, origin="hub")
    assert len(hub) == 5 and all(r["auth"] for r in hub)  # 2 resolve, 1 resolve-cache, 503 + retry
    assert all(r["auth"] for r in replica.requests(since=mark, origin="hub"))

    # no trace of the token anywhere the crawl or the probe wrote, nor in what they printed
    (tmp_path / "stdout.txt").write_text(result.stdout + run.stdout, encoding="utf-8")
    (tmp_path / "stderr.txt").write_text(result.stderr + run.stderr, encoding="utf-8")
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) > 100
    assert {p.relative_to(jobdir).parts[0] for p in written if p.is_relative_to(jobdir)} == {
        "models", "datasets", "spaces", "probe"
    }  # crawlall gives each spider its own JOBDIR
    assert list(tmp_path.glob("feed-*.jsonl")) and log.stat().st_size > 0
    assert files_containing([tmp_path, replica.request_log_path], spellings(TOKEN)) == []
    assert files_containing([tmp_path], {b"Bearer hf_"}) == []


def test_token_file_is_used_when_HF_TOKEN_is_unset(replica: ReplicaHandle, tmp_path: Path) -> None:
    home = tmp_path / "hf-home"
    home.mkdir()
    (home / "token").write_text(TOKEN + "\n", encoding="utf-8")
    mark = replica.mark()
    result = crawl(replica, "spaces", tmp_path / "out", page_size=20, env_overrides={"HF_HOME": str(home)})
    assert result.returncode == 0, result.stderr[-3000:]
    hub = replica.requests(since=mark, origin="hub")
    assert hub and all(r["auth"] for r in hub)
    assert result.stat("hfscraper/spider/skipped/private") == sum(1 for e in replica.truth["spaces"] if e["private"])
    assert f"Sending the Hub token from the token file {home / 'token'}" in result.stderr
    assert files_containing([tmp_path / "out"], spellings(TOKEN)) == [] and TOKEN not in result.stderr


def test_without_a_token_requests_are_anonymous(replica: ReplicaHandle, tmp_path: Path) -> None:
    mark = replica.mark()
    result = crawl(replica, "spaces", tmp_path / "out", page_size=20)
    assert result.returncode == 0, result.stderr[-3000:]
    hub = replica.requests(since=mark, origin="hub")
    assert hub and not any(r["auth"] for r in hub)
    assert result.stat("hfscraper/auth/sent") is None


def test_invalid_token_stops_the_crawl(replica: ReplicaHandle, tmp_path: Path) -> None:
    bad = "hf" + "".join(secrets.choice(ALPHABET) for _ in range(30))  # not hf_...: the replica refuses it
    mark = replica.mark()
    result = crawl(replica, "models", tmp_path / "out", env_overrides={"HF_TOKEN": bad})
    assert result.returncode == 1
    assert result.stat("finish_reason") == "invalid_token"
    assert result.stat("hfscraper/auth/invalid_token") == 1
    errors = [line for line in result.stderr.splitlines() if " ERROR: " in line]
    assert len(errors) == 1, result.stderr[-3000:]
    assert errors[0].endswith(
        "ERROR: Stopping the crawl: the Hub refused the token from HF_TOKEN (HTTP 401 Invalid credentials in "
        "Authorization header); renew it or unset it to crawl anonymously"
    )
    assert "hfscraper: models: INCOMPLETE (finish reason invalid_token, 0 items)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not any(s in (result.stderr + result.stdout).encode() for s in spellings(bad))
    assert len(replica.requests(since=mark, origin="hub")) == 1  # stopped at once, not retried


def test_unusable_token_exits_2_without_showing_it(replica: ReplicaHandle, tmp_path: Path) -> None:
    result = crawl(replica, "spaces", tmp_path / "out", env_overrides={"HF_TOKEN": "hf_secretpart other"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "hfscraper: environment HF_TOKEN=***: must be a token without spaces or control characters (value hidden)"
    ]
