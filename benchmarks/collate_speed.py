"""Collation throughput: packed 128-token training sequences read from the demo shards and masked into batches,
on the training thread (data.workers = 0, the reference) and in 1 and 2 background workers, side by side.
Needs the demo data (`make demo`).

    python benchmarks/collate_speed.py                     # tiny-char, micro-batch 32, 300 micro-batches
    python benchmarks/collate_speed.py --config configs/pretrain/tiny-fusion.toml --micro-batch 64

Each setting reads the same micro-batches (steps 0… of rank 0) through `zhbert.train.loader.train_batches`, as
`zhbert pretrain` does; the time runs from creating the loader (forking its workers included) to the last batch
in the training process, which does nothing else. Target: ≥ 20,000 sequences/s with two workers (a BERT-base
step on one H100-class GPU needs about 5,000).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from launch import ROOT, demo_data

from zhbert.config import load, override
from zhbert.export import TextSettings
from zhbert.train.config import PretrainConfig
from zhbert.train.data import PretrainData, load_vocabs
from zhbert.train.loader import train_batches
from zhbert.train.masking import MaskingCollator


def measure(cfg: PretrainConfig, batches: int) -> tuple[float, float, float]:
    """(sequences/s, seconds to the first batch, mean real tokens a sequence) over ``batches`` micro-batches."""
    vocabs = load_vocabs(cfg)
    collator = MaskingCollator(cfg.masking, vocabs.char, vocabs.pinyin, vocabs.tokens,
                               TextSettings.of_shards(cfg.data.shards).context_reader())
    data = PretrainData(cfg, 0, 1)
    t0 = time.perf_counter()
    first, tokens = None, 0
    for batch in train_batches(data, collator, 0, batches, 1, "cpu"):
        first = first or time.perf_counter() - t0
        tokens += int(batch["attention_mask"].sum())
    seconds = time.perf_counter() - t0
    return batches * cfg.micro_batch / seconds, first or 0.0, tokens / (batches * cfg.micro_batch)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", type=Path, default=ROOT / "configs/pretrain/tiny-char.toml")
    p.add_argument("--data", default="data/demo", help="the work folder `make demo` fills")
    p.add_argument("--micro-batch", type=int, default=32)
    p.add_argument("--batches", type=int, default=300)
    args = p.parse_args()
    base = demo_data(args.data) | {"micro_batch": args.micro_batch, "batch_size": args.micro_batch}
    print(f"{args.config.name}: {args.batches} micro-batches of {args.micro_batch} sequences\n")
    print(f"{'':<22} {'sequences/s':>12} {'vs thread':>10} {'first batch':>12} {'tokens/seq':>11}")
    reference = None
    for workers in (0, 1, 2):
        cfg = load(PretrainConfig, args.config, [f"--{override(k, v)}" for k, v in
                                                 (base | {"data.workers": workers}).items()])
        rate, first, tokens = measure(cfg, args.batches)
        reference = reference or rate
        name = "training thread" if workers == 0 else f"{workers} worker{'s' * (workers > 1)}"
        print(f"{name:<22} {rate:>12,.0f} {rate / reference:>9.2f}× {first * 1e3:>10.1f}ms {tokens:>11.1f}",
              flush=True)


if __name__ == "__main__":
    main()
