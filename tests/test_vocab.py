"""Char vocab in bert-base-chinese layout, built deterministically; the word vocab and word view."""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import take
from test_prep import config
from tokenizers import models

from zhbert.data.prep import run_prep
from zhbert.data.shards import load_shards
from zhbert.data.text import HANZI_RUN
from zhbert.data.vocab import SPECIAL_TOKENS, CharVocab, _bert_chinese, count
from zhbert.data.word_view import build_word_view
from zhbert.files import read_json
from zhbert.layout import WORD_VOCAB


@pytest.fixture(scope="module")
def texts(demo_corpus):
    return [d["text"] for s in ("peoples_daily", "reviews") for d in take(demo_corpus, s, 3000)]


def test_bert_chinese_layout(texts):
    v = CharVocab.train(texts)
    assert (v.pad_id, v.unk_id, v.cls_id, v.sep_id, v.mask_id) == (0, 100, 101, 102, 103)
    assert v.tokens[1:100] == [f"[unused{i}]" for i in range(1, 100)]
    enc = v.tokenizer.encode("中国人民很好 iPhone")
    assert enc.tokens[:4] == ["[CLS]", "中", "国", "人"] and enc.tokens[-1] == "[SEP]"
    assert "i" in v.tokens and "##p" in v.tokens  # Latin words can always be spelled


def test_training_is_deterministic_and_respects_size_and_min_count(texts):
    a, b = CharVocab.train(texts), CharVocab.train(list(reversed(texts)))
    assert a.tokens == b.tokens and a.sha256 == b.sha256
    assert len(CharVocab.train(texts, size=500)) == 500
    rare = CharVocab.train(texts + ["龘"], min_count=2)
    assert "龘" not in rare.tokens and "龘" in CharVocab.train(texts + ["龘"], min_count=1).tokens


def test_counting_a_character_at_a_time_matches_the_tokenizer_reading_each_text(demo_corpus):
    """``count`` normalises and classes each distinct character once; the counts must be those of running the
    tokenizer's normaliser and pre-tokeniser over every text (real text of every source, and accents, Greek
    capitals, full-width forms, ligatures and controls, which the normaliser changes)."""
    texts = [d["text"] for s in ("peoples_daily", "reviews", "msra_news", "xinhua_idioms", "xinhua_dictionary")
             for d in take(demo_corpus, s, 2000, every=3)]
    texts += ["Café naïve ΟΔΟΣ İstanbul", "ＡＢＣ１２３ｘｙｚ，ｄｅｆ。", "ﬁnal\x00tab\there\u200bzero-width",
              "Ǆemal 3.14%"]
    tok = _bert_chinese(models.WordPiece({t: i for i, t in enumerate(SPECIAL_TOKENS)}, unk_token="[UNK]"))
    chars, words = Counter(), Counter()
    for text in texts:
        text = tok.normalizer.normalize_str(text)
        chars.update(text)
        words.update(w for w, _ in tok.pre_tokenizer.pre_tokenize_str(HANZI_RUN.sub(" ", text)) if len(w) > 1)
    assert len(words) > 500  # the texts hold Latin and digit words enough to compare
    assert count(texts) == (chars, words)


def test_vocab_txt_round_trip_and_adoption(texts, tmp_path):
    v = CharVocab.train(texts)
    v.save(tmp_path)
    assert (tmp_path / "vocab.txt").read_text(encoding="utf-8").split("\n")[:2] == ["[PAD]", "[unused1]"]
    adopted = CharVocab.from_vocab_txt(tmp_path / "vocab.txt")
    loaded = CharVocab.load(tmp_path)
    assert adopted.sha256 == loaded.sha256 == v.sha256
    sample = "他说：“2024年的GDP增长了5.2%。”"
    assert adopted.tokenizer.encode(sample).ids == loaded.tokenizer.encode(sample).ids == v.tokenizer.encode(sample).ids
    (tmp_path / "bad.txt").write_text("[PAD]\n中\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"lacks special tokens \['\[UNK\]'"):
        CharVocab.from_vocab_txt(tmp_path / "bad.txt")


def test_word_view_matches_the_char_view(small_corpus, vocab_dir, tmp_path):
    """Same documents, same order, same text; words in the vocab are one token, the rest fall back to chars."""
    vocab_copy = tmp_path / "vocab"
    vocab_copy.mkdir()
    for f in vocab_dir.iterdir():
        (vocab_copy / f.name).write_bytes(f.read_bytes())
    run_prep(config([small_corpus], tmp_path / "char", vocab_copy))
    manifest = build_word_view(tmp_path / "char", vocab_copy, tmp_path / "word", size=2000, min_count=2)
    char_tokens = CharVocab.load(vocab_copy).tokens
    words = (vocab_copy / WORD_VOCAB).read_text(encoding="utf-8").split("\n")[:-1]
    assert words[: len(char_tokens)] == char_tokens and len(words) == len(char_tokens) + 2000
    chars, wv = load_shards(tmp_path / "char"), load_shards(tmp_path / "word")
    assert chars["doc_id"] == wv["doc_id"]
    assert manifest["counts"]["tokens"] < read_json(tmp_path / "char" / "manifest.json")["counts"]["tokens"]
    for c, w in zip(chars.select(range(0, chars.num_rows, 11)), wv.select(range(0, wv.num_rows, 11))):
        text = lambda ids, table: "".join(table[i].removeprefix("##") for i in ids)  # noqa: E731
        assert text(c["input_ids"], char_tokens) == text(w["input_ids"], words)
        assert len(w["input_ids"]) == len(w["word_ids"]) and w["word_ids"][0] == w["word_ids"][-1] == -1
        for i, wid in zip(w["input_ids"], w["word_ids"]):
            if i >= len(char_tokens):  # a whole word is a single token with its own word id
                assert w["word_ids"].count(wid) == 1
        assert max(w["word_ids"]) == max(c["word_ids"])  # the same words, numbered the same way
    with pytest.raises(ValueError, match="another char vocab"):
        other = tmp_path / "other"
        CharVocab.train(["完全不同的词表"], min_count=1).save(other)
        build_word_view(tmp_path / "char", other, tmp_path / "word2")
