"""`zhbert demo`: the whole job on the embedded corpus, each step skipped when its output is current.

Today: fetch the corpus → pinyin vocab → char vocab → glyph table → char-view shards → word vocab and
word view. Pretraining, fine-tuning and the comparison report join as their issues land.
"""

from __future__ import annotations

import os
import time
from importlib.metadata import version
from pathlib import Path

from zhbert.config import config_hash
from zhbert.data.files import read_json, sha256_file, write_json
from zhbert.data.prep import PrepConfig, clean_documents, run_prep
from zhbert.data.shards import MANIFEST

STEPS = "steps.json"


class Steps:
    """Remembers the key each finished step was run with, so a re-run redoes only what changed."""

    def __init__(self, workdir: Path):
        self.path = workdir / STEPS
        self.done = read_json(self.path) if self.path.exists() else {}

    def run(self, name: str, key: str | None, outputs: list[Path], fn) -> None:
        """Run ``fn`` unless it last ran with ``key`` and its outputs exist (key None: ``fn`` checks itself)."""
        t = time.perf_counter()
        if key is not None and self.done.get(name) == key and all(p.exists() for p in outputs):
            print(f"── {name}: up to date")
            return
        print(f"── {name}")
        fn()
        self.done[name] = key
        write_json(self.path, self.done)
        print(f"── {name}: done in {time.perf_counter() - t:.1f}s")


def demo_prep_config(workdir: Path) -> PrepConfig:
    return PrepConfig(inputs=[str(workdir / "corpus")], output=str(workdir / "shards"), vocab=str(workdir / "vocab"),
                      num_proc=min(2, os.cpu_count() or 1))


def run_demo(workdir: Path) -> None:
    from zhbert.data.pinyin import PinyinVocab
    from zhbert.data.sources import SOURCES, fetch_corpus
    from zhbert.data.vocab import CharVocab
    from zhbert.data.word_view import WORD_VOCAB, build_word_view

    t0 = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    steps = Steps(workdir)
    corpus, vocab, glyphs = workdir / "corpus", workdir / "vocab", workdir / "glyphs"
    shards, words = workdir / "shards", workdir / "shards-word"
    cfg = demo_prep_config(workdir)

    steps.run("corpus", config_hash(sorted((s.name, s.sha256) for s in SOURCES.values())), [corpus / MANIFEST],
              lambda: fetch_corpus(corpus))
    steps.run("pinyin vocab", version("pypinyin"), [vocab / "pinyin_vocab.txt"],
              lambda: PinyinVocab.build().save(vocab))

    def char_vocab() -> None:
        docs, _ = clean_documents(cfg)
        built = CharVocab.train(docs.data.column("text").to_pylist())
        built.save(vocab)
        print(f"char vocab: {len(built):,} tokens → {vocab}/tokenizer.json")

    steps.run("char vocab", config_hash(read_json(corpus / MANIFEST), cfg.normalize, cfg.filter),
              [vocab / "tokenizer.json"], char_vocab)
    def glyph_table() -> None:
        from zhbert.data.glyphs import GlyphConfig, coverage_report, read_vocab, render_glyph_table

        gcfg = GlyphConfig()
        table = render_glyph_table(read_vocab(vocab), gcfg.font_specs(), gcfg.size, progress=True)
        table.save(glyphs)
        print(coverage_report(table.meta))

    from zhbert.data.fonts import DEFAULT_FONTS_DIR
    from zhbert.data.glyphs import GlyphConfig

    steps.run("glyphs", config_hash(CharVocab.load(vocab).sha256, GlyphConfig(),
                                    sha256_file(DEFAULT_FONTS_DIR / "manifest.json")),
              [glyphs / "glyphs.npy"], glyph_table)
    steps.run("prep", None, [shards / MANIFEST], lambda: run_prep(cfg))
    steps.run("word vocab + word view", read_json(shards / MANIFEST)["config_hash"],
              [words / MANIFEST, vocab / WORD_VOCAB], lambda: build_word_view(shards, vocab, words))
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f}s; everything is under {workdir}/")
