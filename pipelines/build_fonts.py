"""Rebuild fonts/ from pinned packages: download, check sha256, subset, write licences and manifest.json.

    .venv/bin/python pipelines/build_fonts.py [--cache ~/.cache/zhbert/fonts] [--out fonts]

Four styles, as ChineseBERT used several faces: Song (serif), Kai (brush regular script),
Hei (sans) and Xingkai (running-script calligraphy). Song and Hei keep every hanzi of the CJK Unified
block, so the fallback chain always ends in a real glyph; WenKai keeps GB2312 plus the most frequent
other hanzi, which holds fonts/ under ~20 MB; Zhi Mang Xing only ever drew ~6k characters.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from zhbert.data.font_build import FontSource, build_font, write_manifest
from zhbert.data.fonts import DEFAULT_FONTS_DIR

SOURCES = [
    FontSource(
        name="noto-serif-sc", style="song", registry="pypi", package="pylopdf-fonts-zh-cn", version="0.1.1",
        member="pylopdf_fonts_zh_cn/NotoSerifSC-Regular.otf",
        sha256="e8f396decc1f0963a016a989c3d8852e863d1350996f573860a80767c83a1cd3",
        licence="OFL-1.1", licence_member="pylopdf_fonts_zh_cn-0.1.1.dist-info/licenses/LICENSE",
        file="NotoSerifSC-Regular.subset.otf"),
    FontSource(
        name="lxgw-wenkai", style="kai", registry="apt", package="fonts-lxgw-wenkai",
        version="1.250+repack-1",
        member="usr/share/fonts/truetype/lxgw-wenkai/LXGWWenKai-Regular.ttf",
        sha256="bbf534b0ca093928f94d1782855e65a19a32cde82b075d495d072025521953c8",
        licence="OFL-1.1", licence_member="usr/share/doc/fonts-lxgw-wenkai/copyright",
        file="WenKaiSubset-Regular.ttf", extra_hanzi=1800,
        # OFL Reserved Font Names "LXGW" and "霞鹜": a modified (subset) font must not use them
        family="zhbert WenKai Subset"),
    FontSource(
        name="noto-sans-sc", style="hei", registry="pypi", package="pylopdf-fonts-zh-cn", version="0.1.1",
        member="pylopdf_fonts_zh_cn/NotoSansSC-Regular.otf",
        sha256="faa6c9df652116dde789d351359f3d7e5d2285a2b2a1f04a2d7244df706d5ea9",
        licence="OFL-1.1", licence_member="pylopdf_fonts_zh_cn-0.1.1.dist-info/licenses/LICENSE",
        file="NotoSansSC-Regular.subset.otf"),
    FontSource(
        name="zhi-mang-xing", style="xingkai", registry="npm", package="@fontsource/zhi-mang-xing",
        version="5.3.0", member="package/files/zhi-mang-xing-chinese-simplified-400-normal.woff",
        sha256="f39b7b0b71fabfce038a26a1d98e3e2a2e66cab4c866323a71b3a595b2992912",
        licence="OFL-1.1", licence_member="package/LICENSE",
        file="ZhiMangXing-Regular.subset.ttf"),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "zhbert" / "fonts")
    p.add_argument("--out", type=Path, default=DEFAULT_FONTS_DIR)
    args = p.parse_args()

    entries = []
    for src in SOURCES:
        e = build_font(src, args.out, args.cache)
        c = e["coverage"]
        print(f"{src.name:14} {e['subset_bytes'] / 1e6:5.2f} MB  {c['codepoints']:6} chars  "
              f"{c['cjk_unified']:6} hanzi  GB2312 {c['gb2312']}")
        entries.append(e)
    path = write_manifest(args.out, entries)
    total = sum(e["subset_bytes"] for e in entries)
    print(f"{len(entries)} fonts, {total / 1e6:.2f} MB → {path}")


if __name__ == "__main__":
    main()
