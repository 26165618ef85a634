"""Char-vocab counting (``zhbert.data.vocab.count``) against the way it counted before, in the same run: the
tokenizer's BERT normaliser and pre-tokeniser over each text in turn. Both must give the same counts; the first
normalises each distinct character once and counts the texts in C.

Usage: python benchmarks/vocab_count.py [--corpus data/demo/corpus]   (`zhbert demo` or `zhbert corpus fetch`
makes that folder; every *.jsonl in it is read)
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from tokenizers import models

from zhbert.data.text import HANZI_RUN
from zhbert.data.vocab import SPECIAL_TOKENS, _bert_chinese, count


def text_by_text(texts: list[str]) -> tuple[Counter[str], Counter[str]]:
    """The reference: each text normalised, its characters counted, its non-hanzi rest pre-tokenised."""
    tok = _bert_chinese(models.WordPiece({t: i for i, t in enumerate(SPECIAL_TOKENS)}, unk_token="[UNK]"))
    chars: Counter[str] = Counter()
    words: Counter[str] = Counter()
    for text in texts:
        text = tok.normalizer.normalize_str(text)
        chars.update(text)
        words.update(w for w, _ in tok.pre_tokenizer.pre_tokenize_str(HANZI_RUN.sub(" ", text)) if len(w) > 1)
    return chars, words


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=Path("data/demo/corpus"))
    args = ap.parse_args()
    texts = [json.loads(line)["text"] for f in sorted(args.corpus.glob("*.jsonl")) for line in f.open(encoding="utf-8")]
    print(f"{len(texts):,} texts, {sum(map(len, texts)):,} characters from {args.corpus}")
    t0 = time.perf_counter()
    reference = text_by_text(texts)
    t1 = time.perf_counter()
    counted = count(texts)
    t2 = time.perf_counter()
    assert counted == reference, "count() differs from the text-by-text reference"
    print(f"text by text  {t1 - t0:6.1f} s\ncount()       {t2 - t1:6.1f} s   {(t1 - t0) / (t2 - t1):.1f}x, same counts "
          f"({len(counted[0]):,} characters, {len(counted[1]):,} words)")


if __name__ == "__main__":
    main()
