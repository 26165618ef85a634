"""Batches onto the device the model runs on: the one helper pretraining (train and held-out evaluation) and
fine-tuning (train and predict) use, so no loop keeps a CPU-only assumption of its own."""

from __future__ import annotations

import torch


def to_device(batch: dict[str, torch.Tensor], device: torch.device | str) -> dict[str, torch.Tensor]:
    """Every tensor of ``batch`` (collators build them on the CPU) on ``device``. To CUDA through pinned memory
    with ``non_blocking``: the copy is queued behind the previous step's kernels instead of waiting for them to
    finish, which a copy from pageable memory does."""
    device = torch.device(device)
    if device.type != "cuda":
        return {k: v.to(device) for k, v in batch.items()}
    return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}
