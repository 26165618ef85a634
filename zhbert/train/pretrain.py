"""`zhbert pretrain`: masked-LM pretraining in one readable loop, under DeepSpeed (zhbert.train.engine).

    set up: vocab, shards and glyph table checked against each other → model → DeepSpeed engine → resume?
    for each step: for each micro-batch: rows → dynamic masks → forward → backward → (engine) step
                   every log_every: reduced loss, lr, tokens/s │ every eval_every: held-out MLM loss,
                   accuracy, bits per character │ every save_every: checkpoint
    at the end: checkpoint → rank 0 consolidates the ZeRO shards → export folder (zhbert/export.py)

Exact resume: data order and masks are functions of the step (zhbert.train.data), dropout is reseeded from
(seed, step, rank) at every step, and DeepSpeed's checkpoint holds the weights, optimizer and LR schedule;
so a run resumed from step k computes the same losses after k as one that was never stopped.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from zhbert.config import config_hash, to_dict
from zhbert.device import to_device
from zhbert.export import save_export
from zhbert.files import write_json
from zhbert.layout import RunDir
from zhbert.model import ModelOutput, ZhBertForPretraining
from zhbert.model.config import ModelConfig
from zhbert.model.embeddings import spell_pinyin
from zhbert.model.hf_init import init_from_hf
from zhbert.train.config import PretrainConfig
from zhbert.train.data import PretrainData, Vocabs, check_inputs, describe_row
from zhbert.train.loader import step_inputs, train_batches
from zhbert.train.masking import EVAL_MASK_PROB, IGNORE, EvalUnit, MaskingCollator
from zhbert.train.metrics import MetricsLog, read_metrics
from zhbert.train.optim import warmup_decay

PROTOCOL = "zhbert.pretrain/2"
"""What a run's figures mean beyond its config (2: the fixed held-out masking, masks within the rate); recorded in
training.json, and part of `zhbert compare`'s keys so a run measured the old way is redone."""


def lr_lambda(cfg: PretrainConfig) -> Callable[[int], float]:
    """Multiplier of ``optim.lr`` at optimizer step s (0-based): ``optim``'s warmup and decay over the run."""
    return warmup_decay(cfg.optim.warmup_steps, cfg.steps, cfg.optim.schedule, cfg.optim.min_lr_ratio)


def train_flops_per_token(cfg: ModelConfig, seq_len: int, mask_prob: float) -> float:
    """Approximate training FLOPs per token (forward + backward = 3 × forward, 2 FLOPs a multiply-add):
    the trunk's matmuls, attention scores and values over ``seq_len``, and the tied decoder at masked tokens.
    The embedding side (glyph and pinyin CNNs run once per distinct char / syllable) is left out."""
    H, L, inner, E = cfg.hidden_size, cfg.num_layers, cfg.intermediate_size, cfg.emb_dim
    trunk = L * (4 * H * H + 2 * H * inner)
    attention = L * 2 * seq_len * H
    decoder = mask_prob * (H * E + E * cfg.token_vocab_size)
    return 6 * (trunk + attention + decoder)


def step_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])


def ends_every_rank_on_error(fn: Callable[..., Path]) -> Callable[..., Path]:
    """Under a launcher (WORLD_SIZE > 1) an exception on a rank is printed with the rank, and the process ends at
    once (``os._exit``): its peers' collectives then fail on the closed connection, or the launcher stops them,
    instead of waiting for a rank that is gone, and no interpreter shutdown can hang on them (NCCL's process
    group waits for pending collectives when destroyed). A single process raises as usual."""

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Path:
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            world = int(os.environ.get("WORLD_SIZE", "1"))
            if world == 1:
                raise
            traceback.print_exc()
            print(f"zhbert pretrain: rank {os.environ.get('RANK', '?')} of {world}: error: {type(e).__name__}: {e}",
                  file=sys.stderr, flush=True)
            sys.stdout.flush()
            os._exit(1)

    return guarded


@ends_every_rank_on_error
def pretrain(cfg: PretrainConfig, resume: bool = False) -> Path:
    """Train as configured; returns the export folder. Runs as one rank of whatever launched it."""
    # everything that can be wrong with the inputs is found before DeepSpeed starts
    accumulation = cfg.accumulation(int(os.environ.get("WORLD_SIZE", "1")))  # launchers set WORLD_SIZE
    run = RunDir(cfg.output)
    out, checkpoints = run.root, run.checkpoints
    if not resume and run.latest.exists():
        raise RuntimeError(f"{out} already has checkpoints: pass --resume to continue that run, or choose "
                           "another output")
    inputs = check_inputs(cfg)
    vocabs, manifest, model_cfg, glyphs = inputs.vocabs, inputs.manifest, inputs.model, inputs.glyphs

    from zhbert.train import engine as ds  # imports deepspeed

    rank, world = ds.init_distributed()
    lead = rank == 0
    data = PretrainData(cfg, rank, world)
    collator = MaskingCollator(cfg.masking, vocabs.char, vocabs.pinyin, vocabs.tokens, inputs.text.context_reader())
    eval_units: list[EvalUnit] = list(model_cfg.inputs.eval_units)
    ds_config = ds.build_ds_config(cfg, world)
    data_hashes = vocabs.hashes | {"shards_config_hash": manifest["config_hash"]}
    if glyphs is not None:
        data_hashes["glyphs_sha256"] = glyphs.meta["table_sha256"]

    torch.manual_seed(cfg.seed)
    model = _build_model(model_cfg, glyphs, vocabs)
    if cfg.init and not resume:  # a fresh run; a resumed one loads its checkpoint
        started = init_from_hf(model, cfg.init, vocabs.char.tokens)
        if lead:
            print(started, flush=True)
    n_params = sum(p.numel() for p in model.parameters())
    pack_len = cfg.data.pack_len or model_cfg.max_position
    # a packed token attends over the whole packed length; an unpacked one over its row (padding aside)
    flops = train_flops_per_token(model_cfg, pack_len if cfg.data.pack else round(data.lengths.mean()),
                                  cfg.masking.mask_prob)
    engine = ds.initialize(model, cfg, ds_config, lr_lambda(cfg))

    log = MetricsLog(out, lead, cfg.tensorboard)
    counters = {"sequences": 0, "tokens": 0, "positions": 0, "chars": 0, "masked_tokens": 0, "maskable_tokens": 0,
                "train_seconds": 0.0}
    start = 0
    state = ds.load_checkpoint(engine, checkpoints) if resume else None
    if state is not None:
        if state["data"] != data_hashes:
            raise ValueError(f"{checkpoints}: the checkpoint was trained on other data or vocab "
                             f"({_diff(state['data'], data_hashes)}); resume with the same data.* as before")
        start, counters = state["step"], counters | state["counters"]
        log.write("resume", start)
    if lead:
        print(f"zhbert pretrain: {model_cfg.embedding} model, {n_params:,} parameters; {world} rank(s) × "
              f"micro-batch {cfg.micro_batch} × {accumulation} accumulation = {cfg.batch_size} sequences a step; "
              f"ZeRO-{cfg.engine.zero_stage}, {cfg.engine.precision}; {data.train_sequences:,} training / "
              f"{data.eval_sequences:,} held-out sequences ({data.epoch_steps:.0f} steps an epoch)"
              + (f"; {len(data.train_rows):,} rows packed into sequences of ≤ {pack_len} tokens, "
                 f"{data.real_fraction():.1%} full" if cfg.data.pack else "")
              + (f"; resuming at step {start}" if state is not None else ""), flush=True)
        write_json(out / "config.json", {"config": to_dict(cfg), "model": to_dict(model_cfg), "world_size": world,
                                         "ds_config": ds_config, "data": data_hashes})
        example = data.rows(start, 0)[:1]
        masked = collator(example, 0)["masked"][0].tolist() if cfg.masking.pairs == "none" else None
        print("example:", describe_row(example[0], masked, vocabs), flush=True)

    token_chars = torch.from_numpy(vocabs.token_chars).to(engine.device)
    unigram = torch.from_numpy(data.unigram_log_probs(len(vocabs.tokens))).to(engine.device)
    bar = tqdm(total=cfg.steps, initial=start, disable=not lead, unit="step", dynamic_ncols=True, file=sys.stdout)
    interval = Interval(engine.device)
    batches = train_batches(data, collator, start, cfg.steps, accumulation, engine.device)
    with contextlib.closing(batches):  # the data workers stop here, on an error as at the end
        for step in range(start, cfg.steps):
            t0 = time.perf_counter()
            torch.manual_seed(step_seed(cfg.seed, step, rank))  # dropout: a function of the step, like the data
            engine.train()
            for _ in range(accumulation):
                batch = to_device(next(batches), engine.device)
                step_out = engine(**{k: v for k, v in batch.items() if k != "maskable"})
                engine.backward(step_out.loss)
                engine.step()
                interval.add(step_out, batch, token_chars)
            interval.seconds += time.perf_counter() - t0
            done = step + 1
            last = done == cfg.steps
            if done % cfg.log_every == 0 or last:
                total, seconds = interval.reduce(ds.all_reduce_sum), interval.seconds
                counters["sequences"] = done * cfg.batch_size
                for counter, key in (("tokens", "tokens"), ("positions", "positions"), ("chars", "chars"),
                                     ("masked_tokens", "masked"), ("maskable_tokens", "maskable")):
                    counters[counter] += int(total[key])
                counters["train_seconds"] += seconds
                record = {"loss": total["loss"] / total["micro"], "mlm_loss": total["mlm_nats"] / total["masked"],
                          "bits_per_char": total["mlm_nats"] / math.log(2) / total["masked_chars"],
                          **({"pair_loss": total["pair_loss"] / total["micro"]} if cfg.masking.pairs != "none" else {}),
                          "mask_rate": total["masked"] / total["maskable"], "lr": engine.get_lr()[0],
                          "tokens_per_s": total["tokens"] / seconds,
                          "real_token_fraction": total["tokens"] / total["positions"],
                          **{k: counters[k] for k in ("sequences", "tokens", "chars")}}
                log.write("train", done, **record)
                bar.set_postfix(loss=f"{record['loss']:.4f}", tok_s=f"{record['tokens_per_s']:,.0f}")
                interval = Interval(engine.device)
            if done % cfg.eval_every == 0 or last:
                result = evaluate(engine, data, collator, token_chars, unigram, ds.all_reduce_sum, eval_units)
                log.write("eval", done, **result, chars=counters["chars"])
                if lead:
                    bar.write(f"step {done}: held-out (whole words masked) MLM loss {result['mlm_loss']:.4f}, accuracy "
                              f"{result['accuracy']:.3f}, {result['bits_per_char']:.3f} bits/char (unigram "
                              f"{result['unigram_accuracy']:.3f}, {result['unigram_bits_per_char']:.3f})"
                              + (f"; single chars masked: {result['char_bits_per_char']:.3f} bits/char"
                                 if "char" in eval_units else ""))
            if done % cfg.save_every == 0 or last:
                ds.save_checkpoint(engine, checkpoints, done, {"step": done, "counters": counters, "data": data_hashes},
                                   cfg.keep_checkpoints)
            bar.update(1)
    bar.close()

    fingerprints = ds.all_gather_object(ds.fingerprint(engine))
    if any(f != fingerprints[0] for f in fingerprints):  # every rank checks, so every rank stops
        raise RuntimeError(f"the ranks hold different models at the end: {fingerprints}")
    memory = ds.all_gather_object(ds.state_bytes(engine))
    export = run.export

    def write_export() -> None:
        final = _build_model(model_cfg, glyphs, vocabs)
        final.load_state_dict(ds.full_state_dict(engine, checkpoints), strict=True)
        evals = read_metrics(out, "eval")
        save_export(final, export, cfg.data.vocab, cfg.data.glyphs, training={
            "config": to_dict(cfg), "config_hash": config_hash(cfg), "world_size": world, "data": data_hashes,
            "protocol": PROTOCOL, "steps": cfg.steps, "parameters": n_params, "flops_per_token": flops, **counters,
            "mask_rate": counters["masked_tokens"] / max(counters["maskable_tokens"], 1),
            "real_token_fraction": counters["tokens"] / max(counters["positions"], 1),
            "eval_masking": eval_masking(), "packing": data.packing(),
            "tokens_per_s": counters["tokens"] / max(counters["train_seconds"], 1e-9),
            "eval": evals[-1] if evals else None, "rank_fingerprints": fingerprints, "memory_per_rank": memory,
            "ds_config": ds_config,
        }, text=inputs.text)
        print(f"export: {export} (loads without DeepSpeed: ZhBertForPretraining.from_pretrained)", flush=True)

    ds.lead_only(write_export)
    log.close()
    ds.barrier()  # the last collective must hold no tensors (see engine.barrier)
    return export


def export_untrained(cfg: PretrainConfig, folder: Path) -> Path:
    """The no-pretraining control of ``cfg``: its model exactly as a run of it starts (the same seed, so the same
    initial weights), exported like a trained one, so fine-tuning it measures what pretraining bought."""
    inputs = check_inputs(cfg)
    torch.manual_seed(cfg.seed)
    model = _build_model(inputs.model, inputs.glyphs, inputs.vocabs)
    return save_export(model, folder, cfg.data.vocab, cfg.data.glyphs, text=inputs.text, training={
        "control": "no pretraining", "config": to_dict(cfg), "config_hash": config_hash(cfg), "protocol": PROTOCOL,
        "steps": 0, "parameters": sum(p.numel() for p in model.parameters())})


def evaluate(engine: Any, data: PretrainData, collator: MaskingCollator, token_chars: torch.Tensor,
             unigram: torch.Tensor, all_reduce_sum: Callable[[torch.Tensor], list[float]],
             units: list[EvalUnit]) -> dict[str, float]:
    """Held-out MLM loss (nats per masked token), masked-token accuracy and bits per character (nats over the
    characters the masked tokens stand for, in bits: the one figure char and word models share), under the fixed
    evaluation masking (`MaskingCollator.held_out`): the same rows, positions and masks for every run, whatever
    its training masking and number of ranks. Whole words: ``mlm_loss``, ``accuracy``, ``bits_per_char``; single
    characters (char view only): the same names prefixed ``char_``. Beside them, ``unigram_accuracy`` and
    ``unigram_bits_per_char``: the same figures for predicting every masked token from the training rows' token
    frequencies (``unigram``, log-probabilities (V,)) — the floor a model that learned anything clears. The sums
    stay on the device until one reduction per unit."""
    engine.eval()
    out: dict[str, float] = {}
    most_frequent = unigram.argmax()
    with torch.no_grad():
        for unit in units:
            sums = torch.zeros(5, dtype=torch.float64, device=token_chars.device)
            tokens = 0
            for places, rows in data.eval_batches():
                batch = on_device(collator.held_out(rows, places, unit), token_chars.device)
                logits = engine(**batch).logits.float()  # (N masked, V)
                target = batch["labels"].flatten()[batch["mlm_positions"]]  # (N,)
                values = (F.cross_entropy(logits, target, reduction="sum"), (logits.argmax(-1) == target).sum(),
                          token_chars[target].sum(), -unigram[target].sum(), (target == most_frequent).sum())
                sums += torch.stack([v.double() for v in values])
                tokens += target.numel()
            nats, correct, chars, unigram_nats, unigram_correct, tokens = all_reduce_sum(
                torch.cat([sums, torch.tensor([tokens], dtype=torch.float64, device=sums.device)]))
            if not tokens:
                raise ValueError("no held-out sequences to evaluate: raise data.eval_percent or data.eval_sequences")
            prefix = "" if unit == "word" else f"{unit}_"
            out |= {f"{prefix}mlm_loss": nats / tokens, f"{prefix}accuracy": correct / tokens,
                    f"{prefix}bits_per_char": nats / math.log(2) / chars, f"{prefix}masked_tokens": int(tokens),
                    f"{prefix}masked_chars": int(chars), f"{prefix}unigram_accuracy": unigram_correct / tokens,
                    f"{prefix}unigram_bits_per_char": unigram_nats / math.log(2) / chars}
    return out


def eval_masking() -> str:
    """The evaluation masking in words, for training.json and the report: the same text for every run."""
    return (f"fixed for every run: {EVAL_MASK_PROB:.0%} of each held-out row's maskable characters, all [MASK], "
            "by whole words (every model) and by single characters (char-view models), chosen by the row's place "
            "in the held-out set and the word's index in the row")


def _build_model(cfg: ModelConfig, glyphs: Any, vocabs: Vocabs) -> ZhBertForPretraining:
    """The model, with the tables its fusion inputs need (the glyph table, the pinyin letter table)."""
    return ZhBertForPretraining(
        cfg, glyphs=torch.from_numpy(glyphs.pixels) if cfg.inputs.glyphs else None,
        pinyin_letters=spell_pinyin(vocabs.pinyin.entries, cfg.pinyin_max_letters) if cfg.inputs.pinyin else None)


def on_device(batch: dict[str, torch.Tensor], device: torch.device | str) -> dict[str, torch.Tensor]:
    """A collator batch as a step uses it (`step_inputs`), on ``device``."""
    return to_device(step_inputs(batch), device)


class Interval:
    """What a log interval sums up on this rank before the reduction over ranks. What needs the model's outputs
    or the batch's values stays on the device, one float64 vector added to at each micro-step (no host sync);
    what the shapes tell is counted on the host. ``positions``: every computed position (B × T of each
    micro-batch), real token or padding, for ``real_token_fraction``."""

    ON_DEVICE = ("loss", "mlm_nats", "pair_loss", "tokens", "masked_chars", "maskable", "chars")
    ON_HOST = ("micro", "positions", "masked")

    def __init__(self, device: torch.device | str) -> None:
        self.sums = torch.zeros(len(self.ON_DEVICE), dtype=torch.float64, device=device)
        self.counts = dict.fromkeys(self.ON_HOST, 0)
        self.seconds = 0.0

    def add(self, out: ModelOutput, batch: dict[str, torch.Tensor], token_chars: torch.Tensor) -> None:
        """Count one micro-batch (``on_device``'s batch, the model's output on it)."""
        real, labels = batch["attention_mask"], batch["labels"]
        target = labels.flatten()[batch["mlm_positions"]]  # (N,) the original ids of the masked tokens
        original = torch.where(labels != IGNORE, labels, batch["input_ids"])  # (B, T) the row before masking
        pair_loss = out.pair_loss if out.pair_loss is not None else torch.zeros_like(out.loss)
        values = (out.loss, out.mlm_loss * target.numel(), pair_loss, real.sum(), token_chars[target].sum(),
                  batch["maskable"].sum(), (token_chars[original] * real).sum())
        self.sums += torch.stack([v.detach().double() for v in values])
        self.counts["micro"] += 1
        self.counts["positions"] += real.numel()
        self.counts["masked"] += target.numel()

    def reduce(self, all_reduce_sum: Callable[[torch.Tensor], list[float]]) -> dict[str, float]:
        """The sums over ranks, by name: one collective and one transfer to the host."""
        host = torch.tensor([self.counts[k] for k in self.ON_HOST], dtype=torch.float64, device=self.sums.device)
        return dict(zip(self.ON_DEVICE + self.ON_HOST, all_reduce_sum(torch.cat([self.sums, host]))))


def _diff(a: dict[str, str], b: dict[str, str]) -> str:
    return ", ".join(f"{k}: {str(a.get(k))[:12]}… vs {str(b.get(k))[:12]}…" for k in sorted(set(a) | set(b))
                     if a.get(k) != b.get(k))
