"""Pinyin in context on the CPP benchmark (g2pM's dev split), as `zhbert prep` writes it, and prep speed.

Each CPP sentence marks one polyphonic character (▁字▁) and gives its reading. The sentence goes through what
prep does to a document (the normaliser with the default settings, sentences, jieba words, `DocumentEncoder`
with prep's own encoder for the reader) and the pinyin id prep writes for that character is compared with
the label (TONE3, neutral tone 5, ``u:`` read as ``v``). Printed beside it: pypinyin on the whole sentence.

Figures come for the whole dev split and for its two halves by sentence index: the even half ("tune") is
the one the reader's few settings were chosen on, the odd half ("check") was not looked at for that. The
context reader itself learnt from g2pM's readings of the demo corpus, not from CPP (pipelines/distill_pinyin.py).

Then prep speed, side by side in the same process: the full pipeline (`run_prep`, one process) on People's
Daily 1998 with each reader, against pure-Python ``jieba.lcut`` alone (target: full ≥ 2× jieba); the three are
run in turn ``--repeats`` times and each side's fastest run counts, since a shared machine's load comes and goes.

Usage: python benchmarks/pinyin_accuracy.py [--cpp ../shared/data/cpp] [--vocab data/demo/vocab]
                                             [--corpus data/demo/corpus] [--repeats 3] [--no-speed]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from zhbert.config import from_dict
from zhbert.data import prep
from zhbert.data.pinyin import PinyinVocab
from zhbert.data.prep import PrepConfig
from zhbert.data.tally import Tally
from zhbert.data.text import Normalizer, hanzi_count

sys.path.insert(0, str(Path(__file__).parent))
from prep_speed import full_pipeline, jieba_alone  # noqa: E402

MARK = "\u2581"
PUBLISHED = "published on this split: pypinyin 0.36 85.4 %, majority reading 92.2 %, g2pM 97.4 %, BERT 98.0 %"


def read_cpp(folder: Path) -> tuple[list[str], list[int], list[str]]:
    """Sentences without the marks, the index of the marked character, its reading (ü as v)."""
    lines = (folder / "dev.sent").read_text(encoding="utf-8").splitlines()
    labels = [x.replace("u:", "v") for x in (folder / "dev.lb").read_text(encoding="utf-8").split()]
    if len(lines) != len(labels):
        raise ValueError(f"{folder}: {len(lines)} sentences but {len(labels)} labels")
    return [s.replace(MARK, "") for s in lines], [s.index(MARK) for s in lines], labels


def prep_readings(texts: list[str], targets: list[int], vocab: str, reader: str) -> list[str]:
    """The syllable prep writes for each target character ('' where the hanzi could not be lined up)."""
    cfg = from_dict(PrepConfig, {"vocab": vocab, "pinyin": reader})
    encoder, pinyin = prep._encoder(cfg), PinyinVocab.load(vocab)
    normalize = Normalizer(cfg.normalize)
    out = []
    for a in range(0, len(texts), 1000):
        docs = [normalize(t) for t in texts[a:a + 1000]]
        enc = encoder.encode(docs, Tally())
        py = enc.pinyin_ids.astype(np.int64)
        for d, (text, i) in enumerate(zip(texts[a:a + 1000], targets[a:a + 1000])):
            seqs = np.flatnonzero(enc.doc_index == d)
            ids = np.concatenate([py[enc.offsets[k]:enc.offsets[k + 1]] for k in seqs]) if len(seqs) else py[:0]
            hanzi = ids[ids != PinyinVocab.PAD]  # one per hanzi, in order (specials and other tokens are PAD)
            ok = len(hanzi) == hanzi_count(docs[d])
            out.append(pinyin.entries[hanzi[hanzi_count(text[:i])]] if ok else "")
    return out


def pypinyin_readings(texts: list[str], targets: list[int]) -> list[str]:
    from pypinyin import Style, lazy_pinyin

    return [lazy_pinyin(t, style=Style.TONE3, neutral_tone_with_five=True, errors=lambda s: [""] * len(s))[i]
            for t, i in zip(texts, targets)]


def scores(got: list[str], labels: list[str]) -> tuple[float, float, float]:
    """(tune half, check half, whole split) accuracy."""
    right = np.array([g == y for g, y in zip(got, labels)])
    return right[0::2].mean(), right[1::2].mean(), right.mean()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpp", type=Path, default=Path("../shared/data/cpp"))
    ap.add_argument("--vocab", default="data/demo/vocab")
    ap.add_argument("--corpus", type=Path, default=Path("data/demo/corpus"))
    ap.add_argument("--shard-chars", type=int, default=250_000)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each side; the fastest counts")
    ap.add_argument("--no-speed", action="store_true", help="accuracy only")
    args = ap.parse_args()

    texts, targets, labels = read_cpp(args.cpp)
    rows = {"zhbert prep, context reader (default)": prep_readings(texts, targets, args.vocab, "context"),
            "zhbert prep, word reader (before)": prep_readings(texts, targets, args.vocab, "word"),
            "pypinyin, whole sentence": pypinyin_readings(texts, targets)}
    print(f"CPP dev: {len(texts):,} sentences, one polyphonic character each "
          f"(tune = even-numbered half, check = odd-numbered half)")
    print(f"  {'reader':<40} {'tune':>7} {'check':>7} {'whole':>7}")
    for name, got in rows.items():
        print(f"  {name:<40}" + "".join(f" {s:7.2%}" for s in scores(got, labels)))
    print(f"  ({PUBLISHED})")
    if args.no_speed:
        return

    corpus_file = args.corpus / "peoples_daily.jsonl"
    docs = [json.loads(line)["text"] for line in corpus_file.open(encoding="utf-8")]
    chars = sum(len(t) for t in docs)
    with tempfile.TemporaryDirectory() as tmp:  # start-up paid before timing (as in prep_speed.py)
        warm = Path(tmp) / "warm.jsonl"
        warm.write_text("".join(corpus_file.open(encoding="utf-8").readlines()[:200]), encoding="utf-8")
        full_pipeline(warm, args.vocab, 1, args.shard_chars)
    runs: dict[str, list[float]] = {"context": [], "word": [], "jieba": []}
    for _ in range(args.repeats):  # interleaved, so a busy spell of the machine hits every side
        for reader in ("context", "word"):
            runs[reader].append(full_pipeline(corpus_file, args.vocab, 1, args.shard_chars, pinyin=reader))
        runs["jieba"].append(jieba_alone(docs))
    times = {reader: min(runs[reader]) for reader in ("context", "word")}
    jieba = min(runs["jieba"])
    print(f"\nprep speed, People's Daily 1998 ({chars:,} characters), one process, best of {args.repeats}:")
    for reader, seconds in times.items():
        print(f"  full pipeline, {reader + ' reader':<15}{seconds:6.2f} s  {chars / seconds / 1e3:6.0f}k chars/s  "
              f"{jieba / seconds:5.2f}× jieba.lcut (target ≥ 2×: {'met' if jieba / seconds >= 2 else 'MISSED'})")
    print(f"  jieba.lcut alone            {jieba:6.2f} s  {chars / jieba / 1e3:6.0f}k chars/s")


if __name__ == "__main__":
    main()
