"""zhbert's own confusion sets (zhbert/data/confusion.py) against pycorrector's hand-made ones: sizes and overlap.

pycorrector 1.1.4's wheel (PyPI, Apache-2.0) ships ``same_pinyin.txt`` (per character: homophones with the same
tone, and with another tone) and ``same_stroke.txt`` (groups of look-alike characters, the first one the key).
It is downloaded, never installed:

    pip download --no-deps pycorrector==1.1.4 -d /tmp/pyc
    .venv/bin/python benchmarks/confusion_sets.py --wheel /tmp/pyc/pycorrector-1.1.4-py3-none-any.whl \
        [--glyphs data/demo/glyphs --vocab data/demo/vocab --k 8]

Homophones are compared among the characters pycorrector's file knows (so both sides choose from the same
characters); look-alikes among the glyph table's hanzi, ours being each key's ``k`` nearest glyphs. Recall: the
share of pycorrector's pairs that ours hold; precision: the share of ours that pycorrector lists.
"""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

from zhbert.data.confusion import homophones, look_alikes
from zhbert.data.glyphs import load_glyph_table, read_vocab
from zhbert.data.text import is_hanzi


def read_member(wheel: Path, name: str) -> list[list[str]]:
    """The tab-separated lines of ``pycorrector/data/<name>``, comments and blank lines left out."""
    with zipfile.ZipFile(wheel) as z:
        text = z.read(f"pycorrector/data/{name}").decode("utf-8")
    return [line.split("\t") for line in text.splitlines() if line.strip() and not line.startswith("#")]


def overlap(ours: dict[str, set[str]], theirs: dict[str, set[str]]) -> str:
    keys = [c for c in theirs if c in ours]
    pairs_theirs = sum(len(theirs[c]) for c in keys)
    pairs_ours = sum(len(ours[c]) for c in keys)
    common = sum(len(ours[c] & theirs[c]) for c in keys)
    return (f"{len(keys):>5} keys | size {pairs_ours / len(keys):6.1f} ours, {pairs_theirs / len(keys):6.1f} "
            f"pycorrector | recall {common / max(pairs_theirs, 1):6.1%} | precision {common / max(pairs_ours, 1):6.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wheel", type=Path, required=True)
    ap.add_argument("--glyphs", type=Path, default=Path("data/demo/glyphs"))
    ap.add_argument("--vocab", type=Path, default=Path("data/demo/vocab"))
    ap.add_argument("--k", type=int, default=8)
    args = ap.parse_args()

    same_pinyin = {f[0]: (set(f[1]) if len(f) > 1 else set(), set(f[2]) if len(f) > 2 else set())
                   for f in read_member(args.wheel, "same_pinyin.txt")}
    universe = {c for k, (a, b) in same_pinyin.items() for c in (k, *a, *b) if is_hanzi(c)}
    ours = homophones(sorted(universe))
    print("homophones (among the characters of pycorrector's same_pinyin.txt):")
    print("  same tone   ", overlap({c: s for c, (s, _) in ours.items()}, {c: s for c, (s, _) in same_pinyin.items()}))
    print("  other tone  ", overlap({c: o for c, (_, o) in ours.items()}, {c: o for c, (_, o) in same_pinyin.items()}))

    stroke = {f[0]: set(f[1:]) - {f[0]} for f in read_member(args.wheel, "same_stroke.txt") if len(f) > 1}
    table = load_glyph_table(args.glyphs)
    near = look_alikes(read_vocab(args.vocab), table.pixels, k=args.k)
    print(f"look-alikes (ours: the {args.k} nearest glyphs of {len(near):,} hanzi; pycorrector's same_stroke.txt):")
    print("  nearest     ", overlap({c: set(v) for c, v in near.items()}, stroke))
    for c in "己未人龙齐":
        print(f"  {c}: ours {''.join(near.get(c, []))}  pycorrector {''.join(sorted(stroke.get(c, set())))}")


if __name__ == "__main__":
    main()
