"""The context pinyin reader (docs/architecture.md, "Pinyin"): heteronyms read right on hand-checked sentences;
prep writes what the reader says; the manifest records the reader, ranks read differently are not merged; the
export carries the reader so that fine-tuning reads pinyin the same way."""

from __future__ import annotations

import json

import numpy as np
import pytest

from zhbert.config import from_dict
from zhbert.data.pinyin import CONTEXT_FILE, ContextReader, PinyinVocab, Readings, reader_record
from zhbert.data.prep import PrepConfig, run_prep
from zhbert.data.segment import SegmentConfig, Segmenter
from zhbert.data.shards import load_shards, merge_ranks
from zhbert.data.vocab import CharVocab
from zhbert.data.word_view import build_word_view
from zhbert.export import Export, TextSettings
from zhbert.finetune.features import TaskEncoder
from zhbert.finetune.tasks import TaskSpec
from zhbert.model.config import ModelConfig

# (sentence, character, its reading there), checked by hand against 现代汉语词典
HAND_CHECKED = [
    ("他在银行工作", "行", "hang2"), ("我们一起行走在路上", "行", "xing2"), ("这样做不行", "行", "xing2"),
    ("他在家里排行老三", "行", "hang2"), ("你真行", "行", "xing2"),
    ("长城很长", "长", "chang2"), ("他长得很高", "长", "zhang3"), ("他是我们的校长", "长", "zhang3"),
    ("这条河很长", "长", "chang2"), ("孩子长大了", "长", "zhang3"),
    ("这个箱子很重", "重", "zhong4"), ("请重新开始", "重", "chong2"), ("他们重逢了", "重", "chong2"),
    ("这件事很重要", "重", "zhong4"), ("山重水复疑无路", "重", "chong2"),
    ("我吃了饭", "了", "le5"), ("他终于了解了", "了", "liao3"), ("这件事我受不了", "了", "liao3"),
    ("下雨了", "了", "le5"), ("一目了然", "了", "liao3"),
    ("他看着我", "着", "zhe5"), ("他睡着了", "着", "zhao2"), ("你着急什么", "着", "zhao2"),
    ("他穿着一件外衣", "着", "zhe5"),
    ("他跑得很快", "得", "de5"), ("他得了第一名", "得", "de2"), ("他获得了冠军", "得", "de2"),
    ("他为人民服务", "为", "wei4"), ("他成为了老师", "为", "wei2"), ("我认为你是对的", "为", "wei2"),
    ("这是为什么", "为", "wei4"), ("他为了你来的", "为", "wei4"),
    ("他还在上学", "还", "hai2"), ("请把书还给我", "还", "huan2"), ("我还没吃饭", "还", "hai2"),
    ("归还图书", "还", "huan2"),
    ("我们都是学生", "都", "dou1"), ("北京是中国的首都", "都", "du1"), ("成都很美", "都", "du1"),
    ("大家都来了", "都", "dou1"), ("这是一座大都市", "都", "du1"),
    ("他的头发很长", "发", "fa4"), ("我们出发吧", "发", "fa1"), ("他发现了问题", "发", "fa1"),
    ("理发店在对面", "发", "fa4"), ("经济发展很快", "发", "fa1"),
]
# Written with the list above and read wrong by the context reader (so not asserted as right): 得 as "must"
# (你得去一趟: dei3, read de5) and 还 as "give back" before a noun (他还钱了: huan2, read hai2).


@pytest.fixture(scope="module")
def reader() -> ContextReader:
    return ContextReader.load()


def read(reader: ContextReader | Readings, sentence: str) -> list[str]:
    words = Segmenter(SegmentConfig()).cut(sentence)
    return reader.sentence(words) if isinstance(reader, ContextReader) else [s for w in words for s in reader(w)]


def test_hand_checked_heteronyms_in_context(reader):
    wrong = [(s, c, want, got) for s, c, want in HAND_CHECKED if (got := read(reader, s)[s.index(c)]) != want]
    assert wrong == []


def test_the_context_reader_mends_what_the_word_reader_got_wrong(reader):
    """The word reader (pypinyin's dictionaries, word by word) reads a lone character by its first-listed reading."""
    word = Readings()
    for s, c, want in [("他跑得很快", "得", "de5"), ("这条河很长", "长", "chang2")]:
        assert read(word, s)[s.index(c)] != want and read(reader, s)[s.index(c)] == want


def test_context_file_is_small_weights_without_pickle(reader):
    assert CONTEXT_FILE.stat().st_size < 1_000_000 and CONTEXT_FILE.with_suffix(".LICENSE.txt").is_file()
    with np.load(CONTEXT_FILE, allow_pickle=False) as z:  # raises if anything in it needed pickle
        assert set(z.files) == {"chars", "candidates", "keys", "weights", "table"}
    syllables = set(PinyinVocab.build().entries)
    assert all(r in syllables for c in reader.candidates for r in c)
    assert all(r in syllables for rs in reader.table.values() for r in rs if r)


def _prep_inputs(tmp_path):
    """One JSON-lines document per hand-checked sentence, in two files; a vocab built from them."""
    for k in range(2):
        with open(tmp_path / f"part{k}.jsonl", "w", encoding="utf-8") as f:
            for i, (s, _, _) in enumerate(HAND_CHECKED[k::2]):
                f.write(json.dumps({"id": f"{k}-{i}", "text": s}, ensure_ascii=False) + "\n")
    CharVocab.train([s for s, _, _ in HAND_CHECKED], min_count=1).save(tmp_path / "vocab")
    PinyinVocab.build().save(tmp_path / "vocab")
    return [tmp_path / "part0.jsonl", tmp_path / "part1.jsonl"]


def _config(inputs, out, vocab, **extra) -> PrepConfig:
    return from_dict(PrepConfig, {"inputs": [str(p) for p in inputs], "output": str(out), "vocab": str(vocab),
                                  **extra})


def test_prep_writes_what_the_reader_reads_and_records_it(tmp_path, reader):
    inputs = _prep_inputs(tmp_path)
    manifest = run_prep(_config(inputs, tmp_path / "shards", tmp_path / "vocab"))
    assert manifest["pinyin_reader"] == reader_record("context")
    assert manifest["pinyin_reader"]["context_sha256"] == reader.sha256
    pinyin = PinyinVocab.load(tmp_path / "vocab")
    written = {}
    for row in load_shards(tmp_path / "shards"):
        written.setdefault(row["doc_id"], []).extend(
            pinyin.entries[p] for p in row["pinyin_ids"] if p != PinyinVocab.PAD)
    sentences = {f"{k}-{i}": s for k in range(2) for i, (s, _, _) in enumerate(HAND_CHECKED[k::2])}
    assert {d: written[d] for d in sentences} == {d: read(reader, s) for d, s in sentences.items()}

    # ranks read by different readers are different runs: the merge refuses them
    mixed = tmp_path / "mixed"
    run_prep(_config(inputs, mixed, tmp_path / "vocab"), rank=0, world_size=2)
    run_prep(_config(inputs, mixed, tmp_path / "vocab", pinyin="word"), rank=1, world_size=2)
    with pytest.raises(ValueError, match="different runs"):
        merge_ranks(mixed)


def test_export_carries_the_reader_and_fine_tuning_reads_like_prep(tmp_path, reader):
    inputs = _prep_inputs(tmp_path)
    run_prep(_config(inputs, tmp_path / "shards", tmp_path / "vocab"))
    settings = TextSettings.of_shards(tmp_path / "shards")
    build_word_view(tmp_path / "shards", tmp_path / "vocab", tmp_path / "words", size=200, min_count=1)
    assert settings.pinyin == TextSettings.of_shards(tmp_path / "words").pinyin == "context"
    folder = tmp_path / "export"
    folder.mkdir()
    settings.save(folder)
    loaded = TextSettings.load(folder)
    copy = folder / json.loads((folder / "text.json").read_text("utf-8"))["pinyin"]["file"]
    assert loaded.pinyin == "context" and loaded.pinyin_context == str(copy)
    assert copy.read_bytes() == CONTEXT_FILE.read_bytes()

    vocab, pinyin = CharVocab.load(tmp_path / "vocab"), PinyinVocab.load(tmp_path / "vocab")
    model = ModelConfig(embedding="fusion", pinyin_vocab_size=len(pinyin))
    encoder = TaskEncoder(Export(folder, model, vocab, pinyin, None, loaded), TaskSpec(labels=["a", "b"]), 64, 32)
    text = "。".join(s for s, _, _ in HAND_CHECKED) + "。"  # many sentences in one example: read one by one
    got = [pinyin.entries[p] for _, p, _, _ in encoder.tokens(text) if p != PinyinVocab.PAD]
    assert got == [r for s, _, _ in HAND_CHECKED for r in read(reader, s)]

    loaded.pinyin = "word"  # an export made from word-read shards reads words alone, as they were
    old = TaskEncoder(Export(folder, model, vocab, pinyin, None, loaded), TaskSpec(labels=["a", "b"]), 64, 32)
    s = "他跑得很快"
    assert [pinyin.entries[p] for _, p, _, _ in old.tokens(s)] == read(Readings(), s)
