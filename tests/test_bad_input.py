"""Every awkward input is processed or refused with an error naming the file (and line); nothing
vanishes silently: documents in = documents kept + documents dropped by reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES, take

from zhbert.config import from_dict
from zhbert.data.clean import clean_documents
from zhbert.data.prep import PrepConfig, run_prep
from zhbert.data.readers import InputError
from zhbert.data.shards import load_shards

BAD = FIXTURES / "bad_input"


def config(tmp_path: Path, vocab_dir: Path, inputs: list[Path], **extra) -> PrepConfig:
    return from_dict(PrepConfig, {"inputs": [str(p) for p in inputs], "output": str(tmp_path / "out"),
                                  "vocab": str(vocab_dir), **extra})


def assert_nothing_lost(manifest: dict) -> None:
    c = manifest["counts"]
    assert c["documents_in"] == c["documents_kept"] + sum(c["dropped"].values())


def test_binary_file_is_refused_with_its_name(tmp_path, vocab_dir):
    with pytest.raises(InputError, match=r"binary\.txt: looks binary|binary\.txt: neither UTF-8"):
        run_prep(config(tmp_path, vocab_dir, [BAD / "mixed.txt", BAD / "binary.txt"]))
    assert not (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.parametrize("name, message", [("missing.txt", "no such file"), ("data.csv", "unknown input type")])
def test_unreadable_inputs_are_named(tmp_path, vocab_dir, name, message):
    if name.endswith(".csv"):
        (tmp_path / name).write_text("a,b\n")
    with pytest.raises(InputError, match=f"{name}.*{message}|{message}"):
        run_prep(config(tmp_path, vocab_dir, [tmp_path / name]))


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory, vocab_dir, demo_corpus):
    """All fixtures together, binary skipped, plus a 5 MB single line of real text with no sentence end."""
    tmp = tmp_path_factory.mktemp("bad")
    lines = [d["text"].replace("。", "，") for d in take(demo_corpus, "peoples_daily", 5000)]
    big = "，".join(lines)
    while len(big.encode()) < 5_000_000:
        big += "，" + big
    (tmp / "big_line.txt").write_text(big[: 5_000_000 // 3] + "\n", encoding="utf-8")
    inputs = sorted(BAD.iterdir()) + [tmp / "big_line.txt"]
    cfg = config(tmp, vocab_dir, inputs, on_bad_file="skip", filter={"dedup": False})
    manifest = run_prep(cfg)
    docs, _ = clean_documents(cfg)
    by_id = dict(zip(docs["id"], docs["text"]))
    return manifest, by_id, load_shards(tmp / "out")


def test_counts_add_up_and_the_refused_file_is_listed(bad_run):
    manifest, _, _ = bad_run
    assert_nothing_lost(manifest)
    assert [Path(r["path"]).name for r in manifest["refused_files"]] == ["binary.txt"]
    # the English-only line of mixed.txt is the one too_few_hanzi
    dropped = {"bad_json": 1, "no_text_field": 2, "too_few_hanzi": 1, "undecodable": 1}
    assert manifest["counts"]["dropped"] == dropped
    assert any(w.endswith("invalid_utf8.txt:2") for w in manifest["drop_examples"]["undecodable"])
    assert any(w.endswith("malformed.jsonl:2") for w in manifest["drop_examples"]["bad_json"])


def test_each_fixture_is_read_right(bad_run):
    _, docs, _ = bad_run
    texts = {Path(k.rsplit(":", 1)[0]).name: [] for k in docs}
    for k, v in docs.items():
        texts[Path(k.rsplit(":", 1)[0]).name].append(v)
    assert "empty.txt" not in texts
    assert texts["gb18030.txt"] == texts["bom.txt"]  # same four sentences, two encodings
    assert texts["bom.txt"][1] == "同胞们、朋友们、女士们、先生们:" and not texts["bom.txt"][0].startswith("\ufeff")
    assert len(texts["invalid_utf8.txt"]) == 3
    assert "\x00" not in "".join(texts["nul_bytes.txt"]) and "总书记" in texts["nul_bytes.txt"][0]
    assert texts["mixed.txt"][:2] == ["我用 iPhone 13 Pro 拍照,效果 very good。Apple 的 A15 芯片性能强劲!",
                                      "ABC123,全角字母和数字要变成半角。零宽字符也要去掉。"]
    assert "𩸽" in texts["emoji_extb.txt"][0] and "😀" in texts["emoji_extb.txt"][0]
    jsonl = [v for k, v in docs.items() if k in ("a", "d")]
    assert jsonl == ["同胞们、朋友们、女士们、先生们:", "在1998年来临之际,我十分高兴。"]


def test_a_five_megabyte_line_becomes_many_full_sequences(bad_run):
    manifest, _, shards = bad_run
    assert manifest["counts"]["long_sentences_cut"] >= 1
    big = shards.filter(lambda r: r["doc_id"].endswith("big_line.txt:1"))
    assert big.num_rows > 10_000
    assert max(map(len, big["input_ids"])) <= 128
    assert all(ids[0] == 101 and ids[-1] == 102 for ids in big["input_ids"][:50])


def test_emoji_and_extension_b_survive_as_tokens(bad_run, vocab_dir):
    _, _, shards = bad_run
    row = shards.filter(lambda r: r["doc_id"].endswith("emoji_extb.txt:1"))[0]
    tokens = json.loads((vocab_dir / "tokenizer.json").read_text())["model"]["vocab"]
    assert row["input_ids"].count(tokens["[UNK]"]) >= 2  # 𩸽 and the emoji are not in this corpus' vocab
    assert len(row["input_ids"]) == len(row["word_ids"]) == len(row["pinyin_ids"])


def cli_prep(vocab_dir: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zhbert", "prep", "--vocab", str(vocab_dir), "--out", str(out), *args],
                          capture_output=True, text=True)


def test_every_fixture_through_the_cli(tmp_path, vocab_dir):
    """The folder of all fixtures through `python -m zhbert prep`: the same counts as the library run above."""
    done = cli_prep(vocab_dir, tmp_path / "out", "--on_bad_file=skip", "--filter.dedup=false", str(BAD))
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert_nothing_lost(manifest)
    assert manifest["counts"]["dropped"] == {"bad_json": 1, "no_text_field": 2, "too_few_hanzi": 1, "undecodable": 1}
    assert [Path(r["path"]).name for r in manifest["refused_files"]] == ["binary.txt"]
    assert "REFUSED" in done.stdout and f"documents  {manifest['counts']['documents_in']:,} in" in done.stdout


@pytest.mark.parametrize("name, message", [
    ("empty.txt", "no documents to encode: empty.txt held 0 document(s); no shards written"),
    ("binary.txt", "binary.txt: looks binary"),
])
def test_a_fixture_alone_ends_in_a_message_not_a_traceback(tmp_path, vocab_dir, name, message):
    """Where a fixture on its own ends differently from the folder run: an error message and exit code 1."""
    done = cli_prep(vocab_dir, tmp_path / "out", str(BAD / name))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert message in done.stderr and not (tmp_path / "out" / "manifest.json").exists()
