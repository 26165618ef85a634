"""Your own text → vocabularies, glyph table, char-view and word-view shards, in one command.

    .venv/bin/python pipelines/prep_corpus.py my_texts/ --workdir data/mine [--config configs/data/demo.toml]
        [--vocab-size 21128] [--word-vocab-size 30000] [--section.key=value …]

The same keyed steps as `zhbert demo` (zhbert.data.build), so a re-run redoes only what changed.
Inputs: .txt / .jsonl / .parquet files, datasets folders, or folders of these.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from zhbert.config import load
from zhbert.data.build import build_dataset
from zhbert.data.prep import PrepConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--config", type=Path, default=None, help="a PrepConfig delta (paths in it are replaced)")
    ap.add_argument("--vocab-size", type=int, default=21128)
    ap.add_argument("--word-vocab-size", type=int, default=30000)
    args, overrides = ap.parse_known_args()
    cfg = load(PrepConfig, args.config, overrides + ["inputs=[" + ", ".join(f'"{p}"' for p in args.inputs) + "]"])
    build_dataset(cfg, args.workdir, args.vocab_size, args.word_vocab_size)


if __name__ == "__main__":
    main()
