"""Time `render_glyph_table` on a full-size char vocab, against a naive renderer measured in the same run.

    .venv/bin/python benchmarks/glyph_speed.py [--fonts noto-serif-sc lxgw-wenkai noto-sans-sc] [--size 24]

The vocab has bert-base-chinese's layout and size (21,128): [PAD], [unused1..99], [UNK], [CLS], [SEP],
[MASK], printable ASCII, GB2312's symbols, then GBK hanzi in codepoint order until the size is reached.
Target: ≤ 10 s for 3 fonts on one core, font loading and cmap reading included. The reference is what
the ChineseBERT scripts do per glyph (a new image, draw, convert to float64), timed on a slice and
given as glyphs/s; it checks no cmap and fills no gaps, so it does less work than the table.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from zhbert.data.font_build import gb2312_chars, gbk_chars
from zhbert.data.glyphs import GlyphConfig, coverage_report, render_glyph_table
from zhbert.data.text import is_hanzi

VOCAB_SIZE = 21128


def bert_chinese_layout(size: int = VOCAB_SIZE) -> list[str]:
    specials = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    ascii_ = [chr(c) for c in range(0x21, 0x7F)]
    symbols = [chr(c) for c in gb2312_chars() if not is_hanzi(c)]
    hanzi = [chr(c) for c in gbk_chars() if is_hanzi(c)]
    tokens = specials + ascii_ + symbols + hanzi
    return tokens[:size]


def naive_glyphs_per_s(chars: list[str], path: str, size: int) -> float:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(path, size)
    t = time.perf_counter()
    for ch in chars:
        img = Image.new("L", (size, size))
        ImageDraw.Draw(img).text((0, 0), ch, fill=255, font=font)
        np.asarray(img, dtype=np.float64)
    return len(chars) / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--fonts", nargs="+", default=["noto-serif-sc", "lxgw-wenkai", "noto-sans-sc"])
    p.add_argument("--size", type=int, default=24)
    args = p.parse_args()

    tokens = bert_chinese_layout()
    fonts = GlyphConfig(fonts=args.fonts).font_specs()
    t = time.perf_counter()
    table = render_glyph_table(tokens, fonts, args.size)
    seconds = time.perf_counter() - t
    glyphs = len(tokens) * len(fonts)
    print(coverage_report(table.meta))
    naive = naive_glyphs_per_s(tokens[-6000:], str(fonts[0].path), args.size)
    print(f"{len(tokens)} tokens × {len(fonts)} fonts at {args.size}px: {seconds:.2f} s, "
          f"{glyphs / seconds:,.0f} glyphs/s (target ≤ 10 s); naive per-glyph renderer "
          f"{naive:,.0f} glyphs/s → {glyphs / seconds / naive:.2f}×")


if __name__ == "__main__":
    main()
