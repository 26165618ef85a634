"""Does zhbert's model learn masked-LM as fast per step as transformers' BertForMaskedLM of the same shape?

Both train side by side in one process on the same batches of the demo data (a pretraining config's shards,
packing and masking), from their own inits with pretraining's own AdamW and schedule, one micro-batch a step.
Every ``--every`` steps it prints each model's mean MLM loss (nats per masked token) beside the unigram
reference on the same masked tokens (the training rows' token frequencies: the loss of a model that ignores the
context). A model at the unigram loss has learned word frequencies and nothing else; an implementation bug in
attention, masks or positions shows as zhbert lagging behind its twin.

    make demo   # or at least its data steps: data/demo/{shards,vocab}
    .venv/bin/python benchmarks/learning_twin.py [--config configs/pretrain/tiny-char.toml] [--steps 600] [--lr 2e-3]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from model_speed import hf_twin

from zhbert.config import load
from zhbert.train.config import PretrainConfig
from zhbert.train.data import PretrainData, check_inputs
from zhbert.train.loader import step_inputs
from zhbert.train.masking import MaskingCollator
from zhbert.train.optim import adamw
from zhbert.train.pretrain import _build_model, lr_lambda


def hf_mlm_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """BertForMaskedLM's loss computed at the masked positions only (the same value; the full (B, T, V) logits
    would make the twin the bottleneck of the run)."""
    h = model.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   token_type_ids=batch.get("token_type_ids")).last_hidden_state
    masked = batch["labels"] != -100
    return F.cross_entropy(model.cls(h[masked]), batch["labels"][masked])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="configs/pretrain/tiny-char.toml")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--every", type=int, default=100)
    args = ap.parse_args()
    torch.set_num_threads(1)
    # one micro-batch a step; packed rows attend across their joins, as the twin (which takes no document ids) does;
    # BERT's layout, which the twin has: learned positions and dropout 0.1 (the tiny configs train with rotary
    # positions and no dropout)
    cfg = load(PretrainConfig, args.config, [f"micro_batch={load(PretrainConfig, args.config).batch_size}",
                                             'data.pack_attention="across"', f"steps={args.steps}",
                                             f"optim.lr={args.lr}", f"optim.warmup_steps={args.warmup}",
                                             'model.position="learned"', "model.hidden_dropout=0.1",
                                             "model.attention_dropout=0.1"])
    if cfg.model.embedding != "char":
        raise SystemExit("the twin is a char-vocab BERT: use a char model config")
    inputs = check_inputs(cfg)
    data = PretrainData(cfg, 0, 1)
    collate = MaskingCollator(cfg.masking, inputs.vocabs.char, inputs.vocabs.pinyin, inputs.vocabs.tokens)
    unigram = torch.from_numpy(data.unigram_log_probs(len(inputs.vocabs.tokens)))
    torch.manual_seed(cfg.seed)
    models = {"zhbert": _build_model(inputs.model, inputs.glyphs, inputs.vocabs).train(),
              "transformers": hf_twin(inputs.model).train()}
    optims = {k: adamw(m.parameters(), cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.betas)
              for k, m in models.items()}
    scheds = {k: torch.optim.lr_scheduler.LambdaLR(o, lr_lambda(cfg)) for k, o in optims.items()}
    sums = dict.fromkeys([*models, "unigram"], 0.0)
    seconds = dict.fromkeys(models, 0.0)
    print(f"{args.config}: {cfg.batch_size} sequences a step, lr {args.lr}, warmup {args.warmup}, "
          f"{cfg.optim.schedule} decay; "
          "mean MLM loss in nats per masked token")
    print(f"{'step':>6} {'zhbert':>8} {'transformers':>13} {'unigram':>8}")
    for step in range(args.steps):
        batch = collate(data.rows(step, 0), step, 0)
        sums["unigram"] += -unigram[batch["labels"][batch["labels"] != -100]].mean().item()
        for name, model in models.items():
            t = time.perf_counter()
            if name == "zhbert":
                loss = model(**{k: v for k, v in step_inputs(batch).items() if k != "maskable"}).mlm_loss
            else:
                loss = hf_mlm_loss(model, batch)
            optims[name].zero_grad(set_to_none=True)
            loss.backward()
            optims[name].step()
            scheds[name].step()
            seconds[name] += time.perf_counter() - t
            sums[name] += loss.item()
        if (step + 1) % args.every == 0:
            print(f"{step + 1:>6} {sums['zhbert'] / args.every:>8.3f} {sums['transformers'] / args.every:>13.3f} "
                  f"{sums['unigram'] / args.every:>8.3f}", flush=True)
            sums = dict.fromkeys(sums, 0.0)
    print(f"seconds per step: zhbert {seconds['zhbert'] / args.steps:.3f}, "
          f"transformers {seconds['transformers'] / args.steps:.3f} (masked positions only for both)")


if __name__ == "__main__":
    main()
