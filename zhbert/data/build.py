"""Text files → everything pretraining needs, as one pipeline of keyed steps: pinyin vocab, char vocab,
glyph table, char-view shards, word vocab and word view. A re-run redoes only the steps whose inputs
changed. `zhbert demo` runs it on the embedded corpus; ``pipelines/prep_corpus.py`` on your own text.

Layout under the work folder: ``vocab/`` (tokenizer.json, vocab.txt, pinyin_vocab.txt, word_vocab.txt),
``glyphs/`` (glyphs.npy + glyphs.json), ``shards/`` (char view), ``shards-word/`` (word view).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

from zhbert.config import config_hash
from zhbert.data.files import read_json, sha256_file, write_json
from zhbert.data.prep import PrepConfig, clean_documents, run_prep
from zhbert.data.shards import MANIFEST

STEPS = "steps.json"


class Steps:
    """Remembers the key each finished step ran with, in ``<workdir>/steps.json``."""

    def __init__(self, workdir: Path):
        workdir.mkdir(parents=True, exist_ok=True)
        self.path = workdir / STEPS
        self.done = read_json(self.path) if self.path.exists() else {}

    def current(self, name: str, key: str | None, outputs: list[Path]) -> bool:
        """Whether ``name`` last ran with ``key`` and its outputs exist (key None: never; the step checks itself)."""
        return key is not None and self.done.get(name) == key and all(p.exists() for p in outputs)

    def mark(self, name: str, key: str | None) -> None:
        self.done[name] = key
        write_json(self.path, self.done)

    def run(self, name: str, key: str | None, outputs: list[Path], fn: Callable[[], object]) -> None:
        """Run ``fn`` unless it is current (see `current`)."""
        t = time.perf_counter()
        if self.current(name, key, outputs):
            print(f"── {name}: up to date")
            return
        print(f"── {name}")
        fn()
        self.mark(name, key)
        print(f"── {name}: done in {time.perf_counter() - t:.1f}s")


def build_dataset(cfg: PrepConfig, workdir: Path, vocab_size: int = 21128, word_vocab_size: int = 30000) -> None:
    """Run the whole data pipeline for ``cfg.inputs`` into ``workdir`` (cfg.output and cfg.vocab are set here)."""
    from zhbert.data.fonts import DEFAULT_FONTS_DIR
    from zhbert.data.glyphs import GlyphConfig, coverage_report, read_vocab, render_glyph_table
    from zhbert.data.pinyin import PinyinVocab
    from zhbert.data.vocab import CharVocab
    from zhbert.data.word_view import FORMAT as WORD_VIEW_FORMAT
    from zhbert.data.word_view import WORD_VOCAB, build_word_view

    vocab, glyphs, shards, words = workdir / "vocab", workdir / "glyphs", workdir / "shards", workdir / "shards-word"
    cfg = dataclasses.replace(cfg, output=str(shards), vocab=str(vocab))
    steps = Steps(workdir)

    steps.run("pinyin vocab", version("pypinyin"), [vocab / "pinyin_vocab.txt"],
              lambda: PinyinVocab.build().save(vocab))

    docs, clean = clean_documents(cfg)  # cached: the char vocab and the shards read the same clean text

    def char_vocab() -> None:
        built = CharVocab.train(docs.data.column("text").to_pylist(), size=vocab_size)
        built.save(vocab)
        print(f"char vocab: {len(built):,} tokens → {vocab}/tokenizer.json")

    steps.run("char vocab", config_hash(clean["key"], vocab_size),
              [vocab / "tokenizer.json"], char_vocab)

    def glyph_table() -> None:
        gcfg = GlyphConfig()
        table = render_glyph_table(read_vocab(vocab), gcfg.font_specs(), gcfg.size, progress=True)
        table.save(glyphs)
        print(coverage_report(table.meta))

    steps.run("glyphs", config_hash(CharVocab.load(vocab).sha256, GlyphConfig(),
                                    sha256_file(DEFAULT_FONTS_DIR / "manifest.json")),
              [glyphs / "glyphs.npy"], glyph_table)
    steps.run("prep", None, [shards / MANIFEST], lambda: run_prep(cfg))
    steps.run("word vocab + word view",
              config_hash(sha256_file(shards / MANIFEST), word_vocab_size, WORD_VIEW_FORMAT),
              [words / MANIFEST, vocab / WORD_VOCAB],
              lambda: build_word_view(shards, vocab, words, size=word_vocab_size))
