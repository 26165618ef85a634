"""DeepSpeed, and only here: the process group, the ds_config derived from PretrainConfig, the engine,
checkpoints and their consolidation. No other zhbert module imports deepspeed (a test checks), so the
model stays single-device and the loop reads as plain PyTorch (docs/architecture.md: parallelism from outside).

On a machine without CUDA this selects DeepSpeed's CPU accelerator (gloo), so the same command runs on
a laptop, under ``deepspeed --num_gpus 2`` on a CPU box, and on GPU nodes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import torch

from zhbert.train.launch import default_accelerator, free_port

default_accelerator(os.environ)

import deepspeed  # noqa: E402  (after the accelerator choice above)
from deepspeed import comm as dist  # noqa: E402
from deepspeed.accelerator import get_accelerator  # noqa: E402

from zhbert.config import ConfigError, merge  # noqa: E402
from zhbert.files import write_text  # noqa: E402
from zhbert.layout import LATEST  # noqa: E402
from zhbert.train.config import PretrainConfig  # noqa: E402
from zhbert.train.optim import adamw  # noqa: E402

# DeepSpeed 0.19 still calls these torch.distributed names, which warn on every call
warnings.filterwarnings("ignore", message=r".*(all_gather_into_tensor|reduce_scatter_tensor)` is deprecated")


# ds_config keys derived from the training config, and the config key a disagreement is reported against
DERIVED_FROM = {
    "train_batch_size": "batch_size",
    "train_micro_batch_size_per_gpu": "micro_batch",
    "gradient_accumulation_steps": "batch_size / (micro_batch × ranks)",
    "gradient_clipping": "optim.clip",
    "zero_optimization.stage": "engine.zero_stage",
    "zero_optimization.offload_optimizer.device": "engine.offload_optimizer",
    "zero_optimization.offload_param.device": "engine.offload_params",
    "bf16.enabled": "engine.precision",
    "fp16.enabled": "engine.precision (fp16 is not offered)",
    "optimizer": "[optim] (zhbert builds AdamW itself)",
    "scheduler": "[optim] warmup_steps / schedule",
}


def init_distributed() -> tuple[int, int]:
    """Join the group set up by a launcher (deepspeed, torchrun: RANK/WORLD_SIZE in the environment), or
    make a group of one for a plain ``zhbert pretrain``. Returns (rank, world_size)."""
    if "RANK" not in os.environ:
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(free_port()))
    deepspeed.init_distributed(auto_mpi_discovery=False, verbose=False)
    dist.barrier()  # every rank has mapped every rank's CPU allreduce buffer: the names can go
    release_shm_buffer()
    return dist.get_rank(), dist.get_world_size()


def build_ds_config(cfg: PretrainConfig, world_size: int) -> dict[str, Any]:
    """The ds_config for ``cfg``: batch sizes, ZeRO stage and offload, precision, clipping. The optimizer and
    the LR schedule are zhbert's own (torch AdamW compiles nothing, unlike DeepSpeed's FusedAdam)."""
    e = cfg.engine
    zero: dict[str, Any] = {"stage": e.zero_stage}
    if e.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu"}
    if e.offload_params:
        zero["offload_param"] = {"device": "cpu"}
    built = {
        "train_batch_size": cfg.batch_size,
        "train_micro_batch_size_per_gpu": cfg.micro_batch,
        "gradient_accumulation_steps": cfg.accumulation(world_size),
        "gradient_clipping": cfg.optim.clip,
        "zero_optimization": zero,
        "bf16": {"enabled": e.precision == "bf16"},
        "zero_allow_untested_optimizer": True,  # the client torch.optim.AdamW under ZeRO
        "zero_force_ds_cpu_optimizer": False,  # and under optimizer offload (no DeepSpeedCPUAdam build)
        "steps_per_print": 2**31 - 1,  # zhbert logs its own metrics
    }
    return merge_user_ds_config(built, e.ds_config) if e.ds_config else built


def merge_user_ds_config(built: dict[str, Any], path: str) -> dict[str, Any]:
    """The user's ds_config.json over the derived one. A key both set differently, or a key zhbert derives
    that only the user sets (an optimizer, a scheduler, fp16), is an error naming both sides."""
    try:
        user = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"engine.ds_config: {path} not found") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"engine.ds_config: {path} is not JSON: {e}") from None
    mine, theirs = _flatten(built), _flatten(user)
    problems = []
    for key, value in theirs.items():
        owner = next((v for k, v in DERIVED_FROM.items() if key == k or key.startswith(k + ".")), None)
        if key in mine and mine[key] != value:
            problems.append(f"{key} = {value!r} in {path} but {mine[key]!r} from the training config ({owner or key})")
        elif key not in mine and owner is not None and value not in (False, None, "none"):
            problems.append(f"{key} = {value!r} in {path}, but zhbert derives it from {owner}")
    if problems:
        raise ConfigError("ds_config disagrees with the training config (set these in the TOML instead):\n  "
                          + "\n  ".join(problems))
    return merge(user, built)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v})
    return out


def initialize(model: torch.nn.Module, cfg: PretrainConfig, ds_config: dict[str, Any],
               lr_lambda: Callable[[int], float]) -> Any:
    """The DeepSpeed engine around ``model``, with torch AdamW (no decay on biases and LayerNorms) and a
    LambdaLR schedule, both saved in and restored from DeepSpeed's checkpoints; compiled if ``engine.compile``."""
    o = cfg.optim
    optimizer = adamw(model.parameters(), o.lr, o.weight_decay, o.betas, o.eps)
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=ds_config,
                                      lr_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda))
    if cfg.engine.compile:
        compile_parts(engine.module)
    return engine


def compile_parts(model: torch.nn.Module) -> None:
    """``torch.compile`` the trunk and each head in place (``nn.Module.compile``: parameter names unchanged, so
    checkpoints and exports are the same), with ``fullgraph=True`` so a graph break is an error. Not the top
    module, as ``engine.compile()`` does: DeepSpeed's forward hooks on it (a throughput timer calling
    ``time.time``) break the graph."""
    for part in model.children():
        part.compile(fullgraph=True)


def collective_device(backend: str, device: torch.device) -> torch.device:
    """Where a collective's tensors must live: gloo reduces CPU tensors, NCCL (and the other accelerator backends)
    tensors on the rank's ``device``; a tensor on the wrong side is an error, not a slow path."""
    return torch.device("cpu") if backend == "gloo" else device


def all_reduce_sum(values: torch.Tensor) -> list[float]:
    """Sum a vector of numbers over ranks (float64, so counts stay exact), on the side the backend reduces on; the
    one transfer to the host comes last, so the caller syncs once for the whole vector."""
    device = collective_device(torch.distributed.get_backend(), torch.device(get_accelerator().current_device_name()))
    t = values.to(device, torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def all_gather_object(obj: Any) -> list[Any]:
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def lead_only(fn: Callable[[], None]) -> None:
    """Run ``fn`` on rank 0 alone and let every rank learn how it went: if it raised, every rank raises (rank 0 its
    own error, the others one quoting it) instead of waiting in a later collective for a rank that has given up.
    The gather also holds every rank until rank 0 is done."""
    error: Exception | None = None
    if dist.get_rank() == 0:
        try:
            fn()
        except Exception as e:
            error = e
    failed = all_gather_object(None if error is None else f"{type(error).__name__}: {error}")[0]
    if error is not None:
        raise error
    if failed is not None:
        raise RuntimeError(f"rank 0 failed: {failed}")


def barrier() -> None:
    """Also the last collective of a run: it holds no tensors, whereas a process that exits right after a gather
    can abort (SIGABRT, "terminate called without an active exception") when gloo's worker threads release that
    gather's tensors during interpreter shutdown (pytorch/pytorch#190489); here it did in about 1 run in 15 that
    ended with a gather, even after destroy_process_group. Ending with this barrier made it rarer, not impossible
    (CI hit it once), hence ``end_rank``."""
    dist.barrier()


def release_shm_buffer() -> None:
    """Unlink this rank's DeepSpeed CPU allreduce buffer once every rank has mapped it. DeepSpeed's shm allreduce
    (csrc/cpu/comm/shm.cpp, 0.19) creates ``/dev/shm/deepspeed_allreduce_buffer_<uid>_<addr>_<port>_<rank>`` (66 MB)
    for every rank while the group starts and never unlinks it, so each CPU run left 66 MB of RAM per rank in
    /dev/shm for good (20 GB on this box after a day of tests), killed and failed runs too. Every rank maps every
    buffer before ``init_distributed`` returns, and a mapping outlives its name, so the names go right after the
    start (``init_distributed``). Nothing to do where the file does not exist (CUDA, or another accelerator)."""
    name = (f"deepspeed_allreduce_buffer_{os.getuid()}_{os.environ.get('MASTER_ADDR')}_{os.environ.get('MASTER_PORT')}"
            f"_{dist.get_rank()}")
    Path("/dev/shm", name).unlink(missing_ok=True)


def end_rank() -> NoReturn:
    """End a pretraining process whose run is complete (every file closed, the last barrier passed; one rank of a
    launch or a single process) without interpreter shutdown, the only step left that can still abort it (see
    ``barrier``): flush what Python buffers, then ``os._exit(0)``."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def save_checkpoint(engine: Any, folder: Path, step: int, client_state: dict[str, Any], keep: int) -> None:
    """Save ``step`` as tag ``step-NNNNNNN`` and only then point ``latest`` at it (written atomically by rank 0
    after every rank has finished), so a crash while saving leaves the last good checkpoint in charge.
    Older checkpoints beyond ``keep`` are deleted afterwards."""
    tag = f"step-{step:07d}"
    engine.save_checkpoint(str(folder), tag=tag, client_state=client_state, save_latest=False)  # ends in a barrier
    if dist.get_rank() == 0:
        write_text(folder / LATEST, tag)
        tags = sorted(p.name for p in folder.glob("step-*") if p.is_dir())
        for old in tags[: max(0, tags.index(tag) + 1 - keep)]:
            shutil.rmtree(folder / old, ignore_errors=True)
    dist.barrier()


def latest_tag(folder: Path) -> str | None:
    path = folder / LATEST
    return path.read_text().strip() if path.exists() else None


def load_checkpoint(engine: Any, folder: Path) -> dict[str, Any] | None:
    """Restore the newest complete checkpoint into ``engine``; its client state, or None if there is none."""
    tag = latest_tag(folder)
    if tag is None:
        return None
    path, client_state = engine.load_checkpoint(str(folder), tag=tag)
    if path is None:
        raise RuntimeError(f"{folder / tag}: DeepSpeed could not load this checkpoint")
    return client_state


def full_state_dict(engine: Any, folder: Path) -> dict[str, torch.Tensor] | None:
    """The fp32 weights and buffers of the whole model, on rank 0 (None elsewhere): from the ZeRO shards of
    the latest checkpoint (DeepSpeed's zero_to_fp32: the fp32 master weights, whatever the stage and
    precision), or from the module itself when neither ZeRO nor bf16 keeps a separate master copy."""
    if dist.get_rank() != 0:
        return None
    if engine.zero_optimization_stage() == 0 and not engine.bfloat16_enabled():
        return {k: v.detach().cpu().clone() for k, v in engine.module.state_dict().items()}
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    return dict(get_fp32_state_dict_from_zero_checkpoint(str(folder), tag=latest_tag(folder)))


def fingerprint(engine: Any) -> list[float]:
    """Sum and sum of squares of every parameter of the whole model (gathered under ZeRO-3), in float64:
    equal on every rank exactly when the ranks hold the same model."""
    total, squares = 0.0, 0.0
    for p in engine.module.parameters():
        with deepspeed.zero.GatheredParameters([p], enabled=hasattr(p, "ds_id")):
            x = p.detach().double()
            total += x.sum().item()
            squares += x.pow(2).sum().item()
    return [total, squares]


def state_bytes(engine: Any) -> dict[str, int]:
    """Bytes this rank holds for model parameters (its ZeRO-3 partition, or all of them) and for the optimizer:
    Adam moments, and the fp32 master copy where ZeRO or bf16 keeps one apart from the parameters (ZeRO-3 in
    fp32 updates the parameter partitions in place). Counted from the tensors themselves."""
    tensors = [getattr(p, "ds_tensor", p) for p in engine.module.parameters()]
    params = sum(t.numel() * t.element_size() for t in tensors)
    opt = engine.optimizer
    inner = getattr(opt, "optimizer", opt)  # ZeRO / bf16 wrappers hold a torch optimizer over their partitions
    moments = sum(t.numel() * t.element_size() for s in inner.state.values() for t in s.values()
                  if torch.is_tensor(t) and t.ndim > 0)
    masters = next((getattr(opt, name) for name in ("single_partition_of_fp32_groups",  # ZeRO-1/2
                                                    "fp32_partitioned_groups_flat",  # ZeRO-3
                                                    "fp32_groups_flat_partition")  # bf16 without ZeRO
                    if getattr(opt, name, None)), [])
    shared = {t.untyped_storage().data_ptr() for t in tensors}
    master = sum(t.numel() * t.element_size() for t in masters if t.untyped_storage().data_ptr() not in shared)
    return {"parameters": params, "optimizer_moments": moments, "optimizer_master_weights": master}
