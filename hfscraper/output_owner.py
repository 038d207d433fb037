"""Which crawl state and which Hub an output folder belongs to: `<output>/.hfscraper-output.json`.

One output folder has one crawl state (one state file) and mirrors one Hub. Two state files writing into one
folder would race on its entity folders and CARs, and a full sweep of another Hub would mark every entity of
this one deleted. So the first crawl of an output folder records, in a small file of its own at the folder's
top level (beside `models/`, `datasets/`, ...; never inside an entity folder, so no entity, prune, export or
CID ever sees it), the state file that owns the folder and the Hub it mirrors (the endpoint, normalised and
without credentials):

    {"format": 1, "state_file": "/abs/state/hfscraper-output-1a2b3c4d.sqlite3",
     "endpoint": "https://huggingface.co", "claimed_at": "2026-01-01T00:00:00.000Z"}

A later crawl with another state file, or of another endpoint, is refused before it writes anything (`refusal`:
`scrapy crawl` and `crawlall` check it before a crawler is built, the checkpoint extension again under the
listing lock). On purpose:

- HFSCRAPER_STATE_ADOPT_OUTPUT: this crawl's state file takes the folder over (the state folder was moved or
  restored from a backup); the record then names it.
- HFSCRAPER_CRAWL_ALLOW_OTHER_ENDPOINT: crawl another endpoint into the folder; the record then names that
  endpoint, so the next plain crawl of the old one is refused in turn.

The record is written atomically; the first one with a hard link, so of two crawls claiming a new folder at
once exactly one wins and the other is refused (or agrees with it).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit, urlunsplit

from hfscraper.fsutil import TEMP_PREFIX, write_atomic

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

#: The record's name, at the top level of the output folder.
OWNER_FILE: Final = ".hfscraper-output.json"
OWNER_FORMAT: Final = 1
#: Finish reasons of a crawl refused by the record.
OTHER_STATE_REASON: Final = "output_owned"
OTHER_ENDPOINT_REASON: Final = "other_endpoint"
ALLOW_OTHER_ENDPOINT: Final = "HFSCRAPER_CRAWL_ALLOW_OTHER_ENDPOINT"
ADOPT_OUTPUT: Final = "HFSCRAPER_STATE_ADOPT_OUTPUT"

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def public_endpoint(endpoint: str) -> str:
    """*endpoint* as recorded and shown: lower-case scheme and host, no credentials, no default port, no trailing
    slash (`https://user:tok@HF.co:443/` -> `https://hf.co`)."""
    parts = urlsplit((endpoint or "").strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


def endpoint_of(settings: BaseSettings) -> str:
    """The Hub endpoint these settings crawl (as the spiders resolve it), in its recorded form."""
    from hfscraper import constants

    return public_endpoint(settings.get("HFSCRAPER_HUB_ENDPOINT") or constants.HF_ENDPOINT)


@dataclass(frozen=True)
class OutputOwner:
    state_file: str
    endpoint: str


class OwnerRecordError(Exception):
    """The record exists but cannot be read (its one-line text says which file and what to do)."""


def read_owner(output_dir: Path) -> OutputOwner | None:
    """The folder's record, or None when there is none yet."""
    path = output_dir / OWNER_FILE
    try:
        data: Any = json.loads(path.read_bytes())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as exc:
        raise OwnerRecordError(f"cannot read {path} ({exc}); remove it to let the next crawl record it anew") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("state_file"), str)
        or not isinstance(data.get("endpoint"), str)
    ):
        raise OwnerRecordError(f"{path} is not an output record; remove it to let the next crawl record it anew")
    return OutputOwner(state_file=data["state_file"], endpoint=data["endpoint"])


def refusal(
    output_dir: Path,
    owner: OutputOwner | None,
    state_file: Path,
    endpoint: str,
    *,
    allow_other_endpoint: bool,
    adopt: bool,
) -> tuple[str, str] | None:
    """`(finish reason, one-line message)` when a crawl with this state file and endpoint must not write into
    the folder, else None."""
    if owner is None:
        return None
    if owner.state_file != str(state_file) and not adopt:
        return OTHER_STATE_REASON, (
            f"output folder {output_dir} belongs to the crawl state {owner.state_file}, not to {state_file} "
            f"(another HFSCRAPER_STATE_DIR): use the same state folder, or set {ADOPT_OUTPUT}=true if it was "
            "moved on purpose"
        )
    if owner.endpoint != endpoint and not allow_other_endpoint:
        return OTHER_ENDPOINT_REASON, (
            f"output folder {output_dir} mirrors {owner.endpoint}, not {endpoint}: crawl {endpoint} into another "
            f"HFSCRAPER_OUTPUT_DIR, or set {ALLOW_OTHER_ENDPOINT}=true to crawl it into this one on purpose"
        )
    return None


def check_settings(settings: BaseSettings) -> tuple[str, str] | None:
    """The refusal (see `refusal`) for a crawl with these settings, without writing anything."""
    from hfscraper.extensions.checkpoint import state_location

    state_file, output_dir = state_location(settings)
    try:
        owner = read_owner(output_dir)
    except OwnerRecordError as exc:
        return OTHER_STATE_REASON, str(exc)
    return refusal(
        output_dir,
        owner,
        state_file,
        endpoint_of(settings),
        allow_other_endpoint=settings.getbool(ALLOW_OTHER_ENDPOINT, False),
        adopt=settings.getbool(ADOPT_OUTPUT, False),
    )


def claim(
    output_dir: Path, state_file: Path, endpoint: str, *, allow_other_endpoint: bool, adopt: bool
) -> tuple[str, str] | None:
    """Record that this state file and endpoint own the folder (creating it), unless `refusal` says no; returns
    the refusal, if any. Call it while holding the listing lock, right before the crawl writes anything."""
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        owner = read_owner(output_dir)
    except OwnerRecordError as exc:
        return OTHER_STATE_REASON, str(exc)
    refused = refusal(output_dir, owner, state_file, endpoint, allow_other_endpoint=allow_other_endpoint, adopt=adopt)
    if refused is not None:
        return refused
    mine = OutputOwner(state_file=str(state_file), endpoint=endpoint)
    if owner == mine:
        return None
    data = _record_bytes(mine)
    path = output_dir / OWNER_FILE
    if owner is not None:  # taken over on purpose (adopt, or another endpoint allowed)
        write_atomic(path, data)
        return None
    # The first record: a hard link fails if another crawl recorded itself meanwhile; that one's record counts.
    tmp = output_dir / f"{TEMP_PREFIX}{os.getpid()}-owner.part"
    tmp.write_bytes(data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return claim(output_dir, state_file, endpoint, allow_other_endpoint=allow_other_endpoint, adopt=adopt)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return None


def _record_bytes(owner: OutputOwner) -> bytes:
    from hfscraper.state import utc_now

    record = {"format": OWNER_FORMAT, "state_file": owner.state_file, "endpoint": owner.endpoint,
              "claimed_at": utc_now()}  # fmt: skip
    return (json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
