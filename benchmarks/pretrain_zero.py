"""Per-rank memory (parameters + optimizer state) and tokens/s by ZeRO stage, two ranks through the `deepspeed`
launcher, the first stage listed as the reference each row is divided by. Needs the demo data (`make demo`).

    python benchmarks/pretrain_zero.py                                  # tiny fusion model, CPU
    python benchmarks/pretrain_zero.py --config configs/pretrain/base-fusion.toml --steps 3 --micro-batch 2 \
        --stages 1,2,3                                                  # bf16 needs ZeRO >= 1

Memory is counted from the tensors each rank holds after training (zhbert.train.engine.state_bytes), so it
is exact and machine-independent; tokens/s on a 2-core CPU says nothing about GPUs.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from launch import ROOT, demo_data, launch_pretrain


def run(config: Path, stage: int, out: Path, args: argparse.Namespace) -> dict:
    overrides = {"output": str(out), "steps": args.steps, "micro_batch": args.micro_batch,
                 "batch_size": args.micro_batch * 2, "log_every": 1, "eval_every": args.steps,
                 "save_every": args.steps, "engine.zero_stage": stage, "tensorboard": False,
                 "data.eval_sequences": args.micro_batch * 2}
    return launch_pretrain(config, overrides | demo_data(args.data), port=29600 + stage)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", type=Path, default=ROOT / "configs/pretrain/tiny-fusion.toml")
    p.add_argument("--data", default="data/demo", help="the work folder `make demo` fills")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--micro-batch", type=int, default=16)
    p.add_argument("--stages", default="0,1,2,3", help="the first one is the reference")
    args = p.parse_args()
    mib = 2**20
    print(f"{args.config.name}: 2 ranks, micro-batch {args.micro_batch}, {args.steps} steps\n")
    print(f"{'stage':>5} {'params MiB':>11} {'Adam moments':>13} {'fp32 master':>12} {'total/rank':>11} "
          f"{'vs first':>10} {'tokens/s':>9} {'vs first':>10}")
    reference = None
    with tempfile.TemporaryDirectory() as tmp:
        for stage in map(int, args.stages.split(",")):
            t = run(args.config, stage, Path(tmp) / f"zero{stage}", args)
            m = t["memory_per_rank"][0]
            total = m["parameters"] + m["optimizer_moments"] + m["optimizer_master_weights"]
            reference = reference or (total, t["tokens_per_s"])
            print(f"{stage:>5} {m['parameters'] / mib:>11.1f} {m['optimizer_moments'] / mib:>13.1f} "
                  f"{m['optimizer_master_weights'] / mib:>12.1f} {total / mib:>11.1f} {total / reference[0]:>9.2f}× "
                  f"{t['tokens_per_s']:>9,.0f} {t['tokens_per_s'] / reference[1]:>9.2f}×", flush=True)
    print(f"\nparameters: {t['parameters']:,}; ranks agree: {t['rank_fingerprints'][0] == t['rank_fingerprints'][1]}")


if __name__ == "__main__":
    main()
