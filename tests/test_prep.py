"""The prep pipeline on real text: the shard contract, counts that add up, re-runs, workers, ranks, kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest

from zhbert.config import from_dict
from zhbert.data.pinyin import PinyinVocab
from zhbert.data.prep import PrepConfig, run_prep
from zhbert.data.shards import load_shards, merge_ranks
from zhbert.data.text import is_hanzi
from zhbert.data.vocab import CharVocab


def config(inputs, out, vocab_dir, **extra) -> PrepConfig:
    return from_dict(PrepConfig, {"inputs": [str(p) for p in inputs], "output": str(out), "vocab": str(vocab_dir),
                                  "shard_chars": 100_000, **extra})


def arrow_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.rglob("data-*.arrow"))}


@pytest.fixture(scope="module")
def prepped(small_corpus, vocab_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("prep") / "shards"
    manifest = run_prep(config([small_corpus], out, vocab_dir))
    return out, manifest


def test_manifest_counts_add_up(prepped):
    out, m = prepped
    c = m["counts"]
    assert c["documents_in"] == c["documents_kept"] + sum(c["dropped"].values())
    assert c["documents_in"] == 1500 + 800 + 1500 + 400 + 200
    assert sum(s["documents"] for s in m["shards"]) == c["documents_kept"]
    assert sum(s["sequences"] for s in m["shards"]) == c["sequences"] == load_shards(out).num_rows
    assert sum(s["tokens"] for s in m["shards"]) == c["tokens"]
    assert len(m["inputs"]) == 5 and all(len(i["sha256"]) == 64 for i in m["inputs"])
    assert m["vocab"]["char_sha256"] == CharVocab.load(m["config"]["vocab"]).sha256
    assert len(m["shards"]) > 1


def test_shards_open_with_datasets_and_keep_the_contract(prepped, vocab_dir):
    out, m = prepped
    ds = datasets.load_from_disk(str(out))  # memory-mapped, no copy
    assert ds.column_names == ["input_ids", "word_ids", "pinyin_ids", "doc_id"]
    assert ds.cache_files and all(f["filename"].endswith(".arrow") for f in ds.cache_files)
    vocab, pinyin = CharVocab.load(vocab_dir), PinyinVocab.load(vocab_dir)
    # compact columns: 6 bytes a token (a char vocab under 65,536 entries fits uint16)
    assert len(vocab) < 1 << 16
    dtypes = [ds.features[k].feature.dtype for k in ("input_ids", "word_ids", "pinyin_ids")]
    assert dtypes == ["uint16", "int16", "int16"]
    tokens = vocab.tokens
    for row in ds.select(range(0, ds.num_rows, 17)):
        ids, wids, pys = row["input_ids"], row["word_ids"], row["pinyin_ids"]
        assert len(ids) == len(wids) == len(pys) <= 128
        assert ids[0] == vocab.cls_id and ids[-1] == vocab.sep_id and wids[0] == wids[-1] == -1
        inner = wids[1:-1]
        assert inner[0] == 0 and all(b - a in (0, 1) for a, b in zip(inner, inner[1:]))  # words numbered in order
        for i, p in zip(ids, pys):
            tok = tokens[i]
            if (len(tok) == 1 and is_hanzi(tok)) or (tok == "[UNK]" and p):  # a rare hanzi keeps its reading
                assert p == PinyinVocab.UNK or pinyin.entries[p][-1] in "12345"
            else:
                assert p == PinyinVocab.PAD


def test_documents_stay_whole_and_in_order(prepped, small_corpus):
    out, _ = prepped
    doc_ids = load_shards(out)["doc_id"]
    first = json.loads((small_corpus / "msra_news.jsonl").open(encoding="utf-8").readline())["id"]
    seen, last = set(), None
    for d in doc_ids:  # a document's sequences are contiguous: it never reappears after another one
        if d != last:
            assert d not in seen
            seen.add(d)
            last = d
    assert first in seen


def test_heteronyms_follow_the_word(tmp_path, vocab_dir):
    (tmp_path / "h.txt").write_text("他去银行取钱，然后行走回家。\n音乐让人快乐。\n", encoding="utf-8")
    run_prep(config([tmp_path / "h.txt"], tmp_path / "out", vocab_dir))
    ds = load_shards(tmp_path / "out")
    vocab, pinyin = CharVocab.load(vocab_dir), PinyinVocab.load(vocab_dir)
    readings = []
    for row in ds:
        readings += [(vocab.tokens[i], pinyin.entries[p]) for i, p in zip(row["input_ids"], row["pinyin_ids"])]
    assert ("行", "hang2") in readings and ("行", "xing2") in readings
    assert ("乐", "yue4") in readings and ("乐", "le4") in readings


def test_rerun_is_up_to_date_and_two_workers_write_the_same_bytes(prepped, small_corpus, vocab_dir, capsys):
    out, m = prepped
    before = arrow_bytes(out)
    again = run_prep(config([small_corpus], out, vocab_dir))
    assert "up to date" in capsys.readouterr().out and again == m
    two = out.parent / "two-workers"
    m2 = run_prep(config([small_corpus], two, vocab_dir, num_proc=2))
    assert arrow_bytes(two) == before and m2["counts"] == m["counts"]


def test_a_user_dictionary_edited_in_place_changes_the_words(tmp_path, vocab_dir, capsys):
    """The same path, new content: the re-run is not "up to date", and the new dictionary's word is used (the
    encoder cached in this process is keyed by content too)."""
    (tmp_path / "t.txt").write_text("他去银行取钱然后行走回家。\n", encoding="utf-8")
    user_dict = tmp_path / "user.dict"
    user_dict.write_text("银行\n", encoding="utf-8")
    cfg = config([tmp_path / "t.txt"], tmp_path / "out", vocab_dir, segment={"user_dicts": [str(user_dict)]})
    vocab = CharVocab.load(vocab_dir)

    def words() -> list[str]:
        row = load_shards(tmp_path / "out")[0]
        spans: dict[int, str] = {}
        for i, w in zip(row["input_ids"], row["word_ids"]):
            if w >= 0:
                spans[w] = spans.get(w, "") + vocab.tokens[i]
        return list(spans.values())

    run_prep(cfg)
    assert "钱然后" not in words()
    user_dict.write_text("银行\n钱然后 100000\n", encoding="utf-8")
    capsys.readouterr()
    run_prep(cfg)
    assert "up to date" not in capsys.readouterr().out
    assert words() == ["他", "去", "银行", "取", "钱然后", "行走", "回家", "。"]


def test_ranks_each_take_files_and_merge(small_corpus, vocab_dir, tmp_path):
    cfg = config([small_corpus], tmp_path / "out", vocab_dir)
    parts = [run_prep(cfg, rank=r, world_size=2) for r in (0, 1)]
    assert {Path(i["path"]).name for p in parts for i in p["inputs"]} == {f.name for f in small_corpus.iterdir()}
    merged = merge_ranks(tmp_path / "out")
    single = run_prep(config([small_corpus], tmp_path / "single", vocab_dir))
    for key in ("documents_in", "documents_kept", "sequences", "tokens", "chars"):
        assert merged["counts"][key] == single["counts"][key] == sum(p["counts"][key] for p in parts)
    assert load_shards(tmp_path / "out").num_rows == single["counts"]["sequences"]
    with pytest.raises(ValueError, match="outside"):
        run_prep(cfg, rank=2, world_size=2)


def test_killed_run_resumes_to_identical_shards(demo_corpus, vocab_dir, tmp_path):
    """SIGKILL while shards are being written, run again: the same files as an uninterrupted run."""
    inputs = [demo_corpus / "peoples_daily.jsonl", demo_corpus / "reviews.jsonl"]
    args = [str(p) for p in inputs] + ["--vocab", str(vocab_dir), "--shard_chars=100000"]
    cmd = [sys.executable, "-m", "zhbert.cli", "prep", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, "--out", str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(list(killed.rglob("data-*.arrow"))) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "prep finished before it could be killed; make the input larger"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(killed.rglob("data-*.arrow")))
    assert not (killed / "manifest.json").exists()
    subprocess.run([*cmd, "--out", str(killed)], env=env, check=True, capture_output=True)
    subprocess.run([*cmd, "--out", str(tmp_path / "whole")], env=env, check=True, capture_output=True)
    assert arrow_bytes(killed) == arrow_bytes(tmp_path / "whole") and len(arrow_bytes(killed)) > done_before
    assert not list(killed.rglob("*.tmp"))
    manifests = [json.loads((d / "manifest.json").read_text()) for d in (killed, tmp_path / "whole")]
    assert manifests[0] == manifests[1]


def test_a_crash_between_a_shard_and_its_marker_redoes_the_shard(small_corpus, vocab_dir, tmp_path):
    """Prep, change the config, crash while the first shard of the new config is written (its temporary file
    cannot be created: a folder sits there), run again: every shard must hold the new config's rows, never the
    old rows under the new key; and while the crashed run's shards are incomplete the folder must not look
    finished."""
    inputs, out = [small_corpus / "reviews.jsonl"], tmp_path / "out"
    shorter = {"pack": {"max_len": 32}, "shard_chars": 10_000}
    run_prep(config(inputs, out, vocab_dir, shard_chars=10_000))
    blocker = out / "part-0000-of-0001" / "data-00000.arrow.tmp"
    blocker.mkdir()
    with pytest.raises(IsADirectoryError):
        run_prep(config(inputs, out, vocab_dir, **shorter))
    assert not (out / "manifest.json").exists() and not (out / "part-0000-of-0001" / "manifest.json").exists()
    blocker.rmdir()
    again = run_prep(config(inputs, out, vocab_dir, **shorter))
    fresh = run_prep(config(inputs, tmp_path / "fresh", vocab_dir, **shorter))
    assert max(map(len, load_shards(out)["input_ids"])) <= 32
    assert arrow_bytes(out) == arrow_bytes(tmp_path / "fresh") and again["counts"] == fresh["counts"]


def test_atomic_write_leaves_the_old_file_on_an_error(tmp_path):
    from zhbert.files import atomic_write, write_text

    path = tmp_path / "vocab.txt"
    write_text(path, "old\n")
    with pytest.raises(RuntimeError), atomic_write(path) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("killed")
    assert path.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["vocab.txt"]


def test_the_clean_cache_keeps_a_folder_per_config_beside_the_shards(small_corpus, tmp_path):
    """The clean stage writes to ``clean/<key>/`` beside the shard folder, never into it (so `zhbert vocab char`
    leaves the shard folder alone), and a second config's documents do not replace the first's."""
    from zhbert.data.clean import clean_documents

    inputs = [str(small_corpus / "reviews.jsonl")]
    simplified = PrepConfig(inputs=inputs, output=str(tmp_path / "shards"))
    traditional = from_dict(PrepConfig, {"inputs": inputs, "output": str(tmp_path / "shards"),
                                         "normalize": {"t2s": True}})
    docs_a, stats_a = clean_documents(simplified)
    _, stats_b = clean_documents(traditional)
    assert stats_a["key"] != stats_b["key"]
    assert sorted(p.name for p in (tmp_path / "clean").iterdir()) == sorted([stats_a["key"], stats_b["key"]])
    assert not (tmp_path / "shards").exists()
    again, stats = clean_documents(simplified)  # read back, not redone
    assert again.cache_files[0]["filename"] == docs_a.cache_files[0]["filename"] and stats == stats_a
    assert again.num_rows == docs_a.num_rows > 700
