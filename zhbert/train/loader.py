"""Training batches off the training thread: rows read and collated in background worker processes, a few
micro-batches ahead, while the accelerator runs the step.

Item i of `StepBatches` is the micro-batch of the i-th (step, micro) from the start step, a pure function of i
(`PretrainData.rows` and the collator's masks are functions of the step, rank and micro-batch), so it does not
matter which worker makes it; the DataLoader hands the items back in order, and a run resumed at step k reads
exactly the batches an unbroken run reads after k. Workers are forked: they share the pack plan, the epoch
orders and the memory-mapped shards with the training process instead of rebuilding them. A worker sends each
batch as one `PackedBatch` (bytes through the pipe): handing over its tensors one by one through shared memory
took ~0.5 ms a tensor here, more than collating the batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from zhbert.model import masked_positions
from zhbert.train.data import PretrainData
from zhbert.train.masking import MaskingCollator


def step_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A collator batch as a step takes it: with ``mlm_positions``, found while the labels are still on the CPU so
    that the model never waits for the device to learn how many tokens are masked; without ``masked``, which the
    labels tell as well."""
    return {k: v for k, v in batch.items() if k != "masked"} | {"mlm_positions": masked_positions(batch["labels"])}


class PackedBatch:
    """A batch as one byte buffer and its layout, so a worker sends it in one piece. ``tensors()`` gives it back as
    views of that buffer (``pin=True``: of one pinned copy); the DataLoader's pin thread calls ``pin_memory()``."""

    ALIGN = 8  # each tensor starts at a multiple of the largest item size, so a byte view can become it

    def __init__(self, batch: dict[str, torch.Tensor]) -> None:
        parts, self.layout = [], []
        for key, t in batch.items():
            raw = t.contiguous().numpy().reshape(-1).view(np.uint8)
            parts += [raw, bytes(-len(raw) % self.ALIGN)]
            self.layout.append((key, t.dtype, tuple(t.shape), len(raw)))
        self.buffer = bytearray().join(parts)

    def tensors(self, pin: bool = False) -> dict[str, torch.Tensor]:
        raw = torch.frombuffer(self.buffer, dtype=torch.uint8)
        raw = raw.pin_memory() if pin else raw
        out, at = {}, 0
        for key, dtype, shape, size in self.layout:
            out[key] = raw[at:at + size].view(dtype).reshape(shape)
            at += size + -size % self.ALIGN
        return out

    def pin_memory(self) -> dict[str, torch.Tensor]:
        return self.tensors(pin=True)


class StepBatches(Dataset):
    """The micro-batches of steps [start, steps) in training order: item i is micro-batch i % accumulation of step
    start + i // accumulation, as this rank's `step_inputs` (``packed``: as a `PackedBatch`, for a worker)."""

    def __init__(self, data: PretrainData, collator: MaskingCollator, start: int, steps: int,
                 accumulation: int, packed: bool) -> None:
        self.data, self.collator = data, collator
        self.start, self.steps, self.accumulation, self.packed = start, steps, accumulation, packed

    def __len__(self) -> int:
        return (self.steps - self.start) * self.accumulation

    def __getitem__(self, i: int) -> dict[str, torch.Tensor] | PackedBatch:
        step, micro = divmod(self.start * self.accumulation + i, self.accumulation)
        batch = step_inputs(self.collator(self.data.rows(step, micro), step, self.data.rank, micro))
        return PackedBatch(batch) if self.packed else batch


def train_batches(data: PretrainData, collator: MaskingCollator, start: int, steps: int, accumulation: int,
                  device: torch.device | str) -> Iterator[dict[str, torch.Tensor]]:
    """The micro-batches of steps [start, steps), in order, made by ``data.cfg.data.workers`` forked processes
    ``prefetch`` batches ahead each (0 workers: on this thread, when asked for). Pinned for a CUDA ``device``.
    Close the generator (``contextlib.closing``) to stop the workers at once, on an error as at the end."""
    cfg = data.cfg.data
    items = StepBatches(data, collator, start, steps, accumulation, packed=cfg.workers > 0)
    # a generator of its own: the loader draws its workers' base seed when iterated, which happens inside the first
    # step of the loop, after that step's dropout seed is set; from the global generator, the draw would shift the
    # dropout of whichever step a run starts at, so a resumed run would not repeat an unbroken one
    batches = iter(DataLoader(items, batch_size=None, collate_fn=_as_is, num_workers=cfg.workers,
                              prefetch_factor=cfg.prefetch if cfg.workers else None,
                              multiprocessing_context="fork" if cfg.workers else None,
                              pin_memory=torch.device(device).type == "cuda",
                              generator=torch.Generator().manual_seed(0)))
    try:
        for item in batches:
            yield item.tensors() if isinstance(item, PackedBatch) else item
    finally:
        del batches  # the last reference: the workers are joined now, not whenever this frame is collected


def _as_is(item: dict[str, torch.Tensor] | PackedBatch) -> dict[str, torch.Tensor] | PackedBatch:
    """The DataLoader's collate step for items that are whole batches already (the default would rebuild them)."""
    return item
