"""Prep's first stage: input files → the normalised, filtered documents every later step sees (the char vocab,
the shards), streamed in one process: read → normalise → filter (empty, too short, too few hanzi, excluded,
duplicate), every drop counted. The result is cached under ``PrepConfig.cache`` in a folder named by the key of
what determines it (the read, normalise and filter settings and the inputs by content): a re-run reads it back,
and two configs keep a folder each.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datasets import Features, Value
from tqdm.auto import tqdm

from zhbert.config import config_hash
from zhbert.data.filters import DocumentFilter, read_exclusions
from zhbert.data.readers import SAMPLE_BYTES, InputError, detect_encoding, expand_inputs, layout_of, read_documents
from zhbert.data.shards import arrow_stream
from zhbert.data.tally import Tally
from zhbert.data.text import Normalizer
from zhbert.files import folder_sha256, read_json, sha256_file, sha256_files, write_json

if TYPE_CHECKING:
    from zhbert.data.prep import PrepConfig

CLEAN = Features({"id": Value("string"), "text": Value("string"), "source": Value("string"), "chars": Value("int64")})
CLEAN_BATCH = 10_000  # documents per write: the clean stage holds one batch in memory, whatever the input size


def input_files(cfg: PrepConfig, rank: int, world_size: int) -> list[Path]:
    """This rank's input files: every world_size-th of the expanded inputs."""
    if not cfg.inputs:
        raise ValueError("no inputs: give files or folders on the command line or set inputs in the config")
    if not 0 <= rank < world_size:
        raise ValueError(f"--rank {rank} is outside --world-size {world_size}")
    files = expand_inputs(cfg.inputs)
    if len(files) < world_size:
        raise ValueError(f"{len(files)} input file(s) cannot be shared by {world_size} ranks; split them first")
    return files[rank::world_size]


def check_inputs(files: list[Path], cfg: PrepConfig) -> tuple[list[Path], list[dict[str, str]]]:
    """Refuse what is not text before any work starts (or list it, with on_bad_file = skip)."""
    good, refused = [], []
    for path in files:
        try:
            if layout_of(path) in ("txt", "jsonl") and not cfg.read.encoding:
                with open(path, "rb") as f:
                    detect_encoding(path, f.read(SAMPLE_BYTES))
            good.append(path)
        except InputError as e:
            if cfg.on_bad_file == "error":
                raise
            refused.append({"path": str(path), "reason": str(e)})
    return good, refused


def clean_documents(cfg: PrepConfig, rank: int = 0, world_size: int = 1) -> tuple[Any, dict[str, Any]]:
    """Stage 1, cached: this rank's normalised, filtered documents (a memory-mapped Dataset) and the
    stage's statistics (tally, inputs with sha256, refused files, and the key of all that by content)."""
    import datasets

    files, refused = check_inputs(input_files(cfg, rank, world_size), cfg)
    inputs = [{"path": str(p), "sha256": input_sha256(p)} for p in files]
    key = clean_key(cfg, inputs)
    folder = cache_folder(cfg) / key
    arrow, stats = folder / "documents.arrow", folder / "stats.json"
    if not (arrow.exists() and stats.exists()):
        folder.mkdir(parents=True, exist_ok=True)
        normalize = Normalizer(cfg.normalize)
        keep = DocumentFilter(cfg.filter, read_exclusions(cfg.filter.exclude, normalize))
        tally = Tally()
        with arrow_stream(arrow, CLEAN) as write:
            for i, path in enumerate(files):
                before = tally.counts["documents_in"]
                clean_file(path, cfg, normalize, keep, tally, write)
                inputs[i]["documents_in"] = tally.counts["documents_in"] - before
            write_json(stats, {"tally": tally.to_dict(), "inputs": inputs, "refused_files": refused})
    return datasets.Dataset.from_file(str(arrow)), read_json(stats) | {"key": key}


def clean_file(path: Path, cfg: PrepConfig, normalize: Normalizer, keep: DocumentFilter, tally: Tally,
               write: Callable[[dict[str, list]], None]) -> None:
    """One input's documents, normalised, those ``keep`` passes written in order (a batch at a time); every
    document read and every drop counted in ``tally``."""
    cols: dict[str, list] = {"id": [], "text": [], "source": [], "chars": []}
    for doc in tqdm(read_documents(path, cfg.read, tally), desc=f"clean {path.name}", unit=" docs", leave=False,
                    mininterval=1):
        tally.add("documents_in")
        text = normalize(doc["text"])
        if reason := keep.reason(text):
            tally.drop(reason, doc["id"])
            continue
        tally.add("documents_kept")
        cols["id"].append(doc["id"])
        cols["text"].append(text)
        cols["source"].append(doc["source"])
        cols["chars"].append(len(text) - text.count(" "))
        if len(cols["id"]) == CLEAN_BATCH:
            write(cols)
            cols = {k: [] for k in cols}
    write(cols)


def input_sha256(path: Path) -> str:
    return sha256_file(path) if path.is_file() else folder_sha256(path)


def clean_key(cfg: PrepConfig, inputs: list[dict[str, str]]) -> str:
    """What determines the clean documents: the read, normalise and filter settings, the inputs (path and
    sha256, in order) and the exclusion lists by content."""
    return config_hash(cfg.read, cfg.normalize, cfg.filter, inputs, sha256_files(cfg.filter.exclude))


def cache_folder(cfg: PrepConfig) -> Path:
    """The clean stage's cache: ``cfg.cache``, or ``clean/`` beside the shard folder (in a work folder,
    ``<work>/clean``, zhbert/layout.py)."""
    return Path(cfg.cache) if cfg.cache else Path(cfg.output).resolve().parent / "clean"


def nothing_kept(clean_stats: dict[str, Any]) -> str:
    """Why the clean stage kept nothing, in words: what the inputs held, why it was dropped, what was refused."""
    tally = Tally.from_dict(clean_stats["tally"])
    why = ", ".join(f"{n:,} {reason}" for reason, n in tally.dropped.items())
    parts = [f"{', '.join(Path(i['path']).name for i in clean_stats['inputs'])} held "
             f"{tally.counts['documents_in']:,} document(s)" + (f", all dropped ({why})" if why else "")
             ] if clean_stats["inputs"] else []
    return "; ".join(parts + [f"refused {r['reason']}" for r in clean_stats["refused_files"]])
