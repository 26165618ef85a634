"""Shards on disk: Arrow files written atomically, a manifest, and a folder `datasets` memory-maps.

A shard folder is what ``datasets.save_to_disk`` writes (``state.json``, ``dataset_info.json``, Arrow
files), so ``datasets.load_from_disk(folder)`` opens it without copying; ``manifest.json`` beside
them is written last and says where every document went. Several machines (``--rank/--world-size``)
each write a ``part-RRRR-of-WWWW`` folder of their own; `merge_ranks` joins them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from datasets import Features, List, Value

from zhbert.files import atomic_write, read_json, write_json
from zhbert.layout import MANIFEST


def char_view(vocab_size: int) -> Features:
    """The char view's columns, ids as small as the vocab allows (uint16 up to 65,536 entries: 6 bytes a token)."""
    return Features({"input_ids": List(Value(id_type(vocab_size))), "word_ids": List(Value("int16")),
                     "pinyin_ids": List(Value("int16")), "doc_id": Value("string")})


def word_view(vocab_size: int) -> Features:
    """The word view's columns; ``char_len``: tokens of the row's char-view twin, so packing groups both alike."""
    return Features({"input_ids": List(Value(id_type(vocab_size))), "word_ids": List(Value("int16")),
                     "doc_id": Value("string"), "char_len": Value("int32")})


def id_type(vocab_size: int) -> str:
    return "uint16" if vocab_size <= 1 << 16 else "int32"




@contextmanager
def arrow_stream(path: Path, features: Features) -> Iterator[Callable[[dict[str, list | object]], None]]:
    """An Arrow stream file in the layout `datasets` memory-maps, written in batches (bounded memory) through
    `atomic_write`: a crash never leaves a file that looks done. Yields ``write(columns)``, columns as Python
    lists or pyarrow arrays (pyarrow converts them in C)."""
    import pyarrow as pa
    from datasets.arrow_writer import ArrowWriter

    schema = features.arrow_schema
    with atomic_write(path) as tmp:
        writer = ArrowWriter(features=features, path=str(tmp))
        try:
            # columns of any integer width (numpy int32/int64, Python ints) are cast to the schema's, checked
            yield lambda columns: writer.write_table(pa.table(columns).select(schema.names).cast(schema))
        finally:
            writer.finalize()
            writer.close()


def read_arrow(path: Path):
    """An Arrow stream file as a pyarrow Table over a memory map (no copy)."""
    import pyarrow as pa

    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_stream(source).read_all()


def write_arrow(path: Path, columns: dict[str, list | object], features: Features) -> None:
    with arrow_stream(path, features) as write:
        write(columns)


def part_name(rank: int, world_size: int) -> str:
    return f"part-{rank:04d}-of-{world_size:04d}"


def finalize_folder(folder: Path, data_files: list[str], features: Features, manifest: dict[str, Any]) -> None:
    """Make ``folder`` loadable with ``datasets.load_from_disk``; the manifest goes last."""
    info = {"citation": "", "description": "zhbert shards; see manifest.json",
            "features": features.to_dict(), "homepage": "", "license": ""}
    write_json(folder / "dataset_info.json", info)
    write_json(folder / "state.json", {
        "_data_files": [{"filename": f} for f in data_files],
        "_fingerprint": manifest["config_hash"], "_format_columns": None, "_format_kwargs": {},
        "_format_type": None, "_output_all_columns": False, "_split": None})
    write_json(folder / MANIFEST, manifest)


def merge_ranks(folder: Path) -> dict[str, Any]:
    """Join the part manifests of every rank into one manifest and one loadable folder."""
    parts = sorted(folder.glob("part-*-of-*/" + MANIFEST))
    if not parts:
        raise FileNotFoundError(f"{folder}: no part-*/manifest.json to merge (did every rank finish?)")
    manifests = [read_json(p) for p in parts]
    world = {m["world_size"] for m in manifests}
    hashes = {m["config_hash"] for m in manifests}
    if len(world) != 1 or len(hashes) != 1:
        raise ValueError(f"{folder}: parts come from different runs (world sizes {world}, configs {hashes})")
    world_size = world.pop()
    ranks = sorted(m["rank"] for m in manifests)
    if ranks != list(range(world_size)):
        missing = sorted(set(range(world_size)) - set(ranks))
        raise ValueError(f"{folder}: ranks {missing} of {world_size} have not finished")
    merged = {k: manifests[0][k] for k in ("format", "config_hash", "config", "vocab", "pinyin_reader", "world_size",
                                           "user_dicts_sha256") if k in manifests[0]}
    merged["keys"] = [m["key"] for m in manifests]
    merged["inputs"] = [i for m in manifests for i in m["inputs"]]
    merged["refused_files"] = [i for m in manifests for i in m["refused_files"]]
    counts: dict[str, Any] = {}
    for m in manifests:
        for k, v in m["counts"].items():
            if isinstance(v, dict):
                sub = counts.setdefault(k, {})
                for kk, vv in v.items():
                    sub[kk] = sub.get(kk, 0) + vv
            else:
                counts[k] = counts.get(k, 0) + v
    merged["counts"] = counts
    merged["drop_examples"] = {}
    for m in manifests:
        for reason, where in m["drop_examples"].items():
            merged["drop_examples"].setdefault(reason, []).extend(where)
    merged["shards"] = [dict(s, file=f"{part_name(m['rank'], world_size)}/{s['file']}")
                        for m in manifests for s in m["shards"]]
    features = Features.from_dict(read_json(parts[0].parent / "dataset_info.json")["features"])
    finalize_folder(folder, [s["file"] for s in merged["shards"]], features, merged)
    return merged


def load_shards(folder: str | Path):
    """The shards as one memory-mapped `datasets.Dataset` (no copy)."""
    import datasets

    folder = Path(folder)
    if not (folder / MANIFEST).exists():
        raise FileNotFoundError(f"{folder}: no {MANIFEST}; not a finished zhbert shard folder")
    return datasets.load_from_disk(str(folder))
