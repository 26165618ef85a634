from zhbert.data.text import NormalizeConfig, Normalizer, hanzi_count, is_hanzi, split_sentences


def test_normalise_fullwidth_invisible_and_whitespace():
    norm = Normalizer(NormalizeConfig())
    assert norm("ＡＢＣ１２３，你好！") == "ABC123,你好!"
    assert norm("零宽\u200b字符\u200d和\ufeff标记\u2060") == "零宽字符和标记"
    assert norm("控制\x00字符\x07\x1b") == "控制字符"
    assert norm("  多个 \t 空白\n\n换行\u3000全角空格  ") == "多个 空白 换行 全角空格"


def test_normalise_nfc_maps_compatibility_ideographs():
    assert Normalizer(NormalizeConfig())("\uf900") == "\u8c48"  # 豈 (compatibility) → 豈 (unified)
    assert Normalizer(NormalizeConfig(nfc=False))("\uf900") == "\uf900"


def test_traditional_to_simplified_only_when_asked():
    text = "這是一個繁體中文的句子，學習漢語。"
    assert Normalizer(NormalizeConfig())(text) == "這是一個繁體中文的句子,學習漢語。"
    assert Normalizer(NormalizeConfig(t2s=True))(text) == "这是一个繁体中文的句子,学习汉语。"


def test_hanzi_includes_extensions_but_not_punctuation_or_emoji():
    assert all(map(is_hanzi, "中国〇𠮷𩸽㐀"))
    assert not any(map(is_hanzi, "，。a1😀ㄅ"))
    assert hanzi_count("我用iPhone拍𠮷野家😀") == 6


def test_sentence_split_keeps_closing_quotes_and_loses_nothing():
    text = "他说：“今天下雨了。”我们走吧！真的吗？？好……Then we left. OK"
    parts = split_sentences(text)
    assert parts == ["他说：“今天下雨了。”", "我们走吧！", "真的吗？？", "好……", "Then we left.", "OK"]
    assert "".join(parts).replace(" ", "") == text.replace(" ", "")
    assert split_sentences("没有句号的一行") == ["没有句号的一行"]
    assert split_sentences("   ") == []


def test_aligned_normalisation_keeps_every_offset():
    """Fine-tuning's form of the normaliser: the same rules, one output character per input character, so spans
    found in the result index the original text."""
    norm = Normalizer(NormalizeConfig())
    cases = {"ＡＢＣ１２３，你好！": "ABC123,你好!",  # full-width forms → ASCII, as pretraining text
             "零宽\u200b字符\x00": "零宽 字符 ",  # deleted by the normaliser → a space (no token, a word boundary)
             " 多个 \t 空白\n换行\u3000": " 多个   空白 换行 ",  # whitespace: not collapsed, each one a space
             "\uf900館": "\u8c48館",  # NFC of a compatibility ideograph: one character for one
             "cafe\u0301": "cafe\u0301"}  # NFC would compose two characters into one: left as it is
    for text, want in cases.items():
        assert norm.aligned(text) == want and len(want) == len(text)
    for text in ("ＡＢＣ１２３，你好！", " 多个 \t 空白\n换行\u3000", "\uf900館"):  # nothing deleted: the same text
        assert " ".join(norm.aligned(text).split()) == norm(text)
    t2s = Normalizer(NormalizeConfig(t2s=True))
    text = "乾隆皇帝的頭髮，瞭解"
    assert t2s.aligned(text) == "乾隆皇帝的头发,了解" == t2s(text)  # phrases converted as pretraining converts them
    assert Normalizer(NormalizeConfig(fullwidth_to_halfwidth=False)).aligned("１，") == "１，"
