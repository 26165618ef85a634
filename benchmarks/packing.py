"""Real tokens/s of pretraining with and without packing, side by side: the same config launched as the demo
launches it (two ranks through the `deepspeed` launcher), once with each row padded alone (`data.pack = false`,
the reference), once packed with attention across the rows, once packed with a block-diagonal mask per row.
Needs the demo data (`make demo`).

    python benchmarks/packing.py                                       # tiny-char, 60 steps
    python benchmarks/packing.py --config configs/pretrain/tiny-fusion.toml --steps 40

"Real tokens" are the tokens of the rows (padding never counts), so the ratio is what packing buys in text read
per second; "real" is the share of computed positions that hold real tokens over the run.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from launch import ROOT, demo_data, launch_pretrain

SETTINGS = {"unpacked (reference)": {"data.pack": False},
            "packed, attention across rows": {"data.pack": True, "data.pack_attention": "across"},
            "packed, attention within each row": {"data.pack": True, "data.pack_attention": "within"}}


def run(config: Path, settings: dict, out: Path, args: argparse.Namespace) -> dict:
    overrides = {"output": str(out), "steps": args.steps, "log_every": 10, "eval_every": args.steps,
                 "save_every": args.steps, "tensorboard": False, "data.eval_sequences": 32}
    return launch_pretrain(config, overrides | demo_data(args.data) | settings, port=29650)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", type=Path, default=ROOT / "configs/pretrain/tiny-char.toml")
    p.add_argument("--data", default="data/demo", help="the work folder `make demo` fills")
    p.add_argument("--steps", type=int, default=60)
    args = p.parse_args()
    print(f"{args.config.name}: 2 ranks through the deepspeed launcher, {args.steps} steps each\n")
    print(f"{'':<36} {'real':>6} {'real tokens/s':>14} {'vs reference':>13} {'s/step':>7}")
    reference = None
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, settings) in enumerate(SETTINGS.items()):
            t = run(args.config, settings, Path(tmp) / str(i), args)
            reference = reference or t["tokens_per_s"]
            print(f"{name:<36} {t['real_token_fraction']:>6.1%} {t['tokens_per_s']:>14,.0f} "
                  f"{t['tokens_per_s'] / reference:>12.2f}× {t['train_seconds'] / t['steps']:>7.3f}", flush=True)


if __name__ == "__main__":
    main()
