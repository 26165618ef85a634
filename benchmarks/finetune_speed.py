"""Fine-tuning step speed: the reference loop (uniformly random batches, AdamW one tensor at a time) against what
`zhbert finetune` does or can do: fused AdamW (always on), batches of similar lengths (``length_groups``) and, for
a fusion model, its glyph and pinyin nets kept as loaded (``freeze_fusion_nets``), side by side on the same model,
task and training inputs, one CPU thread each. Needs an export and a task folder, e.g. from `make demo`:

    python benchmarks/finetune_speed.py --model runs/compare/tiny/char/pretrain/export \
        --task msra_ner --data data/demo/tasks/msra_ner

Each setting trains a fresh copy of the model for ``--steps`` optimizer steps (after two warm-up steps) with
`zhbert finetune`'s own step (``train_step``: its loss, token weighting and gradient clipping) and the task's
settings from configs/finetune/tiny.toml, and reports milliseconds a step, real and padded tokens a step.
What it cannot show: how the batching changes what the model learns (docs/learning.md §12 measures that).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch
from launch import task_arguments, task_inputs

from zhbert.export import Export
from zhbert.finetune.features import Feature, TaskEncoder, collate
from zhbert.finetune.modes import FinetuneModel
from zhbert.finetune.run import FinetuneConfig, epoch_batches, labelled_per_batch, train_step
from zhbert.train.optim import adamw


def measure(cfg: FinetuneConfig, export: Export, encoder: TaskEncoder, train: list[Feature], fused: bool,
            steps: int) -> dict[str, float]:
    """ms a step, real and padded tokens a step, for ``steps`` steps after two warm-up steps."""
    torch.manual_seed(1)
    model = FinetuneModel(encoder.kind.head(export.folder, cfg.pooling), cfg.mode,
                          freeze_fusion_nets=cfg.freeze_fusion_nets)
    opt = adamw(model.trainable().values(), cfg.lr, cfg.weight_decay, fused=fused)
    batches = []
    order = torch.Generator().manual_seed(1)
    per_batch = labelled_per_batch(train, cfg.batch_size)
    while len(batches) < steps + 2:
        batches += epoch_batches(cfg, train, order)
    real = padded = 0
    for n, rows in enumerate(batches[: steps + 2]):
        if n == 2:
            t0 = time.perf_counter()
        batch = collate([train[i] for i in rows], export.vocab.pad_id)
        if n >= 2:
            real += int(batch["attention_mask"].sum())
            padded += batch["attention_mask"].numel()
        train_step(model, opt, batch, per_batch, cfg.grad_clip)
    return {"ms": (time.perf_counter() - t0) / steps * 1000, "real": real / steps, "padded": padded / steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    task_arguments(ap, "msra_ner")
    ap.add_argument("--steps", type=int, default=100)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg, export, encoder, train = task_inputs(args.model, args.task, args.data)
    settings = {"reference: random batches, AdamW per tensor": (0, False, False),
                "random batches, fused AdamW": (0, True, False),
                "runs of 4 batches by length, fused AdamW": (4, True, False),
                "runs of 50 batches by length, fused AdamW": (50, True, False)}
    if export.model.embedding == "fusion":
        settings["runs of 50, fused, glyph and pinyin nets frozen"] = (50, True, True)
    print(f"{args.task}, {export.model.embedding} model {args.model}: {len(train):,} training inputs, batch "
          f"{cfg.batch_size}, {args.steps} steps, 1 thread")
    ref = None
    for name, (groups, fused, freeze) in settings.items():
        r = measure(dataclasses.replace(cfg, length_groups=groups, freeze_fusion_nets=freeze), export, encoder, train,
                    fused, args.steps)
        ref = ref or r["ms"]
        print(f"  {name:<48} {r['ms']:7.1f} ms/step ({ref / r['ms']:.2f}x)  tokens/step {r['real']:6.0f} real, "
              f"{r['padded']:6.0f} with padding")


if __name__ == "__main__":
    main()
