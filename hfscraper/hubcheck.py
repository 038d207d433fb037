"""Check, in about 20 requests, that a Hub still behaves the way the crawler assumes (`scrapy hubcheck`).

Each check names an assumption, what the crawler expects and what the Hub answered: OK or DRIFT. The requests
are few and sequential (about 17 to the Hub's `api` bucket, 2 to `resolvers`, 3 to the dataset viewer, 1 to the
CDN); the token, when there is one, goes to the Hub's own origin only and never follows a redirect elsewhere.
No redirect is followed automatically: each one is a check of its own.

Scrapy-free on purpose: it runs before any crawl, against any endpoint, and its tests drive it directly.
"""

from __future__ import annotations

import hashlib
import json
import random
import string
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlencode, urljoin, urlsplit

import requests

from hfscraper import constants
from hfscraper.hub import (
    accepted_expand,
    build_entity_url,
    build_list_url,
    is_plain_id,
    normalize_endpoint,
    parse_link_next,
    parse_ratelimit,
    parse_ratelimit_policy,
)
from hfscraper.ratelimit_pacer import bucket_for_url
from hfscraper.repofiles import resolve_url

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

#: A legacy id the Hub moved, recorded answering 307 (tests/data/hub_fixtures); the replica keeps the same alias.
RENAMED_PROBE = "bert-base-uncased"
#: The largest LFS file whose bytes are fetched whole to check their SHA-256 (larger: one byte, headers only).
WHOLE_FILE_LIMIT = 1 << 20
TIMEOUT_SECONDS = 30.0


class Unreachable(Exception):
    """The endpoint (or the viewer, or the CDN) could not be reached at all."""


@dataclass
class Check:
    name: str
    expected: str
    observed: str
    ok: bool


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    #: Requests sent per destination: the Hub's buckets (`api`, `resolvers`), `viewer`, `cdn`.
    requests: Counter[str] = field(default_factory=Counter)

    @property
    def drift(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


def _short(value: object, width: int = 90) -> str:
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def _etag(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


class HubCheck:
    """Runs the checks against *endpoint* (and *viewer*), sending *token* to the Hub's origin only."""

    def __init__(
        self,
        endpoint: str,
        viewer: str,
        *,
        token: str | None = None,
        expand: Mapping[str, Iterable[str]] | None = None,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self.endpoint = normalize_endpoint(endpoint)
        self.viewer = viewer.rstrip("/")
        self._origin = self._origin_of(self.endpoint)
        self._token = token
        self.expand = {t: tuple(expand[t]) if expand else constants.DEFAULT_EXPAND[t] for t in constants.REPO_TYPES}
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy or netrc credentials from the environment: only what we send
        self.report = Report()
        #: RateLimit observations per bucket: (url path, RateLimit header, RateLimit-Policy header).
        self._ratelimits: dict[str, list[tuple[str, str | None, str | None]]] = {}

    # -- HTTP -------------------------------------------------------------------------------------------------

    @staticmethod
    def _origin_of(url: str) -> tuple[str, str, int | None]:
        parts = urlsplit(url)
        return parts.scheme, (parts.hostname or "").lower(), parts.port

    def _send(self, method: str, url: str, *, anonymous: bool = False, headers: Mapping[str, str] | None = None):  # type: ignore[no-untyped-def]
        sent = dict(headers or {})
        hub = self._origin_of(url) == self._origin
        if hub and self._token and not anonymous:
            sent["Authorization"] = f"Bearer {self._token}"
        if hub:
            where = bucket_for_url(url)
        elif url.startswith(self.viewer + "/"):
            where = "viewer"
        else:
            where = "cdn"
        self.report.requests[where] += 1
        try:
            response = self.session.request(method, url, headers=sent, timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            parts = urlsplit(url)
            shown = parts._replace(netloc=parts.netloc.rpartition("@")[2], query="").geturl()  # no credentials
            raise Unreachable(f"{method} {shown}: {type(exc).__name__}") from None
        if hub and where in ("api", "resolvers"):
            self._ratelimits.setdefault(where, []).append(
                (urlsplit(url).path, response.headers.get("RateLimit"), response.headers.get("RateLimit-Policy"))
            )
        return response

    def _json(self, response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            return None

    def _add(self, name: str, expected: str, observed: str, ok: bool) -> bool:
        self.report.checks.append(Check(name, expected, _short(observed, 70), ok))
        return ok

    # -- the checks --------------------------------------------------------------------------------------------

    def run(self) -> Report:
        model = self._listings()
        self._expand_vocabulary()
        info = self._model_info(model) if model else None
        if model:
            self._case_insensitive(model)
            self._unknown_subpath(model)
        self._missing_repo()
        self._renamed_repo()
        self._gated_repo()
        if info is not None:
            self._small_file(info)
            self._lfs_file(info)
        self._viewer()
        self._ratelimit_checks()
        return self.report

    def _listing_page(self, name: str, url: str, sort: str) -> tuple[list[dict[str, Any]], str | None]:
        response = self._send("GET", url)
        data = self._json(response)
        entries = [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []
        problems = []
        if response.status_code != 200:
            problems.append(f"HTTP {response.status_code}")
        elif not isinstance(data, list):
            problems.append(f"a JSON {type(data).__name__}, not a list")
        elif len(entries) != len(data):
            problems.append("elements that are not objects")
        elif not entries:
            problems.append("an empty page")
        else:
            no_id = [e for e in entries if not isinstance(e.get("id"), str) or not e["id"]]
            if no_id:
                problems.append(f"{len(no_id)} without an id")
            keys = [e.get(sort) for e in entries]
            if any(k is None for k in keys):
                problems.append(f"entries without {sort}")
            elif keys != sorted(keys, reverse=True):
                problems.append(f"not in descending {sort} order")
        observed = "; ".join(problems) or f"{len(entries)} entries, descending {sort}"
        self._add(name, f"200, a list of entities with id, descending {sort}", observed, not problems)
        return entries, response.headers.get("Link")

    def _listings(self) -> dict[str, Any] | None:
        """Each type's listing with the crawler's `expand` fields; the models' `Link` cursor followed once. The
        most downloaded model (the one the file checks probe), or None."""
        url = build_list_url(
            self.endpoint, "model", sort="downloads", limit=2, expand=self._with(self.expand["model"], "siblings")
        )
        first, link = self._listing_page("models listing (expand as the crawler)", url, "downloads")
        next_url = parse_link_next(link)
        query = parse_qs(urlsplit(next_url).query) if next_url else {}
        same_origin = next_url is not None and self._origin_of(next_url) == self._origin
        ok = bool(next_url) and same_origin and "cursor" in query and query.get("limit") == ["2"]
        shown = 'no rel="next" link' if next_url is None else f"{urlsplit(next_url).path}?{sorted(query)}"
        self._add('Link rel="next" cursor', "an absolute URL on the Hub with cursor= and the same limit", shown, ok)
        if ok:
            assert next_url is not None
            second, _ = self._listing_page("models listing, next page", next_url, "downloads")
            seen = {e.get("id") for e in first}
            repeated = [e.get("id") for e in second if e.get("id") in seen]
            self._add(
                "cursor paging",
                "the next page repeats no entity",
                f"repeated: {', '.join(map(str, repeated))}" if repeated else f"{len(second)} new entities",
                not repeated and bool(second),
            )
        for repo_type, plural in (("dataset", "datasets"), ("space", "spaces")):
            self._listing_page(
                f"{plural} listing (expand as the crawler)",
                build_list_url(self.endpoint, repo_type, sort="createdAt", limit=2, expand=self.expand[repo_type]),
                "createdAt",
            )
        return next((e for e in first if is_plain_id(e.get("id"))), None)

    @staticmethod
    def _with(expand: tuple[str, ...], extra: str) -> tuple[str, ...]:
        return expand if extra in expand else (*expand, extra)

    def _expand_vocabulary(self) -> None:
        """An unknown `expand` value is refused with the list of known ones: every field the crawler asks for must
        be among them (a field the Hub dropped fails the whole listing)."""
        url = f"{self.endpoint}/api/models?{urlencode({'limit': 1, 'expand': 'hfscraperHubcheckUnknown'})}"
        response = self._send("GET", url)
        data = self._json(response)
        message = str(data.get("error", "")) if isinstance(data, dict) else ""
        known = accepted_expand(message)
        wanted = set(self.expand["model"])
        bracketed = message.partition("must be one of")[2].strip().startswith("[")
        if response.status_code != 400 or known is None or not bracketed:
            observed = f"HTTP {response.status_code}: {message or response.text[:80]!r}"
            self._add("expand vocabulary", '400 "expand" must be one of [...]', observed, False)
            return
        missing = sorted(wanted - known)
        new = sorted(known - constants.EXPAND_PROPERTIES["model"])
        observed = f"missing: {', '.join(missing)}" if missing else f"all {len(wanted)} of the crawler's fields known"
        if new:
            observed += f" (new on the Hub: {', '.join(new)})"
        self._add("expand vocabulary", "every model expand field of the crawler is accepted", observed, not missing)

    def _model_info(self, model: dict[str, Any]) -> dict[str, Any] | None:
        repo_id = model["id"]
        url = build_entity_url(self.endpoint, "model", repo_id) + "?blobs=true"
        response = self._send("GET", url)
        data = self._json(response)
        problems = []
        if response.status_code != 200 or not isinstance(data, dict):
            problems.append(f"HTTP {response.status_code}")
        else:
            if data.get("id") != repo_id:
                problems.append(f"id {data.get('id')!r}")
            sha = data.get("sha")
            if not (isinstance(sha, str) and len(sha) == 40 and all(c in string.hexdigits for c in sha)):
                problems.append(f"sha {sha!r}")
            siblings = data.get("siblings")
            if not isinstance(siblings, list) or not all(isinstance(s, dict) and "rfilename" in s for s in siblings):
                problems.append("siblings without rfilename")
        self._add(
            "model info",
            "200 with the listed id, a 40-hex sha, siblings",
            "; ".join(problems) or f"{repo_id} at {data['sha'][:12]}",
            not problems,
        )
        return data if not problems else None

    def _case_insensitive(self, model: dict[str, Any]) -> None:
        repo_id = model["id"]
        other = repo_id.swapcase()
        if other == repo_id:
            self._add("case-insensitive id", "the canonical id", f"{repo_id} has no letters to swap", False)
            return
        response = self._send("GET", build_entity_url(self.endpoint, "model", other))
        data = self._json(response)
        got = data.get("id") if isinstance(data, dict) else None
        location = response.headers.get("Location", "")
        if response.status_code in (301, 302, 307, 308):
            ok = location.rstrip("/").endswith("/api/models/" + repo_id)
            observed = f"{response.status_code} to {location}"
        else:
            ok = response.status_code == 200 and got == repo_id
            observed = f"HTTP {response.status_code}, id {got!r}" if got != repo_id else f"{other}: {repo_id}"
        self._add("case-insensitive id", "the id in other case answers with the canonical id", observed, ok)

    def _unknown_subpath(self, model: dict[str, Any]) -> None:
        url = build_entity_url(self.endpoint, "model", model["id"]) + "/hfscraper-hubcheck-unknown"
        response = self._send("GET", url)
        code = response.headers.get("X-Error-Code")
        ok = response.status_code == 404 and code != "RepoNotFound"
        self._add(
            "unknown sub-path",
            "a plain 404 (not RepoNotFound: the repo exists)",
            f"HTTP {response.status_code}, X-Error-Code {code}",
            ok,
        )

    def _missing_repo(self) -> None:
        name = "".join(random.choices(string.ascii_lowercase + string.digits, k=16))  # noqa: S311 (not a secret)
        response = self._send("GET", build_entity_url(self.endpoint, "model", f"hfscraper-hubcheck/missing-{name}"))
        code = response.headers.get("X-Error-Code")
        expected_status = 404 if self._token else 401
        ok = response.status_code == expected_status and code == "RepoNotFound"
        self._add(
            "missing repo",
            f"{expected_status} with X-Error-Code RepoNotFound",
            f"HTTP {response.status_code}, X-Error-Code {code}",
            ok,
        )

    def _renamed_repo(self) -> None:
        response = self._send("GET", f"{self.endpoint}/api/models/{RENAMED_PROBE}")
        location = response.headers.get("Location", "")
        target = urlsplit(urljoin(self.endpoint + "/", location)).path
        ok = (
            response.status_code == 307
            and location.startswith("/api/models/")
            and is_plain_id(target.removeprefix("/api/models/"))
        )
        self._add(
            "renamed repo",
            f"307 from {RENAMED_PROBE} to a relative /api/models/<owner>/<name>",
            f"HTTP {response.status_code}, Location {location or 'none'}",
            ok,
        )

    def _gated_repo(self) -> None:
        query = urlencode([("gated", "true"), ("limit", 1), ("expand", "gated"), ("expand", "siblings")])
        url = f"{self.endpoint}/api/models?{query}"
        response = self._send("GET", url)
        data = self._json(response)
        entries = data if isinstance(data, list) else []
        gated = [e for e in entries if isinstance(e, dict) and e.get("gated") in ("auto", "manual")]
        listed_ok = response.status_code == 200 and bool(entries) and len(gated) == len(entries)
        shown = [f"{e.get('id')}: gated={e.get('gated')!r}" for e in entries if isinstance(e, dict)]
        self._add(
            "gated filter",
            "gated=true lists only gated repos",
            f"HTTP {response.status_code}, {shown or 'nothing'}",
            listed_ok,
        )
        if not gated or not is_plain_id(gated[0].get("id")):
            return
        model = gated[0]
        files = [s.get("rfilename") for s in model.get("siblings") or [] if isinstance(s, dict)]
        path = next((f for f in files if isinstance(f, str)), "config.json")
        response = self._send("HEAD", resolve_url(self.endpoint, "model", model["id"], "main", path), anonymous=True)
        code = response.headers.get("X-Error-Code")
        self._add(
            "gated file, anonymous",
            "401 with X-Error-Code GatedRepo",
            f"HTTP {response.status_code}, X-Error-Code {code}",
            response.status_code == 401 and code == "GatedRepo",
        )

    def _siblings(self, info: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The smallest git-stored file and the smallest LFS file of a model (from `blobs=true` siblings)."""
        small = large = None
        for s in info.get("siblings") or []:
            if not isinstance(s, dict) or not isinstance(s.get("rfilename"), str) or not isinstance(s.get("size"), int):
                continue
            if isinstance(s.get("lfs"), dict):
                if large is None or s["size"] < large["size"]:
                    large = s
            elif isinstance(s.get("blobId"), str) and (small is None or s["size"] < small["size"]):
                small = s
        return small, large

    def _small_file(self, info: dict[str, Any]) -> None:
        small, _ = self._siblings(info)
        repo_id, sha = info["id"], info["sha"]
        if small is None:
            self._add("small file 307", "a git-stored file to fetch", f"{repo_id} lists none with blobId", False)
            return
        response = self._send("GET", resolve_url(self.endpoint, "model", repo_id, sha, small["rfilename"]))
        location = response.headers.get("Location", "")
        redirected = response.status_code == 307 and location.startswith("/api/resolve-cache/")
        self._add(
            "small file 307",
            "307 to a relative /api/resolve-cache/... (no X-Linked-Size)",
            f"HTTP {response.status_code}, Location {_short(location, 40) or 'none'}, "
            f"X-Linked-Size {response.headers.get('X-Linked-Size')}",
            redirected and "X-Linked-Size" not in response.headers,
        )
        if response.status_code == 307 and location:
            response = self._send("GET", urljoin(self.endpoint + "/", location))
        body = response.content if response.status_code == 200 else b""
        etag = _etag(response.headers.get("ETag"))
        commit = response.headers.get("X-Repo-Commit")
        problems = []
        if response.status_code != 200:
            problems.append(f"HTTP {response.status_code}")
        else:
            if len(body) != small["size"]:
                problems.append(f"{len(body)} bytes, listed {small['size']}")
            if _git_blob_sha1(body) != small["blobId"]:
                problems.append("git SHA-1 differs from blobId")
            if etag != small["blobId"]:
                problems.append(f"ETag {etag}")
            if commit != sha:
                problems.append(f"X-Repo-Commit {commit}")
        self._add(
            "small file bytes",
            "200, size and git SHA-1 as listed, ETag = blobId, X-Repo-Commit = sha",
            "; ".join(problems) or f"{small['rfilename']}: {len(body)} bytes, SHA-1 {small['blobId'][:12]}",
            not problems,
        )

    def _lfs_file(self, info: dict[str, Any]) -> None:
        _, large = self._siblings(info)
        repo_id, sha = info["id"], info["sha"]
        if large is None:
            self._add("LFS file 302", "an LFS file to fetch", f"{repo_id} lists none with lfs", False)
            return
        lfs = large["lfs"]
        response = self._send("HEAD", resolve_url(self.endpoint, "model", repo_id, sha, large["rfilename"]))
        location = response.headers.get("Location", "")
        headers = response.headers
        problems = []
        if response.status_code != 302:
            problems.append(f"HTTP {response.status_code}")
        if not urlsplit(location).scheme:
            problems.append(f"Location {location or 'none'} is not absolute")
        if _etag(headers.get("X-Linked-Etag")) != lfs.get("sha256"):
            problems.append(f"X-Linked-Etag {headers.get('X-Linked-Etag')}")
        if headers.get("X-Linked-Size") != str(large["size"]):
            problems.append(f"X-Linked-Size {headers.get('X-Linked-Size')}")
        if headers.get("X-Repo-Commit") != sha:
            problems.append(f"X-Repo-Commit {headers.get('X-Repo-Commit')}")
        self._add(
            "LFS file 302",
            "302 to the CDN, X-Linked-Etag = sha256, X-Linked-Size, X-Repo-Commit = sha",
            "; ".join(problems) or f"{large['rfilename']} -> {urlsplit(location).hostname}",
            not problems,
        )
        if problems or not location:
            return
        whole = large["size"] <= WHOLE_FILE_LIMIT
        response = self._send("GET", location, headers={} if whole else {"Range": "bytes=0-0"})
        body = response.content
        if whole:
            digest = hashlib.sha256(body).hexdigest()
            ok = response.status_code == 200 and digest == lfs.get("sha256")
            observed = f"HTTP {response.status_code}, {len(body)} bytes, SHA-256 {'matches' if ok else digest[:12]}"
            expected = "200 without the token, SHA-256 as listed"
        else:
            ok = response.status_code == 206 and len(body) == 1
            observed = f"HTTP {response.status_code}, {len(body)} bytes for bytes=0-0"
            expected = "206 without the token for bytes=0-0"
        self._add("CDN download", expected, observed, ok)

    def _viewer(self) -> None:
        url = build_list_url(self.endpoint, "dataset", sort="downloads", limit=1)
        data = self._json(self._send("GET", url))
        dataset = data[0].get("id") if isinstance(data, list) and data and isinstance(data[0], dict) else None
        if not isinstance(dataset, str):
            self._add("viewer is-valid", "a dataset to ask about", "the dataset listing gave none", False)
            return
        q = quote(dataset, safe="")
        response = self._send("GET", f"{self.viewer}/is-valid?dataset={q}")
        valid = self._json(response)
        keys = {"viewer", "preview", "search", "filter", "statistics"}
        ok = response.status_code == 200 and isinstance(valid, dict) and keys <= set(valid)
        ok = ok and all(isinstance(valid[k], bool) for k in keys)
        self._add(
            "viewer is-valid",
            f"200 with booleans {', '.join(sorted(keys))}",
            f"{dataset}: HTTP {response.status_code}, {json.dumps(valid)[:60] if valid is not None else 'not JSON'}",
            ok,
        )
        response = self._send("GET", f"{self.viewer}/splits?dataset={q}")
        splits = self._json(response)
        items = splits.get("splits") if isinstance(splits, dict) else None
        ok = response.status_code == 200 and isinstance(items, list) and bool(items)
        ok = ok and all(isinstance(s, dict) and {"dataset", "config", "split"} <= set(s) for s in items or [])
        self._add(
            "viewer splits",
            "200 with splits of {dataset, config, split}",
            f"HTTP {response.status_code}, {len(items) if isinstance(items, list) else 'no'} splits",
            ok,
        )
        if not ok:
            return
        first = items[0]
        query = urlencode({"dataset": dataset, "config": first["config"], "split": first["split"]})
        response = self._send("GET", f"{self.viewer}/first-rows?{query}")
        rows = self._json(response)
        ok = (
            response.status_code == 200
            and isinstance(rows, dict)
            and isinstance(rows.get("features"), list)
            and isinstance(rows.get("rows"), list)
        )
        self._add(
            "viewer first-rows",
            "200 with features and rows",
            f"HTTP {response.status_code}, {len(rows['rows']) if ok else 'no'} rows",
            ok,
        )

    def _ratelimit_checks(self) -> None:
        for bucket in ("api", "resolvers"):
            seen = self._ratelimits.get(bucket, [])
            problems = []
            last = None
            for path, header, policy_header in seen:
                limit, policy = parse_ratelimit(header), parse_ratelimit_policy(policy_header)
                if limit is None or policy is None:
                    problems.append(f"{path}: RateLimit {header!r}, RateLimit-Policy {policy_header!r}")
                elif limit.bucket != bucket or policy.bucket != bucket:
                    problems.append(f"{path}: bucket {limit.bucket!r}/{policy.bucket!r}")
                else:
                    last = (limit, policy)
            if not seen:
                observed = "no response of this bucket"
            elif problems:
                observed = f"{len(problems)} of {len(seen)}: {problems[0]}"
            else:
                assert last is not None
                limit, policy = last
                last_seen = f"r={limit.remaining} t={limit.reset} q={policy.quota} w={policy.window}"
                observed = f"{len(seen)} responses; last {last_seen}"
            self._add(
                f"RateLimit ({bucket})",
                f'every response: RateLimit "{bucket}";r=;t= and RateLimit-Policy "fixed window";"{bucket}";q=;w=',
                observed,
                bool(seen) and not problems,
            )


def render(report: Report) -> str:
    """The report as a plain-text table, then one line of what it cost."""
    rows = [("check", "expected", "observed", "")] + [
        (c.name, c.expected, c.observed, "OK" if c.ok else "DRIFT") for c in report.checks
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  -----")
    cost = ", ".join(f"{n} {where}" for where, n in sorted(report.requests.items()))
    verdict = (
        f"{len(report.drift)} of {len(report.checks)} checks drifted"
        if report.drift
        else f"all {len(report.checks)} checks hold"
    )
    lines.append(f"{verdict}; {sum(report.requests.values())} requests ({cost})")
    return "\n".join(lines)
