"""What the pretraining benchmarks share: overrides that point a config at the demo data, and a run of `zhbert
pretrain` under the `deepspeed` launcher with two ranks, as `zhbert compare` starts it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from zhbert.config import override

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
