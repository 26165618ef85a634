"""pipelines/prep_corpus.py: own text → vocabularies, glyph table, char and word views; a re-run redoes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from zhbert.data.glyphs import load_glyph_table
from zhbert.data.shards import load_shards
from zhbert.data.vocab import CharVocab
from zhbert.files import read_json

SCRIPT = Path(__file__).parent.parent / "pipelines" / "prep_corpus.py"


def test_prep_corpus_pipeline_end_to_end_and_rerun(small_corpus, tmp_path):
    inputs = [str(small_corpus / "peoples_daily.jsonl"), str(small_corpus / "reviews.jsonl")]
    cmd = [sys.executable, str(SCRIPT), *inputs, "--workdir", str(tmp_path), "--word-vocab-size", "500",
           "--pack.max_len=64"]
    first = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    vocab = CharVocab.load(tmp_path / "vocab")
    glyphs = load_glyph_table(tmp_path / "glyphs")
    chars, words = load_shards(tmp_path / "shards"), load_shards(tmp_path / "shards-word")
    assert glyphs.pixels.shape[0] == len(vocab) and glyphs.meta["vocab"]["sha256"] == vocab.sha256
    assert chars.num_rows == words.num_rows > 0 and max(map(len, chars["input_ids"])) <= 64
    assert words["char_len"] == [len(ids) for ids in chars["input_ids"]]  # what packing groups both views by
    assert read_json(tmp_path / "shards" / "manifest.json")["vocab"]["char_sha256"] == vocab.sha256
    assert "── glyphs: done" in first
    second = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    for step in ("pinyin vocab", "char vocab", "glyphs", "word vocab + word view"):
        assert f"── {step}: up to date" in second
    assert "up to date, nothing redone" in second
