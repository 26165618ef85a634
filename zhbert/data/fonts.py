"""The fonts behind the glyph table, as the renderer reads them: fonts/manifest.json (file, family, style, sha256s,
licence and coverage per font) and each font's character map. How the font files were made (pinned packages,
checked, subset) is zhbert/data/font_build.py, run by pipelines/build_fonts.py.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from zhbert.config import shipped
from zhbert.files import sha256_file
from zhbert.layout import MANIFEST

DEFAULT_FONTS_DIR = shipped("fonts")


@dataclass(frozen=True)
class FontSpec:
    """A font file the renderer can use, as the manifest describes it."""

    name: str
    path: Path
    style: str
    family: str
    sha256: str
    fallback: tuple[str, ...] = ()  # names of the fonts that fill this one's gaps, in order




def font_cmap(path: Path) -> dict[int, str]:
    """Codepoint → glyph name, without the entries that map to .notdef (those are the font's box)."""
    from fontTools.ttLib import TTFont

    with TTFont(path, lazy=True) as font:
        return {cp: g for cp, g in font.getBestCmap().items() if g != ".notdef"}


def read_manifest(fonts_dir: Path = DEFAULT_FONTS_DIR) -> list[dict]:
    path = Path(fonts_dir) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path}: no fonts manifest (run pipelines/build_fonts.py)")
    return json.loads(path.read_text(encoding="utf-8"))["fonts"]


def font_specs(names: list[str], fallback: dict[str, list[str]],
               fonts_dir: Path = DEFAULT_FONTS_DIR) -> list[FontSpec]:
    """The named manifest fonts, each with its fallbacks: the other listed fonts, ordered by the
    style chain ``fallback[style]`` (closest style first). Checks each file against its sha256."""
    entries = {e["name"]: e for e in read_manifest(fonts_dir)}
    missing = [n for n in names if n not in entries]
    if missing:
        raise ValueError(f"font(s) {missing} not in {fonts_dir}/{MANIFEST}; known: {sorted(entries)}")
    specs = []
    for n in names:
        e = entries[n]
        path = Path(fonts_dir) / e["file"]
        if sha256_file(path) != e["subset_sha256"]:
            raise RuntimeError(f"{path}: sha256 differs from {MANIFEST}; rebuild: pipelines/build_fonts.py")
        chain = [o for style in fallback.get(e["style"], []) for o in names
                 if o != n and entries[o]["style"] == style]
        specs.append(FontSpec(n, path, e["style"], e["family"], e["subset_sha256"],
                              tuple(dict.fromkeys(chain))))
    return specs


def spec_dict(spec: FontSpec) -> dict:
    """A FontSpec as the glyph sidecar records it (the file name, not this machine's path)."""
    d = dataclasses.asdict(spec)
    del d["path"]
    return {**d, "file": spec.path.name, "fallback": list(spec.fallback)}
