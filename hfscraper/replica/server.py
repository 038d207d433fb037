"""The replica's HTTP side: a Hub origin and a CDN origin, both aiohttp apps.

Hub origin (``http://127.0.0.1:P``), faithful to the recorded responses (tests/data/hub_fixtures) and huggingface_hub's
client code:

- ``GET /api/{models,datasets,spaces}``: listings with ``search``, ``author``,
  ``filter``, ``sort``, ``limit``, ``full``, ``cardData``, ``expand``/``expand[]`` and the
  per-type filters (``gated``, ``inference``, ``apps``, ``num_parameters``, spaces' ``models``/
  ``datasets``/``linked``, ...: ``hfscraper.replica.listing``); any other parameter is a 400;
  paged only by ``Link: <...>; rel="next"``; ``--drift N`` moves volatile sort values between pages.
- ``GET /api/{type}s/{id}[/revision/{rev}]``, ``.../tree/{rev}[/{path}]``,
  ``POST .../paths-info/{rev}`` and ``GET /api/spaces/{id}/runtime``; ``rev`` is ``main``, any commit of the repo's
  history, a tag, ``refs/pr/N`` or ``refs/convert/parquet`` (``hfscraper.replica.history``).
- ``.../refs``, ``.../commits/{rev}``, ``.../likers``, ``.../discussions``, ``.../treesize/{rev}[/{path}]`` and
  ``/api/datasets/{id}/parquet[...]`` (``hfscraper.replica.repo_extras``); any other sub-path of an existing repo
  is the Hub's plain 404 (no ``X-Error-Code``: ``RepoNotFound`` would say the repo is gone).
- ``GET|HEAD /[datasets/|spaces/]{id}/resolve/{rev}/{file}``: 307 to
  ``/api/resolve-cache/...`` for small files, 302 to the signed CDN URL for LFS files.
- Renamed repos answer 307 to the new name; private, gated, disabled repos,
  bad revisions, missing files, bad ``expand`` and invalid tokens fail with the
  Hub's statuses, ``X-Error-Code``/``X-Error-Message`` and JSON bodies.
- Every response carries ``RateLimit``/``RateLimit-Policy``; past the quota, 429.
- ``/_replica/...``: admin endpoints (not part of the Hub, not rate limited, not
  logged, never faulted): ``GET info``, ``GET requests``, ``GET|POST faults``,
  ``POST reset-quota``, ``POST mutate`` (change the Hub while it runs: ``{"type": "model",
  "touch": [ids], "delete": [ids], "restore": [ids]}``; a touched repo gets a new ``sha`` and a
  ``lastModified`` newer than every other repo of its type, ``"edit": [ids]`` or ``{id: {path: text}}`` does the same
  with new bytes for existing files (default: a line appended to README.md), the previous commit stays readable at
  its sha (``hfscraper.replica.history``), a deleted one vanishes from listings and
  answers 404 like a missing repo, a restored one comes back; the ground truth file is not rewritten; a lazy Hub,
  ``--lazy``, takes ``{"changed_fraction": F}`` or ``touch`` instead: ``hfscraper.replica.lazy``).

CDN origin (``http://127.0.0.2:C``): ``GET|HEAD /xet-bridge-us/{repo _id}/{sha256}``
with a valid signature; honours ``Range``; no rate-limit headers (the real CDN
sends none).

Dataset-viewer origin (``http://127.0.0.1:V``, another port): ``/is-valid``, ``/splits``,
``/first-rows``, ``/info``, ``/size`` (``hfscraper.replica.viewer``); no rate-limit headers.

Tokens: a token not starting with ``hf_`` is invalid (401); so is one given with
``--revoked-token`` (the Hub's answer to a revoked token is not recorded: the replica
gives it the recorded invalid-token 401); any other ``hf_`` token is a valid user;
tokens given with ``--approved-token`` are also granted every gated repo and see
private repos (in listings too).
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import json
import logging
import random
import socket
import struct
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from aiohttp import web

from hfscraper.replica import repo_extras, shapes
from hfscraper.replica.cdn import CDN_PREFIX, UrlSigner, access_denied_xml, parse_range
from hfscraper.replica.faults import FaultInjector, FaultRule, Firing, fault_429, parse_rules_json
from hfscraper.replica.history import RepoHistory
from hfscraper.replica.listing import (
    DEFAULT_SORT,
    SORTS,
    VOLATILE_SORTS,
    InvalidCursor,
    InvalidQuery,
    ListingIndex,
    decode_cursor,
    linked_requested,
    parse_listing_query,
)
from hfscraper.replica.ratelimit import (
    DEFAULT_QUOTAS,
    DEFAULT_WINDOW,
    RateLimiter,
    RateLimitState,
    bucket_for_path,
    quota_message,
)
from hfscraper.replica.requestlog import RequestLog
from hfscraper.replica.responses import (
    COMMON_HEADERS,
    HOME_PAGE,
    HTML_200_PAGE,
    NOT_FOUND_PAGE,
    SERVER_ERROR_MESSAGES,
    TEXT_TYPE,
    Reply,
    cloudfront_error_page,
    dumps,
    error_reply,
    html_reply,
    json_reply,
    redirect_reply,
    request_id,
    weak_etag,
)
from hfscraper.replica.tree import (
    PAGE_SIZE,
    PAGE_SIZE_EXPANDED,
    Folder,
    RepoTree,
    _key,
    decode_tree_cursor,
    encode_tree_cursor,
)
from hfscraper.replica.viewer import DatasetViewer

logger = logging.getLogger(__name__)

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
TYPE_PLURAL = {v: k for k, v in REPO_TYPES.items()}
MAX_PAGE = 1000
CHUNK = 256 * 1024
_TRUE = frozenset({"true", "True", "TRUE", "1"})
_FALSE = frozenset({"false", "False", "FALSE", "0", ""})
_API_MARKERS = frozenset(
    {"revision", "tree", "paths-info", "refs", "commits", "parquet", "croissant", "runtime", "likers", "discussions",
     "treesize"}
)
_HEX40 = frozenset("0123456789abcdef")


@dataclass
class ReplicaOptions:
    """Everything the command line can set on the servers (the data side is built separately)."""

    seed: int = 0
    latency_ms: float = 0.0
    quotas: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_QUOTAS))
    window: int = DEFAULT_WINDOW
    faults: list[FaultRule] = field(default_factory=list)
    approved_tokens: frozenset[str] = frozenset()
    #: Expand fields refused as if the Hub had dropped them (`--withdraw-expand`): what `scrapy hubcheck` and the
    #: crawler's one-line refusal are tested against.
    withdrawn_expand: frozenset[str] = frozenset()
    request_log: str | None = None
    cdn_ttl: int = 3600
    drift: int = 0  # repos moved each way per listing page of a volatile sort (hfscraper.replica.listing)
    retry_after: bool = False  # add Retry-After to 429s (a proxy's habit; the Hub sends RateLimit only)
    revoked_tokens: frozenset[str] = frozenset()  # hf_ tokens the Hub no longer accepts (401 like any invalid one)


@dataclass(frozen=True)
class Auth:
    """What the ``Authorization`` header says about the caller."""

    present: bool = False
    token: str | None = None
    valid: bool = True
    approved: bool = False

    @property
    def anonymous(self) -> bool:
        return not self.present


class Query:
    """A parsed query string that keeps repeated keys and the client's raw pieces (for the Link header)."""

    def __init__(self, raw: str) -> None:
        self.raw = raw
        self.pairs = parse_qsl(raw, keep_blank_values=True)

    def get(self, key: str, default: str | None = None) -> str | None:
        for k, v in self.pairs:
            if k == key:
                return v
        return default

    def getall(self, *keys: str) -> list[str]:
        return [v for k, v in self.pairs if k in keys]

    def has(self, key: str) -> bool:
        return any(k == key for k, _ in self.pairs)

    def next_link(self, base: str, path: str, cursor: str, add_sort: str | None) -> str:
        """The next page's URL: the original query (minus any cursor) + sort if missing + the new cursor."""
        pieces = [p for p in self.raw.split("&") if p and unquote(p.split("=", 1)[0]) != "cursor"]
        if add_sort is not None and not any(unquote(p.split("=", 1)[0]) == "sort" for p in pieces):
            pieces.append(f"sort={add_sort}")
        pieces.append(f"cursor={quote(cursor, safe='')}")
        return f"{base}{path}?{'&'.join(pieces)}"


class BadRequest(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_bool(value: str | None, name: str) -> bool:
    if value is None:
        return False
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise BadRequest(f'"{name}" must be a boolean')


def _is_commit(text: str) -> bool:
    return len(text) == 40 and set(text) <= _HEX40


class HubReplica:
    """The state both origins share: the synthetic Hub, its indexes, quotas, faults and the request log."""

    def __init__(self, hub: Any, options: ReplicaOptions) -> None:
        self.hub = hub
        self.options = options
        started = time.monotonic()
        if getattr(hub, "lazy", False):
            # hfscraper.replica.lazy: listings and _id lookups are arithmetic, nothing to index up front.
            self.indexes: dict[str, Any] = hub.listing_indexes()
            self.by_mongo_id: Any = hub.by_mongo_id
        else:
            self.indexes = {t: ListingIndex(t, hub.entities(t)) for t in REPO_TYPES.values()}
            logger.info("listing indexes built in %.2fs", time.monotonic() - started)
            self.by_mongo_id = {e.mongo_id: e for t in REPO_TYPES.values() for e in hub.entities(t)}
        self.limiter = RateLimiter(quotas=dict(options.quotas), window=options.window)
        self.faults = FaultInjector(options.faults, seed=options.seed)
        self.log = RequestLog(options.request_log)
        self.signer = UrlSigner.for_seed(options.seed, ttl=options.cdn_ttl)
        self._trees: OrderedDict[tuple[str, str, str], RepoTree] = OrderedDict()
        self.history = RepoHistory(hub, options.seed)  # every commit stays readable (hfscraper.replica.history)
        self.deleted: dict[str, dict[str, Any]] = {t: {} for t in REPO_TYPES.values()}
        self._touches = 0
        self._drift_pages: dict[tuple[str, str], int] = {}
        self.viewer = DatasetViewer(hub, options.seed, options.approved_tokens)
        self.hub_url = ""
        self.cdn_url = ""
        self.viewer_url = ""
        self._runners: list[web.AppRunner] = []

    # ------------------------------------------------------------------ lifecycle
    def hub_app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", r"/{tail:[\s\S]*}", self._hub_entry)  # [\s\S]: ids may hold a newline
        return app

    def cdn_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", r"/{tail:[\s\S]*}", self._cdn_entry)
        return app

    def viewer_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", r"/{tail:[\s\S]*}", self._viewer_entry)
        return app

    async def start(
        self, host: str, port: int, cdn_host: str, cdn_port: int, viewer_host: str | None = None, viewer_port: int = 0
    ) -> None:
        """Serve the three origins; afterwards ``hub_url``/``cdn_url``/``viewer_url`` name the bound addresses."""
        viewer_host = viewer_host or host
        viewer_runner = web.AppRunner(self.viewer_app(), access_log=None, handle_signals=False)
        await viewer_runner.setup()
        viewer_site = web.TCPSite(viewer_runner, viewer_host, viewer_port, reuse_address=True)
        await viewer_site.start()
        self._runners.append(viewer_runner)
        self.viewer_url = f"http://{_host_for_url(viewer_host)}:{_bound_port(viewer_runner)}"
        cdn_runner = web.AppRunner(self.cdn_app(), access_log=None, handle_signals=False)
        await cdn_runner.setup()
        cdn_site = web.TCPSite(cdn_runner, cdn_host, cdn_port, reuse_address=True)
        await cdn_site.start()
        self._runners.append(cdn_runner)
        self.cdn_url = f"http://{_host_for_url(cdn_host)}:{_bound_port(cdn_runner)}"
        # Long request lines: a hostile 5,000-character id appears twice in a resolve-cache URL.
        hub_runner = web.AppRunner(
            self.hub_app(), access_log=None, handle_signals=False, max_line_size=65536, max_field_size=65536
        )
        await hub_runner.setup()
        hub_site = web.TCPSite(hub_runner, host, port, reuse_address=True)
        await hub_site.start()
        self._runners.append(hub_runner)
        self.hub_url = f"http://{_host_for_url(host)}:{_bound_port(hub_runner)}"

    async def stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        self.log.close()

    # ------------------------------------------------------------------ Hub origin
    async def _hub_entry(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        raw = request.raw_path
        path, _, raw_query = raw.partition("?")
        if path.startswith("/_replica/") or path == "/_replica":
            return await self._admin(request, path, Query(raw_query))
        auth = self._auth(request)
        identity = f"token:{auth.token}" if auth.token is not None else f"ip:{request.remote}"
        bucket = bucket_for_path(path)
        state = self.limiter.hit(identity, bucket)
        firings: list[Firing] = []
        if not state.allowed:
            message = quota_message(state, auth.anonymous, request.remote)
            extra = [("Retry-After", str(state.reset_seconds))] if self.options.retry_after else []
            reply = error_reply(429, message, headers=extra)
        else:
            try:
                reply = await self._route(request, path, Query(raw_query), auth)
            except BadRequest as exc:
                reply = error_reply(400, exc.message)
            except Exception:
                # A replica bug must still look like a Hub 500 (with the Hub's headers) and be logged.
                logger.exception("error handling %s %s", request.method, raw)
                reply = error_reply(500, SERVER_ERROR_MESSAGES[500])
            firings = self.faults.candidates("hub", request.method, raw)
        reply, stream_fault, delay_ms, fault_kind = self._apply_faults(reply, firings, state, raw, request.method)
        if fault_kind != "429":
            for name, value in state.headers().items():
                reply.set_header(name, value)
        reply.headers.extend(COMMON_HEADERS)
        reply.headers.append(("X-Request-Id", request_id()))
        delay = self.options.latency_ms + delay_ms
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        response = await self._send(request, reply, stream_fault)
        self.log.add(
            origin="hub",
            method=request.method,
            path=raw,
            status=reply.status,
            bucket=bucket,
            auth="Authorization" in request.headers,
            fault=fault_kind,
            started=started,
        )
        return response

    def _auth(self, request: web.Request) -> Auth:
        header = request.headers.get("Authorization")
        if header is None:
            return Auth()
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token.startswith("hf_") or token in self.options.revoked_tokens:
            return Auth(present=True, token=token or header, valid=False)
        return Auth(present=True, token=token, valid=True, approved=token in self.options.approved_tokens)

    async def _route(self, request: web.Request, path: str, query: Query, auth: Auth) -> Reply:
        method = request.method
        raw_segments = path.split("/")[1:]
        segments = [unquote(s) for s in raw_segments]
        if path == "/" and method in ("GET", "HEAD"):
            return html_reply(200, HOME_PAGE)
        if not auth.valid:
            return error_reply(
                401,
                "Invalid credentials in Authorization header",
                header_message="Invalid credentials in Authorization header",
            )
        if segments and segments[0] == "api":
            if len(segments) == 2 and segments[1] in REPO_TYPES and method in ("GET", "HEAD"):
                return self._listing(request, REPO_TYPES[segments[1]], path, query, auth)
            if len(segments) >= 3 and segments[1] == "resolve-cache" and segments[2] in REPO_TYPES:
                if method not in ("GET", "HEAD"):
                    return error_reply(405, "Method not allowed")
                return self._resolve_cache(request, REPO_TYPES[segments[2]], segments[3:], auth)
            if len(segments) >= 3 and segments[1] in REPO_TYPES:
                return await self._repo_api(request, REPO_TYPES[segments[1]], raw_segments, segments, query, auth)
            return error_reply(404, "Sorry, we can't find the page you are looking for.")
        if "resolve" in segments and method in ("GET", "HEAD"):
            reply = self._resolve(request, raw_segments, segments, query, auth)
            if reply is not None:
                return reply
        return html_reply(404, NOT_FOUND_PAGE)

    # ---------------------------------------------------------------- access checks
    def _find(self, repo_type: str, candidates: list[tuple[str, int]]) -> tuple[str, int, Any, str | None]:
        """Pick among possible (id, segment count) splits of a path.

        An existing repo wins (named in any case: the answer is the repo's, under its canonical id), then a
        renamed one; otherwise the ``owner/name`` split (or a legacy one-segment id) names the missing repo.
        Ids of any number of segments are tried because the synthetic Hub may hold ids the real one refuses.
        """
        candidates = sorted(candidates, key=lambda c: -c[1])
        for repo_id, n in candidates:
            entity = self.hub.find(repo_type, repo_id)
            if entity is not None:
                return entity.id, n, entity, None
        for repo_id, n in candidates:
            new_id = self.hub.resolve_rename(repo_type, repo_id)
            if new_id is not None:
                return repo_id, n, None, new_id
        repo_id, n = next((c for c in candidates if c[1] == 2), None) or next(
            (c for c in candidates if c[1] == 1), candidates[0]
        )
        return repo_id, n, None, None

    def _denied(self, repo_type: str, repo_id: str, entity: Any, auth: Auth, files: bool) -> Reply | None:
        """The Hub's refusal for this caller, or None when access is granted (huggingface_hub errors.py)."""
        if entity is None or (entity.private and not auth.approved):
            if auth.anonymous:
                return error_reply(401, "Invalid username or password.", code="RepoNotFound")
            return error_reply(404, "Repository not found", code="RepoNotFound")
        if not files:
            return None
        if entity.disabled:
            return error_reply(403, "Access to this resource is disabled.")
        if entity.gated and not auth.approved:
            kind = repo_type
            page = f"{self._public_base()}/{'' if repo_type == 'model' else TYPE_PLURAL[repo_type] + '/'}{entity.id}"
            if auth.anonymous:
                message = (
                    f"Access to {kind} {entity.id} is restricted. You must have access to it and be authenticated "
                    "to access it. Please log in."
                )
                return error_reply(401, message, code="GatedRepo")
            message = (
                f"Access to {kind} {entity.id} is restricted and you are not in the authorized list. "
                f"Visit {page} to ask for access."
            )
            return error_reply(403, message, code="GatedRepo")
        return None

    def _public_base(self) -> str:
        return self.hub_url

    def _at(self, entity: Any, revision: str) -> Any | None:
        """The entity as it was at *revision* (a branch, tag, ref or commit sha), None if it names none."""
        return self.history.at(entity, revision)

    @staticmethod
    def _revision_error(revision: str) -> Reply:
        return error_reply(404, f"Invalid rev id: {revision}", code="RevisionNotFound")

    @staticmethod
    def _rename_redirect(raw_segments: list[str], start: int, n: int, new_id: str, query: Query) -> Reply:
        """307 to the same URL with the repo's new name (relative ``Location``, query kept)."""
        new_segments = raw_segments[:start] + [quote_path(new_id)] + raw_segments[start + n :]
        location = "/" + "/".join(new_segments)
        if query.raw:
            location += "?" + query.raw
        return redirect_reply(307, location)

    # ------------------------------------------------------------------ listings
    def _parse_expand(self, repo_type: str, query: Query, listing: bool) -> tuple[str, ...]:
        """``expand`` and ``expand[]`` values (repeatable, mixable); unknown or refused ones are a 400."""
        withdrawn = self.options.withdrawn_expand
        if withdrawn:
            known = shapes.EXPANDABLE[shapes.normalize_type(repo_type)]
            values = query.getall("expand", "expand[]")
            if any(v in withdrawn or v not in known for v in values):
                raise BadRequest(f'"expand" must be one of [{", ".join(k for k in known if k not in withdrawn)}]')
        try:
            return tuple(shapes.validate_expand(repo_type, query.getall("expand", "expand[]"), listing=listing))
        except ValueError as exc:
            raise BadRequest(str(exc)) from None

    @staticmethod
    def _parse_limit(query: Query, default: int, maximum: int) -> int:
        raw = query.get("limit")
        if raw is None or raw == "":
            return default
        try:
            limit = int(raw)
        except ValueError:
            raise BadRequest('"limit" must be a number') from None
        if limit < 1:
            raise BadRequest('"limit" must be greater than or equal to 1')
        # Larger pages are clamped, not refused (nothing public says which; clamping is the lenient choice).
        return min(limit, maximum)

    def _listing(self, request: web.Request, repo_type: str, path: str, query: Query, auth: Auth) -> Reply:
        sort = query.get("sort") or DEFAULT_SORT
        if sort not in SORTS[repo_type]:
            raise BadRequest(f'"sort" must be one of [{", ".join(SORTS[repo_type])}]')
        # `direction` is accepted and ignored: "Sorting is always descending" (huggingface_hub #3630).
        try:  # every filter is applied; any other parameter is a 400 (hfscraper.replica.listing)
            listing_query = parse_listing_query(repo_type, query.pairs, sort=sort, include_private=auth.approved)
            # hf_hub's production tests: `linked=true` adds each space's models/datasets to the items, and so does
            # filtering by them (`list_spaces(models=X)` items carry `models`).
            linked = repo_type == "space" and (
                linked_requested(query.pairs) or bool(listing_query.models or listing_query.datasets)
            )
        except InvalidQuery as exc:
            raise BadRequest(str(exc)) from None
        limit = self._parse_limit(query, MAX_PAGE, MAX_PAGE)
        expand = self._parse_expand(repo_type, query, listing=True)
        full = parse_bool(query.get("full"), "full")
        config = parse_bool(query.get("config"), "config")
        card_data = parse_bool(query.get("cardData"), "cardData")
        if expand:
            # huggingface_hub hf_api.py and its recorded answers only show that clients refuse to combine `expand` with
            # `full`/`config`/
            # `cardData`, and that with `expand` the server returns `_id`, `id` and exactly the requested keys.
            # So: expand wins and the other three are ignored (rather than a 400 nobody has recorded).
            full = config = card_data = False
        after = None
        cursor = query.get("cursor")
        if cursor:
            try:
                after = decode_cursor(sort, cursor)
            except InvalidCursor:
                return error_reply(400, "Invalid cursor", code="InvalidCursor")
        index = self.indexes[repo_type]
        if after is not None and self.options.drift and sort in VOLATILE_SORTS:
            # hfscraper.replica.listing: values move between pages, deterministically in the seed and page count.
            key = (repo_type, sort)
            self._drift_pages[key] = self._drift_pages.get(key, 0) + 1
            rng = random.Random(f"{self.options.seed}:{repo_type}:{sort}:{self._drift_pages[key]}")
            index.drift(sort, after, limit, rng, self.options.drift)
        entities, more = index.page(listing_query, after, limit)
        items = [
            shapes.render_list_item(e, expand=expand or None, full=full, card_data=card_data, config=config)
            for e in entities
        ]
        if linked:  # `linked=true`: each space's models and datasets ride along (hf_hub test_list_spaces_linked)
            for item, entity in zip(items, entities, strict=True):
                fields = entity.fields
                item.update({k: fields[k] for k in ("models", "datasets") if k in fields})
        headers: list[tuple[str, str]] = []
        if more and entities:
            next_cursor = index.cursor_after(listing_query, entities[-1])
            link = query.next_link(f"http://{request.host}", path, next_cursor, DEFAULT_SORT)
            headers.append(("Link", f'<{link}>; rel="next"'))
        reply = json_reply(items, kind="listing", headers=headers)
        reply.has_cursor = bool(cursor)
        return reply

    # ------------------------------------------------------------------ repo API
    async def _repo_api(
        self,
        request: web.Request,
        repo_type: str,
        raw_segments: list[str],
        segments: list[str],
        query: Query,
        auth: Auth,
    ) -> Reply:
        rest = segments[2:]
        candidates = [
            ("/".join(rest[:n]), n) for n in range(1, len(rest) + 1) if len(rest) == n or rest[n] in _API_MARKERS
        ]
        if not candidates:
            return error_reply(404, "Sorry, we can't find the page you are looking for.")
        repo_id, n, entity, new_id = self._find(repo_type, candidates)
        if entity is None and new_id is None and len(rest) > 1:
            # An unknown sub-path of an existing repo is the Hub's plain not-found, never RepoNotFound.
            prefixes = [("/".join(rest[:k]), k) for k in range(1, len(rest))]
            if self._find(repo_type, prefixes)[2] is not None:
                return error_reply(404, "Sorry, we can't find the page you are looking for.")
        if new_id is not None:
            return self._rename_redirect(raw_segments, 2, n, new_id, query)
        tail = rest[n:]
        method = request.method
        if not tail or (tail[0] == "revision" and len(tail) == 2):
            if method not in ("GET", "HEAD"):
                return error_reply(405, "Method not allowed")
            denied = self._denied(repo_type, repo_id, entity, auth, files=False)
            if denied is not None:
                return denied
            at = self._at(entity, tail[1]) if tail else entity
            if at is None:
                return self._revision_error(tail[1])
            expand = self._parse_expand(repo_type, query, listing=False)
            blobs = parse_bool(query.get("blobs"), "blobs")
            security = parse_bool(query.get("securityStatus"), "securityStatus")
            body = shapes.render_info(at, expand=expand or None, blobs=blobs, security=security)
            if at is not entity and isinstance(body.get("siblings"), list) and not blobs:
                body["siblings"] = [{"rfilename": f.path} for f in at.files]  # an old commit's own files
            return json_reply(body)
        if tail[0] == "tree" and len(tail) >= 2 and method in ("GET", "HEAD"):
            return self._tree(
                request, repo_type, repo_id, entity, tail[1], "/".join(tail[2:]), raw_segments, query, auth
            )
        if tail == ["runtime"] and repo_type == "space" and method in ("GET", "HEAD"):
            denied = self._denied(repo_type, repo_id, entity, auth, files=False)
            return denied if denied is not None else json_reply(shapes.render_runtime(entity))
        if tail[0] == "paths-info" and len(tail) == 2 and method == "POST":
            return await self._paths_info(request, repo_type, repo_id, entity, tail[1], auth)
        if tail[0] in repo_extras.ENDPOINTS and method in ("GET", "HEAD"):
            return repo_extras.reply(self, request, repo_type, repo_id, entity, tail, query, auth)
        return error_reply(404, "Sorry, we can't find the page you are looking for.")

    def _tree_of(self, repo_type: str, entity: Any) -> RepoTree:
        key = (repo_type, entity.id, entity.sha)  # an old commit's view has its own sha
        tree = self._trees.get(key)
        if tree is None:
            tree = RepoTree(entity.sha, entity.files)
            self._trees[key] = tree
            if len(self._trees) > 4096:
                self._trees.popitem(last=False)
        else:
            self._trees.move_to_end(key)
        return tree

    def _render_entry(self, entity: Any, entry: Any, expand: bool) -> dict[str, Any]:
        if isinstance(entry, Folder):
            return shapes.render_tree_directory(entity, entry.path, entry.oid, expand=expand)
        # LFS entries carry `xetHash` as on the Hub; a client that trusts it over HEAD (snapshot_download with
        # hf_xet) needs HF_HUB_DISABLE_XET=1 here: the replica does not speak Xet (docs/CONTRACTS.md).
        return shapes.render_tree_entry(entity, entry, expand=expand)

    def _tree(
        self,
        request: web.Request,
        repo_type: str,
        repo_id: str,
        entity: Any,
        revision: str,
        folder: str,
        raw_segments: list[str],
        query: Query,
        auth: Auth,
    ) -> Reply:
        denied = self._denied(repo_type, repo_id, entity, auth, files=False)
        if denied is not None:
            return denied
        if entity.disabled:
            # The listing of a disabled repo's files is refused like the files themselves.
            return error_reply(403, "Access to this resource is disabled.")
        entity = self._at(entity, revision)
        if entity is None:
            return self._revision_error(revision)
        folder = folder.strip("/")
        tree = self._tree_of(repo_type, entity)
        commit_header = [("X-Repo-Commit", entity.sha)]
        if not tree.is_folder(folder):
            return error_reply(
                404,
                f'Entry not found: "{folder}" does not exist on "{revision}"',
                code="EntryNotFound",
                headers=commit_header,
            )
        recursive = parse_bool(query.get("recursive"), "recursive")
        expand = parse_bool(query.get("expand"), "expand")
        page_size = PAGE_SIZE_EXPANDED if expand else PAGE_SIZE
        limit = self._parse_limit(query, page_size, page_size)
        entries = tree.listing(folder, recursive)
        start = 0
        page_number = 1
        cursor = query.get("cursor")
        if cursor:
            try:
                last_path, page_number = decode_tree_cursor(cursor)
            except ValueError:
                return error_reply(400, "Invalid cursor", code="InvalidCursor")
            keys = [_key(e.path) for e in entries]
            start = bisect.bisect_right(keys, _key(last_path))
        chosen = entries[start : start + limit]
        items = [self._render_entry(entity, e, expand) for e in chosen]
        headers = list(commit_header)
        if start + limit < len(entries) and chosen:
            next_cursor = encode_tree_cursor(chosen[-1].path, tree.folder_oid(folder), page_number + 1)
            path = request.raw_path.partition("?")[0]
            link = query.next_link(f"http://{request.host}", path, next_cursor, None)
            headers.append(("Link", f'<{link}>; rel="next"'))
        reply = json_reply(items, kind="tree", headers=headers)
        reply.has_cursor = bool(cursor)
        return reply

    async def _paths_info(
        self, request: web.Request, repo_type: str, repo_id: str, entity: Any, revision: str, auth: Auth
    ) -> Reply:
        """``POST .../paths-info/{rev}`` with form or JSON ``paths`` (unknown paths are silently omitted)."""
        denied = self._denied(repo_type, repo_id, entity, auth, files=False)
        if denied is not None:
            return denied
        entity = self._at(entity, revision)
        if entity is None:
            return self._revision_error(revision)
        paths: list[str] = []
        expand = False
        if request.content_type == "application/json":
            try:
                payload = await request.json()
            except json.JSONDecodeError:
                raise BadRequest("Invalid JSON body") from None
            paths = [str(p) for p in payload.get("paths", [])]
            expand = bool(payload.get("expand", False))
        else:
            form = await request.post()
            paths = [str(p) for p in form.getall("paths", [])]
            expand = parse_bool(str(form.get("expand", "false")), "expand")
        tree = self._tree_of(repo_type, entity)
        items = [self._render_entry(entity, tree.by_path[p], expand) for p in paths if p in tree.by_path]
        return json_reply(items, headers=[("X-Repo-Commit", entity.sha)])

    # ------------------------------------------------------------------ files
    def _resolve(
        self, request: web.Request, raw_segments: list[str], segments: list[str], query: Query, auth: Auth
    ) -> Reply | None:
        offset = 0
        repo_type = "model"
        if segments and segments[0] in ("datasets", "spaces") and len(segments) > 1 and segments[1] != "resolve":
            repo_type = REPO_TYPES[segments[0]]
            offset = 1
        rest = segments[offset:]
        candidates = [("/".join(rest[:n]), n) for n in range(1, len(rest) - 2) if rest[n] == "resolve"]
        if not candidates:
            return None
        repo_id, n, entity, new_id = self._find(repo_type, candidates)
        if new_id is not None:
            return self._rename_redirect(raw_segments, offset, n, new_id, query)
        denied = self._denied(repo_type, repo_id, entity, auth, files=True)
        if denied is not None:
            return denied
        revision = rest[n + 1]
        filename = "/".join(rest[n + 2 :])
        entity = self._at(entity, revision)
        if entity is None:
            return self._revision_error(revision)
        commit = [("X-Repo-Commit", entity.sha)]
        file = self._tree_of(repo_type, entity).by_path.get(filename)
        if file is None or isinstance(file, Folder):
            return error_reply(404, "Entry not found", code="EntryNotFound", headers=commit)
        etag = f'"{file.sha256}"' if file.lfs else f'"{file.blob_sha1}"'
        if request.headers.get("If-None-Match") == etag:
            return Reply(status=304, headers=[("ETag", etag), *commit], kind="redirect")
        if not file.lfs:
            original = "/" + "/".join(raw_segments)
            location = (
                f"/api/resolve-cache/{TYPE_PLURAL[repo_type]}/{quote_path(entity.id)}/{entity.sha}/"
                f"{quote_path(filename)}?{quote(original, safe='')}=&etag={quote(etag, safe='')}"
            )
            # No X-Repo-Commit or ETag here: the recorded 307 has neither; the resolve-cache answer carries them.
            return redirect_reply(307, location)
        cdn_path = f"{CDN_PREFIX}{entity.mongo_id}/{file.sha256}"
        location = self.signer.sign(self.cdn_url, cdn_path, filename)
        return redirect_reply(
            302,
            location,
            headers=[
                ("X-Linked-Size", str(file.size)),
                ("X-Linked-ETag", etag),
                *commit,
                ("Accept-Ranges", "bytes"),
                ("Cache-Control", "no-store"),
            ],
        )

    def _resolve_cache(self, request: web.Request, repo_type: str, rest: list[str], auth: Auth) -> Reply:
        """``/api/resolve-cache/{type}s/{id}/{commit}/{file}``: where a small file's 307 leads; serves its bytes."""
        candidates = [("/".join(rest[:n]), n) for n in range(1, len(rest) - 1) if _is_commit(rest[n])]
        if not candidates:
            return error_reply(404, "Sorry, we can't find the page you are looking for.")
        repo_id, n, entity, _new_id = self._find(repo_type, candidates)
        denied = self._denied(repo_type, repo_id, entity, auth, files=True)
        if denied is not None:
            return denied
        commit_id = rest[n]
        entity = self._at(entity, commit_id)
        if entity is None:
            return self._revision_error(commit_id)
        filename = "/".join(rest[n + 1 :])
        commit = [("X-Repo-Commit", entity.sha)]
        file = self._tree_of(repo_type, entity).by_path.get(filename)
        if file is None or isinstance(file, Folder):
            return error_reply(404, "Entry not found", code="EntryNotFound", headers=commit)
        etag = f'"{file.sha256}"' if file.lfs else f'"{file.blob_sha1}"'
        headers = [
            ("Content-Type", "application/octet-stream" if file.lfs else TEXT_TYPE),
            ("ETag", etag),
            *commit,
            ("Accept-Ranges", "bytes"),
            ("Content-Disposition", _disposition(filename)),
            ("Vary", "Origin"),
        ]
        if request.headers.get("If-None-Match") == etag:
            return Reply(status=304, headers=headers, kind="redirect")
        return _file_reply(file, request.headers.get("Range"), headers)

    # ------------------------------------------------------------------ CDN origin
    async def _cdn_entry(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        raw = request.raw_path
        path, _, raw_query = raw.partition("?")
        reply = self._cdn_reply(request, path, Query(raw_query))
        firings = self.faults.candidates("cdn", request.method, raw)
        reply, stream_fault, delay_ms, fault_kind = self._apply_faults(reply, firings, None, raw, request.method)
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000)
        response = await self._send(request, reply, stream_fault)
        self.log.add(
            origin="cdn",
            method=request.method,
            path=raw,
            status=reply.status,
            bucket=None,
            auth="Authorization" in request.headers,
            fault=fault_kind,
            started=started,
        )
        return response

    def _cdn_reply(self, request: web.Request, path: str, query: Query) -> Reply:
        xml = [("Content-Type", "application/xml")]
        if request.method not in ("GET", "HEAD"):
            return Reply(status=405, headers=xml, body=access_denied_xml("Method not allowed"), kind="error")
        parts = path[len(CDN_PREFIX) :].split("/") if path.startswith(CDN_PREFIX) else []
        if len(parts) != 2:
            return Reply(status=404, headers=xml, body=access_denied_xml("Not Found"), kind="error")
        problem = self.signer.check(
            path, query.get("Expires"), query.get("response-content-disposition") or "", query.get("Signature")
        )
        if problem is not None:
            return Reply(status=403, headers=xml, body=access_denied_xml(problem), kind="error")
        entity = self.by_mongo_id.get(parts[0])
        file = None
        if entity is not None:
            entries = self._tree_of(entity.repo_type, entity).entries
            file = next((f for f in entries if not isinstance(f, Folder) and f.lfs and f.sha256 == parts[1]), None)
            if file is None:  # an LFS file of an older commit (or another ref) of the repo
                file = self.history.find_lfs(entity, parts[1])
        if file is None:
            return Reply(
                status=404, headers=xml, body=access_denied_xml("The specified key does not exist."), kind="error"
            )
        headers = [
            ("Content-Type", "application/octet-stream"),
            ("Accept-Ranges", "bytes"),
            ("ETag", f'"{file.sha256}"'),
            ("Cache-Control", "public, max-age=604800, immutable"),
        ]
        disposition = query.get("response-content-disposition")
        if disposition:
            headers.append(("Content-Disposition", disposition))
        return _file_reply(file, request.headers.get("Range"), headers)

    # ------------------------------------------------------------------ dataset viewer origin
    async def _viewer_entry(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        raw = request.raw_path
        path, _, raw_query = raw.partition("?")
        try:
            reply = self.viewer.reply(
                request.method, path, raw_query, request.headers.get("Authorization"), self.viewer_url
            )
        except Exception:
            logger.exception("error handling viewer %s %s", request.method, raw)
            reply = Reply(status=500, headers=[("Content-Type", "text/plain")], body=b"Internal Server Error.")
        firings = self.faults.candidates("viewer", request.method, raw)
        reply, stream_fault, delay_ms, fault_kind = self._apply_faults(reply, firings, None, raw, request.method)
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000)
        response = await self._send(request, reply, stream_fault)
        self.log.add(
            origin="viewer",
            method=request.method,
            path=raw,
            status=reply.status,
            bucket=None,
            auth="Authorization" in request.headers,
            fault=fault_kind,
            started=started,
        )
        return response

    # ------------------------------------------------------------------ faults
    def _apply_faults(
        self, reply: Reply, firings: list[Firing], state: RateLimitState | None, target: str, method: str
    ) -> tuple[Reply, Firing | None, float, str | None]:
        """Apply the first terminal fault that fits this reply; sum the latency ones.

        Returns the (maybe replaced) reply, a fault the writer must carry out while
        streaming (``reset``/``truncate``/``corrupt``), extra delay in ms, and the
        kind to log.
        """
        delay = 0.0
        for firing in firings:
            if firing.kind != "latency":
                continue
            FaultInjector.fire(firing)
            delay += float(firing.option("ms", 250))
        logged = "latency" if delay else None
        for firing in firings:
            if method == "HEAD" and firing.kind in ("truncate", "corrupt"):
                continue  # no body to cut or alter
            replaced = self._fault_reply(reply, firing, state, target)
            if replaced is None:
                continue
            FaultInjector.fire(firing)
            if firing.kind in ("reset", "truncate", "corrupt"):
                return reply, firing, delay, firing.kind
            return replaced, None, delay, firing.kind
        return reply, None, delay, logged

    def _fault_reply(self, reply: Reply, firing: Firing, state: RateLimitState | None, target: str) -> Reply | None:
        """What this fault turns ``reply`` into: a new reply, ``reply`` itself (streaming faults) or None (n/a)."""
        kind = firing.kind
        ok = 200 <= reply.status < 300
        if kind == "latency":
            return None
        if kind == "5xx":
            status = int(firing.option("status", (502, 503, 500)[int(firing.draw * 3)]))
            body_kind = firing.option("body", "html" if firing.draw * 6 % 1 < 0.5 else "json")
            if body_kind == "html":
                return html_reply(status, cloudfront_error_page(status))
            return error_reply(status, SERVER_ERROR_MESSAGES.get(status, "Internal Error"))
        if kind == "429":
            return fault_429(firing, state, self.options.retry_after)
        if kind == "html200":
            return html_reply(200, HTML_200_PAGE)
        if kind == "redirect_loop":
            return redirect_reply(307, target)  # relative Location: the very URL just requested
        if kind == "malformed_json":
            if not ok or reply.kind not in ("listing", "json", "tree") or not reply.body:
                return None
            broken = reply.body[: max(1, len(reply.body) // 2)] + b'"\x00,]'
            headers = [(k, v) for k, v in reply.headers if k.lower() not in ("etag", "content-length")]
            return Reply(status=200, headers=headers + [("ETag", weak_etag(broken))], body=broken, kind=reply.kind)
        if kind == "not_a_list":
            if not ok or reply.kind != "listing":
                return None
            body = dumps({"items": json.loads(reply.body), "error": None})
            headers = [(k, v) for k, v in reply.headers if k.lower() not in ("etag", "link")]
            return Reply(status=200, headers=headers + [("ETag", weak_etag(body))], body=body, kind="json")
        if kind == "expire_cursor":
            if reply.kind not in ("listing", "tree") or not reply.has_cursor:
                return None
            return error_reply(400, "Invalid cursor: it has expired, restart the listing", code="InvalidCursor")
        if kind == "corrupt":
            return reply if ok and reply.file is not None and reply.length > 0 else None
        if kind == "reset":
            return reply
        if kind == "truncate":
            return reply if reply.length > 0 else None
        return None

    # ------------------------------------------------------------------ writing
    async def _send(self, request: web.Request, reply: Reply, fault: Firing | None) -> web.StreamResponse:
        headers = [(k, v) for k, v in reply.headers if k.lower() != "content-length"]
        head = request.method == "HEAD" or reply.status in (204, 304)
        if fault is not None and fault.kind == "reset" and (head or reply.length == 0):
            # Nothing to cut in the middle of: the connection dies before any response.
            _break_connection(request, reset=True)
            return web.Response(status=reply.status)
        if fault is None and reply.file is None:
            # For HEAD aiohttp declares the body's Content-Length and sends no body.
            response = web.Response(status=reply.status, body=reply.body)
            _copy_headers(response, headers)
            return response
        response = web.StreamResponse(status=reply.status)
        _copy_headers(response, headers)
        total = reply.length
        if reply.status not in (204, 304):
            response.content_length = total
        await response.prepare(request)
        if head:
            await response.write_eof()
            return response
        limit = total
        if fault is not None and fault.kind in ("reset", "truncate"):
            limit = int(total * float(fault.option("fraction", 0.5)))
        sent = 0
        first = True
        for chunk in _iter_reply(reply):
            if sent + len(chunk) > limit:
                chunk = chunk[: limit - sent]
            if first and fault is not None and fault.kind == "corrupt" and chunk:
                # Flip every bit of the first byte: same size, different digest.
                chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
            first = False
            if chunk:
                await response.write(chunk)
                sent += len(chunk)
            if sent >= limit:
                break
        if fault is not None and fault.kind in ("reset", "truncate"):
            _break_connection(request, reset=fault.kind == "reset")
            return response
        await response.write_eof()
        return response

    # ------------------------------------------------------------------ admin
    async def _admin(self, request: web.Request, path: str, query: Query) -> web.StreamResponse:
        name = path[len("/_replica/") :].strip("/")
        if name == "info" and request.method == "GET":
            return _admin_json(self.info())
        if name == "requests" and request.method == "GET":
            since = int(query.get("since") or 0)
            origin = query.get("origin") or None
            lines = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in self.log.since(since, origin))
            return web.Response(body=lines.encode(), content_type="application/x-ndjson")
        if name == "faults":
            if request.method == "POST":
                try:
                    rules = parse_rules_json(await request.json())
                except (ValueError, json.JSONDecodeError) as exc:
                    return _admin_json({"error": str(exc)}, status=400)
                self.faults.replace(rules)
                logger.info("fault rules replaced: %s", [r.to_dict() for r in rules])
            elif request.method != "GET":
                return _admin_json({"error": "use GET or POST"}, status=405)
            return _admin_json([r.to_dict() for r in self.faults.rules])
        if name == "reset-quota" and request.method == "POST":
            self.limiter.reset()
            return _admin_json({"ok": True})
        if name == "mutate" and request.method == "POST":
            try:
                return _admin_json(self.mutate(await request.json()))
            except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
                return _admin_json({"error": str(exc)}, status=400)
        return _admin_json({"error": f"unknown admin endpoint {path}"}, status=404)

    def mutate(self, change: dict[str, Any]) -> dict[str, Any]:
        """Touch, delete or restore repos of one type (the ``POST /_replica/mutate`` admin endpoint)."""
        if getattr(self.hub, "lazy", False):
            if change.get("edit"):
                raise ValueError("this replica runs in --lazy mode: edit is not supported (touch is)")
            result = self.hub.mutate(change)
            self._trees.clear()
            logger.info("replica mutated: %s", result["changed"])
            return result
        repo_type = REPO_TYPES.get(change["type"] + "s", change["type"])
        if repo_type not in self.deleted:
            raise ValueError(f"unknown type {change['type']!r}")
        deleted = self.deleted[repo_type]
        result: dict[str, Any] = {"touched": {}, "deleted": [], "restored": [], "unknown": []}
        for repo_id in change.get("delete", ()):
            entity = self.hub.hide(repo_type, repo_id)
            if entity is None:
                result["unknown"].append(repo_id)
                continue
            deleted[repo_id] = entity
            result["deleted"].append(repo_id)
        for repo_id in change.get("restore", ()):
            entity = deleted.pop(repo_id, None)
            if entity is None:
                result["unknown"].append(repo_id)
                continue
            self.hub.unhide(entity)
            result["restored"].append(repo_id)
        touch = list(change.get("touch", ()))
        edit = change.get("edit") or {}
        if isinstance(edit, list):
            edit = dict.fromkeys(edit)  # no contents named: a line is appended to README.md
        if touch or edit:
            newest = max(e.modified for e in self.hub.entities(repo_type))
            for repo_id, contents in [*((r, None) for r in touch), *((r, edit[r] or {}) for r in edit)]:
                entity = self.hub.get(repo_type, repo_id)
                if entity is None:
                    result["unknown"].append(repo_id)
                    continue
                # A new commit; the previous one stays readable at its sha (hfscraper.replica.history).
                self.history.before_change(entity)
                self._touches += 1
                newest += 60
                entity.modified = newest
                entity.sha = hashlib.sha1(f"{entity.sha}:{self._touches}".encode()).hexdigest()
                replace = None
                if contents is not None:
                    replace = {path: text.encode() for path, text in contents.items()} or self._default_edit(entity)
                changed = self.history.committed(entity, f"Update {', '.join(replace or ['README.md'])}", replace)
                result["touched"][repo_id] = {"sha": entity.sha, "lastModified": entity.sort_value("lastModified")}
                if contents is not None:
                    result["touched"][repo_id]["edited"] = changed
        live = [e for e in self.hub.entities(repo_type) if e.id not in deleted]
        self.indexes[repo_type] = ListingIndex(repo_type, live)
        self._trees.clear()
        logger.info("replica mutated: %s", result)
        return result

    def _default_edit(self, entity: Any) -> dict[str, bytes]:
        """An edit that names no contents: a line appended to README.md (or the first file), after the card."""
        files = entity.files
        target = next((f for f in files if f.path == "README.md"), files[0] if files else None)
        if target is None:
            raise ValueError(f"{entity.id} has no file to edit")
        return {target.path: self.history.appended(target.read(), f"Edited in commit {entity.sha[:7]}.")}

    def info(self) -> dict[str, Any]:
        return {
            "hub_url": self.hub_url,
            "cdn_url": self.cdn_url,
            "datasets_server_url": self.viewer_url,
            "seed": self.options.seed,
            "counts": {TYPE_PLURAL[t]: len(self.hub.entities(t)) for t in REPO_TYPES.values()},
            "quotas": dict(self.limiter.quotas),
            "window": self.limiter.window,
            "latency_ms": self.options.latency_ms,
            "cdn_ttl": self.signer.ttl,
            "faults": [r.to_dict() for r in self.faults.rules],
            "requests": self.log.counts(),
        }


# ---------------------------------------------------------------------- helpers
def _file_reply(file: Any, range_header: str | None, headers: list[tuple[str, str]]) -> Reply:
    size = file.size
    wanted = parse_range(range_header, size)
    if wanted == "unsatisfiable":
        return Reply(status=416, headers=[("Content-Range", f"bytes */{size}"), *headers], kind="error")
    if wanted is None:
        return Reply(status=200, headers=headers, file=file, start=0, end=size, kind="file")
    start, end = wanted  # type: ignore[misc]
    return Reply(
        status=206,
        headers=[*headers, ("Content-Range", f"bytes {start}-{end - 1}/{size}")],
        file=file,
        start=start,
        end=end,
        kind="file",
    )


def _iter_reply(reply: Reply):  # type: ignore[no-untyped-def]
    if reply.file is None:
        for offset in range(0, len(reply.body), CHUNK):
            yield reply.body[offset : offset + CHUNK]
        return
    position = reply.start
    while position < reply.end:
        stop = min(reply.end, position + CHUNK)
        yield reply.file.read(position, stop)
        position = stop


def _copy_headers(response: web.StreamResponse, headers: list[tuple[str, str]]) -> None:
    for name, value in headers:
        if name.lower() == "content-type":
            response.headers["Content-Type"] = value
        else:
            response.headers.add(name, value)


def _break_connection(request: web.Request, reset: bool) -> None:
    transport = request.transport
    if transport is None:
        return
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                logger.debug("could not set SO_LINGER", exc_info=True)
        transport.abort()
    else:
        transport.close()


def quote_path(path: str) -> str:
    """URL-quote each segment; ``.`` and ``..`` segments too, so that no client's URL normalisation eats them."""
    return "/".join("%2E" * len(part) if part in (".", "..") else quote(part, safe="") for part in path.split("/"))


def _disposition(filename: str) -> str:
    name = filename.rsplit("/", 1)[-1]
    return f"inline; filename*=UTF-8''{quote(name, safe='')}; filename=\"{name}\";"


def _admin_json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=dumps(payload), content_type="application/json", charset="utf-8")


def _bound_port(runner: web.AppRunner) -> int:
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
    raise RuntimeError("site has no bound socket")


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host
