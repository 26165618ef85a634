"""Prep throughput on People's Daily 1998 (demo corpus), against two anchors measured in the same run.

- full pipeline: ``run_prep`` from the JSON-lines file to finished shards (read → normalise → filter →
  sentences → jieba words → char ids, word ids, pinyin ids → pack → Arrow), in 1 and 2 processes;
- anchor (a): pure-Python ``jieba.lcut`` over the same documents — segmentation alone;
- anchor (b): a per-line reference written the way the public ChineseBERT / Hugging Face scripts work:
  per line, jieba, pypinyin over the whole sentence, tokenizer call, alignment in Python loops.

Usage: python benchmarks/prep_speed.py [--corpus data/demo/corpus] [--vocab data/demo/vocab]
(`zhbert demo` or `zhbert corpus fetch` + `zhbert vocab …` make those folders.)
Targets: full ≥ 2× (a), ≥ 10× (b); 2 processes ≥ 1.7× one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from zhbert.config import from_dict
from zhbert.data import prep
from zhbert.data.pinyin import PinyinVocab
from zhbert.data.prep import PrepConfig, run_prep
from zhbert.data.vocab import CharVocab


def jieba_alone(texts: list[str]) -> float:
    import jieba

    jieba.initialize()
    t = time.perf_counter()
    for text in texts:
        jieba.lcut(text)
    return time.perf_counter() - t


def per_line_reference(texts: list[str], vocab: CharVocab, pinyin: PinyinVocab) -> float:
    """The anchors' way: every line re-does pypinyin and tokenisation, and aligns in Python."""
    import jieba
    from pypinyin import Style
    from pypinyin import pinyin as to_pinyin

    t = time.perf_counter()
    for text in texts:
        words = jieba.lcut(text)
        readings = to_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True, errors=lambda s: [[""]] * len(s))
        enc = vocab.tokenizer.encode(text)
        char_word = []
        for w, word in enumerate(words):
            char_word += [w] * len(word)
        word_ids, pinyin_ids = [], []
        for start, end in enc.offsets:
            if end == 0:
                word_ids.append(-1)
                pinyin_ids.append(0)
                continue
            word_ids.append(char_word[start] if start < len(char_word) else -1)
            syl = readings[start][0] if end - start == 1 and start < len(readings) else ""
            pinyin_ids.append(pinyin.ids.get(syl, 0))
    return time.perf_counter() - t


def full_pipeline(corpus_file: Path, vocab: str, num_proc: int, shard_chars: int, **settings: object) -> float:
    """Seconds for `run_prep`; ``settings``: more PrepConfig fields (``pinyin="word"``)."""
    prep._ENCODERS.clear()  # every timed run starts with a cold word cache (forked workers would inherit one)
    out = Path(tempfile.mkdtemp(prefix="zhbert-bench-"))
    try:
        cfg = from_dict(PrepConfig, {"inputs": [str(corpus_file)], "output": str(out / "shards"), "vocab": vocab,
                                     "num_proc": num_proc, "shard_chars": shard_chars, **settings})
        t = time.perf_counter()
        run_prep(cfg)
        return time.perf_counter() - t
    finally:
        shutil.rmtree(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=Path("data/demo/corpus"))
    ap.add_argument("--vocab", default="data/demo/vocab")
    ap.add_argument("--shard-chars", type=int, default=250_000, help="small shards so 2 workers share the work")
    args = ap.parse_args()
    corpus_file = args.corpus / "peoples_daily.jsonl"
    texts = [json.loads(line)["text"] for line in corpus_file.open(encoding="utf-8")]
    chars = sum(len(t) for t in texts)
    vocab, pinyin = CharVocab.load(args.vocab), PinyinVocab.load(args.vocab)
    # One-time start-up (imports, pypinyin's dictionaries, jieba's dictionary) is paid before any timing,
    # on both sides: a small warm-up run here, jieba.initialize() in the anchors.
    with tempfile.TemporaryDirectory() as tmp:
        warm = Path(tmp) / "warm.jsonl"
        warm.write_text("".join(corpus_file.open(encoding="utf-8").readlines()[:200]), encoding="utf-8")
        full_pipeline(warm, args.vocab, 1, args.shard_chars)

    results = {
        "full pipeline, 1 process": full_pipeline(corpus_file, args.vocab, 1, args.shard_chars),
        "full pipeline, 2 processes": full_pipeline(corpus_file, args.vocab, 2, args.shard_chars),
        "(a) jieba.lcut alone": jieba_alone(texts),
        "(b) per-line reference": per_line_reference(texts, vocab, pinyin),
    }
    print(f"\nPeople's Daily 1998: {len(texts):,} documents, {chars:,} characters")
    for name, seconds in results.items():
        print(f"  {name:<28} {seconds:7.2f} s  {chars / seconds / 1e3:8.0f}k chars/s")
    one = results["full pipeline, 1 process"]
    ratios = {
        "full (1 proc) / jieba.lcut alone": (results["(a) jieba.lcut alone"] / one, 2.0),
        "full (1 proc) / per-line reference": (results["(b) per-line reference"] / one, 10.0),
        "2 processes / 1 process": (one / results["full pipeline, 2 processes"], 1.7),
    }
    for name, (ratio, target) in ratios.items():
        print(f"  {name:<36} {ratio:5.2f}×  (target ≥ {target}×: {'met' if ratio >= target else 'MISSED'})")


if __name__ == "__main__":
    main()
