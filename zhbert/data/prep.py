"""The prep pipeline: input files → clean documents → packed char-view shards with a manifest.

Two stages, each keyed by a hash of what determines its output, so a re-run skips finished work:

1. **clean** (zhbert/data/clean.py): read → normalise → filter, cached in a folder of its own per key.
2. **encode** (here; ``num_proc`` workers, one task per shard): sentences → jieba words → char ids,
   word ids, pinyin ids → packed sequences. Each shard is written atomically, so a run killed at any
   moment and re-run produces the same files as an uninterrupted one.

With ``--rank/--world-size`` each machine takes every world_size-th input file and writes its own
``part-RRRR-of-WWWW`` folder; `zhbert prep-merge` (automatic when world_size is 1) joins them. On a Ray cluster
(zhbert/data/ray_prep.py) both stages run as the cluster's tasks, dedup across the whole input, and the
output is this module's for the same inputs (`encode_documents` with another engine).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm.auto import tqdm

from zhbert.config import config_hash, to_dict
from zhbert.data.clean import clean_documents, nothing_kept
from zhbert.data.encode import DocumentEncoder, PackConfig, describe
from zhbert.data.filters import FilterConfig
from zhbert.data.pinyin import ContextReader, PinyinVocab, Reader, reader_record
from zhbert.data.readers import (
    ReadConfig,
)
from zhbert.data.segment import SegmentConfig, Segmenter
from zhbert.data.shards import (
    char_view,
    finalize_folder,
    merge_ranks,
    part_name,
    read_arrow,
    write_arrow,
)
from zhbert.data.tally import Tally
from zhbert.data.text import NormalizeConfig
from zhbert.data.vocab import CharVocab
from zhbert.files import read_json, sha256_files, write_json
from zhbert.layout import CHAR_VIEW, DEFAULT_WORK, MANIFEST, PINYIN_VOCAB, TOKENIZER, WorkDir


@dataclass
class PrepConfig:
    """Everything `zhbert prep` does; configs/data/*.toml are deltas over these defaults."""

    inputs: list[str] = field(default_factory=list)
    """Input files or folders: .txt, .jsonl, .parquet, or a datasets folder."""
    output: str = str(WorkDir(DEFAULT_WORK).shards)
    """Shard folder (created)."""
    vocab: str = str(WorkDir(DEFAULT_WORK).vocab)
    """Folder with the char vocab (tokenizer.json) and the pinyin vocab (pinyin_vocab.txt)."""
    num_proc: int = 1
    """Worker processes for the encode stage (does not change the output)."""
    shard_chars: int = 2_000_000
    """Characters of clean text per shard (and per worker task)."""
    cache: str = ""
    """Where the clean stage keeps its documents, one folder per key (the read, normalise and filter settings and
    the inputs by content), so that several configs coexist; empty: ``clean/`` beside ``output``. Not part of
    the shards' config hash: it changes where, not what."""
    on_bad_file: Literal["error", "skip"] = "error"
    """A file that is not text (binary, unknown encoding): stop with an error, or skip it and list it
    under refused_files in the manifest."""
    read: ReadConfig = field(default_factory=ReadConfig)
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    pinyin: Reader = "context"
    """How heteronyms are read: ``context`` (a word table and a small model over the neighbouring characters,
    distilled from g2pM: 96 % on the CPP benchmark) or ``word`` (pypinyin's dictionaries, each jieba word alone:
    87.6 %). See zhbert/data/pinyin.py and benchmarks/pinyin_accuracy.py."""
    pack: PackConfig = field(default_factory=PackConfig)


# ---- stage 2: encode, one task per shard; the encoder is built once per worker process ----

_ENCODERS: dict[str, DocumentEncoder] = {}


def _encoder(cfg: PrepConfig) -> DocumentEncoder:
    """The encoder for ``cfg``, keyed by the contents of the vocab files and user dictionaries (a vocab rebuilt
    or a dictionary edited in place keeps its path); only the latest is kept."""
    vocab = Path(cfg.vocab)
    key = config_hash(sha256_files([vocab / TOKENIZER, vocab / PINYIN_VOCAB]), cfg.segment,
                      sha256_files(cfg.segment.user_dicts), cfg.pack, reader_record(cfg.pinyin))
    if key not in _ENCODERS:
        _ENCODERS.clear()
        _ENCODERS[key] = DocumentEncoder(CharVocab.load(cfg.vocab), PinyinVocab.load(cfg.vocab),
                                         Segmenter(cfg.segment), cfg.pack,
                                         ContextReader.load() if cfg.pinyin == "context" else None)
    return _ENCODERS[key]


@dataclass(frozen=True)
class DocumentRows:
    """The clean documents one shard encodes: rows of Arrow files of clean documents (zhbert/data/clean.py's
    columns), in order. Paths, not data: the worker that encodes the shard reads them itself."""

    pieces: tuple[tuple[str, np.ndarray], ...]
    """(file, row numbers in it)"""

    def read(self) -> tuple[list[str], list[str]]:
        """(ids, texts)"""
        import pyarrow as pa

        table = pa.concat_tables([read_arrow(Path(file)).take(rows) for file, rows in self.pieces])
        return table.column("id").to_pylist(), table.column("text").to_pylist()


ShardTask = tuple[PrepConfig, DocumentRows, Path, int, str]
"""`encode_shard`'s arguments: config, documents, part folder, shard index, key."""
Engine = Callable[[PrepConfig, list[ShardTask]], Iterator[tuple[ShardTask, dict[str, Any]]]]
"""Runs the shard tasks (in any order) and yields each with the stats `encode_shard` returned."""


def encode_shard(cfg: PrepConfig, documents: DocumentRows, part: Path, index: int, key: str) -> dict[str, Any]:
    """Encode ``documents`` into ``data-<index>.arrow`` unless a finished copy exists."""
    import pyarrow as pa

    out, stats_path = part / f"data-{index:05d}.arrow", part / f"data-{index:05d}.json"
    if out.exists() and stats_path.exists():
        stats = read_json(stats_path)
        if stats.get("key") == key:
            return stats
    encoder = _encoder(cfg)
    ids, texts = documents.read()
    tally = Tally()
    enc = encoder.encode(texts, tally)
    offsets = pa.array(enc.offsets.astype(np.int32))
    cols = {"input_ids": pa.ListArray.from_arrays(offsets, pa.array(enc.input_ids)),
            "word_ids": pa.ListArray.from_arrays(offsets, pa.array(enc.word_ids)),
            "pinyin_ids": pa.ListArray.from_arrays(offsets, pa.array(enc.pinyin_ids)),
            "doc_id": [ids[d] for d in enc.doc_index.tolist()]}
    tally.add("sequences", len(enc))
    tally.add("tokens", len(enc.input_ids))
    tally.add("unk_tokens", int((enc.input_ids == encoder.vocab.unk_id).sum()))
    if len(enc):
        tally.add("words", int((np.maximum.reduceat(enc.word_ids, enc.offsets[:-1]) + 1).sum()))
    stats = {"key": key, "file": out.name, "documents": len(ids), **tally.to_dict()}
    write_arrow(out, cols, char_view(len(encoder.vocab)))
    write_json(stats_path, stats)  # the marker last: a crash before it leaves a shard that is redone
    return stats


def _shard_plan(chars: list[int], shard_chars: int) -> list[tuple[int, int]]:
    plan, start, acc = [], 0, 0
    for i, n in enumerate(chars):
        acc += n
        if acc >= shard_chars:
            plan.append((start, i + 1))
            start, acc = i + 1, 0
    if start < len(chars):
        plan.append((start, len(chars)))
    return plan


def run_prep(cfg: PrepConfig, rank: int = 0, world_size: int = 1) -> dict[str, Any]:
    """Run both stages for this rank; returns the (merged, when world_size is 1) manifest."""
    t0 = time.perf_counter()
    vocab, pinyin = CharVocab.load(cfg.vocab), PinyinVocab.load(cfg.vocab)  # a missing vocab stops the run first
    docs, clean_stats = clean_documents(cfg, rank, world_size)
    if not docs.num_rows:
        raise ValueError(f"no documents to encode: {nothing_kept(clean_stats)}; no shards written")
    clean_file = docs.cache_files[0]["filename"]

    def rows(start: int, end: int) -> DocumentRows:
        return DocumentRows(((clean_file, np.arange(start, end)),))

    return encode_documents(cfg, vocab, pinyin, clean_stats, docs.data.column("chars").to_pylist(), rows,
                            _run_local, t0, rank, world_size)


def _run_local(cfg: PrepConfig, tasks: list[ShardTask]) -> Iterator[tuple[ShardTask, dict[str, Any]]]:
    """In this process, or in ``num_proc`` forked ones (they inherit the encoder the parent has built)."""
    if cfg.num_proc <= 1:
        for task in tasks:
            yield task, encode_shard(*task)
        return
    with ProcessPoolExecutor(cfg.num_proc, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = {pool.submit(encode_shard, *task): task for task in tasks}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()


def encode_documents(cfg: PrepConfig, vocab: CharVocab, pinyin: PinyinVocab, clean_stats: dict[str, Any],
                     chars: list[int], rows: Callable[[int, int], DocumentRows], engine: Engine, t0: float,
                     rank: int = 0, world_size: int = 1) -> dict[str, Any]:
    """Stage 2 for this rank, whatever ran stage 1: the clean documents are ``rows(start, end)`` (in input order,
    ``chars`` each), the clean stage's tally, inputs and key are ``clean_stats``; ``engine`` runs the shard
    tasks. Writes the part folder and its manifest (merged when world_size is 1) and returns that manifest."""
    # config_hash: what the data means (same on every rank, checked by the merge), with the files the config
    # names by content; key: also this rank's clean stage (its inputs by content), so changed files are never
    # mistaken for finished work.
    shard_config = {k: v for k, v in to_dict(cfg).items() if k not in ("num_proc", "output", "cache")}
    reader = reader_record(cfg.pinyin)
    run_hash = config_hash(shard_config, world_size, vocab.sha256, pinyin.sha256, reader,
                           sha256_files(cfg.segment.user_dicts), sha256_files(cfg.filter.exclude))
    key = config_hash(run_hash, clean_stats["key"])
    output = Path(cfg.output)
    part = output / part_name(rank, world_size)
    if (part / MANIFEST).exists() and read_json(part / MANIFEST).get("key") == key:
        top = output / MANIFEST
        if world_size > 1:
            manifest = read_json(part / MANIFEST)
        else:
            manifest = read_json(top) if top.exists() and read_json(top).get("keys") == [key] else merge_ranks(output)
        print_summary(manifest, output if world_size == 1 else part, time.perf_counter() - t0, up_to_date=True)
        return manifest

    part.mkdir(parents=True, exist_ok=True)
    for marker in (part / MANIFEST, output / MANIFEST):  # the folder stops looking finished until it is again
        marker.unlink(missing_ok=True)
    # the encoder is built here once; forked workers inherit it with its dictionaries loaded
    example = _encoder(cfg).encode(rows(0, 1).read()[1], Tally())
    print("example │", describe(example.sequence(0), vocab, pinyin))
    plan = _shard_plan(chars, cfg.shard_chars)
    for stale in part.glob("data-*"):
        if int(stale.name[5:10]) >= len(plan):
            stale.unlink()
    tally = Tally.from_dict(clean_stats["tally"])
    shard_stats: list[dict[str, Any]] = [{}] * len(plan)
    total_chars = sum(chars)
    bar = tqdm(total=total_chars, desc=f"encode ({cfg.num_proc} proc)", unit=" chars", unit_scale=True)
    tasks = [(cfg, rows(s, e), part, i, key) for i, (s, e) in enumerate(plan)]
    for task, stats in engine(cfg, tasks):
        index = task[3]
        shard_stats[index] = stats
        bar.update(sum(chars[plan[index][0]:plan[index][1]]))
    bar.close()
    for s in shard_stats:
        tally.merge(s)
    counts = dict(tally.counts)
    counts["chars"] = total_chars
    dropped = tally.dropped
    manifest = {
        "format": CHAR_VIEW, "config_hash": run_hash, "key": key, "config": shard_config, "rank": rank,
        "world_size": world_size,
        "vocab": {"char_sha256": vocab.sha256, "char_size": len(vocab),
                  "pinyin_sha256": pinyin.sha256, "pinyin_size": len(pinyin)},
        "pinyin_reader": reader,  # what read the pinyin ids (part of config_hash: the merge refuses a mix)
        "user_dicts_sha256": sha256_files(cfg.segment.user_dicts),  # what segment.user_dicts held when prep ran
        "inputs": clean_stats["inputs"], "refused_files": clean_stats["refused_files"],
        "counts": {k: v for k, v in sorted(counts.items()) if not k.startswith("dropped.")} | {"dropped": dropped},
        "drop_examples": tally.to_dict()["examples"],
        "shards": [{"file": s["file"], "documents": s["documents"], "sequences": s["counts"].get("sequences", 0),
                    "tokens": s["counts"].get("tokens", 0)} for s in shard_stats],
    }
    finalize_folder(part, [s["file"] for s in manifest["shards"]], char_view(len(vocab)), manifest)
    if world_size == 1:
        manifest = merge_ranks(output)
    print_summary(manifest, output if world_size == 1 else part, time.perf_counter() - t0)
    return manifest


def print_summary(manifest: dict[str, Any], folder: Path, seconds: float, up_to_date: bool = False) -> None:
    c = manifest["counts"]
    lines = [
        f"prep {'(up to date, nothing redone)' if up_to_date else 'done'} in {seconds:.1f}s"
        + ("" if up_to_date else f" — {c['chars'] / max(seconds, 1e-9) / 1e3:,.0f}k chars/s"),
        f"  inputs     {len(manifest['inputs'])} file(s)"
        + (f", {len(manifest['refused_files'])} REFUSED" if manifest["refused_files"] else ""),
        f"  documents  {c['documents_in']:,} in = {c.get('documents_kept', 0):,} kept"
        + "".join(f" + {n:,} {r}" for r, n in c["dropped"].items()),
        f"  text       {c['chars']:,} chars, {c.get('sentences', 0):,} sentences, {c.get('words', 0):,} words",
        f"  sequences  {c.get('sequences', 0):,} ({c.get('tokens', 0):,} tokens, "
        f"{c.get('unk_tokens', 0) / max(c.get('tokens', 1), 1):.3%} [UNK], "
        f"{c.get('long_sentences_cut', 0):,} long sentences cut)",
        f"  shards     {len(manifest['shards'])} → {folder}",
    ]
    for r in manifest["refused_files"]:
        lines.append(f"  refused    {r['reason']}")
    print("\n".join(lines))
