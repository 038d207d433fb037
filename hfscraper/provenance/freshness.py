"""Whether `output_dir/provenance/` is up to date with the crawl state: three keys of the state's `meta` table.

- `provenance_generation`: bumped by every crawl run that records relations (`mark_stale`, when the provenance
  pipeline opens): from then on the state may hold relations the files lack.
- `provenance_rebuild`: `{"pid", "started"}` while a rebuild runs (`begin_rebuild`); left behind by a killed one.
- `provenance_built`: `{"generation", "at", "nodes", "edges", "files"}` of the last rebuild whose complete set
  of files replaced the folder (`finish_rebuild`, written only after the swap): the generation it read, in the
  same snapshot as the rows it wrote, and the names of the files it wrote (the Parquet files, and the text files
  asked for).

`outputs_status` reads them for `scrapy status`: `up to date`, `being rebuilt` (a live rebuild process),
`out of date` (relations recorded since the last complete rebuild: a crawl ran, and its rebuild was killed or
failed), or `missing` (no complete rebuild yet, or the folder lost its files); None when this state never
recorded relations.
No pyarrow here: `scrapy status` imports this module.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from hfscraper.fsutil import process_alive

if TYPE_CHECKING:
    from hfscraper.state import StateStore

#: The folder under the output folder.
PROVENANCE_FOLDER: Final = "provenance"
#: The files every complete rebuild writes there (`hfscraper.provenance.columnar`).
NODES_PARQUET: Final = "provenance_nodes.parquet"
EDGES_PARQUET: Final = "provenance_edges.parquet"
EDGES_BY_TARGET_PARQUET: Final = "provenance_edges_by_target.parquet"
OUTPUT_FILES: Final = (NODES_PARQUET, EDGES_PARQUET, EDGES_BY_TARGET_PARQUET)
#: The whole-graph text files, written only when asked (HFSCRAPER_PROVENANCE_GRAPH_FILES), by format name.
GRAPH_JSON: Final = "provenance_graph.json"
GRAPH_GRAPHML: Final = "provenance_graph.graphml"
ENTITY_RELATIONSHIPS: Final = "entity_relationships.json"
GRAPH_FILES: Final = {"json": GRAPH_JSON, "graphml": GRAPH_GRAPHML, "relationships": ENTITY_RELATIONSHIPS}
#: What a rebuild by an older version wrote (its record names no files).
_LEGACY_FILES: Final = (GRAPH_JSON, GRAPH_GRAPHML, EDGES_PARQUET, ENTITY_RELATIONSHIPS)

GENERATION_KEY: Final = "provenance_generation"
REBUILD_KEY: Final = "provenance_rebuild"
BUILT_KEY: Final = "provenance_built"

UP_TO_DATE: Final = "up to date"
BEING_REBUILT: Final = "being rebuilt"
OUT_OF_DATE: Final = "out of date"
MISSING: Final = "missing"


def provenance_dir(output_dir: Path) -> Path:
    return Path(output_dir) / PROVENANCE_FOLDER


def mark_stale(store: StateStore) -> int:
    """Bump the generation (the relations may change from now on); the new generation."""
    with store.transaction() as db:
        generation = read_generation(db) + 1
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (GENERATION_KEY, str(generation)))
    return generation


def read_generation(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (GENERATION_KEY,)).fetchone()
    try:
        return int(row[0]) if row else 0
    except ValueError:
        return 0


def begin_rebuild(store: StateStore, when: str) -> None:
    with store.transaction() as db:
        value = json.dumps({"pid": os.getpid(), "started": when})
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (REBUILD_KEY, value))


def finish_rebuild(
    store: StateStore, generation: int, when: str, nodes: int, edges: int, files: tuple[str, ...] = OUTPUT_FILES
) -> None:
    """Record a complete rebuild of *generation* that wrote *files* (after they replaced the folder)."""
    with store.transaction() as db:
        value = json.dumps({"generation": generation, "at": when, "nodes": nodes, "edges": edges, "files": files})
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (BUILT_KEY, value))
        db.execute("DELETE FROM meta WHERE key = ?", (REBUILD_KEY,))


def rebuild_running(pid: object) -> bool:
    """Whether the rebuild of pid *pid* still runs: a live process, not a zombie (a killed child whose parent died
    too may wait to be reaped), and where /proc tells, one whose command line names the rebuild (not a process that
    reused the pid)."""
    if not isinstance(pid, int) or pid <= 0 or not process_alive(pid):
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust the pid
    state = stat.rpartition(b")")[2].split()[:1]
    return state != [b"Z"] and b"hfscraper.provenance" in cmdline


def _json(meta: dict[str, str], key: str) -> dict[str, Any] | None:
    try:
        value = json.loads(meta[key])
    except (KeyError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def outputs_status(store: StateStore, output_dir: Path | None) -> dict[str, Any] | None:
    """The provenance files' state for `scrapy status` (see the module docstring); None when not in use."""
    meta = store.meta()
    try:
        wanted = int(meta.get(GENERATION_KEY, "0"))
    except ValueError:
        wanted = 0
    built = _json(meta, BUILT_KEY)
    rebuild = _json(meta, REBUILD_KEY)
    if not wanted and built is None and rebuild is None:
        return None
    folder = provenance_dir(output_dir) if output_dir is not None else None
    files = built.get("files") if built is not None else None
    if not isinstance(files, list) or not all(isinstance(name, str) and "/" not in name for name in files):
        files = list(_LEGACY_FILES)
    present = folder is not None and all((folder / name).is_file() for name in files)
    if rebuild is not None and rebuild_running(rebuild.get("pid")):
        state = BEING_REBUILT
    elif built is None or not present:
        state = MISSING
    elif int(built.get("generation") or 0) < wanted:
        state = OUT_OF_DATE
    else:
        state = UP_TO_DATE
    return {
        "state": state,
        "folder": str(folder) if folder is not None else None,
        "generation": wanted,
        "built": built,
        "rebuild_started": rebuild.get("started") if rebuild else None,
        "complete": state == UP_TO_DATE,
    }


def render_status(report: dict[str, Any]) -> str:
    """One line for `scrapy status`."""
    state, built = report["state"], report["built"]
    line = f"provenance: {state} ({report['folder']})"
    if built:
        line += f"; last complete rebuild {built.get('at')}: {built.get('nodes')} nodes, {built.get('edges')} edges"
    if state == BEING_REBUILT:
        line += f"; rebuild started {report['rebuild_started']}"
    elif state != UP_TO_DATE:
        line += "; the next crawl rebuilds it (or `python -m hfscraper.provenance rebuild`)"
    return line
