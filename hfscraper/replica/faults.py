"""Fault injection for the Hub replica: the failures a crawler must survive.

A rule is a JSON object::

    {"kind": "5xx", "rate": 0.2, "path": "^/api/models", "count": 3, "origin": "hub"}

``kind`` is required; ``rate`` (0..1, default 1) is the probability that the
rule fires on a matching request; ``path`` is a regular expression searched in
the request's path plus query string (null: every path); ``count`` caps how often
the rule fires (null: no cap); ``origin`` is ``"hub"``, ``"cdn"``, ``"viewer"`` (the dataset
viewer) or null (all three).
Kind-specific options:

==================  ==========================================================================
kind                what the client sees
==================  ==========================================================================
``latency``         the response is delayed by ``ms`` (default 250) milliseconds; not terminal:
                    every firing latency rule adds up, and another rule may still fire
``5xx``             ``status`` (default: one of 502, 503, 500) with a CloudFront-like HTML page
                    or a Hub JSON error body (``body``: ``"html"``/``"json"``, default: either)
``reset``           status line, headers and ``fraction`` (default 0.5) of the body, then a TCP
                    reset (SO_LINGER 0) mid-response
``truncate``        the full Content-Length is declared, ``fraction`` (default 0.5) of the body
                    is sent, then the connection is closed cleanly
``malformed_json``  200 with ``application/json`` whose body is cut and is not valid JSON
                    (only on JSON API responses)
``html200``         200 ``text/html`` error page in place of the API answer (what a captive
                    portal or a misrouted proxy returns)
``not_a_list``      200 JSON object instead of the list on ``/api/models|datasets|spaces``
``corrupt``         file bytes altered in place, same size and headers (resolve-cache and CDN
                    downloads), so only a checksum catches it
``expire_cursor``   a listing or tree request that carries ``cursor=`` answers 400
                    ``{"error": "Invalid cursor: it has expired, restart the listing"}`` with
                    ``X-Error-Code: InvalidCursor``.  The real Hub's answer to a stale keyset
                    cursor is not recorded anywhere we know of; a 400 with a JSON ``error`` is
                    the shape every other Hub validation error has, and it is not retryable,
                    which is the case a crawler must handle (restart the chain)
``redirect_loop``   307 to the very same URL (relative ``Location``), forever
``429``             429 with ``RateLimit`` saying ``r=0;t=<reset_seconds>`` (default 1) and the
                    bucket's ``RateLimit-Policy``, although the window is not exhausted (the Hub's
                    granular per-action limits do this too); no ``Retry-After`` unless
                    ``retry_after`` is given (then ``Retry-After: <retry_after>``, and
                    ``reset_seconds`` defaults to it), as a proxy in front of the Hub may add one
==================  ==========================================================================

Decisions are deterministic for a given seed and do not depend on how requests
from different URLs interleave: whether rule *i* fires on the *n*-th evaluation
of URL *u* is a pure function of ``(seed, i, u, n)``.  So a retried request gets
a fresh draw (and can succeed), and a rerun with the same seed fails the same way.

On the command line a rule is ``KIND[=PARAM]:RATE[:PATH_REGEX]``, where PARAM
sets the kind's main option (``latency=800``, ``5xx=503``, ``429=5`` (``reset_seconds``),
``truncate=0.1``), or a JSON object as above.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hfscraper.replica.responses import Reply, error_reply

if TYPE_CHECKING:
    from hfscraper.replica.ratelimit import RateLimitState

KINDS = (
    "latency",
    "5xx",
    "reset",
    "truncate",
    "malformed_json",
    "html200",
    "not_a_list",
    "corrupt",
    "expire_cursor",
    "redirect_loop",
    "429",
)

# The option that `KIND=PARAM` on the command line sets, with its type.
_MAIN_PARAM: dict[str, tuple[str, type]] = {
    "latency": ("ms", float),
    "5xx": ("status", int),
    "429": ("reset_seconds", int),
    "reset": ("fraction", float),
    "truncate": ("fraction", float),
}
_OPTION_KEYS = ("ms", "status", "body", "retry_after", "reset_seconds", "fraction")
_KNOWN_KEYS = {"kind", "rate", "path", "count", "origin", *_OPTION_KEYS}


@dataclass
class FaultRule:
    """One validated rule plus how often it has fired."""

    kind: str
    rate: float = 1.0
    path: str | None = None
    count: int | None = None
    origin: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    fired: int = 0
    _regex: re.Pattern[str] | None = field(default=None, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultRule:
        if not isinstance(data, dict):
            raise ValueError(f"a fault rule must be a JSON object, not {data!r}")
        unknown = set(data) - _KNOWN_KEYS
        if unknown:
            raise ValueError(f"unknown fault rule keys {sorted(unknown)}; known: {sorted(_KNOWN_KEYS)}")
        kind = str(data.get("kind", ""))
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(KINDS)}")
        rate = float(data.get("rate", 1.0) if data.get("rate") is not None else 1.0)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate must be within 0..1, got {rate}")
        path = data.get("path")
        regex = None
        if path is not None:
            try:
                regex = re.compile(str(path))
            except re.error as exc:
                raise ValueError(f"bad fault path regex {path!r}: {exc}") from exc
        count = data.get("count")
        if count is not None:
            count = int(count)
            if count < 0:
                raise ValueError("fault count must be >= 0 or null")
        origin = data.get("origin")
        if origin not in (None, "hub", "cdn", "viewer"):
            raise ValueError(f"fault origin must be 'hub', 'cdn', 'viewer' or null, got {origin!r}")
        options = {k: data[k] for k in _OPTION_KEYS if k in data}
        if "status" in options and not 500 <= int(options["status"]) <= 599:
            raise ValueError("5xx status must be within 500..599")
        if "fraction" in options and not 0.0 <= float(options["fraction"]) < 1.0:
            raise ValueError("fraction must be within [0, 1)")
        if "body" in options and options["body"] not in ("html", "json"):
            raise ValueError("5xx body must be 'html' or 'json'")
        return cls(kind=kind, rate=rate, path=path, count=count, origin=origin, options=options, _regex=regex)

    @classmethod
    def parse_cli(cls, text: str) -> FaultRule:
        """Parse ``KIND[=PARAM]:RATE[:PATH_REGEX]`` or a JSON object.

        >>> FaultRule.parse_cli("5xx:0.25:^/api/models").to_dict()["path"]
        '^/api/models'
        >>> FaultRule.parse_cli("latency=800:1").options
        {'ms': 800.0}
        """
        text = text.strip()
        if text.startswith("{"):
            return cls.from_dict(json.loads(text))
        parts = text.split(":", 2)  # the regex may itself contain ':'
        head = parts[0]
        data: dict[str, Any] = {}
        if "=" in head:
            kind, param = head.split("=", 1)
            if kind not in _MAIN_PARAM:
                raise ValueError(f"fault kind {kind!r} takes no =PARAM")
            name, typ = _MAIN_PARAM[kind]
            data[name] = typ(param)
        else:
            kind = head
        data["kind"] = kind
        if len(parts) > 1 and parts[1] != "":
            data["rate"] = float(parts[1])
        if len(parts) > 2 and parts[2] != "":
            data["path"] = parts[2]
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rate": self.rate,
            "path": self.path,
            "count": self.count,
            "origin": self.origin,
            **self.options,
            "fired": self.fired,
        }

    def matches(self, origin: str, target: str) -> bool:
        if self.origin is not None and self.origin != origin:
            return False
        if self.count is not None and self.fired >= self.count:
            return False
        return self._regex is None or self._regex.search(target) is not None


@dataclass(frozen=True)
class Firing:
    """A rule that fired on one request, with a per-request random value for its variants."""

    rule: FaultRule
    draw: float

    @property
    def kind(self) -> str:
        return self.rule.kind

    def option(self, name: str, default: Any) -> Any:
        return self.rule.options.get(name, default)


class FaultInjector:
    """Holds the rules and decides, per request, which of them fire."""

    def __init__(self, rules: list[FaultRule] | None = None, seed: int = 0) -> None:
        self.seed = seed
        self.rules: list[FaultRule] = list(rules or [])
        self._seen: dict[tuple[int, str], int] = {}

    def replace(self, rules: list[FaultRule]) -> None:
        self.rules = list(rules)
        self._seen.clear()

    def candidates(self, origin: str, method: str, target: str) -> list[Firing]:
        """Rules that roll a hit for this request, in rule order (not yet counted as fired).

        The caller decides which of them apply to the response and calls :meth:`fire`.
        """
        hits: list[Firing] = []
        key = f"{origin} {method} {target}"
        for index, rule in enumerate(self.rules):
            if rule.rate <= 0.0 or not rule.matches(origin, target):
                continue
            nth = self._seen.get((index, key), 0)
            self._seen[(index, key)] = nth + 1
            roll = self._uniform(index, key, nth, "roll")
            if roll < rule.rate:
                hits.append(Firing(rule, self._uniform(index, key, nth, "draw")))
        return hits

    @staticmethod
    def fire(firing: Firing) -> None:
        firing.rule.fired += 1

    def _uniform(self, index: int, key: str, nth: int, salt: str) -> float:
        digest = hashlib.blake2b(f"{self.seed}\0{index}\0{key}\0{nth}\0{salt}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64


def parse_rules_json(payload: Any) -> list[FaultRule]:
    """Validate the body of ``POST /_replica/faults`` (a JSON list of rule objects)."""
    if not isinstance(payload, list):
        raise ValueError("the fault rules must be a JSON list of objects")
    return [FaultRule.from_dict(item) for item in payload]


def fault_429(firing: Firing, state: RateLimitState | None, always_retry_after: bool = False) -> Reply:
    """The reply of a ``429`` fault: a per-action limit's 429 while the window still has budget.

    *always_retry_after* (the replica's ``--retry-after``) adds ``Retry-After: <reset_seconds>`` when the
    rule names none.
    """
    retry_after = firing.option("retry_after", None)
    reset = int(firing.option("reset_seconds", retry_after if retry_after is not None else 1))
    if retry_after is None and always_retry_after:
        retry_after = reset
    bucket = state.bucket if state is not None else "api"
    quota = state.quota if state is not None else 0
    window = state.window if state is not None else 0
    headers = [
        ("RateLimit", f'"{bucket}";r=0;t={reset}'),
        ("RateLimit-Policy", f'"fixed window";"{bucket}";q={quota};w={window}'),
    ]
    if retry_after is not None:
        headers.insert(0, ("Retry-After", str(int(retry_after))))
    return error_reply(429, "You have been rate-limited; you can retry this action in about a second.", headers=headers)
