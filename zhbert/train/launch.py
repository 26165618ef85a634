"""Starting pretraining as a user would: the command line for one process or the deepspeed launcher, a free
port for a group of one or for the launcher, and the accelerator DeepSpeed must use where there is no CUDA.
Nothing here imports deepspeed, so a driver (``zhbert compare``) can launch runs without loading it."""

from __future__ import annotations

import socket
import sys
from collections.abc import MutableMapping
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_accelerator(env: MutableMapping[str, str]) -> None:
    """DeepSpeed's accelerator on a machine without CUDA: its CPU one (gloo), unless ``env`` names another."""
    import torch

    if not torch.cuda.is_available():
        env.setdefault("DS_ACCELERATOR", "cpu")


def pretrain_command(config: Path, ranks: int, resume: bool) -> list[str]:
    """`zhbert pretrain --config` in one process, or under the deepspeed launcher with ``ranks`` processes."""
    cmd = [sys.executable, "-m", "zhbert", "pretrain", "--config", str(config)]
    if ranks > 1:
        cmd = [str(Path(sys.executable).parent / "deepspeed"), "--num_gpus", str(ranks), "--master_port",
               str(free_port()), "--module", "zhbert", "pretrain", "--config", str(config)]
    return cmd + (["--resume"] if resume else [])
