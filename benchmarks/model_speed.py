"""Forward + backward speed of zhbert's pretraining model against transformers' BertForMaskedLM of the
same size, measured in the same run (MLM with 15 % of tokens masked).

    .venv/bin/python benchmarks/model_speed.py [--steps 10] [--layers 4] [--hidden 256]

Prints the median and the minimum step time of each model (the minimum is the step least disturbed
by other processes on a shared machine), the speed-up of zhbert-char over HF (target ≥ 1.2×) and the
fusion step time over the char step time (target ≤ 1.10×, issue 12), and the fusion step with glyph features for the
whole vocab (``fusion_rows = "vocab"``, the static-shape path used on accelerators and under compile) against
the one with features for the distinct ids of the batch (``"distinct"``, the eager CPU path). Token ids
follow a Zipf law over the char vocab, as characters in running text do, because the fusion embedding's
cost grows with the number of distinct characters in a batch; a uniform-id (worst case) fusion figure is printed too.
The glyph table is all zeros: convolution cost does not depend on pixel values, and timing needs no fonts.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from zhbert.model import ModelConfig, ZhBertForPretraining, spell_pinyin

VOCAB, PINYIN_VOCAB, MASK_ID = 21128, 1562, 103


def zipf_ids(shape: tuple[int, int], vocab: int, gen: torch.Generator) -> torch.Tensor:
    """Ids with P(rank r) ∝ 1/r over the non-special part of the vocab (ids ≥ 672 are hanzi in
    bert-base-chinese's layout; the order is shuffled so frequent chars are spread over the table)."""
    weights = 1.0 / torch.arange(1, vocab - 672 + 1, dtype=torch.float64)
    ranks = torch.multinomial(weights, shape[0] * shape[1], replacement=True, generator=gen)
    return (torch.randperm(vocab - 672, generator=gen)[ranks] + 672).view(shape)


def mlm_batch(ids: torch.Tensor, gen: torch.Generator, vocab: int = VOCAB) -> dict[str, torch.Tensor]:
    """15 % of tokens masked (all replaced by [MASK] here: the split does not change the cost); ``vocab``: the
    id range of ``ids`` (a word vocab's is larger than the char vocab)."""
    masked = torch.rand(ids.shape, generator=gen) < 0.15
    labels = torch.where(masked, ids, torch.full_like(ids, -100))
    syllable_of = torch.randint(3, PINYIN_VOCAB, (vocab,), generator=gen)  # a fixed reading per id
    return {"input_ids": torch.where(masked, torch.full_like(ids, MASK_ID), ids),
            "attention_mask": torch.ones_like(ids), "labels": labels,
            "pinyin_ids": torch.where(masked, torch.full_like(ids, 2), syllable_of[ids])}


def fusion_tables(cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """Stand-in glyph and pinyin tables for timing a fusion model: an all-zero glyph table (convolution cost does
    not depend on pixel values) and one placeholder spelling per syllable."""
    return {"glyphs": torch.zeros(cfg.vocab_size, cfg.num_fonts, cfg.glyph_size, cfg.glyph_size, dtype=torch.uint8),
            "pinyin_letters": spell_pinyin(["[PAD]", "[UNK]", "[MASK]", *(["zhuang1"] * (cfg.pinyin_vocab_size - 3))])}


def hf_twin(cfg: ModelConfig) -> torch.nn.Module:
    """transformers' BertForMaskedLM (sdpa attention) of the shape of ``cfg``, over its token vocab."""
    from transformers import BertConfig, BertForMaskedLM

    return BertForMaskedLM(BertConfig(vocab_size=cfg.token_vocab_size, hidden_size=cfg.hidden_size,
                                      num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
                                      intermediate_size=cfg.intermediate_size,
                                      max_position_embeddings=cfg.max_position, attn_implementation="sdpa"))


def time_steps(steps: dict[str, Callable[[], None]], rounds: int, warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per step of each model, ``rounds`` times. The models are interleaved round by round, each round
    starting one model later, so that load from other processes on a shared machine and any effect
    of the previous model's step (caches, allocator) fall on all of them alike."""
    names = list(steps)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(warmup + rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            t = time.perf_counter()
            steps[name]()
            if r >= warmup:
                times[name].append(time.perf_counter() - t)
    return times


def train_step(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> Callable[[], None]:
    def step() -> None:
        model.zero_grad(set_to_none=True)
        model(**batch).loss.backward()
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    args = ap.parse_args()
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    shape = (args.batch, args.seq)
    batch = mlm_batch(zipf_ids(shape, VOCAB, gen), gen)
    uniform = mlm_batch(torch.randint(672, VOCAB, shape, generator=gen), gen)
    heads = args.hidden // 64
    cfg = ModelConfig(vocab_size=VOCAB, hidden_size=args.hidden, num_layers=args.layers, num_heads=heads,
                      intermediate_size=4 * args.hidden, max_position=512, pinyin_vocab_size=PINYIN_VOCAB)
    char = ZhBertForPretraining(cfg).train()
    fusion_cfg = ModelConfig(**{**cfg.__dict__, "embedding": "fusion", "fusion_rows": "distinct"})
    tables = fusion_tables(fusion_cfg)
    fusion = ZhBertForPretraining(fusion_cfg, **tables).train()
    vocab_cfg = ModelConfig(**{**fusion_cfg.__dict__, "fusion_rows": "vocab"})
    whole_vocab = ZhBertForPretraining(vocab_cfg, **tables).train()
    hf = hf_twin(cfg).train()
    char_batch = {k: v for k, v in batch.items() if k != "pinyin_ids"}
    times = time_steps({"hf": train_step(hf, char_batch), "char": train_step(char, char_batch),
                        "fusion": train_step(fusion, batch), "uniform": train_step(fusion, uniform),
                        "vocab": train_step(whole_vocab, batch)}, args.steps)
    distinct = batch["input_ids"].unique().numel()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.layers} layers x {args.hidden} hidden, "
          f"batch {args.batch} x seq {args.seq}, vocab {VOCAB}, 15% masked, {args.steps} interleaved steps each")
    names = {"hf": "HF BertForMaskedLM (sdpa)", "char": "zhbert char",
             "fusion": f"zhbert fusion (Zipf ids, {distinct} distinct)", "uniform": "zhbert fusion (uniform ids)",
             "vocab": "zhbert fusion (Zipf ids, vocab glyphs)"}
    tokens = args.batch * args.seq
    for key, name in names.items():
        med, low = statistics.median(times[key]), min(times[key])
        print(f"{name:40s} median {med * 1e3:7.0f} ms/step {tokens / med:6.0f} tok/s | "
              f"min {low * 1e3:7.0f} ms/step {tokens / low:6.0f} tok/s")
    for stat, f in (("median", statistics.median), ("min", min)):
        t = {k: f(v) for k, v in times.items()}
        print(f"[{stat}] char speed-up over HF: {t['hf'] / t['char']:.2f}x (target >= 1.2); "
              f"fusion / char step time: {t['fusion'] / t['char']:.2f}x (target <= 1.10), "
              f"uniform ids {t['uniform'] / t['char']:.2f}x; whole-vocab / distinct-id glyphs: "
              f"{t['vocab'] / t['fusion']:.2f}x (vocab / char {t['vocab'] / t['char']:.2f}x)")

if __name__ == "__main__":
    main()
