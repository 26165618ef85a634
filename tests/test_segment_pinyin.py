"""jieba and rjieba agree; user dictionaries work on both; pinyin readings and vocab follow docs/architecture.md."""

from __future__ import annotations

import pytest
from conftest import take

from zhbert.data.pinyin import PinyinVocab, Readings, word_pinyin
from zhbert.data.segment import SegmentConfig, Segmenter, read_user_dict


@pytest.mark.parametrize("hmm, every", [(True, 1), (False, 4)])
def test_backends_agree_on_the_demo_corpus(demo_corpus, hmm, every):
    """People's Daily and every 8th document of the other sources (a quarter of that without the HMM)."""
    texts = [d["text"] for d in take(demo_corpus, "peoples_daily", 10**9, every=every)]
    for source in ("reviews", "msra_news", "xinhua_idioms", "xinhua_dictionary"):
        texts += [d["text"] for d in take(demo_corpus, source, 10**9, every=8 * every)]
    reference = Segmenter(SegmentConfig(backend="jieba", hmm=hmm))
    fast = Segmenter(SegmentConfig(backend="rjieba", hmm=hmm))
    differ = [t for t in texts if reference.cut(t) != fast.cut(t)]
    assert len(texts) > 30_000 // every and differ == []


@pytest.mark.parametrize("backend", ["jieba", "rjieba"])
def test_user_dictionary_words_stay_whole(tmp_path, backend):
    text = "张小明在深度求索公司研究大语言模型"
    plain = Segmenter(SegmentConfig(backend=backend)).cut(text)
    (tmp_path / "user.txt").write_text("深度求索 100000 nt\n大语言模型 100000\n张小明\n", encoding="utf-8")
    words = Segmenter(SegmentConfig(backend=backend, user_dicts=[str(tmp_path / "user.txt")])).cut(text)
    assert "深度求索" in words and "大语言模型" in words
    assert "大语言模型" not in plain


def test_user_dictionary_backends_agree_and_bad_lines_are_named(tmp_path):
    (tmp_path / "user.txt").write_text("深度求索 100000 nt\n大语言模型 100000\n", encoding="utf-8")
    texts = ["深度求索发布了新的大语言模型。", "我们在银行门口见面，然后行走到公园。"]
    segs = [Segmenter(SegmentConfig(backend=b, user_dicts=[str(tmp_path / "user.txt")])) for b in ("jieba", "rjieba")]
    assert [segs[0].cut(t) for t in texts] == [segs[1].cut(t) for t in texts]
    (tmp_path / "bad.txt").write_text("好词 10 n extra\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.txt:1"):
        read_user_dict(tmp_path / "bad.txt")


def test_pinyin_vocab_layout_and_spelling():
    vocab = PinyinVocab.build()
    assert vocab.entries[:3] == ["[PAD]", "[UNK]", "[MASK]"]
    syllables = vocab.entries[3:]
    assert {"zhong1", "lv4", "nv3", "de5", "eh1", "m2"} <= set(syllables) and len(syllables) > 1400
    assert all(s[:-1].isascii() and s[:-1].isalpha() and s[:-1].islower() and s[-1] in "12345" for s in syllables)
    assert syllables == sorted(syllables) and vocab.sha256 == PinyinVocab.build().sha256


def test_readings_resolve_heteronyms_from_the_word():
    r = Readings()
    assert r("银行") == ["yin2", "hang2"] and r("行走") == ["xing2", "zou3"]
    assert r("快乐") == ["kuai4", "le4"] and r("音乐") == ["yin1", "yue4"]
    assert r("的") == ["de5"] and r("绿") == ["lv4"] and r("T恤") == ["", "xu4"] and r("😀") == [""]


def test_fast_readings_equal_pypinyin_on_corpus_words(demo_corpus):
    seg = Segmenter(SegmentConfig())
    words = set()
    for source in ("peoples_daily", "reviews", "msra_news", "xinhua_idioms"):
        for d in take(demo_corpus, source, 3000):
            words.update(seg.cut(d["text"]))
    r = Readings()
    assert len(words) > 20_000
    assert [w for w in sorted(words) if r(w) != word_pinyin(w)] == []
