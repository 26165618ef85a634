"""Prep on a Ray cluster of two nodes (a head and a worker, started here, one CPU each): the same shards and
manifest as the local run, duplicates found across the whole input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_prep import arrow_bytes, config

from zhbert.data.prep import run_prep
from zhbert.data.shards import load_shards

# worker processes on this shared machine must not be killed for memory other programs hold; no usage report
RAY_ENV = {"RAY_memory_monitor_refresh_ms": "0", "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="module")
def ray_cluster():
    """The address of a two-node Ray cluster on this machine, torn down after the module's tests."""
    from ray.cluster_utils import Cluster

    saved = {k: os.environ.get(k) for k in RAY_ENV}
    os.environ.update(RAY_ENV)
    node = {"num_cpus": 1, "object_store_memory": 80 << 20}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        cluster.add_node(**node)
        cluster.wait_for_nodes()
        yield cluster.address
    finally:
        cluster.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def docs(path: Path, n: int) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(next(f)) for _ in range(n)]


@pytest.fixture(scope="module")
def inputs(small_corpus, tmp_path_factory) -> tuple[Path, list[str]]:
    """A few hundred real documents in four files, with duplicates across files (each copy with an id of its own):
    a file's documents copied into another file, and a document of a later file copied into the first one.
    Returns the folder and the ids of the documents whose text came earlier in the input order."""
    folder = tmp_path_factory.mktemp("ray-inputs")
    news, reviews = docs(small_corpus / "peoples_daily.jsonl", 200), docs(small_corpus / "reviews.jsonl", 150)
    again = [{"id": f"again:{i}", "text": d["text"]} for i, d in enumerate(reviews)]
    first = [{"id": "copy-of-news-7", "text": news[7]["text"]}, *docs(small_corpus / "msra_news.jsonl", 100)]
    files = {"a_first": first, "news": news, "reviews": reviews, "reviews_again": again}
    for name, records in files.items():
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in records),
                                              encoding="utf-8")
    return folder, [news[7]["id"]] + [d["id"] for d in again]


def test_ray_prep_writes_the_local_runs_shards_and_manifest(ray_cluster, inputs, vocab_dir, tmp_path):
    folder, later = inputs
    local = run_prep(config([folder], tmp_path / "local", vocab_dir, shard_chars=10_000))
    cmd = [sys.executable, "-m", "zhbert.cli", "prep", str(folder), "--vocab", str(vocab_dir), "--shard_chars=10000",
           "--out", str(tmp_path / "ray"), "--engine", "ray", "--ray-address", ray_cluster]
    done = subprocess.run(cmd, env={**os.environ, **RAY_ENV}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    on_ray = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert on_ray == local and len(local["shards"]) > 3
    assert arrow_bytes(tmp_path / "ray") == arrow_bytes(tmp_path / "local")
    a, b = load_shards(tmp_path / "local"), load_shards(tmp_path / "ray")
    for column in ("input_ids", "word_ids", "pinyin_ids", "doc_id"):
        assert a[column] == b[column]

    # deduplication over the whole input: the later copies are dropped, in another file as in the same one
    assert on_ray["counts"]["dropped"]["duplicate"] == len(later) == 151
    doc_ids = set(b["doc_id"])
    assert "copy-of-news-7" in doc_ids and not doc_ids & set(later)
    assert on_ray["drop_examples"]["duplicate"][0] == later[0]


def test_the_ray_engine_refuses_ranks(vocab_dir, tmp_path, capsys):
    from zhbert.cli import main

    assert main(["prep", str(tmp_path), "--vocab", str(vocab_dir), "--engine", "ray", "--world-size", "2"]) == 2
    assert "drop --rank/--world-size" in capsys.readouterr().err
