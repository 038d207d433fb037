"""Weight files with real headers: safetensors and GGUF bytes that agree with the listing's fields.

The Hub reads a model's `safetensors` field (`{"parameters": {dtype: count}, "total": n}`) from the headers of
its safetensors files, and its `gguf` field (`total`, `architecture`, `context_length`, `chat_template`,
`bos_token`, `eos_token`) from a GGUF file's header; huggingface_hub's `get_safetensors_metadata` reads the
same headers with a `Range` request. So the replica's weight files start with a real header (built here) and
go on with pseudo-random tensor data (`synth.RepoFile`), and the fields are computed from the same layout.

- safetensors (https://huggingface.co/docs/safetensors/index#format): an 8-byte little-endian header length,
  the JSON header (`__metadata__` and `{"dtype", "shape", "data_offsets"}` per tensor, offsets contiguous from
  0), padded with spaces to a multiple of 8, then the data; the tensors cover the data exactly.
  `safetensors_head` builds a file of an exact size (the big-file test model is exactly N MiB): the last
  tensor is one-dimensional and takes what the others leave.
- GGUF v3 (ggml's `docs/gguf.md`): magic, version, tensor and key/value counts, the key/values, the tensor
  infos, padding to `general.alignment` (32), then the data. Tensors are Q4_K (type 12: blocks of 256 values
  in 144 bytes), as the `Q4_K_M` in the file names says.
- A sharded model has `model-0000k-of-0000n.safetensors` files and `model.safetensors.index.json`
  (`{"metadata": {"total_size"}, "weight_map": {tensor: shard}}`, `total_size` being the data bytes).

Tensor names and shapes are synthetic [I]; only the formats and the agreement with the fields are the point.
"""

from __future__ import annotations

import json
import random
import struct
from dataclasses import dataclass, field
from typing import Any

DTYPE_BYTES = {"F32": 4, "BF16": 2, "F16": 2, "I64": 8}
GGUF_ALIGNMENT = 32
_Q4_K = 12  # ggml type id
_Q4_K_BLOCK = 256  # values per block
_Q4_K_BYTES = 144  # bytes per block
_GGUF_UINT32, _GGUF_STRING, _GGUF_ARRAY = 4, 8, 9
WIDTH = 16  # the last dimension of the synthetic 2-D tensors


@dataclass(frozen=True)
class LfsContent:
    """An LFS file of `size` bytes that starts with `head` (the rest is pseudo-random tensor data).

    `parameters` counts its values per dtype (safetensors); `gguf` is the listing's `gguf` field it yields.
    """

    head: bytes
    size: int
    parameters: dict[str, int] = field(default_factory=dict)
    gguf: dict[str, Any] | None = None


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def safetensors_head(tensors: list[tuple[str, str, list[int]]], fill: tuple[str, str], size: int) -> LfsContent:
    """A safetensors file of exactly `size` bytes: `tensors` (name, dtype, shape) then `fill` (name, dtype), a
    1-D tensor over the rest. ValueError when `size` cannot hold them (or leaves a partial value)."""
    fixed = sum(_numel(shape) * DTYPE_BYTES[dtype] for _, dtype, shape in tensors)
    fill_name, fill_dtype = fill
    fill_bytes = DTYPE_BYTES[fill_dtype]
    padded = 8
    while True:
        rest = size - 8 - padded - fixed
        if rest <= 0 or rest % fill_bytes:
            raise ValueError(f"{size} bytes cannot hold these tensors")
        header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
        offset = 0
        parameters: dict[str, int] = {}
        for name, dtype, shape in [*tensors, (fill_name, fill_dtype, [rest // fill_bytes])]:
            n = _numel(shape)
            end = offset + n * DTYPE_BYTES[dtype]
            header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, end]}
            parameters[dtype] = parameters.get(dtype, 0) + n
            offset = end
        text = json.dumps(header, separators=(",", ":")).encode()
        if len(text) <= padded:
            text += b" " * (padded - len(text))
            return LfsContent(struct.pack("<Q", padded) + text, size, parameters)
        padded = (len(text) + 7) // 8 * 8


def safetensors_file(rng: random.Random, prefix: str, dtype: str, size: int, position_ids: bool) -> LfsContent:
    """A small model's weights of about `size` bytes (rounded up to a multiple of 8): a few `[rows, WIDTH]`
    layers, maybe an I64 `position_ids` buffer, and a 1-D `norm` tensor filling the rest."""
    size = max(1024, (size + 7) // 8 * 8)
    tensors: list[tuple[str, str, list[int]]] = []
    budget = size // 2
    for n in range(rng.randint(1, 3)):
        rows = max(1, budget // (3 * WIDTH * DTYPE_BYTES[dtype]))
        tensors.append((f"{prefix}layers.{n}.weight", dtype, [rows, WIDTH]))
    if position_ids:
        tensors.append((f"{prefix}embeddings.position_ids", "I64", [1, 8]))
    return safetensors_head(tensors, (f"{prefix}norm.weight", dtype), size)


def safetensors_big(dtype: str, size: int) -> LfsContent:
    """One tensor over a file of exactly `size` bytes (the big-file test model)."""
    return safetensors_head([], ("model.embed_tokens.weight", dtype), size)


def sharded(rng: random.Random, dtype: str, shards: int, size: int) -> tuple[dict[str, LfsContent], bytes]:
    """`shards` safetensors files of about `size` bytes each and the index naming them."""
    files: dict[str, LfsContent] = {}
    weight_map: dict[str, str] = {}
    total = 0
    for k in range(1, shards + 1):
        name = f"model-{k:05d}-of-{shards:05d}.safetensors"
        content = safetensors_file(rng, f"model.shard{k}.", dtype, size, position_ids=False)
        files[name] = content
        header = json.loads(content.head[8:])
        for tensor, info in header.items():
            if tensor != "__metadata__":
                weight_map[tensor] = name
                total += info["data_offsets"][1] - info["data_offsets"][0]
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    return files, (json.dumps(index, indent=2) + "\n").encode()


def _gguf_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def _gguf_kv(key: str, value: Any) -> bytes:
    out = _gguf_string(key)
    if isinstance(value, str):
        return out + struct.pack("<I", _GGUF_STRING) + _gguf_string(value)
    if isinstance(value, list):
        items = b"".join(_gguf_string(v) for v in value)
        return out + struct.pack("<IIQ", _GGUF_ARRAY, _GGUF_STRING, len(value)) + items
    return out + struct.pack("<II", _GGUF_UINT32, int(value))


def gguf_file(
    rng: random.Random, architecture: str, context_length: int, chat_template: str | None, size: int
) -> LfsContent:
    """A GGUF file of about `size` bytes whose header says what the listing's `gguf` field says."""
    tokens = ["<unk>", "<s>", "</s>"]
    kv: list[tuple[str, Any]] = [
        ("general.architecture", architecture),
        ("general.alignment", GGUF_ALIGNMENT),
        (f"{architecture}.context_length", context_length),
        ("tokenizer.ggml.tokens", tokens),
        ("tokenizer.ggml.bos_token_id", 1),
        ("tokenizer.ggml.eos_token_id", 2),
    ]
    if chat_template is not None:
        kv.append(("tokenizer.chat_template", chat_template))
    blocks = max(3, size // _Q4_K_BYTES)
    names = ["token_embd.weight", *(f"blk.{n}.ffn_down.weight" for n in range(rng.randint(1, 3))), "output.weight"]
    rows = [max(1, blocks // len(names))] * len(names)
    infos = b""
    offset = 0
    for name, row in zip(names, rows, strict=True):
        infos += _gguf_string(name) + struct.pack("<I", 2) + struct.pack("<QQ", _Q4_K_BLOCK, row)
        infos += struct.pack("<IQ", _Q4_K, offset)
        offset += (row * _Q4_K_BYTES + GGUF_ALIGNMENT - 1) // GGUF_ALIGNMENT * GGUF_ALIGNMENT
    head = b"GGUF" + struct.pack("<IQQ", 3, len(names), len(kv)) + b"".join(_gguf_kv(k, v) for k, v in kv) + infos
    head += b"\0" * (-len(head) % GGUF_ALIGNMENT)
    total = sum(_Q4_K_BLOCK * row for row in rows)
    listing: dict[str, Any] = {"total": total, "architecture": architecture, "context_length": context_length}
    if chat_template is not None:
        listing["chat_template"] = chat_template
    listing["bos_token"] = tokens[1]
    listing["eos_token"] = tokens[2]
    return LfsContent(head, len(head) + offset, gguf=listing)
