"""`zhbert prep --engine ray`: the prep pipeline on a Ray cluster, writing the same shards and manifest as the
local run (`zhbert.data.prep.run_prep`) for the same inputs, with duplicates found across the whole input.

1. **clean**, one task per input file: read → normalise → filter (all but dedup, `clean.clean_file`), cached in
   ``<cache>/<file key>/candidates.arrow``; the task returns its file's dedup keys (`filters.text_key`) split into
   hash buckets.
2. **dedup**, one task per bucket: of the documents sharing a key, the first in input order (file, then row) is
   kept, the rest dropped as ``duplicate``: what the local run's one-pass filter keeps.
3. **encode**, one task per shard: the local run's shard plan, encoder and manifest (`prep.encode_documents`).

Tasks pass paths and small arrays, never documents: the inputs, the vocab folder, the user dictionaries, the
exclusion lists, the clean cache and the output must sit on storage every machine sees at the same path. Each
worker loads the vocab, jieba and its user dictionaries itself, once per process.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from zhbert.config import config_hash
from zhbert.data.clean import (
    CLEAN,
    cache_folder,
    check_inputs,
    clean_file,
    clean_key,
    input_files,
    input_sha256,
    nothing_kept,
)
from zhbert.data.filters import TEXT_KEY_BYTES, DocumentFilter, read_exclusions, text_key
from zhbert.data.pinyin import PinyinVocab
from zhbert.data.prep import DocumentRows, PrepConfig, ShardTask, encode_documents, encode_shard
from zhbert.data.shards import arrow_stream, read_arrow
from zhbert.data.tally import Tally
from zhbert.data.text import Normalizer
from zhbert.data.vocab import CharVocab
from zhbert.files import read_json, write_json

KEY = np.dtype([("head", "<u8"), ("tail", f"V{TEXT_KEY_BYTES - 8}")])
"""A dedup key as numpy sees it: the bucket comes from its first 8 bytes; sorting compares all 12."""
KEYED_ROW = np.dtype([("key", KEY), ("row", np.int64)])
MAX_BUCKETS = 64  # dedup tasks: one per CPU of the cluster up to this (each file task returns one array a bucket)


def run_prep_on_ray(cfg: PrepConfig, address: str | None = None) -> dict[str, Any]:
    """Prep on the Ray cluster at ``address`` (None: the one this process is connected to, else RAY_ADDRESS, the
    cluster `ray start` made on this machine, or a new one-machine cluster); returns the merged manifest."""
    import ray

    t0 = time.perf_counter()
    vocab, pinyin = CharVocab.load(cfg.vocab), PinyinVocab.load(cfg.vocab)  # a missing vocab stops the run first
    if not ray.is_initialized():
        ray.init(address=address)
    files, refused = check_inputs(input_files(cfg, 0, 1), cfg)
    buckets = min(max(1, int(ray.cluster_resources().get("CPU", 1))), MAX_BUCKETS)
    clean = ray.remote(num_returns=1 + buckets)(_clean_one)
    outs = [clean.remote(cfg, str(path), buckets) for path in files]
    per_file = [out[0] for out in outs]
    find = ray.remote(_duplicates)
    dups = [find.remote(*(out[1 + b] for out in outs)) for b in range(buckets)] if cfg.filter.dedup else []
    candidates: list[dict[str, Any]] = ray.get(per_file)
    duplicates = _rows_by_file(ray.get(dups), len(files))

    tally, inputs, kept, chars = Tally(), [], [], []
    for path, found, rows in zip(files, candidates, duplicates):
        table = read_arrow(Path(found["file"]))
        file_tally = Tally.from_dict(found["tally"])
        for doc_id in table.column("id").take(rows).to_pylist():
            file_tally.drop("duplicate", doc_id)
        file_tally.add("documents_kept", -len(rows))
        tally.merge(file_tally)
        inputs.append({"path": str(path), "sha256": found["sha256"], "documents_in": found["documents_in"]})
        kept.append(np.delete(np.arange(table.num_rows), rows))
        chars.append(table.column("chars").to_numpy()[kept[-1]])
    clean_stats = {"tally": tally.to_dict(), "inputs": inputs, "refused_files": refused,
                   "key": clean_key(cfg, [{k: i[k] for k in ("path", "sha256")} for i in inputs])}
    if not sum(map(len, kept)):
        raise ValueError(f"no documents to encode: {nothing_kept(clean_stats)}; no shards written")
    starts = np.cumsum([0, *map(len, kept)])  # where each file's kept documents start in the input order

    def rows(start: int, end: int) -> DocumentRows:
        use = np.flatnonzero((starts[:-1] < end) & (starts[1:] > start))
        return DocumentRows(tuple((candidates[i]["file"], kept[i][max(start - starts[i], 0):end - starts[i]])
                                  for i in use))

    return encode_documents(cfg, vocab, pinyin, clean_stats, np.concatenate(chars).tolist(), rows, _run_on_ray, t0)


def _clean_one(cfg: PrepConfig, path: str, buckets: int) -> tuple[Any, ...]:
    """Stage 1 for one input file (a Ray task): its documents that pass every filter but dedup, cached by the
    file's content and the read, normalise and filter settings; returns (what `run_prep_on_ray` needs to know,
    then the file's dedup keys with their row numbers, one array per bucket)."""
    source = Path(path)
    inputs = [{"path": path, "sha256": input_sha256(source)}]
    folder = cache_folder(cfg) / config_hash("candidates", clean_key(cfg, inputs))
    arrow, stats = folder / "candidates.arrow", folder / "stats.json"
    if not (arrow.exists() and stats.exists()):
        folder.mkdir(parents=True, exist_ok=True)
        normalize = Normalizer(cfg.normalize)
        keep = DocumentFilter(replace(cfg.filter, dedup=False), read_exclusions(cfg.filter.exclude, normalize))
        tally = Tally()
        with arrow_stream(arrow, CLEAN) as write:
            clean_file(source, cfg, normalize, keep, tally, write)
        write_json(stats, {"tally": tally.to_dict(), "documents_in": tally.counts["documents_in"]})
    texts = read_arrow(arrow).column("text").to_pylist()
    keys = np.frombuffer(b"".join(map(text_key, texts)), dtype=KEY)
    part = np.zeros(len(keys), dtype=KEYED_ROW)
    part["key"], part["row"] = keys, np.arange(len(keys))
    bucket = keys["head"] % buckets
    return {"file": str(arrow), "sha256": inputs[0]["sha256"], **read_json(stats)}, *(
        part[bucket == b] for b in range(buckets))


def _duplicates(*files: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Stage 2 for one bucket (a Ray task): ``files[f]`` holds input file f's keys in the bucket with their rows;
    returns (file, rows) of every document whose key came earlier in the input order."""
    both = np.concatenate(files) if files else np.zeros(0, KEYED_ROW)
    file = np.repeat(np.arange(len(files)), [len(f) for f in files])
    keys, row = both["key"], both["row"]
    _, first = np.unique(keys, return_index=True)  # stable: the earliest in (file, row) order
    later = np.ones(len(keys), dtype=bool)
    later[first] = False
    return [(int(f), row[later & (file == f)]) for f in np.unique(file[later])]


def _rows_by_file(found: list[list[tuple[int, np.ndarray]]], n_files: int) -> list[np.ndarray]:
    """The duplicates the buckets found, as sorted row numbers per input file."""
    rows: list[list[np.ndarray]] = [[] for _ in range(n_files)]
    for bucket in found:
        for f, r in bucket:
            rows[f].append(r)
    return [np.sort(np.concatenate(r)) if r else np.zeros(0, np.int64) for r in rows]


def _run_on_ray(cfg: PrepConfig, tasks: list[ShardTask]) -> Iterator[tuple[ShardTask, dict[str, Any]]]:
    """Stage 3: one Ray task per shard, yielded as each finishes."""
    import ray

    encode = ray.remote(encode_shard)
    pending = {encode.remote(*task): task for task in tasks}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        yield pending.pop(done[0]), ray.get(done[0])
