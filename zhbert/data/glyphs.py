"""The glyph table: every token of the char vocab drawn in every font, uint8 ``[vocab, fonts, size, size]``.

Why a table: the fusion embedding looks a character up by id, so the pictures are rendered once,
hashed, and shipped with the model instead of being drawn at training time. Three rules make it
trustworthy, unlike the reference tables (float64, zeros for missing characters):

- coverage comes from each font's cmap, never from pixels (fonts draw a box or a substitute for
  what they lack); a gap is filled from the next font of the closest style and every fill is listed;
- one placement rule per font: the font's em square is mapped onto the canvas (bottom edge at the
  OS/2 typo descender) and each glyph's advance is centred horizontally, so relative size, baseline
  and position survive (no per-glyph bbox centring, which would blow 一 and 口 up to the same size);
- specials and multi-character wordpieces are blank rows, by a rule recorded in the sidecar.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zhbert.data.fonts import DEFAULT_FONTS_DIR, FontSpec, font_cmap, font_specs, spec_dict
from zhbert.files import atomic_write, read_tokens, write_text
from zhbert.layout import GLYPH_SIDECAR, GLYPHS, VOCAB

FORMAT = "zhbert-glyphs/1"
SPECIAL = re.compile(r"^\[(PAD|UNK|CLS|SEP|MASK|unused\d+)\]$")
TOKEN_RULE = ("[PAD] [UNK] [CLS] [SEP] [MASK] [unusedN]: blank. A wordpiece loses its leading '##'; "
              "if one character remains it is drawn (so '##中' and '中' share a picture), otherwise "
              "(e.g. '##ing', 'the') the row is blank: a glyph shows one character, and the char "
              "embedding already carries the wordpiece.")


@dataclass
class GlyphConfig:
    """What `zhbert glyphs` renders; configs/glyphs/*.toml are deltas over these defaults."""

    fonts: list[str] = field(default_factory=lambda: ["noto-serif-sc", "lxgw-wenkai", "noto-sans-sc",
                                                      "zhi-mang-xing"])
    """Manifest names, in table order (the second axis of the table)."""
    fallback: dict[str, list[str]] = field(default_factory=lambda: {
        "song": ["kai", "hei"], "kai": ["song", "hei"], "hei": ["song", "kai"],
        "xingkai": ["kai", "song", "hei"]})
    """Per style, the styles that fill its gaps, closest first (only fonts listed in `fonts` are used)."""
    size: int = 24
    """Canvas side in pixels; the em square is drawn at exactly this size."""
    fonts_dir: str = ""
    """Folder with manifest.json and the font files; empty: the fonts/ shipped with zhbert."""

    def font_specs(self) -> list[FontSpec]:
        folder = Path(self.fonts_dir) if self.fonts_dir else DEFAULT_FONTS_DIR
        return font_specs(self.fonts, self.fallback, folder)


@dataclass
class GlyphTable:
    """``pixels[token_id, font] `` is a ``size × size`` uint8 picture (255 = ink); ``meta`` is the sidecar."""

    pixels: np.ndarray
    meta: dict

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder / GLYPHS) as tmp, open(tmp, "wb") as f:
            np.save(f, self.pixels, allow_pickle=False)
        write_text(folder / GLYPH_SIDECAR, json.dumps(self.meta, ensure_ascii=False, indent=1) + "\n")  # its hash, last
        return folder


def load_glyph_table(folder: str | Path) -> GlyphTable:
    """Read a saved table and check it against the sha256 its sidecar records."""
    folder = Path(folder)
    meta = json.loads((folder / GLYPH_SIDECAR).read_text(encoding="utf-8"))
    pixels = np.load(folder / GLYPHS, allow_pickle=False)
    if table_sha256(pixels) != meta["table_sha256"]:
        raise ValueError(f"{folder / GLYPHS}: sha256 differs from {GLYPH_SIDECAR}: changed or truncated")
    return GlyphTable(pixels, meta)


def table_sha256(pixels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()


def read_vocab(folder: str | Path) -> list[str]:
    """Tokens of a char vocab folder's vocab.txt (line i = id i). Split on '\\n' only: a vocab may hold
    characters that ``splitlines`` treats as line breaks (U+0085, U+2028, U+001C…)."""
    return read_tokens(Path(folder) / VOCAB, "build one with `zhbert vocab char`")


def token_char(token: str) -> str | None:
    """The one character a token is drawn as, or None for a blank row (see TOKEN_RULE)."""
    if SPECIAL.match(token):
        return None
    piece = token[2:] if token.startswith("##") and len(token) > 2 else token
    return piece if len(piece) == 1 else None


class _Face:
    """One font at one size, with its cmap and the placement rule of the module docstring."""

    def __init__(self, spec: FontSpec, size: int):
        from fontTools.ttLib import TTFont
        from PIL import ImageFont

        self.spec, self.size = spec, size
        self.font = ImageFont.truetype(str(spec.path), size, layout_engine=ImageFont.Layout.BASIC)
        cmap = font_cmap(spec.path)
        with TTFont(spec.path, lazy=True) as tt:
            upm = tt["head"].unitsPerEm
            hmtx = tt["hmtx"]
            self.advance = {cp: hmtx[g][0] * size / upm for cp, g in cmap.items()}  # pixels
            self.baseline = size * (upm + tt["OS/2"].sTypoDescender) / upm  # pixels from the top

    def covers(self, ch: str) -> bool:
        return ord(ch) in self.advance

    def draw(self, ch: str, canvas, pen) -> np.ndarray:
        pen.rectangle((0, 0, self.size, self.size), fill=0)
        x = (self.size - self.advance[ord(ch)]) / 2
        pen.text((x, self.baseline), ch, fill=255, font=self.font, anchor="ls")
        return np.asarray(canvas)


def render_glyph_table(tokens: list[str], fonts: list[FontSpec] | None = None, size: int = 24,
                       progress: bool = False) -> GlyphTable:
    """Draw every token in every font (default: GlyphConfig's fonts from fonts/manifest.json)."""
    from PIL import Image, ImageDraw, features
    from PIL import __version__ as pillow_version
    from tqdm import tqdm

    fonts = GlyphConfig().font_specs() if fonts is None else fonts
    faces = {f.name: _Face(f, size) for f in fonts}
    chars = [token_char(t) for t in tokens]
    pixels = np.zeros((len(tokens), len(fonts), size, size), np.uint8)  # (V, F, S, S)
    canvas = Image.new("L", (size, size))
    pen = ImageDraw.Draw(canvas)
    drawn: dict[tuple[str, str], np.ndarray] = {}
    fallbacks: dict[str, dict[str, str]] = {f.name: {} for f in fonts}
    blank: dict[str, set[str]] = {f.name: set() for f in fonts}
    coverage = {f.name: {"own": 0, "fallback": 0, "blank": 0} for f in fonts}
    rows = [(i, ch) for i, ch in enumerate(chars) if ch is not None]
    bar = tqdm(total=len(rows) * len(fonts), desc="glyphs", unit="glyph", disable=not progress)
    for j, spec in enumerate(fonts):
        chain = [faces[spec.name]] + [faces[n] for n in spec.fallback]
        for i, ch in rows:
            face = next((f for f in chain if f.covers(ch)), None)
            if face is None:
                blank[spec.name].add(ch)
                coverage[spec.name]["blank"] += 1
            else:
                key = (face.spec.name, ch)
                if key not in drawn:
                    drawn[key] = face.draw(ch, canvas, pen).copy()
                pixels[i, j] = drawn[key]
                own = face is chain[0]
                coverage[spec.name]["own" if own else "fallback"] += 1
                if not own:
                    fallbacks[spec.name][ch] = face.spec.name
            bar.update()
    bar.close()
    meta = {
        "format": FORMAT,
        "shape": list(pixels.shape),
        "dtype": "uint8",
        "size": size,
        "fonts": [spec_dict(f) for f in fonts],
        "rendering": {
            "em_px": size,
            "vertical": "the font's em square fills the canvas height, its bottom at the OS/2 typo "
                        "descender; baseline_px per font below",
            "horizontal": "the glyph's advance width (hmtx) is centred on the canvas",
            "baseline_px": {n: f.baseline for n, f in faces.items()},
            "ink": "255 = ink, 0 = paper; 8-bit FreeType anti-aliasing, Pillow basic layout (no shaping)",
            "pillow": pillow_version,
            "freetype": features.version("freetype2"),
        },
        "token_rule": TOKEN_RULE,
        "vocab": {"size": len(tokens), "sha256": hashlib.sha256("\n".join(tokens).encode()).hexdigest(),
                  "drawn": len(rows), "special": sum(bool(SPECIAL.match(t)) for t in tokens),
                  "multi_char": len(tokens) - len(rows) - sum(bool(SPECIAL.match(t)) for t in tokens)},
        "coverage": coverage,
        "fallbacks": {n: dict(sorted(d.items())) for n, d in fallbacks.items()},
        "blank": {n: "".join(sorted(s)) for n, s in blank.items()},
        "table_sha256": table_sha256(pixels),
    }
    return GlyphTable(pixels, meta)


def coverage_report(meta: dict) -> str:
    """One screen: per font, the drawn tokens it covers itself, those filled by fallback, those left blank."""
    v = meta["vocab"]
    lines = [f"{v['size']} tokens: {v['drawn']} drawn, {v['special']} special and {v['multi_char']} "
             f"multi-character wordpieces blank by rule",
             f"{'font':16}{'style':9}{'own':>8}{'fallback':>10}{'blank':>7}  filled from"]
    for f in meta["fonts"]:
        c = meta["coverage"][f["name"]]
        by = {}
        for used in meta["fallbacks"][f["name"]].values():
            by[used] = by.get(used, 0) + 1
        lines.append(f"{f['name']:16}{f['style']:9}{c['own']:8}{c['fallback']:10}{c['blank']:7}  "
                     + ", ".join(f"{n} ({k} chars)" for n, k in by.items()))
    lines.append(f"table {meta['shape']} uint8, sha256 {meta['table_sha256'][:16]}…")
    return "\n".join(lines)


def render_preview(chars: str, out: str | Path, fonts: list[FontSpec] | None = None, size: int = 24,
                   zoom: int = 4) -> Path:
    """A PNG grid of the table's own pixels: one row per font, one column per character. Fallback
    cells are red on pink and name the font used; cells no font covers are grey; the em square is
    outlined so size and position can be compared across fonts."""
    from PIL import Image, ImageDraw, ImageFont

    fonts = GlyphConfig().font_specs() if fonts is None else fonts
    table = render_glyph_table(list(chars), fonts, size)
    label_font = ImageFont.truetype(str(next((f for f in fonts if f.style == "hei"), fonts[0]).path), 14)
    cell, pad, left, top = size * zoom, 18, 190, 24
    img = Image.new("RGB", (left + len(chars) * (cell + 4), top + len(fonts) * (cell + pad + 4)), "white")
    pen = ImageDraw.Draw(img)
    for k, ch in enumerate(chars):
        pen.text((left + k * (cell + 4) + cell // 2, top // 2), ch, fill="black", font=label_font,
                 anchor="mm")
    for j, spec in enumerate(fonts):
        y = top + j * (cell + pad + 4)
        pen.text((6, y + cell // 2), f"{spec.style} · {spec.name}", fill="black", font=label_font,
                 anchor="lm")
        for k, ch in enumerate(chars):
            x = left + k * (cell + 4)
            used = table.meta["fallbacks"][spec.name].get(ch)
            missing = ch in table.meta["blank"][spec.name]
            paper, ink = ((255, 225, 225), (200, 0, 0)) if used else ((225, 225, 225), (0, 0, 0)) if missing \
                else ((255, 255, 255), (0, 0, 0))
            alpha = np.kron(table.pixels[k, j], np.ones((zoom, zoom), np.uint8))[..., None] / 255.0
            rgb = np.asarray(paper) * (1 - alpha) + np.asarray(ink) * alpha
            img.paste(Image.fromarray(rgb.round().astype(np.uint8)), (x, y))
            pen.rectangle((x, y, x + cell - 1, y + cell - 1), outline=(170, 170, 170))
            note = f"← {used}" if used else "none" if missing else ""
            pen.text((x + 2, y + cell + 2), note, fill=(200, 0, 0), font=label_font.font_variant(size=11))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
    return out
