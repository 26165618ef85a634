"""Text files → everything pretraining needs, as one pipeline of keyed steps: pinyin vocab, char vocab,
glyph table, char-view shards, word vocab and word view. A re-run redoes only the steps whose inputs
changed. `zhbert demo` runs it on the embedded corpus; ``pipelines/prep_corpus.py`` on your own text.

The work folder's layout: zhbert/layout.py.
"""

from __future__ import annotations

import dataclasses
from importlib.metadata import version
from pathlib import Path

from zhbert.config import config_hash
from zhbert.data.clean import clean_documents
from zhbert.data.prep import PrepConfig, run_prep
from zhbert.files import sha256_file
from zhbert.layout import GLYPHS, MANIFEST, PINYIN_VOCAB, TOKENIZER, WORD_VIEW, WORD_VOCAB, WorkDir
from zhbert.steps import StepCache


def build_dataset(cfg: PrepConfig, workdir: Path, vocab_size: int = 21128, word_vocab_size: int = 30000,
                  word_view: bool = True) -> None:
    """Run the whole data pipeline for ``cfg.inputs`` into ``workdir`` (cfg.output and cfg.vocab are set here);
    ``word_view``: also the word vocab and the word view, which only word-level models read."""
    from zhbert.data.fonts import DEFAULT_FONTS_DIR
    from zhbert.data.glyphs import GlyphConfig, coverage_report, read_vocab, render_glyph_table
    from zhbert.data.pinyin import PinyinVocab
    from zhbert.data.vocab import CharVocab
    from zhbert.data.word_view import build_word_view

    work = WorkDir(workdir)
    vocab, glyphs, shards, words = work.vocab, work.glyphs, work.shards, work.word_shards
    cfg = dataclasses.replace(cfg, output=str(shards), vocab=str(vocab))
    steps = StepCache(workdir)

    steps.run("pinyin vocab", version("pypinyin"), [vocab / PINYIN_VOCAB],
              lambda: PinyinVocab.build().save(vocab))

    docs, clean = clean_documents(cfg)  # cached: the char vocab and the shards read the same clean text

    def char_vocab() -> None:
        built = CharVocab.train(docs.data.column("text").to_pylist(), size=vocab_size)
        built.save(vocab)
        print(f"char vocab: {len(built):,} tokens → {vocab}/tokenizer.json")

    steps.run("char vocab", config_hash(clean["key"], vocab_size),
              [vocab / TOKENIZER], char_vocab)

    def glyph_table() -> None:
        gcfg = GlyphConfig()
        table = render_glyph_table(read_vocab(vocab), gcfg.font_specs(), gcfg.size, progress=True)
        table.save(glyphs)
        print(coverage_report(table.meta))

    steps.run("glyphs", config_hash(CharVocab.load(vocab).sha256, GlyphConfig(),
                                    sha256_file(DEFAULT_FONTS_DIR / MANIFEST)),
              [glyphs / GLYPHS], glyph_table)
    steps.run("prep", None, [shards / MANIFEST], lambda: run_prep(cfg))
    if not word_view:
        return
    steps.run("word vocab + word view",
              config_hash(sha256_file(shards / MANIFEST), word_vocab_size, WORD_VIEW),
              [words / MANIFEST, vocab / WORD_VOCAB],
              lambda: build_word_view(shards, vocab, words, size=word_vocab_size))
