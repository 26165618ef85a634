"""Synthetic spelling errors (zhbert/data/corrupt.py) on the real SIGHAN 2015 test sentences, with pycorrector's and
zhbert's own confusion sets."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from zhbert.data.confusion import homophones, merged
from zhbert.data.corrupt import CorruptConfig, corrupt
from zhbert.data.spelling import read_spelling_data
from zhbert.data.text import is_hanzi


@pytest.fixture(scope="module")
def sentences_and_sets():
    data = read_spelling_data()
    pinyin = {c: s | o for c, (s, o) in data.same_pinyin.data.items()}
    return [right for _, right in data.sighan15_test.data], merged(pinyin, data.same_stroke.data)


def test_a_share_of_hanzi_replaced_by_confusables_same_length_positions_exact(sentences_and_sets):
    texts, confusion = sentences_and_sets
    out, record = corrupt(texts, confusion, "pycorrector")
    for text, c in zip(texts, out):
        assert len(c.text) == len(text)
        assert c.positions == [i for i, (a, b) in enumerate(zip(text, c.text)) if a != b]  # exactly the changes
        assert all(is_hanzi(text[i]) and c.text[i] in confusion[text[i]] for i in c.positions)
        hanzi = sum(map(is_hanzi, text))
        able = sum(is_hanzi(ch) and bool(confusion.get(ch, set()) - {ch}) for ch in text)
        assert len(c.positions) == min(max(int(0.1 * hanzi + 0.5), 1), able)  # 10 %, rounded, at least one
    counts = record["counts"]
    assert counts["sentences"] == len(texts) == 697 and counts["replaced"] == sum(len(c.positions) for c in out)
    assert counts["wanted"] == counts["replaced"] + counts["short"]
    assert counts["sentences_changed"] == sum(bool(c.positions) for c in out) == 697  # every one has a candidate
    assert 0.09 < counts["replaced"] / counts["hanzi"] < 0.12 and counts["no_candidate"] > 0
    assert record["share"] == 0.1 and record["seed"] == 0 and record["confusion"] == "pycorrector"
    json.dumps(record)  # a manifest can store it


def test_deterministic_per_sentence_and_seed(sentences_and_sets):
    texts, confusion = sentences_and_sets
    first, record = corrupt(texts[:100], confusion, "pycorrector")
    again, record_again = corrupt(texts[:100][::-1], confusion, "pycorrector")
    assert first == again[::-1] and record == record_again  # order does not matter
    other, _ = corrupt(texts[:100], confusion, "pycorrector", CorruptConfig(seed=1))
    assert sum(a != b for a, b in zip(first, other)) > 80


HASH_SEED_RUN = """
from zhbert.data.corrupt import CorruptConfig, corrupt
sets = {"他": {"她", "它", "塌", "踏"}, "等": {"灯", "登", "凳"}, "电": {"店", "垫", "殿"}, "见": {"件", "建", "间"}}
out, record = corrupt(["他在那里等她的电话。", "我们明天再见"], sets, "hand", CorruptConfig(share=0.3))
print([c.text for c in out], record["confusion_sha256"])
"""


def test_same_result_whatever_the_hash_seed():
    """Set order changes with PYTHONHASHSEED; the draws must not."""
    runs = {subprocess.run([sys.executable, "-c", HASH_SEED_RUN], capture_output=True, text=True, check=True,
                           env=os.environ | {"PYTHONHASHSEED": seed}).stdout for seed in ("1", "2", "3")}
    assert len(runs) == 1 and "他在" not in runs.pop()


def test_at_least_one_and_zhbert_homophones():
    text = "他说：对。"  # 3 hanzi: 10 % rounds to none
    sets = {c: s | o for c, (s, o) in homophones("他她它说硕朔对队兑").items()}
    (none,), record = corrupt([text], sets, "zhbert homophones", CorruptConfig(at_least_one=False))
    assert none.text == text and record["counts"]["wanted"] == 0
    (one,), record = corrupt([text], sets, "zhbert homophones")
    (i,) = one.positions
    assert is_hanzi(text[i]) and one.text[i] in sets[text[i]]
    assert [j for j, (a, b) in enumerate(zip(text, one.text)) if a != b] == [i]
    (left,), record = corrupt(["ABC，123"], sets, "zhbert homophones")
    assert left.text == "ABC，123" and record["counts"]["hanzi"] == 0 and record["counts"]["sentences_changed"] == 0
