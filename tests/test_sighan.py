"""Spelling-check data and metrics: the SIGHAN 2015 test pairs and pycorrector's confusion sets read from the pinned
wheel (zhbert/data/spelling.py), and the FASPell-style metrics (zhbert/finetune/sighan.py) on hand-checked cases
and against pycorrector's own implementation on the real test set."""

from __future__ import annotations

import ast
import zipfile

import pytest

from zhbert.data.corrupt import CorruptConfig, corrupt
from zhbert.data.sources import default_downloads, ensure_archive
from zhbert.data.spelling import PYCORRECTOR, read_spelling_data
from zhbert.finetune.sighan import LEVELS, sighan_scores


@pytest.fixture(scope="module")
def spelling():
    return read_spelling_data()


# (source, gold, prediction) → (tp, fp, fn) for sentence detection, sentence correction, char detection, char
# correction. Errors: positions where source ≠ gold; changes: where prediction ≠ source.
CASES = {
    # no error, no change: counts nowhere
    "left alone": ("我很高兴", "我很高兴", "我很高兴", [(0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0)]),
    # no error, 气 → 汽 at 3: a changed sentence that is not a hit (FP at both sentence levels), one changed
    # char that is no error (char FP for detection and correction)
    "false positive": ("今天天气好", "今天天气好", "今天天汽好", [(0, 1, 0), (0, 1, 0), (0, 1, 0), (0, 1, 0)]),
    # error at 4 (唷 for 友), changed at 4 but to 有: detection hits (changes {4} = errors {4}); correction misses,
    # so the sentence is both FP (changed) and FN (has errors); the char is detected but wrongly corrected
    "right place, wrong char": ("我跟我朋唷去", "我跟我朋友去", "我跟我朋有去",
                                [(1, 0, 0), (0, 1, 1), (1, 0, 0), (0, 1, 1)]),
    # error at 2 (气 for 起), change at 5 (忙 → 芒): a miss everywhere, FP and FN at every level
    "wrong place": ("对不气我很忙", "对不起我很忙", "对不气我很芒", [(0, 1, 1), (0, 1, 1), (0, 1, 1), (0, 1, 1)]),
    # error at 8 (无 for 舞), corrected: TP everywhere
    "perfect": ("希望你们好好的跳无", "希望你们好好的跳舞", "希望你们好好的跳舞",
                [(1, 0, 0), (1, 0, 0), (1, 0, 0), (1, 0, 0)]),
    # errors at 1 (门 for 们) and 5 (有 for 友), only 1 changed (rightly): changes {1} ≠ errors {1, 5}, so both
    # sentence levels count FP and FN; at char level one TP and one FN, no FP
    "partial detection": ("我门是好朋有", "我们是好朋友", "我们是好朋有", [(0, 1, 1), (0, 1, 1), (1, 0, 1), (1, 0, 1)]),
}


@pytest.mark.parametrize("name", CASES)
def test_each_hand_checked_case(name):
    src, gold, pred, expected = CASES[name]
    scores = sighan_scores([src], [gold], [pred])
    assert [(scores[lv]["tp"], scores[lv]["fp"], scores[lv]["fn"]) for lv in LEVELS] == expected


def test_the_cases_together():
    src, gold, pred = zip(*((s, g, p) for s, g, p, _ in CASES.values()))
    scores = sighan_scores(src, gold, pred)
    assert scores["sentences"] == 6 and scores["sentences_with_errors"] == 4
    # sentence detection: TP 2 (right place…, perfect), FP 3, FN 2: P 2/5, R 2/4, F1 2·0.4·0.5/0.9
    assert scores["sentence_detection"] == pytest.approx(
        {"precision": 0.4, "recall": 0.5, "f1": 4 / 9, "tp": 2, "fp": 3, "fn": 2})
    # sentence correction: TP 1 (perfect), FP 4, FN 3: P 1/5, R 1/4, F1 2·0.2·0.25/0.45
    assert scores["sentence_correction"] == pytest.approx(
        {"precision": 0.2, "recall": 0.25, "f1": 2 / 9, "tp": 1, "fp": 4, "fn": 3})
    # chars: 5 changes, 5 errors; detection TP 3 → 3/5 each; correction TP 2 → 2/5 each
    assert scores["char_detection"] == pytest.approx(
        {"precision": 0.6, "recall": 0.6, "f1": 0.6, "tp": 3, "fp": 2, "fn": 2})
    assert scores["char_correction"] == pytest.approx(
        {"precision": 0.4, "recall": 0.4, "f1": 0.4, "tp": 2, "fp": 3, "fn": 3})


def test_unequal_lengths_are_refused():
    with pytest.raises(ValueError, match="sentence 0: lengths 3"):
        sighan_scores(["有吗吗"], ["有妈妈。"], ["有妈妈"])
    with pytest.raises(ValueError, match="1 sources, 2 gold"):
        sighan_scores(["我"], ["我", "你"], ["我"])


def test_the_real_sighan15_test_set_and_confusion_files(spelling):
    test = spelling.sighan15_test
    # 707 lines; 10 corrections add or drop characters (有吗吗… → 有妈妈…。): left out, each counted
    assert len(test.data) == 697 and test.skipped == {"lengths_differ": [42, 54, 56, 77, 287, 376, 494, 507, 570, 671]}
    assert test.data[1] == ("下个星期，我跟我朋唷打算去法国玩儿。", "下个星期，我跟我朋友打算去法国玩儿。")
    assert sum(w != r for w, r in test.data) == 363
    assert sum(a != b for w, r in test.data for a, b in zip(w, r)) == 445

    same_pinyin = spelling.same_pinyin
    assert len(same_pinyin.data) == 3322 and len(same_pinyin.skipped["not_three_fields"]) == 81
    assert same_pinyin.skipped["not_three_fields"][0] == 8  # 了	辽: one column, tones mixed
    same, other = same_pinyin.data["卜"]  # listed twice: bu3 and bo2, both kept
    assert {"补", "捕", "博", "伯"} <= same and {"不", "步", "播"} <= other and not same & other
    stroke = spelling.same_stroke
    assert len(stroke.data) == 2511 and stroke.skipped == {}
    assert stroke.data["己"] == {"妃", "纪", "记"} and "龙" in stroke.data["宠"]  # every member of a group is a key


def test_a_damaged_wheel_is_refused(tmp_path):
    (tmp_path / PYCORRECTOR.archive).write_bytes(b"not the wheel")
    with pytest.raises(RuntimeError, match="sha256 .* differs"):
        ensure_archive(PYCORRECTOR, tmp_path)


def pycorrector_faspell():
    """pycorrector's own ``compute_corrector_prf_faspell`` and the ``report_prf`` it calls, taken from the pinned
    wheel's source (the package is never installed, and importing it would pull in its dependencies)."""
    with zipfile.ZipFile(ensure_archive(PYCORRECTOR, default_downloads())) as z:
        source = z.read("pycorrector/macbert/evaluate_util.py").decode("utf-8")
    wanted = [node for node in ast.parse(source).body
              if isinstance(node, ast.FunctionDef) and node.name in ("report_prf", "compute_corrector_prf_faspell")]
    namespace: dict = {}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), "evaluate_util.py", "exec"), namespace)
    return namespace["compute_corrector_prf_faspell"]


def test_agrees_with_pycorrectors_faspell_measure_on_the_real_test_set(spelling):
    pairs = spelling.sighan15_test.data
    wrong = [w for w, _ in pairs]
    pinyin = {c: s | o for c, (s, o) in spelling.same_pinyin.data.items()}
    noisy, _ = corrupt(wrong, pinyin, "pycorrector same_pinyin", CorruptConfig(share=0.05, seed=3))
    half, _ = corrupt([r for _, r in pairs], pinyin, "pycorrector same_pinyin", CorruptConfig(share=0.05, seed=4))
    # four kinds of prediction in turn: perfect, untouched, random changes, right sentence with new errors
    pred = [(r, w, n.text, h.text)[i % 4] for i, ((w, r), n, h) in enumerate(zip(pairs, noisy, half))]
    ours = sighan_scores(wrong, [r for _, r in pairs], pred)
    theirs = pycorrector_faspell()([(w, r, p) for (w, r), p in zip(pairs, pred)])
    for level, key in zip(LEVELS, ("det_sent", "cor_sent", "det_char", "cor_char")):
        assert [ours[level][k] for k in ("tp", "fp", "fn")] == theirs[f"{key}_counts"]
        assert [ours[level][k] for k in ("precision", "recall", "f1")] == pytest.approx(
            [theirs[f"{key}_p"], theirs[f"{key}_r"], theirs[f"{key}_f1"]])
    assert 0 < ours["sentence_correction"]["tp"] < ours["sentence_detection"]["tp"] + ours["sentence_detection"]["fp"]
