"""The replica's synthetic Hugging Face Hub: deterministic in a seed, realistic in shape, lean in memory.

`build_hub(models, datasets, spaces, seed)` draws the *structure* of a Hub once (ids, owners, dates,
counters, statuses, base-model lineage, model->dataset and space->model/dataset links) into compact
per-entity attributes. Everything bulky (the Hub's JSON properties, the file list, file contents and
their hashes) is regenerated on demand from a per-entity salt, so a 300,000-entity Hub costs a few
hundred MB and file contents are never held in memory beyond one request.

Facts mirrored from the real Hub (recorded responses in tests/data/hub_fixtures, sources in its README):
- `_id` is a Mongo ObjectId whose first 8 hex digits are the creation time; repos older than the Hub's
  creation dates share `createdAt` 2022-03-02T23:29:04.000Z (ObjectId prefix 621ffdc0).
- Hub-computed tags carry `base_model:<id>` and `base_model:<relation>:<id>` with the base's *current*
  id, while the model card keeps whatever id its author wrote (possibly an old, renamed one).
- `dataset:<id>` tags for models trained on datasets; spaces list the `models`/`datasets` they use and
  each model lists (at most 100 of) the spaces that use it.
- Repo ids are case-insensitive: `find` looks an id up in any case; a few entities (`MISCASED`) name their links
  in another case, in the card, the `dataset:` tags (copied from the card as written) and a space's lists.
- An LFS file's git blob is its pointer file, so `blob_sha1` of an LFS file is the pointer's git blob
  sha1 (what the Hub's tree calls `oid`), and `sha256` is the content's (the tree's `lfs.oid`).

Entities are public and well-formed unless a status says otherwise (a handful per thousand private,
gated, disabled or renamed). `hostile_ids=True` adds entities whose ids the real Hub never serves.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import string
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from . import weights
from .weights import LfsContent

REPO_TYPES = ("model", "dataset", "space")
_PLURAL = {"models": "model", "datasets": "dataset", "spaces": "space"}

OLD_CREATED_TS = 1646263744  # 2022-03-02T23:29:04Z: the createdAt of every repo older than creation dates
END_TS = 1788220800  # 2026-09-01T00:00:00Z: the synthetic Hub's "now"
#: `Entity._flags` bit: the card, the `dataset:` tags and a space's `models`/`datasets` name the entity's links in
#: another case (`other_case`), as owners write them; the Hub still resolves them (docs/CONTRACTS.md, "Repo ids").
MISCASED = 1 << 12
SPACES_LIST_CAP = 100  # the Hub shows at most 100 spaces on a model (gpt2, Llama cassettes: exactly 100)
LFS_POINTER_HEAD = b"version https://git-lfs.github.com/spec/v1\n"
_BLOCK = 1 << 20  # pseudo-random content is generated in independent 1 MiB blocks (random access)
_BIG_HASHES: dict[tuple[str, int], tuple[str, str]] = {}  # hashes of >1 MiB files, computed once


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_ASCII_UPPER = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)


def fold_id(repo_id: str) -> str:
    """A repo id's case-insensitive key: ASCII letters lower-cased (Hub ids are ASCII; SQLite's NOCASE folds the
    same letters, so the crawler's look-ups agree with the replica's)."""
    return repo_id.translate(_ASCII_LOWER)


def other_case(repo_id: str) -> str:
    """The spelling in another case an owner may write for `repo_id`: lower case, or upper case when it is already
    lower case (the same as `repo_id` only when it has no ASCII letter)."""
    lower = fold_id(repo_id)
    return lower if lower != repo_id else repo_id.translate(_ASCII_UPPER)


def hub_date(ts: int) -> str:
    """The Hub's date format: `2024-02-19T10:57:45.000Z`."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return LFS_POINTER_HEAD + b"oid sha256:" + sha256.encode() + b"\nsize %d\n" % size


# --------------------------------------------------------------------------------------------- files


@dataclass(eq=False)
class RepoFile:
    """One file of a repo's head revision. Contents are regenerated on demand, never kept when large."""

    path: str
    size: int
    sha256: str
    blob_sha1: str  # git blob sha1 of what git stores: the content, or for LFS files the pointer file
    lfs: bool
    last_commit: dict = field(default_factory=dict, repr=False)  # {"id", "title", "date"} for tree expand
    _data: bytes | None = field(default=None, repr=False)  # small files: the bytes themselves
    _seed: str = field(default="", repr=False)  # pseudo-random files: the content seed
    _head: bytes = field(default=b"", repr=False)  # pseudo-random files: bytes laid over the start (weights.py)

    @classmethod
    def from_bytes(cls, path: str, data: bytes, *, lfs: bool = False, last_commit: dict | None = None) -> RepoFile:
        sha256 = hashlib.sha256(data).hexdigest()
        blob = git_blob_sha1(lfs_pointer(sha256, len(data)) if lfs else data)
        return cls(path, len(data), sha256, blob, lfs, last_commit or {}, data, "")

    @classmethod
    def pseudo_random(cls, path: str, size: int, seed: str, *, lfs: bool = True,
                      last_commit: dict | None = None, head: bytes = b"") -> RepoFile:
        """A file of `size` deterministic pseudo-random bytes, the first ones replaced by `head` (a weight
        file's header); hashes of big ones are computed once."""
        if size <= _BLOCK:
            data = head[:size] + _random_bytes(seed, 0, size)[len(head):]
            return cls.from_bytes(path, data, lfs=lfs, last_commit=last_commit)
        key = (seed, size, hashlib.sha256(head).hexdigest())
        hashes = _BIG_HASHES.get(key)
        if hashes is None:
            h256 = hashlib.sha256()
            h1 = None if lfs else hashlib.sha1(b"blob %d\0" % size)
            probe = cls(path, size, "", "", lfs, {}, None, seed, head)
            for chunk in probe.iter_content(_BLOCK):
                h256.update(chunk)
                if h1 is not None:
                    h1.update(chunk)
            sha256 = h256.hexdigest()
            blob = git_blob_sha1(lfs_pointer(sha256, size)) if h1 is None else h1.hexdigest()
            hashes = _BIG_HASHES[key] = (sha256, blob)
        return cls(path, size, hashes[0], hashes[1], lfs, last_commit or {}, None, seed, head)

    @property
    def pointer(self) -> bytes:
        """The git-lfs pointer file (what git stores for an LFS file)."""
        return lfs_pointer(self.sha256, self.size)

    @property
    def pointer_size(self) -> int:
        return len(self.pointer)

    @property
    def xet_hash(self) -> str:
        # A stand-in with the real field's shape (64 hex); the replica never speaks the Xet protocol.
        return hashlib.sha256(b"xet:" + self.sha256.encode()).hexdigest()

    def read(self, start: int = 0, end: int | None = None) -> bytes:
        """Bytes `[start, end)` (Python slice semantics: an HTTP `Range: bytes=a-b` is `read(a, b + 1)`)."""
        end = self.size if end is None else min(end, self.size)
        start = max(0, start)
        if start >= end:
            return b""
        if self._data is not None:
            return self._data[start:end]
        parts = []
        block = start // _BLOCK
        while block * _BLOCK < end:
            base = block * _BLOCK
            lo, hi = max(start, base) - base, min(end, base + _BLOCK) - base
            parts.append(_random_bytes(self._seed, block, hi)[lo:hi])
            block += 1
        data = b"".join(parts)
        if start < len(self._head):
            head = self._head[start:end]
            data = head + data[len(head):]
        return data

    def iter_content(self, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The whole content in chunks of `chunk_size` bytes (the last may be shorter)."""
        chunk_size = max(1, chunk_size)
        for offset in range(0, self.size, chunk_size):
            yield self.read(offset, offset + chunk_size)


def _random_bytes(seed: str, block: int, length: int) -> bytes:
    # Whole 32-bit words only, so any length is a prefix of the full block (randbytes is little-endian).
    rounded = min(_BLOCK, (length + 3) & ~3)
    return random.Random(f"{seed}:{block}").randbytes(rounded)[:length]


# ---------------------------------------------------------------------------------------- vocabulary


@dataclass(frozen=True)
class _Arch:
    pipeline: str | None
    library: str | None
    model_type: str | None
    architecture: str | None
    auto_model: str | None
    processor: str | None
    mask_token: str | None
    families: tuple[str, ...]
    weight: int


_ARCHS = (
    _Arch("text-generation", "transformers", "llama", "LlamaForCausalLM", "AutoModelForCausalLM", "AutoTokenizer",
          None, ("Llama", "TinyLlama", "vicuna", "Llama-3.1"), 14),
    _Arch("text-generation", "transformers", "mistral", "MistralForCausalLM", "AutoModelForCausalLM", "AutoTokenizer",
          None, ("Mistral", "zephyr", "OpenHermes"), 8),
    _Arch("text-generation", "transformers", "qwen2", "Qwen2ForCausalLM", "AutoModelForCausalLM", "AutoTokenizer",
          None, ("Qwen2.5", "qwen", "Qwen2"), 10),
    _Arch("text-generation", "transformers", "gpt2", "GPT2LMHeadModel", "AutoModelForCausalLM", "AutoTokenizer",
          None, ("gpt2", "DialoGPT", "distilgpt2"), 5),
    _Arch("fill-mask", "transformers", "bert", "BertForMaskedLM", "AutoModelForMaskedLM", "AutoTokenizer",
          "[MASK]", ("bert", "BERT", "bert-base"), 6),
    _Arch("text-classification", "transformers", "roberta", "RobertaForSequenceClassification",
          "AutoModelForSequenceClassification", "AutoTokenizer", "<mask>", ("roberta", "xlm-roberta"), 7),
    _Arch("token-classification", "transformers", "bert", "BertForTokenClassification",
          "AutoModelForTokenClassification", "AutoTokenizer", "[MASK]", ("bert-ner", "NER-bert"), 3),
    _Arch("question-answering", "transformers", "distilbert", "DistilBertForQuestionAnswering",
          "AutoModelForQuestionAnswering", "AutoTokenizer", "[MASK]", ("distilbert", "squad-distilbert"), 3),
    _Arch("text2text-generation", "transformers", "t5", "T5ForConditionalGeneration", "AutoModelForSeq2SeqLM",
          "AutoTokenizer", None, ("t5", "flan-t5", "mt5"), 4),
    _Arch("summarization", "transformers", "bart", "BartForConditionalGeneration", "AutoModelForSeq2SeqLM",
          "AutoTokenizer", "<mask>", ("bart", "distilbart"), 2),
    _Arch("image-classification", "transformers", "vit", "ViTForImageClassification",
          "AutoModelForImageClassification", "AutoImageProcessor", None, ("vit", "deit", "ViT"), 4),
    _Arch("automatic-speech-recognition", "transformers", "whisper", "WhisperForConditionalGeneration",
          "AutoModelForSpeechSeq2Seq", "AutoProcessor", None, ("whisper", "Whisper"), 3),
    _Arch("automatic-speech-recognition", "transformers", "wav2vec2", "Wav2Vec2ForCTC", "AutoModelForCTC",
          "AutoProcessor", None, ("wav2vec2", "xlsr"), 2),
    _Arch("sentence-similarity", "sentence-transformers", "bert", "BertModel", "AutoModel", "AutoTokenizer",
          "[MASK]", ("all-MiniLM", "paraphrase-mpnet", "e5"), 4),
    _Arch("text-to-image", "diffusers", None, None, None, None, None, ("stable-diffusion", "sdxl", "FLUX"), 5),
    _Arch("text-to-speech", "espnet", None, None, None, None, None, ("vits", "tacotron"), 1),
    _Arch("image-classification", "timm", None, None, None, None, None, ("resnet", "convnext"), 2),
    _Arch("reinforcement-learning", "stable-baselines3", None, None, None, None, None,
          ("ppo-LunarLander", "dqn-CartPole"), 3),
    _Arch(None, "transformers", "custom", "CustomModelForCausalLM", "AutoModel", "AutoTokenizer", None,
          ("custom-arch", "research-ckpt", "Hybrid"), 3),
    _Arch(None, None, None, None, None, None, None, ("experiment", "test-model", "my_model", "checkpoint"), 5),
)
_ARCH_CUM = []
_total = 0
for _a in _ARCHS:
    _total += _a.weight
    _ARCH_CUM.append(_total)
_TEXTGEN = "text-generation"

_LICENSES = ("apache-2.0", "mit", "cc-by-4.0", "cc-by-nc-4.0", "openrail", "llama3.1", "gpl-3.0", "other",
             "bsd-3-clause", "cc-by-sa-4.0", "creativeml-openrail-m", "afl-3.0")
# "no" (Norwegian) is a real language code that YAML 1.1 reads as a boolean unless quoted.
_LANGS = ("en", "fr", "de", "es", "zh", "ja", "ko", "ru", "ar", "hi", "pt", "it", "nl", "sv", "no", "multilingual")
_MODEL_CARD_TAGS = ("generated_from_trainer", "trl", "sft", "unsloth", "llama-factory", "exbert", "biology",
                    "medical", "code", "chemistry", "finance", "legal", "vision", "audio", "dpo", "orpo")
_VERSIONS = ("v1", "v2", "2", "3.1", "v0.1", "1.5", "2.5", "v3", "0.2")
_SIZES = ("7B", "8b", "0.5B", "1.8B", "13B", "70B", "small", "base", "large", "tiny", "mini", "xl", "1B", "3b")
_SUFFIX = {
    None: ("", "", "base", "pretrained", "exp", "demo"),
    "finetune": ("Instruct", "chat", "finetuned-imdb", "sft", "dpo", "ft-squad", "custom", "v2-ft", "it"),
    "adapter": ("lora", "qlora", "LoRA-adapter", "peft", "lora-r16"),
    "quantized": ("GGUF", "AWQ", "GPTQ", "4bit", "8bit", "Q4_K_M-GGUF", "mlx-4bit", "exl2", "bnb-4bit"),
    "merge": ("merge", "slerp", "ties-merge", "MoE", "dare-ties", "Franken"),
}
_RELATIONS = (("finetune", 50), ("adapter", 20), ("quantized", 20), ("merge", 10))
_WIDGET_DEFAULTS = {
    "text-generation": [{"text": "My name is Julien and I like to"}, {"text": "Once upon a time,"}],
    "fill-mask": [{"text": "Paris is the [MASK] of France."}],
    "text-classification": [{"text": "I like you. I love you"}],
    "token-classification": [{"text": "My name is Wolfgang and I live in Berlin"}],
    "question-answering": [{"text": "Where do I live?", "context": "My name is Wolfgang and I live in Berlin"}],
    "text2text-generation": [{"text": "Translate to German: My name is Arthur"}],
    "summarization": [{"text": "The tower is 324 metres (1,063 ft) tall, about the same height as an 81-storey building."}],  # noqa: E501 (a recorded value, kept whole)
    "sentence-similarity": [{"source_sentence": "That is a happy person",
                             "sentences": ["That is a happy dog", "That is a very happy person"]}],
    "text-to-image": [{"text": "A high tech solarpunk utopia in the Amazon rainforest"}],
}
_SYLLABLES = ("ka", "zu", "mi", "ro", "ne", "ta", "li", "vo", "xi", "pe", "san", "dor", "el", "qua", "rin",
              "bo", "tek", "ai", "lab", "nova", "hub", "ix", "ul", "gra", "fen", "mo", "sha", "vi", "yo", "ze")
_ORG_WORDS = ("labs", "ai", "research", "community", "team", "org", "nlp", "ml", "group", "collective")

_DS_KINDS = (
    # task_category, modality, data format, features, source words
    ("question-answering", "text", "parquet", (("question", "string"), ("context", "string"), ("answer", "string")),
     ("squad", "qa-pairs", "trivia", "natural_questions")),
    ("text-classification", "text", "parquet", (("text", "string"), ("label", "int64")),
     ("imdb", "sst2", "sentiment", "emotion")),
    ("text-generation", "text", "json", (("instruction", "string"), ("output", "string")),
     ("alpaca", "ultrachat", "dolly", "oasst1", "sharegpt", "openhermes")),
    ("translation", "text", "csv", (("source", "string"), ("target", "string")), ("wmt", "opus", "flores")),
    ("image-classification", "image", "parquet", (("image", "image"), ("label", "int64")),
     ("mnist", "cifar10", "food101", "beans")),
    ("automatic-speech-recognition", "audio", "parquet", (("audio", "audio"), ("sentence", "string")),
     ("common_voice", "librispeech_asr", "fleurs")),
    ("tabular-classification", "tabular", "csv", (("feature_a", "float64"), ("feature_b", "float64"),
                                                  ("target", "int64")), ("titanic", "adult", "iris")),
)
_DS_SUFFIX = (
    "", "", "-cleaned", "_v2", "-ja", "-200k", "-sft", "-dpo", "-binarized", ".v1", "-parquet", "_en", "-mini"
)
_DS_TAGS = ("synthetic", "math", "code", "chemistry", "biology", "legal", "explanation-generation", "croissant")
_SIZE_CATS = ((1000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10 ** 12, "1M<n<10M"))

_SDKS = (("gradio", 60), ("docker", 20), ("static", 15), ("streamlit", 5))
_SPACE_WORDS = ("chatbot", "demo", "Image-Generator", "whisper-transcribe", "leaderboard", "text2img", "rag_app",
                "voice-clone", "llm-arena", "sd-webui", "Background-Removal", "pdf-chat", "playground", "compare")
_STAGES = (("RUNNING", 60), ("PAUSED", 5), ("STOPPED", 5), ("RUNTIME_ERROR", 9), ("BUILD_ERROR", 4),
           ("BUILDING", 5), ("NO_APP_FILE", 3), ("CONFIG_ERROR", 2), ("APP_STARTING", 4),
           ("RUNNING_APP_STARTING", 2), ("RUNNING_BUILDING", 1))
_RUNNING_STAGES = frozenset({"RUNNING", "RUNNING_APP_STARTING", "RUNNING_BUILDING"})
_HARDWARE = ("cpu-basic",) * 8 + ("cpu-upgrade", "zero-a10g", "t4-small", "a10g-small", "l4x1")
_COLORS = ("red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray")
_EMOJIS = ("🚀", "🤗", "🔥", "🦀", "📚", "🎨", "🐢", "🌍")

_GITATTRIBUTES = "".join(
    f"*.{ext} filter=lfs diff=lfs merge=lfs -text\n"
    for ext in ("7z", "arrow", "bin", "bz2", "ckpt", "ftz", "gguf", "gz", "h5", "joblib", "lfs", "mlmodel", "model",
                "msgpack", "npy", "npz", "onnx", "ot", "parquet", "pb", "pickle", "pkl", "png", "pt", "pth", "rar",
                "safetensors", "tar", "tflite", "tgz", "wasm", "xz", "zip", "zst")
) + "*tfevents* filter=lfs diff=lfs merge=lfs -text\n"

# Ids the real Hub never serves, but a hostile or broken server might (hostile_ids=True).
HOSTILE_IDS: tuple[str, ...] = (
    "../../etc/passwd", "/abs/path", "a/b/c", "..", ".", "owner/..", "../escape", "dot/.",
    "nul\x00byte/model", "ctrl/\x01\x1f\x7f-chars", "tab\tname/x", "newline/a\nb",
    "unicode/caf\u00e9", "unicode/cafe\u0301",  # NFC and NFD spellings of the same visible name
    "rtl/\u202egnp.exe", "rtl/abc\u200fdef", "zero/width\u200bspace",
    "long/" + "x" * 5000,
    "owner__x/y", "owner/x__y", "owner--x/y",
    "CON", "con/aux", "NUL/PRN", "COM1/LPT1.txt",
    "back\\slash/model", "win\\path\\x", "trailing-dot./name.", "space /name ",
    "percent/%2e%2e%2f", "question/a?b=c", "hash/a#b", "colon:owner/name", "UPPER/Case", "upper/case",
)
_HOSTILE_SUBSET = ("../../etc/passwd", "CON", "unicode/caf\u00e9", "unicode/cafe\u0301", "owner__x/y",
                   "owner/x__y", "a/b/c", "..")
# Base models and datasets a model card may name that XML 1.0 forbids (hostile_cards=True adds a model whose card
# names them, `HOSTILE_CARDS_MODEL`). The card is its owner's YAML, and YAML's `\u` escapes reach any character,
# which the Hub's JSON carries as it is (U+FFFE, U+FFFF) or escaped (controls). Only the card names these ids (no
# such repo: no tag, no baseModels entry). One is the backslash spelling of another (an escape must not merge them);
# lone surrogates are left out (the replica's JSON is UTF-8, and the crawl refuses them as ids anyway).
HOSTILE_CARDS_MODEL = "hostile-cards/xml-forbidden-bases"
HOSTILE_CARD_BASES: tuple[str, ...] = (
    "removed-org/nonchar\ufffe-base", "removed-org/nonchar\\ufffe-base", "removed-org/max\uffff",
    "removed-org/back\\slash\ufffe", "removed-org/ctrl\x01-base", "removed-org/bom\ufeff-ok",
)
HOSTILE_CARD_DATASETS: tuple[str, ...] = ("removed-org/data\ufffe", "removed-org/tab\x0bdata")
#: The legacy id the real Hub moved (a recorded 307 to google-bert/bert-base-uncased), answered here as a rename of
#: the most downloaded open model.
LEGACY_RENAMED_ID = "bert-base-uncased"
# File names a hostile or broken server might list for a repo (hostile_files=True adds a model holding them,
# `HOSTILE_FILES_MODEL`): escapes, absolute paths, odd segments, names a crawler writes itself, case twins. The
# last group is unusual but harmless: a client must store those under exactly their names.
HOSTILE_FILES_MODEL = "hostile-files/paths"
HOSTILE_FILE_NAMES: tuple[str, ...] = (
    "../escape.txt", "../../etc/passwd-copy", "/abs/path.txt", "a//b.txt", "./dot.txt", "sub/./x.txt",
    "sub/../../y.txt", "back\\slash.txt", "nul\x00byte.txt", "ctrl\x01char.txt", "newline\nname.txt",
    "metadata.json", "Preview_Info.json", "ipfs_cid.txt", "tombstone.json/inner.txt", ".hfscraper-tmp-1-2-3.part",
    "trailing/", "x" * 300 + ".txt", "CaseName.txt", "casename.txt",
    "ok/nested/deep/file.json", "spaces in name.txt", "percent%2e%2e%2fname.txt", "question?mark.txt",
    "hash#mark.txt", "unicode-caf\u00e9.txt",
)


# -------------------------------------------------------------------------------------------- entity


class Entity:
    """One repo. Structure is stored; `fields`, `files` and `relations` are regenerated on each access
    (fresh objects: treat them as read-only). Pass `fields`/`files`/`relations` to pin them instead."""

    __slots__ = (
        "repo_type", "id", "mongo_id", "sha", "private", "gated", "disabled", "renamed_from",
        "author", "created", "modified", "downloads", "downloads_all", "likes", "trending",
        "_hub", "_idx", "_kind", "_salt", "_relation", "_bases", "_flags", "_unknown_base",
        "_datasets", "_models", "_children", "_spaces", "_extra", "_fields", "_files", "_relations",
    )

    def __init__(self, repo_type: str, id: str, mongo_id: str, sha: str, private: bool = False,
                 gated: bool | str = False, disabled: bool = False, renamed_from: list[str] | None = None,
                 fields: dict | None = None, files: list[RepoFile] | None = None,
                 relations: list[dict] | None = None) -> None:
        self.repo_type = repo_type
        self.id = id
        self.mongo_id = mongo_id
        self.sha = sha
        self.private = private
        self.gated = gated
        self.disabled = disabled
        self.renamed_from = renamed_from if renamed_from is not None else []
        self.author = id.split("/", 1)[0] if "/" in id else ""
        self.created = OLD_CREATED_TS
        self.modified = OLD_CREATED_TS
        self.downloads = self.downloads_all = self.likes = self.trending = 0
        self._hub: SyntheticHub | None = None
        self._idx = 0
        self._kind = 0
        self._salt = 0
        self._relation: str | None = None
        self._bases: tuple[int, ...] = ()
        self._flags = 0
        self._unknown_base: str | None = None
        self._datasets: tuple[int, ...] = ()
        self._models: tuple[int, ...] = ()
        self._children = 0
        self._spaces: tuple[int, ...] = ()
        self._extra = ""  # "" normal, "hostile", "hostile_files", "hostile_cards", or "big:<MiB>"
        self._fields = fields
        self._files = files
        self._relations = relations

    def __repr__(self) -> str:
        return f"Entity({self.repo_type!r}, {self.id!r})"

    @property
    def fields(self) -> dict:
        """Every Hub property of this entity, keyed by the Hub's names (absent where it does not apply)."""
        if self._fields is not None:
            return self._fields
        return _GEN[self.repo_type](self).fields()

    @property
    def files(self) -> list[RepoFile]:
        """The head revision's files, sorted by path, with contents generated on demand."""
        if self._files is not None:
            return self._files
        return _GEN[self.repo_type](self).files()

    @property
    def relations(self) -> list[dict]:
        """The relations the ground truth states (CONTRACTS.md truth format)."""
        if self._relations is not None:
            return self._relations
        return _relations(self)

    @property
    def tags(self) -> list[str]:
        """`fields["tags"]`, computed without the rest of the fields (for tag indexes)."""
        if self._fields is not None:
            return list(self._fields.get("tags") or ())
        return _GEN[self.repo_type](self).tags()

    @property
    def pipeline_tag(self) -> str | None:
        """`fields.get("pipeline_tag")` in O(1)."""
        if self._fields is not None:
            return self._fields.get("pipeline_tag")
        return _ARCHS[self._kind].pipeline if self.repo_type == "model" else None

    @property
    def library_name(self) -> str | None:
        """`fields.get("library_name")` in O(1)."""
        if self._fields is not None:
            return self._fields.get("library_name")
        return _model_library(self) if self.repo_type == "model" else None

    def file(self, path: str) -> RepoFile | None:
        for f in self.files:
            if f.path == path:
                return f
        return None

    def sort_value(self, key: str) -> Any:
        """`fields.get(key)` in O(1) for the listing sort keys (no field generation)."""
        if self._fields is not None:
            return self._fields.get(key)
        if key == "likes":
            return self.likes
        if key == "downloads":
            return None if self.repo_type == "space" else self.downloads
        if key == "trendingScore":
            return self.trending
        if key == "createdAt":
            return hub_date(self.created)
        if key == "lastModified":
            return hub_date(self.modified)
        if key == "downloadsAllTime":
            return None if self.repo_type == "space" else self.downloads_all
        if key == "id":
            return self.id
        return self.fields.get(key)


# ------------------------------------------------------------------------------------------ the hub


class SyntheticHub:
    """All entities of a synthetic Hub, with id and rename lookups and the ground truth."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.models: list[Entity] = []
        self.datasets: list[Entity] = []
        self.spaces: list[Entity] = []
        self._by_id: dict[str, dict[str, Entity]] = {t: {} for t in REPO_TYPES}
        self._renames: dict[str, dict[str, str]] = {t: {} for t in REPO_TYPES}
        # The same, keyed by `fold_id(id)`: the Hub answers an id in any case (docs/CONTRACTS.md, "Repo ids").
        self._by_fold: dict[str, dict[str, Entity]] = {t: {} for t in REPO_TYPES}
        self._renames_fold: dict[str, dict[str, str]] = {t: {} for t in REPO_TYPES}

    def entities(self, repo_type: str) -> list[Entity]:
        repo_type = _PLURAL.get(repo_type, repo_type)
        return {"model": self.models, "dataset": self.datasets, "space": self.spaces}[repo_type]

    def get(self, repo_type: str, repo_id: str) -> Entity | None:
        """The entity whose canonical id is exactly `repo_id` (case-sensitive), else None."""
        return self._by_id[_PLURAL.get(repo_type, repo_type)].get(repo_id)

    def find(self, repo_type: str, repo_id: str) -> Entity | None:
        """The entity `repo_id` names in any case (the exact spelling first), else None: what the Hub serves."""
        repo_type = _PLURAL.get(repo_type, repo_type)
        entity = self._by_id[repo_type].get(repo_id)
        return entity if entity is not None else self._by_fold[repo_type].get(fold_id(repo_id))

    def resolve_rename(self, repo_type: str, repo_id: str) -> str | None:
        """The current id of a renamed repo's old id, in any case (for the Hub's 307), else None."""
        repo_type = _PLURAL.get(repo_type, repo_type)
        current = self._renames[repo_type].get(repo_id)
        return current if current is not None else self._renames_fold[repo_type].get(fold_id(repo_id))

    def add_legacy_alias(self, old_id: str) -> str | None:
        """Make *old_id* a renamed id of the most downloaded public, open model (the real Hub answers the recorded
        `bert-base-uncased` with a 307 to `google-bert/bert-base-uncased`; `scrapy hubcheck` probes that id). Only
        the look-up learns it: no entity's data, and so no seeded byte, changes. The model's id, or None."""
        renames = self._renames["model"]
        if old_id in renames or old_id in self._by_id["model"]:
            return renames.get(old_id)
        candidates = [e for e in self.models if not e.private and not e.gated and not e.disabled]
        if not candidates:
            return None
        target = max(candidates, key=lambda e: (e.downloads, e.id))
        renames[old_id] = target.id
        return target.id

    def add(self, entity: Entity) -> Entity:
        """Register an entity (used by build_hub; tests may add hand-made ones)."""
        entity._hub = entity._hub or self
        bucket = self.entities(entity.repo_type)
        entity._idx = len(bucket)
        bucket.append(entity)
        self._by_id[entity.repo_type][entity.id] = entity
        # Hostile case twins ("UPPER/Case", "upper/case") keep the first: `find` tries the exact spelling first.
        self._by_fold[entity.repo_type].setdefault(fold_id(entity.id), entity)
        for old in entity.renamed_from:
            self._renames[entity.repo_type][old] = entity.id
            self._renames_fold[entity.repo_type].setdefault(fold_id(old), entity.id)
        return entity

    def hide(self, repo_type: str, repo_id: str) -> Entity | None:
        """Take an entity out of id lookups, as if its repo were deleted (it stays in the truth); returns it."""
        repo_type = _PLURAL.get(repo_type, repo_type)
        entity = self._by_id[repo_type].pop(repo_id, None)
        if entity is not None and self._by_fold[repo_type].get(fold_id(repo_id)) is entity:
            del self._by_fold[repo_type][fold_id(repo_id)]
        return entity

    def unhide(self, entity: Entity) -> None:
        """Undo `hide`."""
        self._by_id[entity.repo_type][entity.id] = entity
        self._by_fold[entity.repo_type].setdefault(fold_id(entity.id), entity)

    def counts(self) -> dict[str, int]:
        return {"models": len(self.models), "datasets": len(self.datasets), "spaces": len(self.spaces)}

    def truth(self) -> dict:
        """The ground truth, exactly the CONTRACTS.md format."""
        out: dict[str, Any] = {"seed": self.seed, "counts": self.counts()}
        for repo_type in REPO_TYPES:
            out[repo_type + "s"] = [entity_truth(e) for e in self.entities(repo_type)]
        return out

    def write_truth(self, fp: IO[str]) -> None:
        """`json.dump(self.truth(), fp)` without holding the whole truth in memory."""
        fp.write(f'{{"seed": {json.dumps(self.seed)}, "counts": {json.dumps(self.counts())}')
        for repo_type in REPO_TYPES:
            fp.write(f', "{repo_type}s": [')
            for n, entity in enumerate(self.entities(repo_type)):
                if n:
                    fp.write(", ")
                fp.write(json.dumps(entity_truth(entity)))
            fp.write("]")
        fp.write("}")


def entity_truth(entity: Entity) -> dict:
    """One ENTITY of the ground truth (CONTRACTS.md)."""
    from .shapes import render_info, truth_expand  # shapes imports this module's types

    if entity._fields is None or entity._files is None:
        # Generate once: a pinned twin answers both the api rendering and the file list.
        gen = _GEN[entity.repo_type](entity)
        fields = entity._fields if entity._fields is not None else gen.fields()
        files = entity._files if entity._files is not None else gen.files()
        twin = Entity(entity.repo_type, entity.id, entity.mongo_id, entity.sha, entity.private, entity.gated,
                      entity.disabled, entity.renamed_from, fields=fields, files=files)
    else:
        twin = entity
    return {
        "id": entity.id,
        "private": entity.private,
        "gated": entity.gated,
        "disabled": entity.disabled,
        "renamed_from": list(entity.renamed_from),
        "api": render_info(twin, expand=list(truth_expand(entity.repo_type))),
        "files": [{"path": f.path, "size": f.size, "sha256": f.sha256, "blob_sha1": f.blob_sha1, "lfs": f.lfs}
                  for f in twin.files],
        "relations": entity.relations,
        **({"viewer": _viewer_status(entity)} if entity.repo_type == "dataset" else {}),
    }


def _viewer_status(entity: Entity) -> str:
    from .viewer import viewer_status  # viewer imports this module

    return viewer_status(entity, entity._hub.seed if entity._hub is not None else 0)


def _relations(e: Entity) -> list[dict]:
    hub = e._hub
    if hub is None:
        return []
    out: list[dict] = []
    if e.repo_type == "model":
        for b in e._bases:
            out.append({"kind": "base_model", "relation": e._relation, "target": hub.models[b].id,
                        "target_type": "model", "source": "tag"})
        if e._unknown_base is not None:
            # Only the card names it: no such repo, so the Hub computes no tag and no baseModels entry.
            out.append({"kind": "base_model", "relation": None, "target": e._unknown_base,
                        "target_type": "model", "source": "card"})
        for d in e._datasets:
            out.append({"kind": "dataset", "relation": None, "target": hub.datasets[d].id,
                        "target_type": "dataset", "source": "tag"})
        if e._extra == "hostile_cards":
            out += [{"kind": "base_model", "relation": None, "target": b, "target_type": "model", "source": "card"}
                    for b in HOSTILE_CARD_BASES]
            out += [{"kind": "dataset", "relation": None, "target": d, "target_type": "dataset", "source": "card"}
                    for d in HOSTILE_CARD_DATASETS]
    elif e.repo_type == "space":
        for m in e._models:
            out.append({"kind": "model", "relation": None, "target": hub.models[m].id,
                        "target_type": "model", "source": "api"})
        for d in e._datasets:
            out.append({"kind": "dataset", "relation": None, "target": hub.datasets[d].id,
                        "target_type": "dataset", "source": "api"})
    return out


# -------------------------------------------------------------------------------------- YAML writer

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9 ._/+()-]*\Z")
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"})


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _YAML_WORDS and not text.endswith(" "):
        return text
    return _yaml_quoted(text)


_YAML_ESCAPE = frozenset({0x2028, 0x2029, 0xFEFF, 0xFFFE, 0xFFFF})  # YAML line breaks, BOM, non-characters


def _yaml_quoted(text: str) -> str:
    """A YAML double-quoted scalar: printable characters as they are, the rest as escapes."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif code < 0x20 or 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF or code in _YAML_ESCAPE:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else ch)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def yaml_dump(data: dict) -> str:
    """Block-style YAML for the plain JSON-like data of a card (round-trips through yaml.safe_load)."""
    lines: list[str] = []
    _yaml_map(data, 0, lines)
    return "\n".join(lines) + "\n"


def _yaml_map(data: dict, indent: int, lines: list[str], first_prefix: str | None = None) -> None:
    pad = " " * indent
    for n, (key, value) in enumerate(data.items()):
        prefix = first_prefix if (n == 0 and first_prefix is not None) else pad
        head = f"{prefix}{_yaml_scalar(key)}:"
        _yaml_value(head, value, indent, lines)


def _yaml_value(head: str, value: Any, indent: int, lines: list[str]) -> None:
    if isinstance(value, dict) and value:
        lines.append(head)
        _yaml_map(value, indent + 2, lines)
    elif isinstance(value, list) and value:
        lines.append(head)
        for item in value:
            dash = " " * (indent + 2) + "- "
            if isinstance(item, dict) and item:
                _yaml_map(item, indent + 4, lines, first_prefix=dash)
            elif isinstance(item, list) and item:
                lines.append(dash.rstrip() + " " + json.dumps(item))
            else:
                lines.append(dash + _yaml_literal(item))
    else:
        lines.append(head + " " + _yaml_literal(value))


def _yaml_literal(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value) if value else "{}"
    if isinstance(value, list):
        return json.dumps(value) if value else "[]"
    return _yaml_scalar(value)


def card_markdown(card: dict | None, title: str, body: str) -> str:
    head = f"---\n{yaml_dump(card)}---\n\n" if card else ""
    return f"{head}# {title}\n\n{body}\n"


# ------------------------------------------------------------------------------- field generators


def _hex(seed: str, n: int) -> str:
    return hashlib.sha1(seed.encode("utf-8", "surrogatepass")).hexdigest()[:n]


def _last_commit(e: Entity, path: str, r: random.Random) -> dict:
    if path == "README.md":
        return {"id": e.sha, "title": "Update README.md", "date": hub_date(e.modified)}
    if path == ".gitattributes":
        return {"id": _hex(f"{e.mongo_id}:initial", 40), "title": "initial commit", "date": hub_date(e.created)}
    ts = e.created + int((e.modified - e.created) * r.random())
    return {"id": _hex(f"{e.mongo_id}:{path}", 40), "title": f"Upload {path.rsplit('/', 1)[-1]}",
            "date": hub_date(ts)}


class _Gen:
    """Regenerates one entity's bulky data from its stored structure (one instance per access)."""

    def __init__(self, e: Entity) -> None:
        self.e = e
        self.hub = e._hub
        self.name = e.id.rsplit("/", 1)[-1]
        self._cache: Any = None

    def spell(self, repo_id: str) -> str:
        """How this entity's owner writes a link to *repo_id*: in another case when the entity is `MISCASED`."""
        return other_case(repo_id) if self.e._flags & MISCASED else repo_id

    # subclasses: tags(), fields(), files()

    def _base_fields(self) -> dict:
        e = self.e
        return {
            "author": e.author, "sha": e.sha, "lastModified": hub_date(e.modified),
            "createdAt": hub_date(e.created), "private": e.private, "gated": e.gated, "disabled": e.disabled,
            "xetEnabled": False,
        }

    def _make_files(self, plan: list[tuple[str, Any]]) -> list[RepoFile]:
        """`plan` = [(path, bytes | int size of a pseudo-random LFS file)], materialized and sorted."""
        e = self.e
        r = random.Random(e._salt ^ 0x5EED)
        seed_root = f"{self.hub.seed if self.hub else 0}:{e.repo_type}:{e.mongo_id}"
        out = []
        for path, content in sorted(plan, key=lambda p: p[0]):
            commit = _last_commit(e, path, r)
            if isinstance(content, int):
                out.append(RepoFile.pseudo_random(path, content, f"{seed_root}:{path}", lfs=True, last_commit=commit))
            elif isinstance(content, LfsContent):
                out.append(RepoFile.pseudo_random(path, content.size, f"{seed_root}:{path}", lfs=True,
                                                  last_commit=commit, head=content.head))
            else:
                out.append(RepoFile.from_bytes(path, content, last_commit=commit))
        return out


class _ModelGen(_Gen):
    def __init__(self, e: Entity) -> None:
        super().__init__(e)
        hub = self.hub
        self.arch = _ARCHS[e._kind]
        r = self.r = random.Random(e._salt)
        self.bases = [hub.models[b] for b in e._bases] if hub else []
        self.datasets = [hub.datasets[d] for d in e._datasets] if hub else []
        rel = e._relation
        self.rel = rel
        # The profile: drawn in a fixed order so tags() and fields() agree.
        # base_model/dataset tags are computed from the card, so a model with either always has one.
        draw = r.random()
        self.has_card = e._extra != "" or bool(e._bases or e._datasets or e._unknown_base) or draw > 0.08
        self.license = r.choice(_LICENSES) if r.random() < 0.85 else None
        nlang = r.choice((0, 0, 1, 1, 1, 1, 2, 3))
        self.langs = r.sample(_LANGS, nlang)
        self.lang_str = nlang == 1 and r.random() < 0.6
        ntags = r.choice((0, 0, 1, 1, 2, 3))
        self.card_tags = r.sample(_MODEL_CARD_TAGS, ntags)
        if rel == "merge":
            self.card_tags += ["mergekit", "merge"]
        elif rel == "adapter":
            self.card_tags.append("lora")
        self.arxiv = [_arxiv(r) for _ in range(r.choice((0, 0, 1, 2)))]
        self.has_model_index = self.has_card and r.random() < 0.3
        self.card_widget = self.has_card and r.random() < 0.15
        self.card_pipeline = r.random() < 0.4
        self.card_library = r.random() < 0.3
        self.card_order = r.randrange(3)
        self.chat = self.arch.pipeline == _TEXTGEN and r.random() < 0.6
        self.pytorch = r.random() < 0.35
        self.onnx = r.random() < 0.08
        self.warm = r.random() < 0.05
        self.gguf = _is_gguf(e)
        lib = self.library = _model_library(e)
        self.pipeline = self.arch.pipeline
        self.model_type = self.arch.model_type if lib in ("transformers", "sentence-transformers", "gguf") else None
        self.safetensors = lib in ("transformers", "sentence-transformers", "peft", "diffusers") and r.random() < 0.85
        self.tok_cfg = lib in ("transformers", "sentence-transformers") and r.random() < 0.9
        # Recorded variations: no widgetData despite a widget-capable pipeline (bart-base, blip), and
        # transformersInfo without pipeline_tag although the model has one (vilt).
        self.default_widget = r.random() < 0.8
        self.info_pipeline = r.random() < 0.93

    def tags(self) -> list[str]:
        e, lib = self.e, self.library
        t: list[str] = []
        if lib:
            t.append(lib)
        if self.pytorch:
            t.append("pytorch")
        if self.safetensors:
            t.append("safetensors")
        if self.onnx:
            t.append("onnx")
        if self.gguf and lib != "gguf":
            t.append("gguf")
        if self.model_type:
            t.append(self.model_type)
        if self.pipeline:
            t.append(self.pipeline)
        t += self.card_tags
        if self.chat:
            t.append("conversational")
        t += self.langs
        # The Hub copies the card's dataset ids into the tags as written (recorded: `dataset:squad_v2`), case too.
        t += ["dataset:" + self.spell(d.id) for d in self.datasets]
        t += self.arxiv
        t += ["base_model:" + b.id for b in self.bases]
        t += [f"base_model:{self.rel}:{b.id}" for b in self.bases]
        if self.license:
            t.append("license:" + self.license)
        if self.has_model_index:
            t.append("model-index")
        if lib == "transformers" and self.pipeline in (_TEXTGEN, "text-classification", "fill-mask",
                                                       "token-classification", "question-answering",
                                                       "text2text-generation", "summarization",
                                                       "image-classification"):
            t.append("autotrain_compatible")
        if lib == "transformers" and self.pipeline == _TEXTGEN:
            t.append("text-generation-inference")
        if lib in ("transformers", "sentence-transformers", "diffusers"):
            t.append("endpoints_compatible")
        t.append("region:us")
        if e._extra == "hostile":
            t = ["region:us"]
        return list(dict.fromkeys(t))

    def _card(self) -> dict | None:
        if not self.has_card:
            return None
        e, r = self.e, self.r
        if e._extra == "hostile":
            return {"license": "mit"}
        if e._extra == "hostile_cards":
            return {"license": "mit", "base_model": list(HOSTILE_CARD_BASES), "datasets": list(HOSTILE_CARD_DATASETS)}
        parts: dict[str, Any] = {}
        if self.langs:
            parts["language"] = self.langs[0] if self.lang_str else list(self.langs)
        if self.license:
            parts["license"] = self.license
        if self.card_library and self.library:
            parts["library_name"] = self.library
        if self.bases or e._unknown_base:
            names = []
            for n, b in enumerate(self.bases):
                old = (e._flags >> (2 + n)) & 1 and b.renamed_from
                names.append(b.renamed_from[0] if old else self.spell(b.id))
            if e._unknown_base:
                names.append(e._unknown_base)
            parts["base_model"] = names[0] if (len(names) == 1 and not e._flags & 1) else names
            if self.bases and e._flags & 2:
                parts["base_model_relation"] = self.rel
        if self.card_pipeline and self.pipeline:
            parts["pipeline_tag"] = self.pipeline
        if self.card_tags:
            parts["tags"] = list(self.card_tags)
        if self.datasets:
            names = []
            for n, d in enumerate(self.datasets):
                old = (e._flags >> (6 + n)) & 1 and d.renamed_from
                names.append(d.renamed_from[0] if old else self.spell(d.id))
            parts["datasets"] = names[0] if (len(names) == 1 and e._flags & 1024) else names
        if self.card_widget and self.pipeline in _WIDGET_DEFAULTS:
            parts["widget"] = [{"text": f"Example {r.randint(1, 99)} for {self.name[:40]}"}]
        if self.has_model_index:
            results: list[dict] = []
            if r.random() < 0.6 and self.pipeline:
                results.append({
                    "task": {"type": self.pipeline, "name": self.pipeline.replace("-", " ").title()},
                    "dataset": {"name": self.datasets[0].id if self.datasets else "glue",
                                "type": self.datasets[0].id if self.datasets else "glue"},
                    "metrics": [{"type": "accuracy", "value": round(0.5 + r.random() / 2, 4),
                                 "name": "Accuracy", "verified": False}],
                })
            parts["model-index"] = [{"name": self.name, "results": results}]
        order = (
            ("language", "license", "library_name", "base_model", "base_model_relation", "pipeline_tag", "tags",
             "datasets", "widget", "model-index"),
            ("license", "base_model", "base_model_relation", "tags", "datasets", "language", "pipeline_tag",
             "library_name", "model-index", "widget"),
            ("tags", "license", "datasets", "language", "base_model", "base_model_relation", "widget",
             "pipeline_tag", "library_name", "model-index"),
        )[self.card_order]
        card = {k: parts[k] for k in order if k in parts}
        return card

    def _tokenizer_config(self) -> dict:
        mt = self.model_type
        if mt in ("llama", "mistral", "qwen2"):
            cfg: dict[str, Any] = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
            if self.chat:
                cfg["chat_template"] = "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token }}{% endfor %}"  # noqa: E501 (a recorded value, kept whole)
            return cfg
        if mt == "gpt2":
            return {}
        if mt in ("bert", "distilbert"):
            return {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                    "mask_token": "[MASK]"}
        if mt == "t5":
            return {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
        return {}

    def _config_summary(self) -> dict | None:
        lib, a = self.library, self.arch
        if lib in ("transformers", "sentence-transformers") and a.architecture:
            cfg: dict[str, Any] = {"architectures": [a.architecture], "model_type": a.model_type}
            if self.tok_cfg:
                cfg["tokenizer_config"] = self._tokenizer_config()
            return cfg
        if lib == "peft":
            base = self.bases[0].id if self.bases else "unknown"
            return {"peft": {"base_model_name_or_path": base, "task_type": "CAUSAL_LM"}}
        if lib == "diffusers":
            return {"diffusers": {"_class_name": "StableDiffusionPipeline"}}
        return None

    def _plan(self, card: dict | None, config: dict | None) -> list[tuple[str, Any]]:
        """The files: (path, bytes) for small git files, (path, size) for pseudo-random LFS files."""
        e, lib, a = self.e, self.library, self.arch
        r = random.Random(e._salt ^ 0xF11E)
        plan: list[tuple[str, Any]] = [(".gitattributes", _GITATTRIBUTES.encode())]
        if card is not None or r.random() < 0.5:
            body = f"This model is a synthetic {a.pipeline or 'model'} checkpoint.\n"
            if self.bases:
                body += f"\nIt is a {self.rel} of " + ", ".join(b.id for b in self.bases) + ".\n"
            title = "model" if e._extra == "hostile" else self.name
            plan.append(("README.md", card_markdown(card, title, body).encode()))
        if e._extra.startswith("big:"):
            plan.append(("config.json", _json_bytes({"architectures": ["LlamaForCausalLM"], "model_type": "llama"})))
            plan.append(("model.safetensors", weights.safetensors_big(self._dtype(), int(e._extra[4:]) << 20)))
            return plan
        if e._extra == "hostile":
            plan.append(("config.json", _json_bytes({"model_type": "hostile"})))
            return plan
        if e._extra == "hostile_files":
            plan.append(("config.json", _json_bytes({"model_type": "hostile-files"})))
            plan += [(name, f"hostile file {name!r}\n".encode()) for name in HOSTILE_FILE_NAMES]
            return plan
        if lib in ("transformers", "sentence-transformers") and a.architecture:
            full = {"architectures": [a.architecture], "model_type": a.model_type,
                    "hidden_size": r.choice((256, 768, 1024, 4096)), "num_hidden_layers": r.choice((4, 12, 24, 32)),
                    "vocab_size": r.choice((30522, 32000, 50257, 151936)), "torch_dtype": "bfloat16",
                    "transformers_version": "4.44.0"}
            plan.append(("config.json", _json_bytes(full)))
            if self.tok_cfg:
                tok = dict(self._tokenizer_config())
                tok["model_max_length"] = r.choice((512, 2048, 8192))
                plan.append(("tokenizer_config.json", _json_bytes(tok)))
            if self.pipeline == _TEXTGEN:
                plan.append(("generation_config.json", _json_bytes(
                    {"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 2,
                     "transformers_version": "4.44.0"})))
            if lib == "sentence-transformers":
                plan.append(("modules.json", _json_bytes([{"idx": 0, "name": "0", "path": "",
                                                           "type": "sentence_transformers.models.Transformer"}])))
                plan.append(("1_Pooling/config.json", _json_bytes({"word_embedding_dimension": 384,
                                                                   "pooling_mode_mean_tokens": True})))
        elif lib == "peft":
            base = self.bases[0].id if self.bases else "unknown"
            plan.append(("adapter_config.json", _json_bytes(
                {"base_model_name_or_path": base, "peft_type": "LORA", "r": 16, "lora_alpha": 32,
                 "target_modules": ["q_proj", "v_proj"], "task_type": "CAUSAL_LM"})))
        elif lib == "diffusers":
            plan.append(("model_index.json", _json_bytes({"_class_name": "StableDiffusionPipeline",
                                                          "_diffusers_version": "0.30.0",
                                                          "unet": ["diffusers", "UNet2DConditionModel"]})))
            plan.append(("unet/config.json", _json_bytes({"_class_name": "UNet2DConditionModel",
                                                          "sample_size": 64})))
        # Weight files get real headers (weights.py), drawn from their own generator so the draws above stay put.
        wr = random.Random(e._salt ^ 0x7E16)
        dtype = self._dtype()
        if self.safetensors:
            if lib == "peft":
                size = r.randint(2048, 8192)
                plan.append(("adapter_model.safetensors",
                             weights.safetensors_file(wr, "base_model.model.", dtype, size, False)))
            elif lib == "diffusers":
                size = r.randint(4096, 12288)
                plan.append(("unet/diffusion_pytorch_model.safetensors",
                             weights.safetensors_file(wr, "unet.", dtype, size, False)))
            else:
                size = r.randint(2048, 12288)
                shards = wr.choice((0, 0, 0, 0, 2, 3))
                if shards:
                    files, index = weights.sharded(wr, dtype, shards, size // shards)
                    plan += list(files.items())
                    plan.append(("model.safetensors.index.json", index))
                else:
                    plan.append(("model.safetensors",
                                 weights.safetensors_file(wr, "model.", dtype, size, wr.random() < 0.15)))
        if self.gguf:
            size = r.randint(2048, 12288)
            template = "{% for m in messages %}{{ m['content'] }}{% endfor %}" if self.chat else None
            plan.append((f"{self.name[:80]}.Q4_K_M.gguf",
                         weights.gguf_file(wr, a.model_type or "llama", wr.choice((2048, 4096, 8192, 32768)),
                                           template, size)))
        if self.pytorch:
            plan.append(("pytorch_model.bin", r.randint(2048, 12288)))
        if self.onnx:
            plan.append(("onnx/model.onnx", r.randint(2048, 8192)))
        if lib in ("timm", "espnet", "stable-baselines3") or lib is None:
            plan.append(("model.pt" if lib != "stable-baselines3" else "model.zip", r.randint(2048, 8192)))
        return plan

    def _inference(self) -> str | None:
        # 34 of the 35 recorded model bodies carry `inference` (33 "warm", 1 "cold"); which models lack it on the
        # Hub is not known: here every model with a pipeline has it, "warm" when it has providers, else "cold" [I].
        if self.warm:
            return "warm"
        return "cold" if self.pipeline else None

    def _dtype(self) -> str:
        return "F32" if self.arch.pipeline in (None, "fill-mask", "text-classification") else "BF16"

    def _bundle(self) -> tuple[dict | None, dict | None, list[tuple[str, Any]]]:
        # _card() draws from self.r, so it runs once per generator; fields() and files() share the result.
        if self._cache is None:
            card = self._card()
            config = self._config_summary()
            self._cache = (card, config, self._plan(card, config))
        return self._cache

    def fields(self) -> dict:
        e, a = self.e, self.arch
        tags = self.tags()
        card, config, plan = self._bundle()
        f = self._base_fields()
        f["tags"] = tags
        if self.pipeline:
            f["pipeline_tag"] = self.pipeline
        if self.library:
            f["library_name"] = self.library
        f["downloads"] = e.downloads
        f["downloadsAllTime"] = e.downloads_all
        f["likes"] = e.likes
        f["trendingScore"] = e.trending
        if a.mask_token and self.library in ("transformers", "sentence-transformers") and e._extra == "":
            f["mask_token"] = a.mask_token
        if card is not None and isinstance(card.get("widget"), list):
            f["widgetData"] = card["widget"]
        elif self.pipeline in _WIDGET_DEFAULTS and e._extra == "" and self.default_widget:
            f["widgetData"] = _WIDGET_DEFAULTS[self.pipeline]
        if card is not None:
            f["model-index"] = card.get("model-index")
            f["cardData"] = card
        if config is not None:
            f["config"] = config
        if self.library in ("transformers", "sentence-transformers") and a.auto_model:
            info = {"auto_model": a.auto_model}
            if self.pipeline and self.info_pipeline:
                info["pipeline_tag"] = self.pipeline
            info["processor"] = a.processor
            f["transformersInfo"] = info
        paths = sorted(p for p, _ in plan)
        f["siblings"] = [{"rfilename": p} for p in paths]
        hub = self.hub
        spaces = [hub.spaces[s].id for s in e._spaces[:SPACES_LIST_CAP]] if hub else []
        f["spaces"] = spaces
        lfs_total = sum(c.size if isinstance(c, LfsContent) else c for _, c in plan if isinstance(c, int | LfsContent))
        # The Hub reads these two from the weight files' headers: so does the replica (weights.py).
        params: dict[str, int] = {}
        for path, content in plan:
            if path.endswith(".safetensors") and isinstance(content, LfsContent):
                for dtype, count in content.parameters.items():
                    params[dtype] = params.get(dtype, 0) + count
        if params:
            f["safetensors"] = {"parameters": params, "total": sum(params.values())}
        gguf = next((c.gguf for _, c in plan if isinstance(c, LfsContent) and c.gguf is not None), None)
        if gguf is not None:
            f["gguf"] = gguf
        inference = self._inference()
        if inference is not None:
            f["inference"] = inference
        if self.warm:
            f["inferenceProviderMapping"] = {"hf-inference": {"status": "live", "providerId": e.id,
                                                              "task": self.pipeline or "text-generation"}}
        f["usedStorage"] = lfs_total * (1 + (e._salt % 3)) + 1024 * len(plan)
        if self.bases:
            f["baseModels"] = {"relation": self.rel,
                               "models": [{"_id": b.mongo_id, "id": b.id} for b in self.bases]}
        f["childrenModelCount"] = e._children
        return f

    def files(self) -> list[RepoFile]:
        return self._make_files(self._bundle()[2])


class _DatasetGen(_Gen):
    def __init__(self, e: Entity) -> None:
        super().__init__(e)
        r = self.r = random.Random(e._salt)
        self.kind = _DS_KINDS[e._kind % len(_DS_KINDS)]
        self.has_card = e._extra != "" or r.random() > 0.05
        nlang = r.choice((0, 1, 1, 1, 2))
        self.langs = r.sample(_LANGS[:-1], nlang) if self.kind[1] != "tabular" else []
        self.license = r.choice(_LICENSES) if r.random() < 0.8 else None
        self.license_list = r.random() < 0.3
        self.rows = int(math.exp(r.random() * 14)) + 10
        self.card_tags = r.sample(_DS_TAGS, r.choice((0, 0, 1, 2)))
        self.arxiv = [_arxiv(r) for _ in range(r.choice((0, 0, 0, 1)))]
        self.pretty = self.name.replace("_", " ").replace("-", " ").title()[:80]
        self.citation = r.random() < 0.3
        self.pwc = r.random() < 0.1
        self.splits = ("train", "test") if r.random() < 0.6 else ("train",)
        self.layout = r.randrange(3)

    def size_category(self) -> str:
        return next(label for limit, label in _SIZE_CATS if self.rows < limit)

    def tags(self) -> list[str]:
        if self.e._extra == "hostile":
            return ["region:us"]
        task, modality, fmt = self.kind[0], self.kind[1], self.kind[2]
        t = [f"task_categories:{task}"]
        t += [f"language:{lang}" for lang in self.langs]
        if self.license:
            t.append(f"license:{self.license}")
        t.append(f"size_categories:{self.size_category()}")
        t.append(f"format:{fmt}")
        t.append(f"modality:{modality}")
        t += ["library:datasets", "library:pandas", "library:mlcroissant"]
        t += self.arxiv
        t.append("region:us")
        t += self.card_tags
        return list(dict.fromkeys(t))

    def _card(self) -> dict | None:
        if not self.has_card:
            return None
        if self.e._extra == "hostile":
            return {"license": "mit"}
        task = self.kind[0]
        card: dict[str, Any] = {}
        if self.langs:
            card["language"] = list(self.langs)
        if self.license:
            card["license"] = [self.license] if self.license_list else self.license
        card["size_categories"] = [self.size_category()]
        card["task_categories"] = [task]
        card["pretty_name"] = self.pretty
        if self.card_tags:
            card["tags"] = list(self.card_tags)
        n_train = self.rows if len(self.splits) == 1 else self.rows * 4 // 5
        sizes = {"train": n_train, "test": self.rows - n_train}
        card["dataset_info"] = {
            "features": [{"name": n, "dtype": t} for n, t in self.kind[3]],
            "splits": [{"name": s, "num_bytes": sizes[s] * 97, "num_examples": sizes[s]} for s in self.splits],
            "download_size": self.rows * 41,
            "dataset_size": self.rows * 97,
        }
        card["configs"] = [{"config_name": "default",
                            "data_files": [{"split": s, "path": f"data/{s}-*"} for s in self.splits]}]
        return card

    def _description(self) -> str:
        return f"Dataset Card for {self.pretty}\n\nA synthetic {self.kind[1]} dataset for {self.kind[0]}."

    def _plan(self, card: dict | None) -> list[tuple[str, Any]]:
        e = self.e
        r = random.Random(e._salt ^ 0xF11E)
        plan: list[tuple[str, Any]] = [(".gitattributes", _GITATTRIBUTES.encode())]
        if card is not None or r.random() < 0.5:
            plan.append(("README.md", card_markdown(card, "Dataset Card for " + self.pretty,
                                                    self._description().split("\n\n", 1)[1]).encode()))
        if e._extra == "hostile":
            return plan
        if r.random() < 0.4:
            plan.append(("dataset_info.json", _json_bytes(
                {"description": self._description(), "features": {n: {"dtype": t} for n, t in self.kind[3]},
                 "splits": {s: {"name": s} for s in self.splits}})))
        fmt = self.kind[2]
        for s in self.splits:
            if fmt == "parquet":
                path = (f"data/{s}-00000-of-00001.parquet", f"default/{s}/0000.parquet", f"{s}.parquet")[self.layout]
                plan.append((path, r.randint(2048, 12288)))
            elif fmt == "json":
                rows = [{n: (f"{s} {n} {i}" if t == "string" else i) for n, t in self.kind[3]} for i in range(5)]
                data = "".join(json.dumps(row) + "\n" for row in rows).encode()
                plan.append(((f"data/{s}.jsonl", f"{s}.jsonl", f"data/{s}/part-0.jsonl")[self.layout], data))
            else:
                header = ",".join(n for n, _ in self.kind[3])
                data = (header + "\n" + "".join(",".join(str(i + j) for j in range(len(self.kind[3]))) + "\n"
                                                for i in range(5))).encode()
                plan.append(((f"data/{s}.csv", f"{s}.csv", f"csv/{s}.csv")[self.layout], data))
        return plan

    def _bundle(self) -> tuple[dict | None, list[tuple[str, Any]]]:
        if self._cache is None:
            card = self._card()
            self._cache = (card, self._plan(card))
        return self._cache

    def fields(self) -> dict:
        e = self.e
        card, plan = self._bundle()
        f = self._base_fields()
        f["tags"] = self.tags()
        if self.citation:
            f["citation"] = (f"@misc{{{self.name.lower()[:30]},\n  title={{{self.pretty}}},\n"
                             f"  author={{{e.author or 'anonymous'}}},\n"
                             f"  year={{{time.gmtime(e.created).tm_year}}}\n}}")
        f["description"] = self._description()
        if self.pwc:
            f["paperswithcode_id"] = re.sub(r"[^a-z0-9-]", "-", self.name.lower())[:40]
        f["downloads"] = e.downloads
        f["downloadsAllTime"] = e.downloads_all
        f["likes"] = e.likes
        f["trendingScore"] = e.trending
        if card is not None:
            f["cardData"] = card
        f["siblings"] = [{"rfilename": p} for p in sorted(p for p, _ in plan)]
        f["usedStorage"] = sum(c if isinstance(c, int) else len(c) for _, c in plan) * 2
        return f

    def files(self) -> list[RepoFile]:
        return self._make_files(self._bundle()[1])


class _SpaceGen(_Gen):
    def __init__(self, e: Entity) -> None:
        super().__init__(e)
        r = self.r = random.Random(e._salt)
        hub = self.hub
        self.sdk = _SDKS[e._kind % len(_SDKS)][0]
        self.models = [hub.models[m] for m in e._models] if hub else []
        self.datasets = [hub.datasets[d] for d in e._datasets] if hub else []
        self.stage = _weighted(r, _STAGES) if self.sdk != "static" else "RUNNING"
        self.hardware = r.choice(_HARDWARE)
        self.storage = "small" if r.random() < 0.03 else None
        self.card_links = r.random() < 0.5
        self.license = r.choice(_LICENSES) if r.random() < 0.6 else None
        self.card_tags = r.sample(("leaderboard", "mcp-server", "chatbot", "image-generation", "audio"),
                                  r.choice((0, 0, 1)))
        self.emoji = r.choice(_EMOJIS)
        self.colors = (r.choice(_COLORS), r.choice(_COLORS))
        self.pinned = r.random() < 0.1
        self.extra_files = r.random() < 0.3
        self.asset = r.random() < 0.2
        self.subdomain = _subdomain(e.id)

    def tags(self) -> list[str]:
        if self.e._extra == "hostile":
            return ["region:us"]
        return list(dict.fromkeys([self.sdk] + self.card_tags + ["region:us"]))

    def _card(self) -> dict:
        card: dict[str, Any] = {"title": self.name[:60] if self.e._extra == "" else "space", "emoji": self.emoji,
                                "colorFrom": self.colors[0], "colorTo": self.colors[1], "sdk": self.sdk}
        if self.sdk == "gradio":
            card["sdk_version"] = "4.44.1"
            card["app_file"] = "app.py"
        elif self.sdk == "streamlit":
            card["sdk_version"] = "1.38.0"
            card["app_file"] = "app.py"
        elif self.sdk == "docker":
            card["app_port"] = 7860
        card["pinned"] = self.pinned
        if self.license:
            card["license"] = self.license
        if self.card_tags:
            card["tags"] = list(self.card_tags)
        if self.card_links and self.models:
            card["models"] = [self.spell(m.id) for m in self.models]
        if self.card_links and self.datasets:
            card["datasets"] = [self.spell(d.id) for d in self.datasets]
        card["short_description"] = f"A {self.sdk} demo"
        return card

    def runtime(self) -> dict:
        if self.sdk == "static":
            return {"stage": "RUNNING", "hardware": {"current": None, "requested": None}, "storage": None,
                    "replicas": {"requested": 1, "current": 1}}
        running = self.stage in _RUNNING_STAGES
        rt: dict[str, Any] = {
            "stage": self.stage,
            "hardware": {"current": self.hardware if running else None, "requested": self.hardware},
            "storage": self.storage,
            "gcTimeout": 172800 if self.hardware == "cpu-basic" else 3600,
            "replicas": {"requested": 1, "current": 1} if running else {"requested": 1},
            "devMode": False,
            "domains": [{"domain": f"{self.subdomain}.hf.space", "stage": "READY"}],
        }
        if self.stage.endswith("_ERROR"):
            rt["errorMessage"] = "Exit code: 1. Reason: synthetic failure"
        return rt

    def _plan(self, card: dict) -> list[tuple[str, Any]]:
        e, r = self.e, random.Random(self.e._salt ^ 0xF11E)
        plan: list[tuple[str, Any]] = [(".gitattributes", _GITATTRIBUTES.encode()),
                                       ("README.md", card_markdown(card, card["title"], "Check out the configuration "
                                                                   "reference at https://huggingface.co/docs/hub/spaces-config-reference").encode())]
        if e._extra == "hostile":
            return plan
        if self.sdk in ("gradio", "streamlit"):
            lines = [f"import {self.sdk}"]
            if self.models:
                lines.append("from transformers import pipeline")
                lines += [f'pipe{n} = pipeline(model="{self.spell(m.id)}")' for n, m in enumerate(self.models)]
            if self.datasets:
                lines.append("from datasets import load_dataset")
                lines += [f'ds{n} = load_dataset("{self.spell(d.id)}")' for n, d in enumerate(self.datasets)]
            lines.append('demo = gradio.Interface(fn=lambda x: x, inputs="text", outputs="text")'
                         if self.sdk == "gradio" else 'streamlit.title("demo")')
            if self.sdk == "gradio":
                lines.append("demo.launch()")
            plan.append(("app.py", ("\n".join(lines) + "\n").encode()))
            plan.append(("requirements.txt", b"transformers\ntorch\ndatasets\n"))
        elif self.sdk == "docker":
            plan.append(("Dockerfile", b"FROM python:3.11-slim\nWORKDIR /app\nCOPY . .\n"
                                       b"RUN pip install -r requirements.txt\nCMD [\"python\", \"app.py\"]\n"))
            plan.append(("requirements.txt", b"fastapi\nuvicorn\n"))
            plan.append(("app.py", b"from fastapi import FastAPI\napp = FastAPI()\n"))
        else:
            plan.append(("index.html", b"<!doctype html>\n<html><body><h1>Hello</h1></body></html>\n"))
            plan.append(("style.css", b"body { font-family: sans-serif; }\n"))
        if self.extra_files:
            plan.append(("src/utils.py", b"def helper(x):\n    return x\n"))
        if self.asset:
            plan.append(("assets/example.png", r.randint(2048, 8192)))
        return plan

    def _bundle(self) -> tuple[dict, list[tuple[str, Any]]]:
        if self._cache is None:
            card = self._card()
            self._cache = (card, self._plan(card))
        return self._cache

    def fields(self) -> dict:
        e = self.e
        card, plan = self._bundle()
        f = self._base_fields()
        f["host"] = f"https://{self.subdomain}.hf.space"
        f["subdomain"] = self.subdomain
        f["likes"] = e.likes
        f["trendingScore"] = e.trending
        f["sdk"] = self.sdk
        f["tags"] = self.tags()
        f["cardData"] = card
        f["runtime"] = self.runtime()
        f["siblings"] = [{"rfilename": p} for p in sorted(p for p, _ in plan)]
        # As the owner wrote them (README `models:`/`datasets:`); whether the Hub canonicalises their case is not known.
        if self.models:
            f["models"] = [self.spell(m.id) for m in self.models]
        if self.datasets:
            f["datasets"] = [self.spell(d.id) for d in self.datasets]
        f["region"] = "us"
        f["usedStorage"] = sum(c if isinstance(c, int) else len(c) for _, c in plan) * 2
        return f

    def files(self) -> list[RepoFile]:
        return self._make_files(self._bundle()[1])


def _is_gguf(e: Entity) -> bool:
    return e._relation == "quantized" and (e._flags >> 11) & 1 == 1


def _model_library(e: Entity) -> str | None:
    if e._relation == "adapter":
        return "peft"
    if _is_gguf(e):
        return "gguf"
    return _ARCHS[e._kind].library


_GEN: dict[str, type[_Gen]] = {"model": _ModelGen, "dataset": _DatasetGen, "space": _SpaceGen}


def _arxiv(r: random.Random) -> str:
    return f"arxiv:{r.randint(18, 26)}{r.randint(1, 12):02d}.{r.randint(1, 19999):05d}"


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2) + "\n").encode()


def _subdomain(repo_id: str) -> str:
    sub = re.sub(r"[^a-z0-9]+", "-", repo_id.lower()).strip("-") or "space"
    if len(sub) > 63:  # one DNS label; the Hub shortens long ones with a hash
        sub = sub[:56].rstrip("-") + "-" + _hex(repo_id, 6)
    return sub


def _weighted(r: random.Random, table: tuple[tuple[Any, int], ...]) -> Any:
    x = r.random() * sum(w for _, w in table)
    for value, w in table:
        x -= w
        if x < 0:
            return value
    return table[-1][0]


# ------------------------------------------------------------------------------------------- build


class _Builder:
    def __init__(self, seed: int, hub: SyntheticHub) -> None:
        self.seed = seed
        self.hub = hub
        self.rng = random.Random(f"hfscraper-replica:{seed}")
        self.counter = 0
        self.used: dict[str, set[str]] = {t: set() for t in REPO_TYPES}  # lowercased ids, old ids included

    # ------------------------------------------------------------------ names
    def owners(self, n: int) -> list[str]:
        rng, out, seen = self.rng, [], set()
        while len(out) < n:
            style = rng.random()
            syl = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
            if style < 0.35:
                name = syl
            elif style < 0.6:
                name = f"{syl}-{rng.choice(_ORG_WORDS)}"
            elif style < 0.8:
                suffix = rng.choice(("AI", "Labs", "", "X"))
                name = syl.capitalize() + suffix + (str(rng.randint(1, 99)) if rng.random() < 0.3 else "")
            else:
                name = f"{syl}{rng.randint(1, 9999)}"
            if name.lower() not in seen and len(name) <= 42:
                seen.add(name.lower())
                out.append(name)
        return out

    def pick_owner(self, owners: list[str]) -> str:
        rng = self.rng
        if rng.random() < 0.5:  # half the repos come from a Zipf-like head of prolific owners
            return owners[int(len(owners) ** rng.random()) - 1]
        return owners[rng.randrange(len(owners))]

    def unique(self, repo_type: str, owner: str | None, name: str) -> str:
        name = _clean_name(name)
        repo_id = f"{owner}/{name}" if owner else name
        n = 2
        while repo_id.lower() in self.used[repo_type]:
            base = _clean_name(name[: 96 - len(str(n)) - 1])
            repo_id = f"{owner}/{base}-{n}" if owner else f"{base}-{n}"
            n += 1
        self.used[repo_type].add(repo_id.lower())
        return repo_id

    def long_name(self, stem: str) -> str:
        rng, parts = self.rng, [stem]
        target = rng.randint(60, 96)
        while len("-".join(parts)) < target:
            parts.append(rng.choice(_SYLLABLES + _ORG_WORDS + _SIZES))
        return "-".join(parts)[:96]

    # ------------------------------------------------------------------ common per-entity structure
    def timestamps(self, n: int) -> list[int]:
        rng = self.rng
        old = [OLD_CREATED_TS] * sum(1 for _ in range(n) if rng.random() < 0.12)
        new = sorted(rng.randint(OLD_CREATED_TS + 86400, END_TS - 3 * 86400) for _ in range(n - len(old)))
        return old + new

    def new_entity(self, repo_type: str, repo_id: str, author: str, created: int) -> Entity:
        rng = self.rng
        self.counter += 1
        digest = hashlib.blake2b(f"{self.seed}:{repo_type}:{self.counter}".encode(), digest_size=25).hexdigest()
        e = Entity(repo_type, repo_id, f"{created:08x}{digest[40:50]}{self.counter:06x}", digest[:40])
        e.author = author
        e.created = created
        e.modified = created + int((END_TS - created) * rng.random() ** 2)
        e._salt = rng.getrandbits(48)
        if repo_type != "space":
            e.downloads = 0 if rng.random() < 0.3 else int(math.exp(rng.random() * 15)) - 1
            e.downloads_all = e.downloads * (1 + rng.randrange(20)) + rng.randrange(100)
        if repo_type != "space":
            e.likes = int((e.downloads + 1) ** 0.45 * rng.random())
        else:
            e.likes = int(math.exp(rng.random() * 8)) - 1
        e.trending = int(e.likes * rng.random() * 0.2) if rng.random() < 0.3 else 0
        return e

    def statuses(self, n: int, repo_type: str) -> list[str]:
        """One status per index: "", "private", "auto", "manual", "disabled" (renames are separate)."""
        rng = self.rng
        out = []
        for _ in range(n):
            u = rng.random()
            if u < 0.005:
                out.append("private")
            elif u < 0.008 and repo_type != "space":
                out.append("auto")
            elif u < 0.011 and repo_type != "space":
                out.append("manual")
            elif u < 0.013:
                out.append("disabled")
            else:
                out.append("")
        if n >= 20:  # small hubs still get one of each, so tests always meet every case
            wanted = ["private", "disabled"] + (["auto", "manual"] if repo_type != "space" else [])
            for status in wanted:
                if status not in out:
                    free = [i for i in range(n // 2, n) if out[i] == ""]
                    out[free[rng.randrange(len(free))]] = status
        return out

    def apply_status(self, e: Entity, status: str) -> None:
        if status == "private":
            e.private = True
        elif status in ("auto", "manual"):
            e.gated = status
        elif status == "disabled":
            e.disabled = True
            e.downloads = 0  # a disabled repo serves nothing (the recorded disabled dataset shows 0)

    def renames(self, entities: list[Entity], repo_type: str, owners: list[str], prefer_early: bool) -> None:
        rng = self.rng
        n = len(entities)
        chosen = [i for i in range(n) if not entities[i].private and rng.random() < 0.004]
        if n >= 20 and not chosen:
            top = max(2, n // 20) if prefer_early else n
            cands = [i for i in range(top) if not entities[i].private]
            if cands:
                chosen.append(cands[rng.randrange(len(cands))])
        for i in chosen:
            e = entities[i]
            name = e.id.rsplit("/", 1)[-1]
            if "/" in e.id and rng.random() < 0.3:
                old = name  # a legacy id without owner (like bert-base-uncased -> google-bert/...)
            elif rng.random() < 0.5:
                old = f"{self.pick_owner(owners)}/{name}"  # moved to another owner
            else:
                old = f"{e.author}/{name}-old" if e.author else f"{name}-old"
            if old.lower() in self.used[repo_type] or not old:
                continue
            self.used[repo_type].add(old.lower())
            e.renamed_from.append(old)

    # ------------------------------------------------------------------ per type
    def build_datasets(self, n: int, owners: list[str]) -> None:
        rng = self.rng
        times = self.timestamps(n)
        status = self.statuses(n, "dataset")
        out = []
        for i in range(n):
            kind = rng.randrange(len(_DS_KINDS))
            word = rng.choice(_DS_KINDS[kind][4])
            name = word + rng.choice(_DS_SUFFIX)
            if rng.random() < 0.2:
                name = name.replace("_", "-") if "_" in name else name.replace("-", "_")
            if rng.random() < 0.1:
                name = name.upper() if rng.random() < 0.3 else name.capitalize()
            if rng.random() < 0.01:
                name = self.long_name(name)
            owner = self.pick_owner(owners)
            legacy = times[i] == OLD_CREATED_TS and rng.random() < 0.25
            e = self.new_entity("dataset", self.unique("dataset", None if legacy else owner, name), owner, times[i])
            e._kind = kind
            self.apply_status(e, status[i])
            out.append(e)
        self.renames(out, "dataset", owners, prefer_early=True)
        for e in out:
            self.hub.add(e)

    def build_models(self, n: int, owners: list[str]) -> None:
        rng, hub = self.rng, self.hub
        times = self.timestamps(n)
        status = self.statuses(n, "model")
        entities: list[Entity] = []
        derived: list[int] = []  # public models with bases: picking among them deepens chains
        public_ds = [i for i, d in enumerate(hub.datasets) if not d.private and not d._extra]
        for i in range(n):
            owner = self.pick_owner(owners)
            private = status[i] == "private"
            relation = None
            bases: list[int] = []
            if i > 0 and rng.random() < 0.45:
                relation = _weighted(rng, _RELATIONS)
                want = rng.choice((2, 2, 3, 4)) if relation == "merge" else 1
                for _ in range(want * 4):
                    if derived and rng.random() < 0.35:
                        j = derived[rng.randrange(len(derived))]
                    else:
                        j = int(i ** rng.random()) - 1  # log-uniform: early models become popular bases
                    if not entities[j].private and j not in bases:
                        bases.append(j)
                        if len(bases) == want:
                            break
                if relation == "merge" and len(bases) < 2:
                    relation = "finetune" if bases else None
                    bases = bases[:1]
                if not bases:
                    relation = None
            if bases:
                kind = entities[bases[0]]._kind
                stem = entities[bases[0]].id.rsplit("/", 1)[-1]
                if relation == "merge":
                    stem = stem.split("-")[0] + "-" + entities[bases[1]].id.rsplit("/", 1)[-1].split("-")[0]
                name = f"{stem}-{rng.choice(_SUFFIX[relation])}"
            else:
                kind = _pick_arch(rng)
                a = _ARCHS[kind]
                parts = [rng.choice(a.families)]
                if rng.random() < 0.4:
                    parts.append(rng.choice(_VERSIONS))
                if rng.random() < 0.6:
                    parts.append(rng.choice(_SIZES))
                suffix = rng.choice(_SUFFIX[None])
                if suffix:
                    parts.append(suffix)
                name = ("_" if rng.random() < 0.1 else "-").join(parts)
            if rng.random() < 0.15:
                name = name.lower()
            if rng.random() < 0.01:
                name = self.long_name(name)
            legacy = times[i] == OLD_CREATED_TS and not bases and rng.random() < 0.15
            e = self.new_entity("model", self.unique("model", None if legacy else owner, name), owner, times[i])
            e._kind = kind
            e._relation = relation
            e._bases = tuple(bases)
            flags = 0
            if rng.random() < 0.3:
                flags |= 1  # a single base written as a one-element list
            if rng.random() < 0.4:
                flags |= 2  # base_model_relation written in the card
            if rng.random() < 0.6:
                flags |= 1 << 11  # a quantized model is GGUF (else AWQ/GPTQ-style transformers)
            if rng.random() < 0.4:
                flags |= 1 << 10  # a single dataset written as a string
            if public_ds and rng.random() < 0.25:
                want = rng.choice((1, 1, 1, 2, 3))
                ds = []
                for _ in range(want * 3):
                    k = public_ds[int(len(public_ds) ** rng.random()) - 1] if rng.random() < 0.6 \
                        else public_ds[rng.randrange(len(public_ds))]
                    if k not in ds:
                        ds.append(k)
                    if len(ds) == want:
                        break
                e._datasets = tuple(ds)
            if not bases and not private and rng.random() < 0.005:
                e._unknown_base = f"removed-org-{rng.randrange(10 ** 6)}/{name[:40]}"
            e._flags = flags
            self.apply_status(e, status[i])
            entities.append(e)
            if bases and not private:
                derived.append(i)
        self.renames(entities, "model", owners, prefer_early=True)
        # The card of a child may keep a renamed base's (or dataset's) old id; tags always use the new one.
        forced = False
        for e in entities:
            for n_b, b in enumerate(e._bases[:4]):
                if entities[b].renamed_from and rng.random() < 0.7:
                    e._flags |= 1 << (2 + n_b)
                    forced = True
            for n_d, d in enumerate(e._datasets[:4]):
                if hub.datasets[d].renamed_from and rng.random() < 0.7:
                    e._flags |= 1 << (6 + n_d)
        if not forced and n >= 20:  # make sure the renamed-base case exists at least once
            child = next((e for e in entities if len(e._bases) == 1 and not e.private), None)
            if child is not None:
                base = entities[child._bases[0]]
                if not base.renamed_from:
                    old = f"{base.id.rsplit('/', 1)[-1]}-legacy-name"
                    if old.lower() not in self.used["model"]:
                        self.used["model"].add(old.lower())
                        base.renamed_from.append(old)
                if base.renamed_from:
                    child._flags |= 1 << 2
        self.miscase(entities, lambda e: bool(e._datasets), lambda e: bool(e._bases))
        for e in entities:
            if not e.private:
                for b in e._bases:
                    entities[b]._children += 1
            hub.add(e)

    def build_spaces(self, n: int, owners: list[str]) -> None:
        rng, hub = self.rng, self.hub
        times = self.timestamps(n)
        status = self.statuses(n, "space")
        public_models = [i for i, m in enumerate(hub.models) if not m.private and not m._extra]
        public_ds = [i for i, d in enumerate(hub.datasets) if not d.private and not d._extra]
        out = []
        for i in range(n):
            owner = self.pick_owner(owners)
            name = rng.choice(_SPACE_WORDS)
            if rng.random() < 0.5:
                name += ("-" if rng.random() < 0.7 else "_") + rng.choice(_SYLLABLES + _VERSIONS)
            if rng.random() < 0.01:
                name = self.long_name(name)
            e = self.new_entity("space", self.unique("space", owner, name), owner, times[i])
            sdk = _weighted(rng, _SDKS)
            e._kind = [s[0] for s in _SDKS].index(sdk)
            if public_models and rng.random() < 0.6:
                e._models = _zipf_sample(rng, public_models, rng.choice((1, 1, 2, 3)))
            if public_ds and rng.random() < 0.2:
                e._datasets = _zipf_sample(rng, public_ds, rng.choice((1, 1, 2)))
            self.apply_status(e, status[i])
            out.append(e)
        self.renames(out, "space", owners, prefer_early=False)
        self.miscase(out, lambda e: bool(e._models), lambda e: bool(e._datasets))
        reverse: dict[int, list[int]] = {}
        for e in out:
            idx = hub.add(e)._idx
            if not e.private:
                for m in e._models:
                    reverse.setdefault(m, []).append(idx)
        spaces = hub.spaces
        for m, lst in reverse.items():
            lst.sort(key=lambda s: (-spaces[s].likes, spaces[s].id))
            hub.models[m]._spaces = tuple(lst)

    def miscase(self, entities: list[Entity], *kinds: Callable[[Entity], bool]) -> None:
        """Mark a few public entities `MISCASED` (about 3%, and at least one of each of *kinds*, the links that must
        be met: every small Hub names some repo in another case). A random stream of its own: the rest of the Hub
        is what it was before this existed."""
        if not entities:
            return
        rng = random.Random(f"hfscraper-replica:{self.seed}:miscased:{entities[0].repo_type}")
        eligible = [e for e in entities if not e.private and not e._extra]
        chosen = [e for e in eligible if rng.random() < 0.03]
        for kind in kinds:
            if not any(kind(e) for e in chosen):
                candidates = [e for e in eligible if kind(e)]
                if candidates:
                    chosen.append(candidates[rng.randrange(len(candidates))])
        for e in chosen:
            e._flags |= MISCASED

    def add_extra(self, repo_type: str, repo_id: str, extra: str) -> None:
        # Hostile ids may differ from others only by case or normalization (on purpose), not be equal.
        if repo_id in self.hub._by_id[repo_type] or repo_id in self.hub._renames[repo_type]:
            return
        self.used[repo_type].add(repo_id.lower())
        author = repo_id.split("/", 1)[0] if "/" in repo_id else ""
        e = self.new_entity(repo_type, repo_id, author, END_TS - 30 * 86400)
        e._extra = extra
        e._kind = 0
        self.hub.add(e)


def _pick_arch(rng: random.Random) -> int:
    x = rng.random() * _ARCH_CUM[-1]
    for i, c in enumerate(_ARCH_CUM):
        if x < c:
            return i
    return len(_ARCHS) - 1


def _zipf_sample(rng: random.Random, pool: list[int], k: int) -> tuple[int, ...]:
    out: list[int] = []
    for _ in range(k * 3):
        j = pool[int(len(pool) ** rng.random()) - 1] if rng.random() < 0.6 else pool[rng.randrange(len(pool))]
        if j not in out:
            out.append(j)
        if len(out) == k:
            break
    return tuple(out)


_NAME_BAD = re.compile(r"[^A-Za-z0-9._-]")


def _clean_name(name: str) -> str:
    """A Hub-legal repo name: [A-Za-z0-9._-], no '--' or '..', no leading/trailing '-' or '.', <= 96 chars."""
    name = _NAME_BAD.sub("-", name)
    name = re.sub(r"-{2,}", "-", name)
    name = re.sub(r"\.{2,}", ".", name)
    name = name[:96].strip("-.")
    return name or "repo"


def build_hub(models: int, datasets: int, spaces: int, seed: int = 0, hostile_ids: bool = False,
              big_file_mib: int = 0, hostile_files: bool = False, hostile_cards: bool = False) -> SyntheticHub:
    """A synthetic Hub with exactly `models`/`datasets`/`spaces` ordinary entities, plus one model with
    a `big_file_mib` MiB LFS file if asked, plus the hostile-id entities if asked (appended last), plus
    the model `HOSTILE_FILES_MODEL` whose files have hostile names if asked, plus the model `HOSTILE_CARDS_MODEL`
    whose card names bases and datasets with characters XML forbids if asked."""
    hub = SyntheticHub(seed)
    b = _Builder(seed, hub)
    owners = b.owners(max(8, (models + datasets + spaces) // 7))
    b.build_datasets(datasets, owners)
    b.build_models(models, owners)
    b.build_spaces(spaces, owners)
    if big_file_mib > 0:
        b.add_extra("model", f"big-files/huge-model-{big_file_mib}MiB", f"big:{big_file_mib}")
    if hostile_files:
        b.add_extra("model", HOSTILE_FILES_MODEL, "hostile_files")
    if hostile_cards:
        b.add_extra("model", HOSTILE_CARDS_MODEL, "hostile_cards")
    if hostile_ids:
        for repo_id in HOSTILE_IDS:
            b.add_extra("model", repo_id, "hostile")
        for repo_type in ("dataset", "space"):
            for repo_id in _HOSTILE_SUBSET:
                b.add_extra(repo_type, repo_id, "hostile")
    hub.add_legacy_alias(LEGACY_RENAMED_ID)
    return hub
