"""An output folder's files as comparable bytes: CAR packs as the entities they hold.

Packs are named by time and process and group whatever entities one batch held, so two crawls that stored the same
entities have different pack files. `output_files` lists each pack's entities instead, one entry per root with that
entity's own CAR (`car/packs/<type>/<root>`): equal exactly when the same entities are stored the same way.
Ranges whose root no entity folder names any more (an entity stored again since, its old range left in a pack that
still holds live ones until compaction) are garbage, not content, and are left out.
"""

from __future__ import annotations

from pathlib import Path

from hfscraper.ipfs.packs import PACK_FOLDER, pack_entities


def output_files(root: Path, *, skip: tuple[str, ...] = (), scratch: bool = False) -> dict[str, bytes]:
    """Every file under *root* by relative path, packs by entity; paths whose relative form starts with one of
    *skip*, and (unless *scratch*) those with a `.tmp` folder among their parents, are left out."""
    files: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(root)
        name = rel.as_posix()
        if (not scratch and ".tmp" in rel.parts[:-1]) or name.startswith(skip) or name in skip:
            continue
        if len(rel.parts) == 4 and rel.parts[1] == PACK_FOLDER and name.endswith(".car"):
            for cid, car in pack_entities(path).items():
                files[f"{rel.parts[0]}/{PACK_FOLDER}/{rel.parts[2]}/{cid}"] = car
            continue
        files[name] = path.read_bytes()
    live = {data.strip().decode("ascii", "replace") for name, data in files.items() if name.endswith("/ipfs_cid.txt")}
    prefix = f"/{PACK_FOLDER}/"
    return {name: data for name, data in files.items() if prefix not in name or name.rsplit("/", 1)[1] in live}
