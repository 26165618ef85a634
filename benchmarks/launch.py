"""What the benchmarks share: for pretraining, overrides that point a config at the demo data, and a run of `zhbert
pretrain` under the `deepspeed` launcher with two ranks, as `zhbert compare` starts it; for fine-tuning, a task's
training inputs from an export, as `zhbert finetune` encodes them."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from zhbert.config import load, override
from zhbert.export import Export, load_export
from zhbert.finetune.features import Feature, TaskEncoder
from zhbert.finetune.run import FinetuneConfig
from zhbert.finetune.tasks import get_task, read_split

ROOT = Path(__file__).parent.parent


def demo_data(work: str | Path) -> dict[str, str]:
    """The override that points a run at the work folder `make demo` fills (a model reads its kind's view)."""
    return {"data.work": str(Path(work))}


def launch_pretrain(config: Path, overrides: dict[str, Any], port: int) -> dict[str, Any]:
    """Pretrain ``config`` with ``overrides`` on two ranks (CPU ranks without CUDA, one thread each on this
    2-core box, as `zhbert compare` launches them); returns the run's training.json, or exits with its log."""
    env = os.environ | {"DS_ACCELERATOR": os.environ.get("DS_ACCELERATOR", "cpu")}
    env.setdefault("TORCH_EXTENSIONS_DIR", str(ROOT / ".venv" / "torch_extensions"))
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // 2)))
    cmd = [str(Path(sys.executable).parent / "deepspeed"), "--num_gpus", "2", "--master_port", str(port),
           "--module", "zhbert", "pretrain", "--config", str(config),
           *(f"--{override(k, v)}" for k, v in overrides.items())]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        sys.exit(done.stdout[-3000:] + done.stderr[-3000:])
    return json.loads((Path(overrides["output"]) / "export" / "training.json").read_text())


def task_arguments(ap: argparse.ArgumentParser, task: str, model: str = "an export folder") -> None:
    """--model, --task and --data: the export and the bundled task a fine-tuning benchmark runs on."""
    ap.add_argument("--model", required=True, help=model)
    ap.add_argument("--task", default=task)
    ap.add_argument("--data", required=True, help="the task's folder")


def task_inputs(model: str | Path, task: str, data: str | Path
                ) -> tuple[FinetuneConfig, Export, TaskEncoder, list[Feature]]:
    """``task``'s settings from configs/finetune/tiny.toml, the export in ``model``, the task's encoder for it and
    its training inputs."""
    cfg = load(FinetuneConfig, ROOT / "configs/finetune/tiny.toml").for_task(task)
    export = load_export(model)
    spec = get_task(task)
    encoder = TaskEncoder(export, spec, cfg.max_len, cfg.stride, cfg.max_query_len)
    return cfg, export, encoder, encoder.encode(read_split(spec, data, "train")).features
