"""The one-call GPU check: everything the GPU path must do, in one run of at most 8 minutes on a machine with a
CUDA GPU and no internet; `--cpu` runs the same stages at a tiny size, which is what CI runs (tests/
test_gpu_check.py), so the script cannot rot before a GPU is lent.

    python3 benchmarks/gpu_check.py --wheels .gpucheck/wheels --out "$OUT"     # the GPU machine (docs/benchmarks.md)
    .venv/bin/python benchmarks/gpu_check.py --cpu --out runs/gpu-check          # here: tiny shapes, ~2 minutes

Stages, each one's failure recorded without stopping the others:
  preflight  versions, the device, what is missing (installed from --wheels only when that is given)
  data       vocabularies, glyph table, char- and word-view shards built from the carried corpus slice
  bench      forward + backward of ZhBertForPretraining (char, word, fusion) against transformers'
             BertForMaskedLM (sdpa) of the same shape, bf16, at each sequence length: tokens/s, MFU, peak memory
  pretrain   `zhbert pretrain` under the deepspeed launcher, bf16: char, word and fusion at ZeRO-1 and ZeRO-3
  resume     a run killed (SIGKILL) once it has a checkpoint, resumed; its losses against the uninterrupted run
  finetune   `zhbert finetune` of the char export on the bundled sentiment task, a few steps
  tests      a pytest selection, in the background from the end of `bench` on (CPU-bound, the GPU stays free)

MFU counts model FLOPs per token as `zhbert pretrain` does (zhbert.train.pretrain.train_flops_per_token):
6 × [L·(4H² + 2H·I) + L·2·S·H + 0.15·(H·E + E·V)] — the trunk's matmuls, attention scores and values over the
sequence length S, the tied decoder at the 15 % masked tokens — and the same count for BertForMaskedLM of the
same shape (which runs its decoder at every token, so its hardware FLOPs are higher), over --peak-tflops (H100 /
H200 SXM dense bf16: 989); MFU against a bf16 matmul timed in the same run is given too. Peak memory is
torch.cuda.max_memory_allocated over a model's steps (weights, gradients, activations; no optimizer state).
Prints a summary table last and writes gpu_check.json and gpu_check.log under --out.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import util
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the GPU machine runs the checkout as it is: zhbert is not installed there

NEEDED = {"torch": "torch", "deepspeed": "deepspeed", "transformers": "transformers", "datasets": "datasets",
          "rjieba": "rjieba", "pypinyin": "pypinyin", "opencc": "opencc", "tokenizers": "tokenizers",
          "safetensors": "safetensors", "PIL": "pillow", "fontTools": "fonttools", "pyarrow": "pyarrow",
          "numpy": "numpy", "tqdm": "tqdm", "pydantic": "pydantic", "hjson": "hjson", "pytest": "pytest"}
"""Module → distribution: what zhbert, DeepSpeed and the tests import."""
SKIPPABLE = {"bench", "resume", "finetune", "runs", "tests"}
CUDA_RESUME_TOLERANCE = 0.02
"""Largest relative loss difference after a resume on CUDA that passes (bf16, nondeterministic kernels)."""
BENCH_VOCAB, BENCH_WORDS = 21128, 30000  # the bench models' tables: BERT's char vocab, and 30,000 words after it
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}
"""Dense bf16 datasheet peaks (SXM parts), matched against the device name."""


@dataclass(frozen=True)
class Size:
    """What the GPU run and the tiny CPU run set differently; the stages are the same code."""

    models: str  # configs/{pretrain,model}/<models>-<kind>.toml
    runs: tuple[tuple[str, int], ...]  # (kind, ZeRO stage) of each pretraining run; the first, ("char", 1), is
    # the uninterrupted reference of `resume` and the export `finetune` starts from, so those two run right after it
    steps: int
    save_every: int  # the killed run's checkpoints
    micro_batch: int
    eval_sequences: int
    max_len: int
    bench_seqs: tuple[int, ...]
    bench_tokens: int  # batch × seq of a benchmark step
    bench_steps: int
    bench_warmup: int
    matmul: int  # side of the square bf16 matmul timed as the measured ceiling
    finetune: tuple[str, ...]  # config and overrides of `zhbert finetune`
    pytest: tuple[str, ...]
    budget_s: float


GPU = Size(models="base", runs=(("char", 1), ("fusion", 3), ("word", 1), ("fusion", 1)), steps=30, save_every=10,
           micro_batch=64, eval_sequences=256, max_len=128, bench_seqs=(128, 512), bench_tokens=16384,
           bench_steps=10, bench_warmup=3, matmul=8192,
           finetune=("configs/finetune/clue.toml", "--epochs=1", "--max_train=1024", "--max_len=128"),
           pytest=("tests/test_model.py", "tests/test_pretrain.py"), budget_s=450)
CPU = Size(models="tiny", runs=(("char", 1), ("word", 1), ("fusion", 3)), steps=12, save_every=4, micro_batch=16,
           eval_sequences=32, max_len=64, bench_seqs=(32, 64), bench_tokens=256, bench_steps=2, bench_warmup=1,
           matmul=256, finetune=("configs/finetune/tiny.toml", "--epochs=1", "--max_train=64", "--max_len=64"),
           pytest=("tests/test_model.py::test_shapes",), budget_s=600)


class Clock:
    """The run's time budget, counted from its start: each stage gets what is left, so the check ends in time."""

    def __init__(self, start: float, budget_s: float):
        self.end = start + budget_s

    def left(self) -> float:
        return self.end - time.monotonic()


class Log:
    """Everything the subprocesses print goes to gpu_check.log; stdout gets one line per stage and the table."""

    def __init__(self, out: Path):
        out.mkdir(parents=True, exist_ok=True)
        self.file = open(out / "gpu_check.log", "w", encoding="utf-8")

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.write(text + "\n")

    def write(self, text: str) -> None:
        self.file.write(text)
        self.file.flush()


# ── running things ───────────────────────────────────────────────────────────────────────────────────────────

def child_env(cpu: bool) -> dict[str, str]:
    """The environment of every subprocess: this checkout first on the path; on a CPU, DeepSpeed's CPU accelerator
    and one thread a rank (exact resume needs the same thread count)."""
    env = os.environ | {"PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
                        "PYTHONUNBUFFERED": "1"}
    if cpu:
        env |= {"DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}
        env.setdefault("TORCH_EXTENSIONS_DIR", str(ROOT / ".venv" / "torch_extensions"))
    return env


class Job:
    """A command in its own process group (a timeout or a kill ends all of it), its output in a file rather than a
    pipe, so a chatty process never blocks on a full pipe while nobody reads it."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Log):
        log.write(f"\n$ {shlex.join(cmd)}\n")
        self.log, self.output = log, tempfile.TemporaryFile("w+", encoding="utf-8")
        self.proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=self.output, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def kill(self) -> str:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # the whole group had already ended
            pass
        self.proc.wait()
        return self.text()

    def text(self) -> str:
        self.output.seek(0)
        out = self.output.read()
        self.log.write(out)
        return out

    def finish(self, timeout: float) -> str:
        """Wait (killing it past ``timeout``); its output, logged. Raises unless it exited 0."""
        timeout = max(timeout, 1)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"stopped after {timeout:.0f} s: {tail(self.kill())}") from None
        out = self.text()
        if self.proc.returncode:
            raise RuntimeError(f"exit code {self.proc.returncode}: {tail(out)}")
        return out


def run(cmd: list[str], env: dict[str, str], log: Log, timeout: float) -> str:
    return Job(cmd, env, log).finish(timeout)


def tail(text: str, lines: int = 6) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ── preflight ────────────────────────────────────────────────────────────────────────────────────────────────

def installed(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def missing_modules() -> list[str]:
    return [module for module in NEEDED if util.find_spec(module) is None]


def install_wheels(folder: Path, log: Log) -> list[str]:
    """pip-install (offline, no dependencies) each wheel in ``folder`` whose package is absent or older here; the
    names installed. Into this interpreter's environment, so the `deepspeed` launcher lands beside it."""
    from packaging.version import Version

    wanted = []
    for wheel in sorted(folder.glob("*.whl")):
        name, wheel_version = wheel.name.split("-")[:2]
        have = installed(name)
        if have is None or Version(have) < Version(wheel_version):
            wanted.append(wheel)
    if wanted:
        run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--no-cache-dir",
             "--disable-pip-version-check", "-q", *map(str, wanted)], os.environ.copy(), log, 300)
    importlib.invalidate_caches()
    return [w.name for w in wanted]


def preflight(args: argparse.Namespace, log: Log) -> dict[str, Any]:
    result: dict[str, Any] = {"python": platform.python_version()}
    if args.wheels:
        result["installed_from_wheels"] = install_wheels(args.wheels, log)
    missing = missing_modules()
    result["versions"] = {dist: installed(dist) for dist in NEEDED.values()}
    if missing:
        result["missing"] = missing
        raise RuntimeError(f"missing {', '.join(missing)}: build the wheels with `make gpu-bundle`, carry .gpucheck "
                           "and pass --wheels .gpucheck/wheels (docs/benchmarks.md, 'GPU check')")
    import torch

    result["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    result["gpus"] = torch.cuda.device_count()
    result["cuda"] = torch.version.cuda
    return result


# ── data ─────────────────────────────────────────────────────────────────────────────────────────────────────

def build_data(corpus: Path, work: Path, size: Size, env: dict[str, str], log: Log, clock: Clock) -> dict[str, Any]:
    """The demo's data steps on the carried slice (pipelines/prep_corpus.py: vocabs, glyphs, both views)."""
    if not any(corpus.glob("*.jsonl")):
        raise FileNotFoundError(f"no corpus slice in {corpus}: run `make gpu-bundle` and carry .gpucheck")
    run([sys.executable, str(ROOT / "pipelines" / "prep_corpus.py"), str(corpus), "--workdir", str(work),
         f"--pack.max_len={size.max_len}", "--num_proc=1"], env, log, min(300, clock.left()))
    counts = json.loads((work / "shards" / "manifest.json").read_text())["counts"]
    return {"sequences": counts["sequences"], "tokens": counts["tokens"],
            "real_token_share": counts["tokens"] / (counts["sequences"] * size.max_len)}


# ── bench ────────────────────────────────────────────────────────────────────────────────────────────────────

def bench_models(size: Size) -> dict[str, Any]:
    """name → (model, its ModelConfig); the HF reference of each vocab size, built on the CPU once."""
    import torch
    from model_speed import PINYIN_VOCAB, fusion_tables, hf_twin

    from zhbert.config import load
    from zhbert.model import ModelConfig, ZhBertForPretraining

    models: dict[str, Any] = {}
    for kind in ("char", "fusion", "word"):
        cfg = load(ModelConfig, ROOT / "configs" / "model" / f"{size.models}-{kind}.toml").sized(
            BENCH_VOCAB, BENCH_VOCAB + BENCH_WORDS, PINYIN_VOCAB)
        torch.manual_seed(0)
        models[kind] = (ZhBertForPretraining(cfg, **(fusion_tables(cfg) if kind == "fusion" else {})), cfg)
        hf = f"hf-{cfg.token_vocab_size}"
        if hf not in models:
            models[hf] = (hf_twin(cfg), cfg)
    return models


def bench_batch(kind: str, cfg: Any, seq: int, size: Size, device: Any) -> dict[str, Any]:
    """A Zipf-id batch with 15 % masked (benchmarks/model_speed.py), the same for a model and its HF reference."""
    import torch
    from model_speed import mlm_batch, zipf_ids

    gen = torch.Generator().manual_seed(seq)
    vocab = cfg.token_vocab_size
    batch = mlm_batch(zipf_ids((size.bench_tokens // seq, seq), vocab, gen), gen, vocab)
    if kind != "fusion":
        batch.pop("pinyin_ids")
    return {k: v.to(device) for k, v in batch.items()}


def time_model(model: Any, batch: dict[str, Any], size: Size, device: Any) -> tuple[list[float], int]:
    """Seconds of each timed forward + backward step (device synchronised), and the peak bytes allocated."""
    import torch
    from model_speed import train_step

    cuda = device.type == "cuda"
    step = train_step(model, batch)
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(size.bench_warmup + size.bench_steps):
        t = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        if i >= size.bench_warmup:
            times.append(time.perf_counter() - t)
    return times, torch.cuda.max_memory_allocated() if cuda else 0


def matmul_tflops(n: int, device: Any) -> float:
    """The bf16 matrix-product rate measured here: the ceiling MFU is also given against."""
    import torch

    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(3):
        a @ b
    sync()
    t, reps = time.perf_counter(), 10
    for _ in range(reps):
        a @ b
    sync()
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e12


def bench(size: Size, cpu: bool, peak: float | None, log: Log, clock: Clock) -> dict[str, Any]:
    import torch

    from zhbert.train.pretrain import train_flops_per_token

    device = torch.device("cpu" if cpu else "cuda")
    measured = matmul_tflops(size.matmul, device)
    models, rows, errors = bench_models(size), [], []
    for seq, (name, (model, cfg)) in ((seq, m) for seq in size.bench_seqs for m in models.items()):
        if clock.left() < 60:  # the rows so far are kept: on a GPU they are what matters most
            errors.append(f"out of time before {name} at seq {seq}")
            break
        try:
            model.to(device=device, dtype=torch.bfloat16).train()
            kind = "char" if name.startswith("hf") else name
            times, peak_bytes = time_model(model, bench_batch(kind, cfg, seq, size, device), size, device)
        except Exception as e:  # one model failing (out of memory, say) leaves the others' rows
            log.write(traceback.format_exc())
            errors.append(f"{name} at seq {seq}: {type(e).__name__}: {e}")
            continue
        finally:
            model.to("cpu")  # the next model's peak memory is its own
        median, flops = statistics.median(times), train_flops_per_token(cfg, seq, 0.15)
        tokens_per_s = size.bench_tokens / median
        rows.append({"seq": seq, "model": name, "ms_per_step": median * 1e3, "tokens_per_s": tokens_per_s,
                     "flops_per_token": flops, "mfu": tokens_per_s * flops / (peak * 1e12) if peak else None,
                     "mfu_of_measured_matmul": tokens_per_s * flops / (measured * 1e12),
                     "peak_mib": peak_bytes / 2**20, "parameters": sum(p.numel() for p in model.parameters())})
        log.write(f"bench {json.dumps(rows[-1])}\n")
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the pretraining processes that follow get the whole GPU
    return {"ok": not errors, **({"error": "; ".join(errors)} if errors else {}), "device": str(device),
            "dtype": "bf16", "batch_tokens": size.bench_tokens, "steps": size.bench_steps, "matmul_tflops": measured,
            "peak_tflops": peak, "rows": rows, "ratios": bench_ratios(rows, models)}


def bench_ratios(rows: list[dict[str, Any]], models: dict[str, Any]) -> dict[str, float]:
    """Per sequence length: each zhbert kind's tokens/s over its HF reference's, and fusion's step time over char's."""
    by = {(r["seq"], r["model"]): r for r in rows}
    ratios = {}
    for seq in sorted({r["seq"] for r in rows}):
        for kind in ("char", "word", "fusion"):
            hf = f"hf-{models[kind][1].token_vocab_size}"
            if (seq, kind) in by and (seq, hf) in by:
                ratios[f"seq{seq} {kind} / HF tokens/s"] = by[seq, kind]["tokens_per_s"] / by[seq, hf]["tokens_per_s"]
        if (seq, "fusion") in by and (seq, "char") in by:
            ratios[f"seq{seq} fusion / char step time"] = by[seq, "fusion"]["ms_per_step"] / by[seq, "char"][
                "ms_per_step"]
    return ratios


# ── pretrain, resume, finetune ───────────────────────────────────────────────────────────────────────────────

def pretrain_cmd(size: Size, data: Path, out: Path, kind: str, stage: int, ranks: int, save_every: int) -> list[str]:
    """`zhbert pretrain` of the <models>-<kind> config under the deepspeed launcher, pointed at the built data."""
    from zhbert.config import override

    values = {"output": str(out), "data.work": str(data),
              "data.eval_sequences": size.eval_sequences, "steps": size.steps, "micro_batch": size.micro_batch,
              "batch_size": size.micro_batch * ranks, "log_every": 1, "eval_every": size.steps,
              "save_every": save_every, "engine.zero_stage": stage, "engine.precision": "bf16",
              "optim.warmup_steps": max(size.steps // 5, 1), "tensorboard": False}
    return [sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", str(ranks), "--master_port",
            str(free_port()), "--module", "zhbert", "pretrain",
            "--config", str(ROOT / "configs" / "pretrain" / f"{size.models}-{kind}.toml"),
            *(f"--{override(k, v)}" for k, v in values.items())]


def run_summary(out: Path, wall: float, peak: float | None) -> dict[str, Any]:
    from zhbert.train.metrics import read_metrics

    t = json.loads((out / "export" / "training.json").read_text())
    train = read_metrics(out, "train")
    memory = t["memory_per_rank"][0]
    per_gpu = t["tokens_per_s"] / t["world_size"]
    return {"wall_s": wall, "parameters": t["parameters"], "world_size": t["world_size"],
            "tokens_per_s": t["tokens_per_s"], "real_token_fraction": t["real_token_fraction"],
            "flops_per_token": t["flops_per_token"],
            "mfu": per_gpu * t["flops_per_token"] / (peak * 1e12) if peak else None,
            "first_loss": train[0]["loss"], "last_loss": train[-1]["loss"],
            "eval_mlm_loss": t["eval"]["mlm_loss"] if t["eval"] else None,
            "state_mib_per_rank": sum(memory[k] for k in ("parameters", "optimizer_moments",
                                                          "optimizer_master_weights")) / 2**20,
            "ranks_agree": all(f == t["rank_fingerprints"][0] for f in t["rank_fingerprints"])}


def pretrain_run(size: Size, data: Path, work: Path, kind: str, stage: int, args: argparse.Namespace,
                 env: dict[str, str], log: Log, clock: Clock) -> dict[str, Any]:
    out = work / f"{kind}-zero{stage}"
    t = time.perf_counter()
    run(pretrain_cmd(size, data, out, kind, stage, args.ranks, size.steps), env, log, min(240, clock.left()))
    return run_summary(out, time.perf_counter() - t, args.peak_tflops)


def kill_and_resume(size: Size, data: Path, work: Path, kind: str, zero: int, args: argparse.Namespace,
                    env: dict[str, str], log: Log, clock: Clock) -> dict[str, Any]:
    """SIGKILL a run (every process of it) once its first checkpoint is complete, resume it, and compare every later
    step's loss with the uninterrupted run of the same config (the same but for how often it saves)."""
    from zhbert.train.metrics import read_metrics

    out, reference = work / f"{kind}-zero{zero}-killed", work / f"{kind}-zero{zero}"
    cmd = pretrain_cmd(size, data, out, kind, zero, args.ranks, size.save_every)
    job, latest = Job(cmd, env, log), out / "checkpoints" / "latest"
    deadline = time.monotonic() + min(240, clock.left())
    while not latest.exists() and job.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    job.kill()
    if not latest.exists() or (out / "export").exists():
        raise RuntimeError("no checkpoint before the kill, or the run had finished: nothing to resume")
    resumed_from = int(latest.read_text().removeprefix("step-"))
    cmd[cmd.index("--master_port") + 1] = str(free_port())
    run([*cmd, "--resume"], env, log, min(240, clock.left()))
    after = {r["step"]: r["loss"] for r in read_metrics(out, "train")}
    before = {r["step"]: r["loss"] for r in read_metrics(reference, "train")}
    later = [s for s in before if s > resumed_from]
    diffs = [abs(after[s] - before[s]) / abs(before[s]) for s in later]
    exact, worst = all(d == 0 for d in diffs), max(diffs, default=0.0)
    # a CPU run repeats itself bit for bit; CUDA's atomics-based backward kernels need not, so there a relative
    # difference within bf16 noise passes, and the figure says by how much it missed exactness
    return {"ok": bool(later) and (exact or (env.get("DS_ACCELERATOR") != "cpu" and worst <= CUDA_RESUME_TOLERANCE)),
            "killed_after_step": resumed_from, "compared_steps": len(later), "exact": exact, "max_rel_diff": worst}


def finetune(size: Size, export: Path, tasks: Path, work: Path, env: dict[str, str], log: Log,
             clock: Clock) -> dict[str, Any]:
    out = work / "finetune-sentiment"
    config, *overrides = size.finetune
    t = time.perf_counter()
    run([sys.executable, "-m", "zhbert", "finetune", "--model", str(export), "--task", "sentiment", "--data",
         str(tasks / "sentiment"), "--config", str(ROOT / config), "--seeds", "1", *overrides, "--out", str(out)],
        env, log, min(240, clock.left()))
    summary = json.loads((out / "summary.json").read_text())
    return {"wall_s": time.perf_counter() - t, "metric": summary["metric"], "test": summary["mean"]}


# ── the run ──────────────────────────────────────────────────────────────────────────────────────────────────

def stage(results: dict[str, Any], name: str, log: Log, fn: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    """Run one stage; its result or its error goes into ``results`` and the others run regardless."""
    t = time.perf_counter()
    try:
        value = fn()
        results[name] = {"ok": True, **value}
    except Exception as e:  # a stage's failure is a result of the check, not its end
        log.write(traceback.format_exc())
        value, results[name] = None, {"ok": False, "error": f"{type(e).__name__}: {e}"}
    results[name]["seconds"] = round(time.perf_counter() - t, 1)
    r = results[name]
    log.say(f"── {name}: {'ok' if r['ok'] else 'FAILED'}{': ' + r['error'][:300] if 'error' in r else ''} "
            f"({r['seconds']} s)")
    return value


def pytest_result(job: Job, clock: Clock) -> dict[str, Any]:
    out = job.finish(clock.left() - 5)
    return {"summary": re.sub(r"=+", "", out.strip().splitlines()[-1]).strip()}  # pytest's own time is in it


def fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def percent(share: float | None) -> str:
    return "—" if share is None else f"{100 * share:.1f}%"


def table(results: dict[str, Any]) -> str:
    lines = ["", f"GPU check summary — {results.get('preflight', {}).get('device', 'no device found')}"]
    bench_result = results.get("bench", {})
    if bench_result.get("rows"):
        lines += [f"bench: forward + backward, bf16, {bench_result['batch_tokens']} tokens a step, median of "
                  f"{bench_result['steps']}; bf16 matmul measured {bench_result['matmul_tflops']:.1f} TFLOP/s, MFU "
                  f"against {fmt(bench_result['peak_tflops'], '.0f')} TFLOP/s",
                  f"{'seq':>5} {'model':<12} {'ms/step':>9} {'tokens/s':>11} {'MFU':>7} {'peak MiB':>9}"]
        for r in bench_result["rows"]:
            lines.append(f"{r['seq']:>5} {r['model']:<12} {r['ms_per_step']:>9.1f} {r['tokens_per_s']:>11,.0f} "
                         f"{percent(r['mfu']):>7} {fmt(r['peak_mib'] or None, ',.0f'):>9}")
        lines += [f"  {k}: {v:.2f}×" for k, v in bench_result["ratios"].items()]
    runs = {k: v for k, v in results.items() if k.startswith("pretrain ") and v.get("ok")}
    if runs:
        lines += ["pretrain (deepspeed launcher, bf16): first → last loss, held-out MLM loss, tokens/s, MFU, "
                  "state MiB/rank",
                  *(f"  {k[9:]:<12} {v['first_loss']:.3f} → {v['last_loss']:.3f}  eval {fmt(v['eval_mlm_loss'], '.3f')}"
                    f"  {v['tokens_per_s']:>9,.0f} tok/s  MFU {percent(v['mfu'])}"
                    f"  {v['state_mib_per_rank']:,.0f} MiB  {v['wall_s']:.0f} s" for k, v in runs.items())]
    if "killed_after_step" in results.get("resume", {}):
        r = results["resume"]
        lines.append(f"resume: killed after step {r['killed_after_step']}, {r['compared_steps']} later steps "
                     + ("identical" if r["exact"] else f"differ: max relative |Δloss| {r['max_rel_diff']:.2e}"))
    if results.get("finetune", {}).get("ok"):
        lines.append(f"finetune sentiment: test {results['finetune']['metric']} {results['finetune']['test']:.3f}")
    lines += [f"{name:<22} {'ok' if v['ok'] else 'FAILED'}  {v['seconds']:>6.1f} s"
              + (f"  {v['error'][:200]}" if "error" in v else "") + (f"  {v['summary']}" if "summary" in v else "")
              for name, v in results.items() if isinstance(v, dict) and "ok" in v]
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpu", action="store_true", help="tiny shapes on the CPU (what CI runs)")
    ap.add_argument("--wheels", type=Path, help="install the packages missing here from these wheels first")
    ap.add_argument("--corpus", type=Path, default=ROOT / ".gpucheck" / "corpus")
    ap.add_argument("--tasks", type=Path, default=ROOT / ".gpucheck" / "tasks")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or ROOT / "runs" / "gpu-check"))
    ap.add_argument("--work", type=Path, help="data and runs (default: a temporary folder)")
    ap.add_argument("--ranks", type=int, help="processes under the deepspeed launcher (default: the GPUs, or 1)")
    ap.add_argument("--peak-tflops", type=float, help="bf16 peak for MFU (default: by device name)")
    ap.add_argument("--budget", type=float, help="seconds for the whole check (default: 450 on a GPU)")
    ap.add_argument("--pytest", type=shlex.split, help="pytest arguments, one string (default: the size's)")
    ap.add_argument("--skip", type=lambda s: set(s.split(",")), default=set(),
                    help="comma-separated, of: bench, resume, finetune, runs (the pretraining runs after the first, "
                         "which always runs), tests — for a shorter second try")
    args = ap.parse_args()
    if args.skip - SKIPPABLE:
        ap.error(f"--skip: unknown {sorted(args.skip - SKIPPABLE)}; known: {sorted(SKIPPABLE)}")
    return args


def check(args: argparse.Namespace, work: Path, log: Log) -> dict[str, Any]:
    results: dict[str, Any] = {}
    started = time.monotonic()
    info = stage(results, "preflight", log, lambda: preflight(args, log))
    if info is None:
        return results
    cpu = args.cpu or not info["gpus"]
    size = CPU if cpu else GPU
    results["size"] = {"name": "cpu" if cpu else "gpu", **asdict(size)}
    clock = Clock(started, args.budget or size.budget_s)
    args.ranks = args.ranks or max(info["gpus"], 1)
    if args.peak_tflops is None:
        args.peak_tflops = next((v for k, v in PEAK_TFLOPS.items() if k in info["device"]), None)
    env = child_env(cpu)
    data = work / "data"
    stage(results, "data", log, lambda: build_data(args.corpus, data, size, env, log, clock))
    if "bench" not in args.skip:
        stage(results, "bench", log, lambda: bench(size, cpu, args.peak_tflops, log, clock))
    # the tests run on the CPU beside the GPU stages; the carried slice stands in for the corpus (no internet)
    tests = None if "tests" in args.skip else Job(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--maxfail=5", *(args.pytest or size.pytest)],
        env | {"ZHBERT_TEST_CORPUS": str(args.corpus.resolve())} | ({} if cpu else {"OMP_NUM_THREADS": "4"}), log)

    def pretrain_stage(kind: str, zero: int) -> Path:
        stage(results, f"pretrain {kind}-zero{zero}", log,
              lambda: pretrain_run(size, data, work, kind, zero, args, env, log, clock))
        return work / f"{kind}-zero{zero}"

    first, *rest = size.runs
    reference = pretrain_stage(*first)
    if "resume" not in args.skip:
        stage(results, "resume", log, lambda: kill_and_resume(size, data, work, *first, args, env, log, clock))
    if "finetune" not in args.skip:
        stage(results, "finetune", log,
              lambda: finetune(size, reference / "export", args.tasks, work, env, log, clock))
    for kind, zero in [] if "runs" in args.skip else rest:
        pretrain_stage(kind, zero)
    if tests is not None:
        stage(results, "tests", log, lambda: pytest_result(tests, clock))
    return results


def main() -> None:
    args = parse_args()
    log = Log(args.out)
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="zhbert-gpu-check-") as tmp:
        results = check(args, args.work or Path(tmp), log)
    results["total_s"] = round(time.perf_counter() - t, 1)
    (args.out / "gpu_check.json").write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    log.say(table(results) + f"\ntotal {results['total_s']} s; {args.out / 'gpu_check.json'}")
    sys.exit(0 if all(v.get("ok", True) for v in results.values() if isinstance(v, dict)) else 1)


if __name__ == "__main__":
    main()
