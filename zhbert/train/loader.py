"""Training batches off the training thread: rows read and collated in background worker processes, a few
micro-batches ahead, while the accelerator runs the step.

Item i of `StepBatches` is the micro-batch of the i-th (step, micro) from the start step, a pure function of i
(`PretrainData.rows` and the collator's masks are functions of the step, rank and micro-batch), so it does not
matter which worker makes it; the DataLoader hands the items back in order, and a run resumed at step k reads
exactly the batches an unbroken run reads after k. Workers are forked: they share the pack plan, the epoch
orders and the memory-mapped shards with the training process instead of rebuilding them.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from zhbert.data.masking import MaskingCollator
from zhbert.model import masked_positions
from zhbert.train.data import PretrainData


def step_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A collator batch as a step takes it: with ``mlm_positions``, found while the labels are still on the CPU so
    that the model never waits for the device to learn how many tokens are masked; without ``masked``, which the
    labels tell as well."""
    return {k: v for k, v in batch.items() if k != "masked"} | {"mlm_positions": masked_positions(batch["labels"])}


class StepBatches(Dataset):
    """The micro-batches of steps [start, steps) in training order: item i is micro-batch i % accumulation of step
    start + i // accumulation, as this rank's `step_inputs`."""

    def __init__(self, data: PretrainData, collator: MaskingCollator, start: int, steps: int,
                 accumulation: int) -> None:
        self.data, self.collator = data, collator
        self.start, self.steps, self.accumulation = start, steps, accumulation

    def __len__(self) -> int:
        return (self.steps - self.start) * self.accumulation

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        step, micro = divmod(self.start * self.accumulation + i, self.accumulation)
        return step_inputs(self.collator(self.data.rows(step, micro), step, self.data.rank, micro))


def train_batches(data: PretrainData, collator: MaskingCollator, start: int, steps: int, accumulation: int,
                  device: torch.device | str) -> Iterator[dict[str, torch.Tensor]]:
    """The micro-batches of steps [start, steps), in order, made by ``data.cfg.data.workers`` forked processes
    ``prefetch`` batches ahead each (0 workers: on this thread, when asked for). Pinned for a CUDA ``device``.
    Close the generator (``contextlib.closing``) to stop the workers at once, on an error as at the end."""
    cfg = data.cfg.data
    batches = iter(DataLoader(StepBatches(data, collator, start, steps, accumulation), batch_size=None,
                              num_workers=cfg.workers, prefetch_factor=cfg.prefetch if cfg.workers else None,
                              multiprocessing_context="fork" if cfg.workers else None,
                              pin_memory=torch.device(device).type == "cuda"))
    try:
        yield from batches
    finally:
        del batches  # the last reference: the workers are joined now, not whenever this frame is collected
