"""zhbert's own confusion sets (zhbert/data/confusion.py) against pycorrector's hand-made ones, and how many of the
real SIGHAN 2015 test errors each holds.

pycorrector 1.1.4's wheel (PyPI, Apache-2.0) ships ``same_pinyin.txt`` (per character: homophones with the same
tone, and with another tone), ``same_stroke.txt`` (groups of look-alike characters) and ``sighan2015_test.tsv``
(learner sentences and their corrections). zhbert.data.spelling downloads it (pinned sha256, never installed):

    .venv/bin/python benchmarks/confusion_sets.py [--glyphs data/demo/glyphs --vocab data/demo/vocab --k 8]

Homophones are compared among the characters pycorrector's file knows (so both sides choose from the same
characters); look-alikes among the glyph table's hanzi, ours being each key's ``k`` nearest glyphs. Recall: the
share of pycorrector's pairs that ours hold; precision: the share of ours that pycorrector lists.

Coverage of the SIGHAN 2015 test errors: for each erroneous character (the source's ``wrong`` where the gold has
``right``), whether ``wrong`` is in the confusion set of ``right``, the direction synthetic errors are drawn in
(zhbert.data.corrupt replaces a right character by one of its set). zhbert's sets are built over the vocab's hanzi,
and its homophones also over pycorrector's characters only (the sets then draw from the same characters).
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from zhbert.data.confusion import homophones, look_alikes, merged
from zhbert.data.glyphs import load_glyph_table, read_vocab
from zhbert.data.spelling import read_spelling_data
from zhbert.data.text import is_hanzi


def overlap(ours: Mapping[str, set[str]], theirs: Mapping[str, set[str]]) -> str:
    keys = [c for c in theirs if c in ours]
    pairs_theirs = sum(len(theirs[c]) for c in keys)
    pairs_ours = sum(len(ours[c]) for c in keys)
    common = sum(len(ours[c] & theirs[c]) for c in keys)
    return (f"{len(keys):>5} keys | size {pairs_ours / len(keys):6.1f} ours, {pairs_theirs / len(keys):6.1f} "
            f"pycorrector | recall {common / max(pairs_theirs, 1):6.1%} | precision {common / max(pairs_ours, 1):6.1%}")


def sighan_errors(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``(right, wrong)`` for every position where a SIGHAN pair's two sentences differ."""
    return [(r, w) for wrong, right in pairs for w, r in zip(wrong, right) if w != r]


def coverage(errors: list[tuple[str, str]], confusion: Mapping[str, set[str]]) -> str:
    held = sum(w in confusion.get(r, ()) for r, w in errors)
    size = sum(len(s) for s in confusion.values()) / max(len(confusion), 1)
    return (f"{held:>4} of {len(errors)} errors ({held / len(errors):6.1%}) | {len(confusion):>6,} keys, "
            f"mean size {size:5.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--glyphs", type=Path, default=Path("data/demo/glyphs"))
    ap.add_argument("--vocab", type=Path, default=Path("data/demo/vocab"))
    ap.add_argument("--k", type=int, default=8)
    args = ap.parse_args()
    data = read_spelling_data()
    same_pinyin, stroke = data.same_pinyin.data, data.same_stroke.data
    for name, parsed in (("same_pinyin.txt", data.same_pinyin), ("same_stroke.txt", data.same_stroke),
                         ("sighan2015_test.tsv", data.sighan15_test)):
        left = ", ".join(f"{len(lines)} {why} (lines {lines[:5]}…)" for why, lines in parsed.skipped.items())
        print(f"{name}: {len(parsed.data):,} kept; left out: {left or 'none'}")

    universe = {c for k, (a, b) in same_pinyin.items() for c in (k, *a, *b) if is_hanzi(c)}
    ours = homophones(sorted(universe))
    print("homophones (among the characters of pycorrector's same_pinyin.txt):")
    print("  same tone", overlap({c: s for c, (s, _) in ours.items()}, {c: s for c, (s, _) in same_pinyin.items()}))
    print("  other tone", overlap({c: o for c, (_, o) in ours.items()}, {c: o for c, (_, o) in same_pinyin.items()}))

    vocab = read_vocab(args.vocab)
    nearest = look_alikes(vocab, load_glyph_table(args.glyphs).pixels, k=args.k)
    near = {c: set(v) for c, v in nearest.items()}
    print(f"look-alikes (ours: the {args.k} nearest glyphs of {len(near):,} hanzi; pycorrector's same_stroke.txt):")
    print("  nearest", overlap(near, stroke))
    for c in "己未人龙齐":
        print(f"  {c}: ours {''.join(nearest.get(c, []))}  pycorrector {''.join(sorted(stroke.get(c, set())))}")

    pairs = data.sighan15_test.data
    errors = sighan_errors(pairs)
    per = Counter(sum(w != r for w, r in zip(*p)) for p in pairs)
    non_hanzi = sum(not (is_hanzi(r) and is_hanzi(w)) for r, w in errors)
    print(f"SIGHAN 2015 test ({len(pairs)} same-length pairs): {len(pairs) - per[0]} sentences with errors, "
          f"{len(errors)} errors ({len(errors) / (len(pairs) - per[0]):.2f} per such sentence, at most {max(per)}), "
          f"{len(set(errors))} distinct right → wrong pairs, {non_hanzi} with a non-hanzi side, "
          f"{sum(r not in near or w not in near for r, w in errors)} with a side not "
          f"among the vocab's hanzi; mean {sum(len(w) for w, _ in pairs) / len(pairs):.1f} chars per sentence")
    theirs_pinyin = {c: s | o for c, (s, o) in same_pinyin.items()}
    ours_sound = homophones(sorted(near))
    ours_pinyin = {c: s | o for c, (s, o) in ours_sound.items()}
    print("coverage of the SIGHAN 2015 test errors (is wrong in the set of right?):")
    for name, confusion in (
            ("pycorrector same tone", {c: s for c, (s, _) in same_pinyin.items()}),
            ("pycorrector any tone", theirs_pinyin),
            ("pycorrector same_stroke", stroke),
            ("pycorrector all", merged(theirs_pinyin, stroke)),
            ("zhbert homophones same tone, pycorrector's characters", {c: s for c, (s, _) in ours.items()}),
            ("zhbert homophones any tone, pycorrector's characters", {c: s | o for c, (s, o) in ours.items()}),
            ("zhbert homophones same tone", {c: s for c, (s, _) in ours_sound.items()}),
            ("zhbert homophones any tone", ours_pinyin),
            (f"zhbert look-alikes k={args.k}", near),
            ("zhbert all", merged(ours_pinyin, near)),
            ("both", merged(theirs_pinyin, stroke, ours_pinyin, near))):
        print(f"  {name:<53}", coverage(errors, confusion))


if __name__ == "__main__":
    main()
