"""Where a fusion embedding's step goes, and what the gathered pinyin convolution saves: forward and backward of the
fusion embedding on a batch of a bundled task, of its glyph net (the batch's distinct characters) and of its pinyin
net (every syllable of the vocab, as each step runs it), the pinyin net both as `PinyinCNN` computes it and as the
`nn.Conv1d` it stands for (the reference, with the same weights), interleaved in one process on one thread.

    .venv/bin/python benchmarks/fusion_embedding.py --model runs/compare/tiny/fusion/pretrain/export \
        --data data/demo/tasks/idiom_pair
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from launch import task_arguments, task_inputs

from zhbert.finetune.features import collate
from zhbert.model.model import ZhBertModel


def ms(fn: Callable[[], torch.Tensor], repeats: int) -> float:
    """Milliseconds for one forward and backward of ``fn``'s output."""
    t = time.perf_counter()
    for _ in range(repeats):
        fn().square().mean().backward()
    return (time.perf_counter() - t) / repeats * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    task_arguments(ap, "idiom_pair", "a fusion export folder")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    _, export, _, train = task_inputs(args.model, args.task, args.data)
    emb = ZhBertModel.from_pretrained(args.model).bert.embeddings
    batch = collate(train[:32], export.vocab.pad_id)
    chars = torch.unique(batch["input_ids"])
    pinyin, letters = emb.pinyin_net, emb.pinyin_letters

    def conv1d() -> torch.Tensor:
        x = pinyin.letters(letters).transpose(1, 2)
        return F.conv1d(x, pinyin.conv.weight, pinyin.conv.bias).amax(2)

    parts = {
        "fusion embedding, whole batch": lambda: emb(batch["input_ids"], batch["token_type_ids"], batch["pinyin_ids"]),
        f"glyph net, {len(chars)} distinct chars": lambda: emb._glyph_net(emb.glyphs[chars]),
        f"pinyin net, {len(letters):,} syllables, reference nn.Conv1d": conv1d,
        f"pinyin net, {len(letters):,} syllables, PinyinCNN (gathered)": lambda: pinyin(letters),
    }
    times: dict[str, list[float]] = {name: [] for name in parts}
    for _ in range(args.rounds):
        for name, fn in parts.items():
            times[name].append(ms(fn, args.repeats))
    print(f"{args.task}, first batch of 32 ({batch['input_ids'].numel():,} tokens), {export.model.embedding} model "
          f"{args.model}; forward + backward, median of {args.rounds} rounds of {args.repeats}, 1 thread")
    median = {name: statistics.median(t) for name, t in times.items()}
    reference = median[next(n for n in parts if "reference" in n)]
    for name, m in median.items():
        ratio = f"  ({reference / m:.2f}x the reference)" if "pinyin" in name else ""
        print(f"  {name:<58} {m:6.2f} ms{ratio}")


if __name__ == "__main__":
    main()
