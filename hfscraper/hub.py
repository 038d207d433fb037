"""Pure functions about the Hub API: listing URLs, `Link` and `RateLimit` headers, id to folder name.

Nothing here does I/O or imports Scrapy, so every function is usable (and tested) on its own.

Entity folder names (`entity_folder_name`)
------------------------------------------
Every entity is stored under `output_dir/{models,datasets,spaces}/<folder>/`. The folder is derived from
the repository id by one of three rules, tried in order:

1. **Plain ids** keep a readable name. An id is plain when it is `name` or `owner/name`, every part matches
   `[A-Za-z0-9]([A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?` (1 to 96 characters, starting with a letter or digit,
   not ending in `.` or `-`), no part contains `__`, and a one-part (legacy) id is not a reserved Windows
   device name (`CON`, `PRN`, `AUX`, `NUL`, `COM0`-`COM9`, `LPT0`-`LPT9`, with or without an extension).
   `owner/name` maps to `owner__name`; a legacy `name` maps to `name`. Every real Hub id is plain: the Hub
   itself requires ids to start and end with a word character and to be at most 96 characters per part.
2. **Other ids** that are non-empty, at most 1,000 characters long, valid Unicode and free of control
   characters (Unicode category Cc, which includes NUL and DEL) are **encoded**: `~` followed by the
   lowercase, unpadded base32 of the id's UTF-8 bytes; when that name would be longer than 200 characters,
   `~h` followed by the 64 hex digits of the SHA-256 of those bytes is used instead. Examples:
   `../../etc/passwd`, `a/b/c`, `CON`, `owner/x__y`, Unicode ids (NFC and NFD spellings differ in bytes, so
   they get different folders), right-to-left overrides, backslashes.
3. **Anything else is refused** with `HostileIdError` (its `reason` is one of `not_a_string`, `empty`,
   `too_long`, `control_character`, `invalid_unicode`); the crawl stores nothing for it.

Why this is collision-free: `~` never occurs in a plain name; a plain two-part name always contains `__`
and a plain one-part name never does, and since no part contains `__` and a name never starts with `_`,
the split into owner and name is unambiguous; base32 is injective; unpadded base32 never has a length of 1
modulo 8, while the
`h` + 64 hex digits of the hashed form always has (65), so the two encoded forms never meet. The hashed form
is collision-free as far as SHA-256 is. The real id is always the `id` key inside `metadata.json`.

Case is kept (`Org/Model` maps to `Org__Model`). The Hub treats names case-insensitively and never lists two
ids that differ only in case; on a case-insensitive file system (macOS, Windows) a server that did would
see the second one refused by the store (`folder_collision`) rather than overwrite the first.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from hfscraper.constants import (
    API_PATHS,
    EXPAND_PROPERTIES,
    LISTING_EXPAND_PROPERTIES,
    LISTING_REJECTED_EXPAND,
    MAX_PAGE_SIZE,
)

# ---------------------------------------------------------------------------------------------------------
# URLs
# ---------------------------------------------------------------------------------------------------------


def normalize_endpoint(endpoint: str) -> str:
    """Return *endpoint* without a trailing slash, or raise ValueError if it is not an http(s) base URL.

    >>> normalize_endpoint("http://127.0.0.1:8080/")
    'http://127.0.0.1:8080'
    """
    value = (endpoint or "").strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"Hub endpoint {endpoint!r} is not an http(s) base URL such as https://huggingface.co")
    return value


def api_path(repo_type: str) -> str:
    """The listing path of *repo_type* (`/api/models`, ...); ValueError for an unknown type."""
    try:
        return API_PATHS[repo_type]
    except KeyError:
        raise ValueError(f"unknown repository type {repo_type!r} (expected one of {', '.join(API_PATHS)})") from None


def check_expand(repo_type: str, expand: Iterable[str], *, listing: bool = True) -> tuple[str, ...]:
    """Return *expand* as a tuple without duplicates, or raise ValueError naming the first bad value.

    A listing refuses `baseModels`, `childrenModelCount` and `usedStorage` (HTTP 400), so with
    *listing* true these are errors too.

    >>> check_expand("model", ["author", "sha", "author"])
    ('author', 'sha')
    >>> check_expand("model", ["baseModels"])
    Traceback (most recent call last):
    ...
    ValueError: expand value 'baseModels' is only valid on /api/models/{id}, not on the /api/models listing
    """
    api_path(repo_type)
    allowed = LISTING_EXPAND_PROPERTIES[repo_type] if listing else EXPAND_PROPERTIES[repo_type]
    result: list[str] = []
    for value in expand:
        if value in result:
            continue
        if value not in allowed:
            if listing and value in LISTING_REJECTED_EXPAND and value in EXPAND_PROPERTIES[repo_type]:
                path = API_PATHS[repo_type]
                raise ValueError(f"expand value {value!r} is only valid on {path}/{{id}}, not on the {path} listing")
            raise ValueError(f"unknown expand value {value!r} for {repo_type}s (valid: {', '.join(sorted(allowed))})")
        result.append(value)
    return tuple(result)


def accepted_expand(message: object) -> frozenset[str] | None:
    """The `expand` values a Hub 400 says it accepts (`"expand" must be one of [a, b, ...]`), or None when the
    message is not that refusal. Brackets and quotes are optional: older answers listed the values bare.

    >>> sorted(accepted_expand('"expand" must be one of [author, sha]; got "gguff"'))
    ['author', 'sha']
    >>> accepted_expand("Invalid cursor") is None
    True
    """
    if not isinstance(message, str):
        return None
    head, sep, rest = message.partition("must be one of")
    if not sep or "expand" not in head:
        return None
    rest = rest.strip()
    rest = rest[1:].partition("]")[0] if rest.startswith("[") else rest.partition(";")[0]
    values = frozenset(v.strip().strip("'\"") for v in rest.split(","))
    return frozenset(v for v in values if v) or None


def _query(params: Sequence[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k, safe='')}={quote(v, safe=':/,')}" for k, v in params)


def build_list_url(
    endpoint: str,
    repo_type: str,
    *,
    search: str | None = None,
    author: str | None = None,
    filters: Iterable[str] = (),
    sort: str | None = None,
    limit: int | None = None,
    expand: Iterable[str] = (),
) -> str:
    """URL of the first page of a listing. Later pages come only from the `Link: rel="next"` header.

    `filters` are sent as repeated `filter=` parameters (the Hub requires all of them to match) and
    `expand` as repeated `expand=` parameters, the way huggingface_hub sends them.

    >>> build_list_url("https://huggingface.co", "model", author="google", filters=["gguf", "license:mit"],
    ...                sort="createdAt", limit=1000, expand=["author", "sha"])
    'https://huggingface.co/api/models?author=google&filter=gguf&filter=license:mit&sort=createdAt&limit=1000&expand=author&expand=sha'
    >>> build_list_url("http://127.0.0.1:9/", "space", search="a b&c")
    'http://127.0.0.1:9/api/spaces?search=a%20b%26c'
    """
    base = normalize_endpoint(endpoint) + api_path(repo_type)
    params: list[tuple[str, str]] = []
    if search is not None:
        params.append(("search", search))
    if author is not None:
        params.append(("author", author))
    params.extend(("filter", f) for f in filters)
    if sort is not None:
        params.append(("sort", sort))
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValueError(f"limit must be an integer between 1 and {MAX_PAGE_SIZE}, not {limit!r}")
        params.append(("limit", str(limit)))
    params.extend(("expand", e) for e in check_expand(repo_type, expand))
    return f"{base}?{_query(params)}" if params else base


def build_entity_url(endpoint: str, repo_type: str, repo_id: str, *, expand: Iterable[str] = ()) -> str:
    """URL of one entity's info (`/api/models/{id}?expand=...`). Only plain ids (see the module docstring)
    are accepted, so an id can never turn the path into another one (`..`, `?`, `#`).

    >>> build_entity_url("https://huggingface.co", "model", "google/gemma-2b", expand=["baseModels"])
    'https://huggingface.co/api/models/google/gemma-2b?expand=baseModels'
    """
    if not is_plain_id(repo_id):
        raise ValueError(f"refusing to build an API URL for the non-plain id {repo_id!r}")
    url = f"{normalize_endpoint(endpoint)}{api_path(repo_type)}/{repo_id}"
    params = [("expand", e) for e in check_expand(repo_type, expand, listing=False)]
    return f"{url}?{_query(params)}" if params else url


# ---------------------------------------------------------------------------------------------------------
# Link header (RFC 8288)
# ---------------------------------------------------------------------------------------------------------

_OWS = " \t"
_TOKEN_END = frozenset(' \t;,="<>')


@dataclass(frozen=True)
class Link:
    """One link of a `Link` header: its target (as written, not resolved) and its parameters.

    Attributes:
        target: the URI reference between `<` and `>`.
        params: `(name, value)` pairs in header order; names are lowercased, a parameter without `=`
            has the value None. Only the first `rel` counts (RFC 8288 §3.3).
    """

    target: str
    params: tuple[tuple[str, str | None], ...] = ()

    @property
    def rels(self) -> frozenset[str]:
        """The relation types of the first `rel` parameter, lowercased (`rel="next last"` has two)."""
        for name, value in self.params:
            if name == "rel":
                return frozenset((value or "").lower().split())
        return frozenset()


def _skip_to_next_link(s: str, i: int) -> int:
    """Index of the comma that ends the current (malformed) link value, outside quotes and `<...>`."""
    quoted = False
    angle = False
    while i < len(s):
        c = s[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif angle:
            angle = c != ">"
        elif c == '"':
            quoted = True
        elif c == "<":
            angle = True
        elif c == ",":
            return i
        i += 1
    return i


def _read_quoted(s: str, i: int) -> tuple[str, int]:
    """Read the quoted-string starting at `s[i] == '"'`; return its unescaped value and the next index."""
    out: list[str] = []
    i += 1
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            out.append(s[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    return "".join(out), i  # unterminated: take what is there


def _read_token(s: str, i: int) -> tuple[str, int]:
    start = i
    while i < len(s) and s[i] not in _TOKEN_END:
        i += 1
    return s[start:i], i


def _skip(s: str, i: int, chars: str = _OWS) -> int:
    while i < len(s) and s[i] in chars:
        i += 1
    return i


def parse_link_header(header_value: str | Iterable[str] | None) -> list[Link]:
    """Parse a `Link` header (one string, or several header lines) into `Link` values.

    Commas inside `<...>` and inside quoted strings do not split links; malformed link values are
    skipped, never fatal.

    >>> [(l.target, sorted(l.rels)) for l in parse_link_header('<https://h/a?x=1,2>; rel="next last", </b>;rel=prev')]
    [('https://h/a?x=1,2', ['last', 'next']), ('/b', ['prev'])]
    """
    if header_value is None:
        return []
    s = header_value if isinstance(header_value, str) else ", ".join(header_value)
    links: list[Link] = []
    i = 0
    n = len(s)
    while i < n:
        i = _skip(s, i, _OWS + ",")
        if i >= n:
            break
        if s[i] != "<":
            i = _skip_to_next_link(s, i)
            continue
        end = s.find(">", i + 1)
        if end < 0:
            break
        target = s[i + 1 : end].strip()
        i = end + 1
        params: list[tuple[str, str | None]] = []
        malformed = False
        while True:
            i = _skip(s, i)
            if i >= n or s[i] == ",":
                break
            if s[i] != ";":
                malformed = True
                i = _skip_to_next_link(s, i)
                break
            i = _skip(s, i + 1)
            name, i = _read_token(s, i)
            i = _skip(s, i)
            value: str | None = None
            if i < n and s[i] == "=":
                i = _skip(s, i + 1)
                if i < n and s[i] == '"':
                    value, i = _read_quoted(s, i)
                else:
                    value, i = _read_token(s, i)
            if name:
                params.append((name.lower(), value))
        if not malformed:
            # RFC 8288 §3.3: occurrences of rel after the first are ignored.
            seen_rel = False
            kept: list[tuple[str, str | None]] = []
            for name, value in params:
                if name == "rel":
                    if seen_rel:
                        continue
                    seen_rel = True
                kept.append((name, value))
            links.append(Link(target, tuple(kept)))
    return links


def parse_link_next(header_value: str | Iterable[str] | None) -> str | None:
    """The target of the first `rel="next"` link, or None (last page, or no usable header).

    >>> parse_link_next('<https://huggingface.co/api/models?limit=2&cursor=eyJ9%3D>; rel="next"')
    'https://huggingface.co/api/models?limit=2&cursor=eyJ9%3D'
    >>> parse_link_next('<https://h/p?a=1,2>; rel="prev", <https://h/n?a=3,4>; title="x, y"; rel="next"')
    'https://h/n?a=3,4'
    >>> parse_link_next('<https://h/n>; rel=nextpage') is None
    True
    """
    for link in parse_link_header(header_value):
        if "next" in link.rels and link.target:
            return link.target
    return None


# ---------------------------------------------------------------------------------------------------------
# RateLimit / RateLimit-Policy (IETF draft-ietf-httpapi-ratelimit-headers-09 subset, as the Hub sends it)
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateLimit:
    """The `RateLimit` header: `"api";r=499;t=293`.

    Attributes:
        bucket: the quota's name (`api`, `resolvers`, `pages`).
        remaining: requests left in the current window.
        reset: seconds until the window resets.
    """

    bucket: str
    remaining: int
    reset: int


@dataclass(frozen=True)
class RateLimitPolicy:
    """The `RateLimit-Policy` header: `"fixed window";"api";q=500;w=300`.

    Attributes:
        bucket: the quota's name (`api`, `resolvers`, `pages`).
        quota: requests allowed per window.
        window: the window's length in seconds.
        policy: the policy's name (`fixed window`), or None when the header names only the bucket.
    """

    bucket: str
    quota: int
    window: int
    policy: str | None = None


def _split_outside_quotes(s: str, sep: str) -> list[str]:
    parts: list[str] = []
    buf: list[str] = []
    quoted = False
    i = 0
    while i < len(s):
        c = s[i]
        if quoted and c == "\\" and i + 1 < len(s):
            buf.append(s[i : i + 2])
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        if c == sep and not quoted:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(c)
        i += 1
    parts.append("".join(buf))
    return parts


def _parse_sf_member(member: str) -> tuple[list[str], dict[str, str]]:
    """Split one list member into its bare items (quoted strings or tokens) and its `key=value` params."""
    bare: list[str] = []
    params: dict[str, str] = {}
    for raw_piece in _split_outside_quotes(member, ";"):
        piece = raw_piece.strip(_OWS)
        if not piece:
            continue
        if piece.startswith('"'):
            bare.append(_read_quoted(piece, 0)[0])
        elif "=" in piece:
            key, _, value = piece.partition("=")
            value = value.strip(_OWS)
            if value.startswith('"'):
                value = _read_quoted(value, 0)[0]
            params.setdefault(key.strip(_OWS).lower(), value)
        else:
            bare.append(piece)
    return bare, params


def _nonnegative_int(value: str | None) -> int | None:
    if value is None or not value.isascii() or not value.isdigit():
        return None
    return int(value)


# Parsed once per distinct value: every Hub response carries both headers, the policy mostly the same text.
@functools.lru_cache(maxsize=256)
def parse_ratelimit(header: str | None) -> RateLimit | None:
    """Parse a `RateLimit` header; None when it is absent or unusable. With several members, the first
    complete one wins.

    >>> parse_ratelimit('"api";r=499;t=293')
    RateLimit(bucket='api', remaining=499, reset=293)
    >>> parse_ratelimit('"resolvers" ; r=0 ; t=55')
    RateLimit(bucket='resolvers', remaining=0, reset=55)
    >>> parse_ratelimit('limit=100, remaining=50, reset=5') is None
    True
    """
    if not header:
        return None
    for member in _split_outside_quotes(header, ","):
        bare, params = _parse_sf_member(member)
        remaining = _nonnegative_int(params.get("r"))
        reset = _nonnegative_int(params.get("t"))
        if bare and remaining is not None and reset is not None:
            return RateLimit(bucket=bare[0], remaining=remaining, reset=reset)
    return None


@functools.lru_cache(maxsize=64)
def parse_ratelimit_policy(header: str | None) -> RateLimitPolicy | None:
    """Parse a `RateLimit-Policy` header; None when it is absent or unusable.

    >>> parse_ratelimit_policy('"fixed window";"api";q=500;w=300')
    RateLimitPolicy(bucket='api', quota=500, window=300, policy='fixed window')
    >>> parse_ratelimit_policy('"pages";q=100;w=300')
    RateLimitPolicy(bucket='pages', quota=100, window=300, policy=None)
    >>> parse_ratelimit_policy('"api";q=500') is None
    True
    """
    if not header:
        return None
    for member in _split_outside_quotes(header, ","):
        bare, params = _parse_sf_member(member)
        quota = _nonnegative_int(params.get("q"))
        window = _nonnegative_int(params.get("w"))
        if not bare or quota is None or window is None:
            continue
        if len(bare) >= 2:
            return RateLimitPolicy(bucket=bare[1], quota=quota, window=window, policy=bare[0])
        return RateLimitPolicy(bucket=bare[0], quota=quota, window=window)
    return None


# ---------------------------------------------------------------------------------------------------------
# Entity folder names (the rule is in the module docstring)
# ---------------------------------------------------------------------------------------------------------

MAX_ID_LENGTH = 1000
MAX_ENCODED_NAME_LENGTH = 200
_PLAIN_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?")
_WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(10)} | {f"LPT{i}" for i in range(10)}
)


class HostileIdError(ValueError):
    """A repository id that must not become a folder (see the module docstring).

    Attributes:
        reason: a short slug for stats and logs (`empty`, `too_long`, `control_character`, ...).
        repo_id: the offending value (as received; may be any type).
    """

    def __init__(self, reason: str, repo_id: object, detail: str) -> None:
        super().__init__(f"refused repository id ({reason}): {detail}")
        self.reason = reason
        self.repo_id = repo_id


def is_plain_id(repo_id: object) -> bool:
    """True when *repo_id* maps to a readable folder (`owner__name` or `name`).

    >>> is_plain_id("google/gemma-2b"), is_plain_id("gpt2"), is_plain_id("../x"), is_plain_id("a/b__c")
    (True, True, False, False)
    """
    if not isinstance(repo_id, str):
        return False
    parts = repo_id.split("/")
    if len(parts) > 2:
        return False
    for part in parts:
        if not _PLAIN_PART.fullmatch(part) or "__" in part:
            return False
    return not (len(parts) == 1 and parts[0].split(".", 1)[0].upper() in _WINDOWS_DEVICES)


def check_repo_id(repo_id: object) -> str:
    """Return *repo_id* if it may be stored at all (plain or encodable), else raise HostileIdError."""
    if not isinstance(repo_id, str):
        raise HostileIdError("not_a_string", repo_id, f"expected a string, got {type(repo_id).__name__}")
    if not repo_id:
        raise HostileIdError("empty", repo_id, "the id is empty")
    if len(repo_id) > MAX_ID_LENGTH:
        raise HostileIdError("too_long", repo_id, f"{len(repo_id)} characters (at most {MAX_ID_LENGTH})")
    if repo_id.isascii() and repo_id.isprintable():
        return repo_id  # no control character, no surrogate: the common case, without a look at each character
    for position, char in enumerate(repo_id):
        if unicodedata.category(char) == "Cc":
            raise HostileIdError(
                "control_character", repo_id, f"control character U+{ord(char):04X} at position {position}"
            )
        if 0xD800 <= ord(char) <= 0xDFFF:
            raise HostileIdError("invalid_unicode", repo_id, f"lone surrogate U+{ord(char):04X} at position {position}")
    return repo_id


def encode_id(repo_id: str) -> str:
    """The encoded folder name of an id (rule 2), whether or not the id is plain.

    >>> encode_id("../x")
    '~fyxc66a'
    >>> len(encode_id("x" * 300)), encode_id("x" * 300)[:2]
    (66, '~h')
    """
    raw = check_repo_id(repo_id).encode("utf-8")
    name = "~" + base64.b32encode(raw).decode("ascii").rstrip("=").lower()
    if len(name) > MAX_ENCODED_NAME_LENGTH:
        name = "~h" + hashlib.sha256(raw).hexdigest()
    return name


def entity_folder_name(repo_id: object) -> str:
    """The folder name of a repository id; raises HostileIdError for ids that are refused.

    >>> entity_folder_name("openai-community/gpt2"), entity_folder_name("gpt2")
    ('openai-community__gpt2', 'gpt2')
    >>> entity_folder_name("../../etc/passwd")
    '~fyxc6lrof5sxiyzpobqxg43xmq'
    >>> try:
    ...     entity_folder_name("a\\x00b")
    ... except HostileIdError as exc:
    ...     print(exc.reason)
    control_character
    """
    if is_plain_id(repo_id):
        assert isinstance(repo_id, str)
        return repo_id.replace("/", "__")
    return encode_id(check_repo_id(repo_id))


def is_encoded_folder_name(folder: str) -> bool:
    """True for names produced by rule 2 (`~...`)."""
    return folder.startswith("~")
