"""Confusion sets from zhbert's own tables (zhbert/data/confusion.py), on hand-checked characters."""

from __future__ import annotations

from zhbert.data.confusion import homophones, look_alikes
from zhbert.data.glyphs import render_glyph_table
from zhbert.data.pinyin import Readings


def test_homophones_by_toned_and_toneless_syllable_every_reading_counted():
    h = homophones("行型形航杭巷恒哼吧")
    assert Readings().every("行") >= {"xing2", "hang2"}
    same, other = h["行"]
    assert {"型", "形", "航", "杭", "恒"} <= same and "吧" not in same | other  # 恒: 行's heng2
    assert "哼" in other  # heng1: the syllable of 行's heng2, another tone
    assert h["航"] == ({"行", "杭"}, {"巷"})  # hang2; 巷 reads hang4 (巷道) and xiang4
    assert h["吧"] == (set(), set())


def test_look_alikes_are_the_nearest_glyphs():
    tokens = ["[PAD]", "[UNK]", "己", "已", "巳", "人", "入", "未", "末", "木", "水", "鑫", "##的"]
    near = look_alikes(tokens, render_glyph_table(tokens).pixels, k=2)
    assert set(near) == {"己", "已", "巳", "人", "入", "未", "末", "木", "水", "鑫"}  # single hanzi only
    assert set(near["己"]) == {"已", "巳"} and near["人"][0] == "入" and near["未"][0] == "末"
    assert all(c not in v for c, v in near.items())
