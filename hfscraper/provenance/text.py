"""Text that stays well-formed in every provenance file, whatever id or value the crawl accepted.

The crawl accepts ids the real Hub never serves but a model card may name (`check_repo_id` refuses only controls
and lone surrogates, so U+FFFE and U+FFFF pass), and node attributes are whatever the Hub's JSON held:

- `xml_safe` / `xml_unsafe`: GraphML text and attributes. XML 1.0 forbids C0 controls other than tab, newline and
  CR, lone surrogates, U+FFFE and U+FFFF; each is written `\\uXXXX`, and the backslash itself `\\\\`, so the mapping
  is reversible and two different ids never become one. Node ids, edge endpoints and every value go through the
  same function: an edge's endpoints name exactly the nodes written.
- `json_text`: JSON as UTF-8. `json.dumps(ensure_ascii=False)` keeps a lone surrogate as a raw code point, which
  UTF-8 cannot encode; it is written as its `\\udXXX` escape instead (the same string once parsed).
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any, Final

#: What `xml_safe` escapes: every character XML 1.0 forbids, and the backslash that starts its escapes.
_XML_ESCAPED: Final = re.compile("[\\\\\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_XML_UNESCAPED: Final = re.compile(r"\\(\\|u[0-9a-f]{4})")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def xml_safe(text: str) -> str:
    """*text* with only characters XML 1.0 allows (see the module docstring); text without a backslash or a
    forbidden character (every id the real Hub serves) is returned unchanged."""
    return _XML_ESCAPED.sub(lambda m: "\\\\" if m.group() == "\\" else f"\\u{ord(m.group()):04x}", text)


def xml_unsafe(text: str) -> str:
    """The text `xml_safe` was given."""
    return _XML_UNESCAPED.sub(lambda m: "\\" if m.group(1) == "\\" else chr(int(m.group(1)[1:], 16)), text)


@functools.lru_cache(maxsize=16)
def _encoder(options: tuple[tuple[str, Any], ...]) -> json.JSONEncoder:
    return json.JSONEncoder(ensure_ascii=False, **dict(options))


def json_text(value: Any, **options: Any) -> str:
    """`json.dumps(value, ensure_ascii=False, **options)` that encodes as UTF-8: a lone surrogate (only ever inside
    a string literal) becomes its `\\uXXXX` escape. One encoder per set of options (`json.dumps` builds a new one
    for each call given options: the rebuild writes millions of lines)."""
    text = _encoder(tuple(sorted(options.items()))).encode(value)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) if _SURROGATE.search(text) else text
