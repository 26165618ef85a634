"""Glyph table from the real fonts in fonts/, on a small real vocab built here."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from zhbert.cli import main
from zhbert.config import ConfigError, load
from zhbert.data.font_build import subset_font
from zhbert.data.fonts import DEFAULT_FONTS_DIR, font_cmap, read_manifest
from zhbert.data.glyphs import (
    GlyphConfig,
    load_glyph_table,
    read_vocab,
    render_glyph_table,
    render_preview,
    token_char,
)
from zhbert.files import sha256_file

# 陶渊明《桃花源记》(simplified), and the opening of 《千字文》 in traditional script.
TAOHUAYUAN = (
    "晋太元中，武陵人捕鱼为业。缘溪行，忘路之远近。忽逢桃花林，夹岸数百步，中无杂树，芳草鲜美，落英缤纷。"
    "渔人甚异之，复前行，欲穷其林。林尽水源，便得一山，山有小口，仿佛若有光。便舍船，从口入。初极狭，才通人。"
    "复行数十步，豁然开朗。土地平旷，屋舍俨然，有良田、美池、桑竹之属。阡陌交通，鸡犬相闻。其中往来种作，"
    "男女衣着，悉如外人。黄发垂髫，并怡然自乐。见渔人，乃大惊，问所从来。具答之。便要还家，设酒杀鸡作食。"
    "村中闻有此人，咸来问讯。自云先世避秦时乱，率妻子邑人来此绝境，不复出焉，遂与外人间隔。问今是何世，"
    "乃不知有汉，无论魏晋。此人一一为具言所闻，皆叹惋。余人各复延至其家，皆出酒食。停数日，辞去。"
    "此中人语云：“不足为外人道也。”既出，得其船，便扶向路，处处志之。及郡下，诣太守，说如此。"
    "太守即遣人随其往，寻向所志，遂迷，不复得路。南阳刘子骥，高尚士也，闻之，欣然规往。未果，寻病终。"
    "后遂无问津者。"
)
QIANZIWEN = "天地玄黃，宇宙洪荒。日月盈昃，辰宿列張。寒來暑往，秋收冬藏。閏餘成歲，律呂調陽。雲騰致雨，露結為霜。"
SPECIALS = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
LATIN = ["a", "g", "A", "1", "2", "the", "##ing", "##s", "##花", "😀"]
FONTS = ["noto-serif-sc", "lxgw-wenkai", "noto-sans-sc", "zhi-mang-xing"]


@pytest.fixture(scope="module")
def tokens() -> list[str]:
    chars = list(dict.fromkeys(TAOHUAYUAN + QIANZIWEN))
    return SPECIALS + chars + LATIN


@pytest.fixture(scope="module")
def specs():
    return GlyphConfig().font_specs()


@pytest.fixture(scope="module")
def table(tokens, specs):
    return render_glyph_table(tokens, specs)


def test_shape_dtype_and_ink(table, tokens):
    assert table.pixels.shape == (len(tokens), 4, 24, 24) and table.pixels.dtype == np.uint8
    assert table.meta["shape"] == list(table.pixels.shape)
    assert [f["name"] for f in table.meta["fonts"]] == FONTS
    assert len({f["style"] for f in table.meta["fonts"]}) == 4
    hanzi = [i for i, t in enumerate(tokens) if "\u4e00" <= t <= "\u9fff"]
    assert len(hanzi) > 240
    assert (table.pixels[hanzi].reshape(len(hanzi), 4, -1).max(axis=2) > 128).all()  # every picture has ink
    # distinct fonts give distinct pictures of the same character
    i = tokens.index("花")
    assert len({table.pixels[i, j].tobytes() for j in range(4)}) == 4


def test_render_is_deterministic_and_round_trips(table, tokens, specs, tmp_path):
    again = render_glyph_table(tokens, specs)
    assert again.meta["table_sha256"] == table.meta["table_sha256"]
    assert hashlib.sha256(again.pixels.tobytes()).hexdigest() == table.meta["table_sha256"]
    table.save(tmp_path / "g")
    loaded = load_glyph_table(tmp_path / "g")
    assert np.array_equal(loaded.pixels, table.pixels) and loaded.meta == table.meta
    tampered = loaded.pixels.copy()
    tampered[200, 0, 12, 12] ^= 1
    np.save(tmp_path / "g" / "glyphs.npy", tampered)
    with pytest.raises(ValueError, match="sha256"):
        load_glyph_table(tmp_path / "g")


def test_specials_and_multi_char_wordpieces_are_blank(table, tokens):
    for t in SPECIALS + ["the", "##ing"]:
        assert not table.pixels[tokens.index(t)].any(), t
    assert table.meta["vocab"]["special"] == len(SPECIALS) and table.meta["vocab"]["multi_char"] == 2
    assert np.array_equal(table.pixels[tokens.index("##花")], table.pixels[tokens.index("花")])
    assert token_char("##s") == "s" and token_char("[unused7]") is None and token_char("[") == "["
    for t in ["a", "g", "A", "1", "，", "。"]:  # non-hanzi are drawn where the fonts have them
        assert table.pixels[tokens.index(t)].any(axis=(1, 2)).all(), t


def _draw_with(spec, ch: str) -> np.ndarray:
    """The character as the font itself renders it, whatever its cmap says."""
    img = Image.new("L", (24, 24))
    ImageDraw.Draw(img).text((12, 21), ch, fill=255, font=ImageFont.truetype(str(spec.path), 24), anchor="ms")
    return np.asarray(img)


def test_missing_char_comes_from_fallback_not_the_fonts_box(table, tokens, specs):
    xing = specs[3]
    assert ord("髫") not in font_cmap(xing.path)  # Zhi Mang Xing never drew 髫 …
    assert ord("髫") in font_cmap(specs[1].path)  # … WenKai, the closest style, did
    i = tokens.index("髫")
    assert table.meta["fallbacks"]["zhi-mang-xing"]["髫"] == "lxgw-wenkai"
    assert np.array_equal(table.pixels[i, 3], table.pixels[i, 1])
    # Drawn by the font itself, a missing character is its .notdef: nothing at all in Zhi Mang Xing
    # (the all-zero pictures of the reference tables), a box in WenKai. The table holds neither.
    assert not _draw_with(xing, "髫").any() and table.pixels[i, 3].sum() > 5000
    j = tokens.index("黃")
    box = _draw_with(specs[1], "黃")
    assert box.sum() > 20000 and not np.array_equal(box, table.pixels[j, 1])
    assert np.array_equal(table.pixels[j, 1], table.pixels[j, 0])
    # Two steps down the chain: 黃 is in neither calligraphic font, so song fills both.
    assert table.meta["fallbacks"]["lxgw-wenkai"]["黃"] == "noto-serif-sc"
    assert table.meta["fallbacks"]["zhi-mang-xing"]["黃"] == "noto-serif-sc"
    assert table.meta["fallbacks"]["zhi-mang-xing"]["張"] == "lxgw-wenkai"
    assert "黃" not in table.meta["fallbacks"]["noto-serif-sc"]


def test_coverage_counts_add_up_and_uncovered_stays_blank(table, tokens):
    drawn = table.meta["vocab"]["drawn"]
    for name, c in table.meta["coverage"].items():
        assert c["own"] + c["fallback"] + c["blank"] == drawn
        assert c["fallback"] == len(table.meta["fallbacks"][name])  # every fill is listed
        assert table.meta["blank"][name] == "😀" and c["blank"] == 1
    assert not table.pixels[tokens.index("😀")].any()
    assert table.meta["coverage"]["noto-serif-sc"]["fallback"] == 0


def test_placement_keeps_relative_size_and_baseline(table, tokens):
    def rows_with_ink(tok: str, font: int) -> np.ndarray:
        return np.flatnonzero(table.pixels[tokens.index(tok), font].max(axis=1) > 64)

    for font in range(3):
        one, mouth = rows_with_ink("一", font), rows_with_ink("口", font)
        assert len(one) <= 4 and len(mouth) >= 12  # 一 stays a thin stroke, not blown up to fill the box
        assert mouth[0] < one[0] < mouth[-1]  # 一 sits mid-height, inside 口's span
        assert rows_with_ink("g", font)[-1] > rows_with_ink("a", font)[-1]  # one baseline: g descends


def test_preview_png_marks_fallbacks(tmp_path, specs):
    out = render_preview("中国龍书骨髫", tmp_path / "preview.png", specs)
    img = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert img.shape[0] > 4 * 96 and img.shape[1] > 6 * 96
    red = (img[..., 0] > 150) & (img[..., 1] < 80) & (img[..., 2] < 80)
    assert red.sum() > 100  # 龍 in kai/xingkai and 髫 in xingkai are drawn in red


def test_cli_renders_vocab_folder_and_prints_report(tmp_path, tokens, table, capsys):
    vocab = tmp_path / "vocab"
    vocab.mkdir()
    (vocab / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    assert read_vocab(vocab) == tokens
    assert main(["glyphs", "--vocab", str(vocab), "--out", str(tmp_path / "g")]) == 0
    report = capsys.readouterr().out
    assert all(name in report for name in FONTS) and "fallback" in report
    assert json.loads((tmp_path / "g" / "glyphs.json").read_text())["table_sha256"] == table.meta["table_sha256"]
    assert main(["glyphs", "preview", "--chars", "中国", "--out", str(tmp_path / "p.png"), "--size", "32"]) == 0
    assert Image.open(tmp_path / "p.png").size[0] > 2 * 32 * 4


def test_config_file_loads_and_rejects_unknown_keys(tmp_path):
    cfg = load(GlyphConfig, "configs/glyphs/default.toml")
    assert cfg == GlyphConfig() and cfg.size == 24
    (tmp_path / "bad.toml").write_text("sise = 32\n")
    with pytest.raises(ConfigError, match="sise"):
        load(GlyphConfig, tmp_path / "bad.toml")
    with pytest.raises(ValueError, match="not in"):
        GlyphConfig(fonts=["comic-sans"]).font_specs()


def test_manifest_describes_the_committed_fonts():
    entries = read_manifest()
    assert {e["style"] for e in entries} >= {"song", "kai", "hei"}
    assert sum(e["subset_bytes"] for e in entries) <= 20_000_000
    for e in entries:
        assert sha256_file(DEFAULT_FONTS_DIR / e["file"]) == e["subset_sha256"]
        assert (DEFAULT_FONTS_DIR / e["licence_file"]).read_text().count("Open Font License") >= 1
        assert e["coverage"]["gb2312_hanzi"] >= 5700 and e["coverage"]["ascii"] == 95
    assert max(e["coverage"]["cjk_unified"] for e in entries) == 20992


def test_subset_is_byte_identical_run_to_run(tmp_path):
    src = DEFAULT_FONTS_DIR / "ZhiMangXing-Regular.subset.ttf"
    keep = [ord(c) for c in "桃花源记abc"]
    subset_font(src, tmp_path / "a.ttf", keep)
    subset_font(src, tmp_path / "b.ttf", keep)
    assert sha256_file(tmp_path / "a.ttf") == sha256_file(tmp_path / "b.ttf")
    assert set(font_cmap(tmp_path / "a.ttf")) == set(keep)
