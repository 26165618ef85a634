"""How alike a model's top-layer vectors are across inputs, before any fine-tuning: the mean pairwise cosine of the
[CLS] vectors and of the mean over each input's real tokens, over the first ``--inputs`` training inputs of a task,
for each export named; for a fusion model also the mean length of each block of its fused input (char, glyph,
pinyin) over the hanzi of those inputs. docs/learning.md §18: masked-LM pretraining leaves [CLS] nearly alike for
every input, which is why the tiny fine-tuning reads the mean. After `make demo`:

    python benchmarks/representation_spread.py --data data/demo/tasks/idiom_pair \
        runs/compare/tiny/{char/pretrain,fusion/pretrain,untrained-tiny-char,untrained-tiny-fusion}/export
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from launch import task_inputs

from zhbert.finetune.features import collate
from zhbert.model.embeddings import SPECIAL_SYLLABLES


def mean_cosine(v: torch.Tensor) -> float:
    """Mean cosine over the pairs of distinct rows of ``v`` (N, H)."""
    v = F.normalize(v.float(), dim=-1)
    n = len(v)
    return ((v @ v.T).sum() - n).item() / (n * n - n)


@torch.no_grad()
def spread(model: str, task: str, data: str, inputs: int) -> str:
    cfg, export, encoder, train = task_inputs(model, task, data)
    batch = collate(train[:inputs], export.vocab.pad_id)
    bert = encoder.kind.head(export.folder, cfg.pooling).bert.eval()
    h = bert(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], batch["pinyin_ids"])
    keep = batch["attention_mask"][..., None].float()
    line = (f"{export.model.embedding:>6}  [CLS] {mean_cosine(h[:, 0]):.3f}  "
            f"mean of the tokens {mean_cosine((h * keep).sum(1) / keep.sum(1)):.3f}")
    if export.model.embedding == "fusion":
        emb = bert.embeddings
        w_char, *w_parts = emb.fuse.weight.chunk(1 + len(emb.inputs), dim=1)  # as FusionEmbeddings.forward splits it
        hanzi = batch["pinyin_ids"] >= SPECIAL_SYLLABLES  # 0 [PAD] (non-hanzi), 1 [UNK], 2 [MASK]
        chars, syllables = batch["input_ids"][hanzi].unique(), batch["pinyin_ids"][hanzi].unique()
        features = {"glyph": lambda: emb._glyph_features(chars), "pinyin": lambda: emb._pinyin_features()[syllables]}
        blocks = {"char": F.linear(emb.tokens(chars), w_char),
                  **{part: F.linear(features[part](), w) for part, w in zip(emb.inputs, w_parts)}}
        line += "; fused blocks, mean length: " + ", ".join(
            f"{part} {x.norm(dim=1).mean().item():.3f}" for part, x in blocks.items())
    return f"{line}  ({model})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="export folders")
    ap.add_argument("--task", default="idiom_pair")
    ap.add_argument("--data", required=True, help="the task's folder")
    ap.add_argument("--inputs", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"{args.task}: top layer over the first {args.inputs} training inputs, mean pairwise cosine")
    for model in args.models:
        print(spread(model, args.task, args.data, args.inputs))


if __name__ == "__main__":
    main()
