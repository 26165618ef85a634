"""`zhbert demo`: the whole job on the embedded corpus, each step skipped when its output is current.

Today: fetch the corpus → pinyin vocab → char vocab → glyph table → char-view shards → word vocab and
word view (zhbert.data.build). Pretraining, fine-tuning and the comparison report join as their
issues land.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from zhbert.config import config_hash
from zhbert.data.build import Steps, build_dataset
from zhbert.data.prep import PrepConfig
from zhbert.data.shards import MANIFEST


def run_demo(workdir: Path) -> None:
    from zhbert.data.sources import SOURCES, fetch_corpus

    t0 = time.perf_counter()
    corpus = workdir / "corpus"
    Steps(workdir).run("corpus", config_hash(sorted((s.name, s.sha256) for s in SOURCES.values())),
                       [corpus / MANIFEST], lambda: fetch_corpus(corpus))
    build_dataset(PrepConfig(inputs=[str(corpus)], num_proc=min(2, os.cpu_count() or 1)), workdir)
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f}s; everything is under {workdir}/")
