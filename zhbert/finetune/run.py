"""The fine-tuning loop: one readable single-process PyTorch loop per seed.

AdamW with linear warm-up and decay, evaluation on dev after every epoch, the best epoch's weights kept
(in memory: only the trainable ones, which are all that change), then dev and test predicted with them.
Output of ``finetune`` (the comparison reads these names):

    <out>/seed-<s>/metrics.json         task, seed, mode, embedding, model, metric, dev {…}, test {…} (when test
                                        has labels), <split>.homophone {…} / <split>.lookalike {…} (the
                                        robustness sets),
                                        trainable_params, total_params, wall_s, truncated, encoding counts per
                                        split ([UNK]s, dropped / changed examples, windows), the text settings
    <out>/seed-<s>/predictions.jsonl    one line per dev, test and robustness example: split, id, prediction, gold
    <out>/seed-<s>/<task>_predict.json  the CLUE submission file for the test split (CLUE 1.1's own name where it
                                        differs: tnews11_, ocnli_50k_, cluewsc11_predict.json)
    <out>/summary.json                  task, metric, split, mean, std, seeds, per_seed; per robustness set its
                                        mean, per_seed and drop (clean − perturbed, paired by seed)
"""

from __future__ import annotations

import json
import math
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zhbert.config import ConfigError, from_dict, to_dict
from zhbert.device import to_device
from zhbert.export import Export, load_export
from zhbert.files import read_json, write_json, write_text
from zhbert.finetune.features import Feature, TaskEncoder, TaskFeatures, collate, length_grouped
from zhbert.finetune.kinds import Kind
from zhbert.finetune.modes import FinetuneModel, Mode
from zhbert.finetune.robustness import PERTURBATIONS, perturb
from zhbert.finetune.tasks import SPLITS, Example, TaskSpec, get_task, read_split
from zhbert.layout import PREDICTIONS, SEED_METRICS, SUMMARY, scored_split, seed_dir
from zhbert.model.heads import Pooling
from zhbert.model.model import IGNORE
from zhbert.train.optim import adamw, warmup_decay


@dataclass
class FinetuneConfig:
    """How a task is fine-tuned; configs/finetune/*.toml are deltas over these defaults (CLUE baseline)."""

    mode: Mode = "full"
    """full | feature-embeddings | feature-top | feature-mix | adapter (see zhbert/finetune/modes.py)."""
    pooling: Pooling = "cls"
    """What a sentence(-pair) classifier reads: ``cls``, the [CLS] position (BERT), or ``mean``, the mean over the
    tokens, which a model pretrained with masked-LM alone has trained (zhbert.model.heads.ClassificationHead)."""
    freeze_fusion_nets: bool = False
    """Fusion models: keep the glyph and pinyin nets as pretrained and their features in a table, so that a step
    costs about what a char model's does; the fusion projection and the rest still train. Other models: no effect."""
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    """One run per seed (init of the head, dropout, batch order); the summary gives mean ± std."""
    epochs: int = 3
    """Passes over the training set; dev is evaluated after each and the best epoch is kept."""
    lr: float = 2e-5
    """Peak learning rate (AdamW). Frozen-trunk modes want far more (1e-3)."""
    weight_decay: float = 0.01
    """AdamW decay on weight matrices (not on biases, LayerNorms, embeddings' norms or the layer mix)."""
    warmup: float = 0.1
    """Share of the steps with linear warm-up; the rest decays linearly to 0."""
    grad_clip: float = 1.0
    """Gradient norm clip (0: none)."""
    batch_size: int = 32
    """Training examples (features) per step."""
    length_groups: int = 0
    """0: uniformly random batches. n: batches of similar lengths, from a random order cut into runs of n batches,
    each run sorted by length (``features.length_grouped``): random batches of the bundled tasks pad to twice
    their tokens, runs of 50 to 1.03 times. A token task weighs every labelled token alike (``labelled_per_batch``),
    without which sorted batches cost msra_ner's pretrained models 0.02-0.04 F1. Measured on idiom_pair and
    msra_ner only (docs/learning.md §12), so not the default."""
    eval_batch_size: int = 64
    max_len: int = 128
    """Tokens per input, [CLS]/[SEP] included; longer classification inputs are truncated, token and span
    inputs are read in windows."""
    stride: int = 64
    """Span tasks: tokens between the starts of consecutive context windows (BERT's doc_stride)."""
    max_query_len: int = 64
    """Span tasks: question tokens kept."""
    max_answer_len: int = 30
    """Span tasks: longest answer predicted, in tokens."""
    adapter_size: int = 64
    """Bottleneck width of the adapters (mode = adapter)."""
    max_train: int = 0
    """Use only the first N training examples (0: all), e.g. for quick CPU runs."""
    threads: int = 0
    """torch CPU threads (0: torch's default)."""
    device: str = "auto"
    """auto (CUDA when available), cpu or cuda[:n]. (Normalisation and jieba settings are not set here: they come
    with the export, as its pretraining shards were prepared.)"""
    robustness: list[str] = field(default_factory=list)
    """Also score the scored split perturbed: ``homophone``, ``lookalike`` (zhbert/finetune/robustness.py), each
    as the split ``<split>.<name>`` in metrics.json and predictions.jsonl; a spelling-correction task has none."""
    robustness_share: float = 0.1
    """Share of the hanzi of each text the robustness sets replace."""
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Settings of one task over the ones above, e.g. ``[tasks.idiom_pair]`` ``lr = 5e-4``: tasks converge at
    different learning rates and epochs (CLUE's baselines set both per task). Not ``seeds``: a comparison pairs
    variants by seed, so it sets them, per task where it must (``CompareConfig.task_seeds``)."""

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ConfigError("seeds must list at least one seed")
        for name in ("epochs", "batch_size", "eval_batch_size", "stride", "max_answer_len", "adapter_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_len < 8:
            raise ConfigError(f"max_len must be at least 8, got {self.max_len}")
        unknown = sorted(set(self.robustness) - set(PERTURBATIONS))
        if unknown or not 0 < self.robustness_share <= 1:
            raise ConfigError(f"robustness must name {list(PERTURBATIONS)} (got {unknown or self.robustness}) and "
                              f"robustness_share be in (0, 1] (got {self.robustness_share})")
        for name, settings in self.tasks.items():
            if not isinstance(settings, dict) or {"seeds", "tasks"} & set(settings):
                raise ConfigError(f"tasks.{name} must be a table of settings other than seeds and tasks, "
                                  f"got {settings!r}")
            self.for_task(name)  # checks the keys and values now, not when that task's turn comes

    def for_task(self, name: str) -> FinetuneConfig:
        """The settings task ``name`` is fine-tuned with: these with its ``tasks`` entry over them (and no
        ``tasks``, so a task's settings, and the hash that keys its runs, do not change with another's)."""
        return from_dict(FinetuneConfig, to_dict(self) | self.tasks.get(name, {}) | {"tasks": {}}, f"tasks.{name}.")


@dataclass
class PreparedTask:
    """A task read, perturbed and encoded for one export: everything a run's seeds share, so that a process that
    fine-tunes several seeds of a run prepares it once (``zhbert compare``'s workers; seeding comes after)."""

    cfg: FinetuneConfig
    """The task's settings (``FinetuneConfig.for_task``)."""
    export: Export
    kind: Kind
    data: dict[str, list[Example] | None]
    """Examples per split: train, dev, test (None where the task has no such file), the robustness sets."""
    encoded: dict[str, TaskFeatures]
    counts: dict[str, dict[str, Any]]
    """Per split: what reading dropped or changed, and the encoding counts."""
    encode_s: float

    def describe(self) -> str:
        """The header of a seed's log: the model, and every example dropped or changed, every [UNK], every cut."""
        lines = [f"{self.kind.spec.name}: {self.export.model.embedding} model {self.export.folder}, mode "
                 f"{self.cfg.mode}; encoded in {self.encode_s:.1f}s"]
        lines += [f"  {s:<5} " + _describe(c, self.cfg, self.export) for s, c in self.counts.items()]
        return "\n".join(lines)


def prepare(cfg: FinetuneConfig, model_dir: str | Path, task: str | TaskSpec, data_dir: str | Path) -> PreparedTask:
    """Read ``task``'s splits from ``data_dir``, add the robustness sets and encode them all for the export in
    ``model_dir``."""
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    cfg = cfg.for_task(spec.name)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    export = load_export(model_dir)
    encoder = TaskEncoder(export, spec, cfg.max_len, cfg.stride, cfg.max_query_len)  # checks max_len first
    kind = encoder.kind
    reads: dict[str, dict[str, Any]] = {s: {} for s in ("train", "dev", "test")}
    data = {s: read_split(spec, data_dir, s, reads[s]) for s in reads}
    if data["dev"] is None:
        raise FileNotFoundError(f"{data_dir}: no dev file {spec.files.get('dev')!r} for task {spec.name!r}; "
                                "the best epoch is chosen on dev")
    if cfg.max_train:
        data["train"] = data["train"][: cfg.max_train]
    scored_on = "test" if kind.labelled(data["test"]) else "dev"
    for name in cfg.robustness if kind.robust else []:
        data[f"{scored_on}.{name}"], record = perturb(data[scored_on], name, cfg.robustness_share)
        reads[f"{scored_on}.{name}"] = {"perturbation": record}
    t0 = time.perf_counter()
    encoded = {s: encoder.encode(exs) for s, exs in data.items() if exs is not None}
    counts = {s: reads[s] | e.counts for s, e in encoded.items()}
    return PreparedTask(cfg, export, kind, data, encoded, counts, time.perf_counter() - t0)


def finetune(cfg: FinetuneConfig, model_dir: str | Path, task: str | TaskSpec, data_dir: str | Path,
             out_dir: str | Path) -> dict[str, Any]:
    """Fine-tune the export in ``model_dir`` on ``task`` once per seed; write the files listed in the module
    docstring and return the summary. (A comparison hands seeds to worker processes, which call ``prepare`` once a
    run and ``run_seed`` once a seed; it calls ``summarise`` when a run's seeds are done.)"""
    run = prepare(cfg, model_dir, task, data_dir)
    print(run.describe())
    for seed in run.cfg.seeds:
        run_seed(run, seed, seed_dir(out_dir, seed))
    result = summarise(run.cfg, out_dir)
    print(f"{run.kind.spec.name} {result['split']} {result['metric']}: {result['mean']:.4f} ± {result['std']:.4f} "
          f"over seeds {run.cfg.seeds} → {out_dir}")
    return result


def summarise(cfg: FinetuneConfig, out_dir: str | Path) -> dict[str, Any]:
    """Write ``<out_dir>/summary.json`` from the seed folders of ``cfg.seeds`` (the scored split's main metric,
    mean ± std, per seed, and each robustness set's drop paired by seed) and return it."""
    out_dir = Path(out_dir)
    per_seed = [read_json(seed_dir(out_dir, seed) / SEED_METRICS) for seed in cfg.seeds]
    first = per_seed[0]
    key, scored_on = first["metric"], scored_split(first)
    values = [r[scored_on][key] for r in per_seed]
    summary = {"task": first["task"], "metric": key, "split": scored_on, "mode": cfg.mode,
               "embedding": first["embedding"], "model": first["model"],
               "mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
               "seeds": list(cfg.seeds), "per_seed": values, "config": to_dict(cfg)}
    for split in (s for s in first if s.startswith(f"{scored_on}.")):
        perturbed = [r[split][key] for r in per_seed]
        summary[split] = {"mean": statistics.fmean(perturbed), "per_seed": perturbed,
                          "drop": statistics.fmean(v - p for v, p in zip(values, perturbed))}
    write_json(out_dir / SUMMARY, summary)
    return summary


def _describe(c: dict[str, Any], cfg: FinetuneConfig, export: Export) -> str:
    """One split's encoding counts as a line: every example dropped or changed, every [UNK], every cut."""
    line = f"{c['examples']:>6,} examples → {c['features']:>6,} inputs"
    line += f", {c['unk_tokens']:,} [UNK] of {c['tokens']:,} tokens ({c['unk_tokens'] / max(c['tokens'], 1):.2%})"
    line += "".join(f"; {n:,} dropped with label {label!r}" for label, n in c.get("dropped_labels", {}).items() if n)
    line += f"; {c['answers_relocated']:,} answers moved to where their text is" if c.get("answers_relocated") else ""
    line += f"; {c['answers_not_found']:,} answers not in their context" if c.get("answers_not_found") else ""
    line += f" ({c['dropped_no_answer']:,} questions left out)" if c.get("dropped_no_answer") else ""
    line += f"; {c['truncated']:,} truncated to {cfg.max_len} tokens" if c["truncated"] else ""
    line += f"; {c['windowed']:,} read in several windows" if c["windowed"] else ""
    line += f"; {c['dropped_lengths_differ']:,} left out: right text of another length" \
        if c.get("dropped_lengths_differ") else ""
    line += (f"; {c['errors']:,} misspelt tokens, {c['errors_without_label']:,} of them with no token for the right "
             "text") if c.get("errors") else ""
    if c.get("boundaries"):
        line += (f"; {c['boundaries_inside_token']:,} of {c['boundaries']:,} entity/answer boundaries fall "
                 f"inside a {'word' if export.model.embedding == 'word' else 'token'}")
    return line


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _device(cfg: FinetuneConfig) -> torch.device:
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def _optimizer(cfg: FinetuneConfig, model: FinetuneModel, steps: int) -> tuple[torch.optim.Optimizer, Any]:
    opt = adamw(model.trainable().values(), cfg.lr, cfg.weight_decay, fused=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_decay(max(1, int(cfg.warmup * steps)), steps))
    return opt, sched


def run_seed(run: PreparedTask, seed: int, out: Path) -> dict[str, Any]:
    """Fine-tune once from ``seed`` (head init, dropout, batch order), keep the best dev epoch, predict every
    split and write ``out``'s metrics.json, predictions and submission file; return the metrics."""
    t0 = time.perf_counter()
    _seed_everything(seed)
    cfg, export, kind, data, encoded, counts = run.cfg, run.export, run.kind, run.data, run.encoded, run.counts
    device = _device(cfg)
    spec = kind.spec
    model = FinetuneModel(kind.head(export.folder, cfg.pooling), cfg.mode, cfg.adapter_size,
                          cfg.freeze_fusion_nets).to(device)
    trainable, total = model.counts()
    print(f"seed {seed}: {trainable:,} trainable of {total:,} parameters ({trainable / total:.2%}, mode {cfg.mode})")
    train = encoded["train"].features
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    opt, sched = _optimizer(cfg, model, cfg.epochs * steps_per_epoch)
    order = torch.Generator().manual_seed(seed)
    pad = export.vocab.pad_id
    key = kind.main
    per_batch = labelled_per_batch(train, cfg.batch_size)
    best, best_state, history = -1.0, None, []
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        losses = []
        for rows in epoch_batches(cfg, train, order):
            batch = to_device(collate([train[j] for j in rows], pad), device)
            losses.append(train_step(model, opt, batch, per_batch, cfg.grad_clip))
            sched.step()
        dev = kind.score(data["dev"], predict(cfg, model, kind, data["dev"], encoded["dev"], pad, device))
        history.append({"epoch": epoch, "train_loss": torch.stack(losses).double().mean().item() if losses else None,
                        "dev": dev})
        print(f"  epoch {epoch}: train loss {history[-1]['train_loss']:.4f}, dev {key} {dev[key]:.4f}")
        if dev[key] > best:
            best = dev[key]
            best_state = {k: p.detach().clone() for k, p in model.trainable().items()}
    if best_state is not None:
        model.load_state_dict(best_state, strict=False)
    best_epoch = max(history, key=lambda h: h["dev"][key])["epoch"] if history else 0

    results: dict[str, Any] = {}
    preds: dict[str, list] = {}
    for split in (s for s in data if s != "train"):  # dev, test and the robustness sets
        if data[split] is None:
            continue
        preds[split] = predict(cfg, model, kind, data[split], encoded[split], pad, device)
        if kind.labelled(data[split]):
            results[split] = kind.score(data[split], preds[split])
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / PREDICTIONS, "".join(
        json.dumps({"split": split, "id": ex.id, "prediction": p, "gold": kind.gold(ex)}, ensure_ascii=False) + "\n"
        for split, pred in preds.items() for ex, p in zip(data[split], pred)))
    if "test" in preds:
        kind.submit(data["test"], preds["test"], out / spec.submission)
    metrics = {"task": spec.name, "seed": seed, "mode": cfg.mode, "embedding": export.model.embedding,
               "model": str(export.folder), "metric": key, **results,
               "best_epoch": best_epoch, "history": history, "trainable_params": trainable, "total_params": total,
               "wall_s": round(time.perf_counter() - t0, 2), "encoding": counts, "text": to_dict(export.text),
               "truncated": sum(counts[s]["truncated"] for s in SPLITS if s in counts)}  # not the robustness copies
    write_json(out / SEED_METRICS, metrics)
    return metrics


def train_step(model: FinetuneModel, opt: torch.optim.Optimizer, batch: dict[str, torch.Tensor],
               per_batch: float | None, grad_clip: float) -> torch.Tensor:
    """One optimizer step on ``batch``; returns the loss, detached and left on the device (reading it every step
    would wait for the device)."""
    loss = training_loss(model, batch, per_batch)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.trainable().values(), grad_clip)
    opt.step()
    return loss.detach()


def training_loss(model: FinetuneModel, batch: dict[str, torch.Tensor], per_batch: float | None) -> torch.Tensor:
    """The loss a training step minimises: the model's, or for a token task (``per_batch``, from
    ``labelled_per_batch``) the batch's summed token losses over the epoch's mean labelled tokens a batch."""
    _, loss = model(batch)
    return loss * (batch["labels"] != IGNORE).sum() / per_batch if per_batch else loss


def labelled_per_batch(train: list[Feature], batch_size: int) -> float | None:
    """For a task labelled token by token: the labelled tokens of an epoch over its batches of ``batch_size``
    inputs (the last one may be short). The model's loss is
    the mean over the batch's labelled tokens, which weighs a token of a batch of short inputs several times one of
    long inputs; batches of one length (``length_groups``) then cost msra_ner's pretrained models 0.02-0.04 F1.
    Scaled by labelled / this, every labelled token of the epoch weighs the same however the batches fall
    (docs/learning.md §12). None for a task with one label per input."""
    if not train or not isinstance(train[0].label, list):
        return None
    return sum(label != IGNORE for f in train for label in f.label) / math.ceil(len(train) / batch_size)


def epoch_batches(cfg: FinetuneConfig, train: list[Feature], order: torch.Generator) -> list[list[int]]:
    """One epoch's training batches, as indices into ``train``, in the order drawn from ``order``."""
    if cfg.length_groups:
        return length_grouped([len(f.input_ids) for f in train], cfg.batch_size, order, cfg.length_groups)
    perm = torch.randperm(len(train), generator=order).tolist()
    return [perm[i:i + cfg.batch_size] for i in range(0, len(perm), cfg.batch_size)]


@torch.no_grad()
def predict(cfg: FinetuneConfig, model: FinetuneModel, kind: Kind, examples: list[Example], enc: TaskFeatures,
            pad: int, device: torch.device) -> list:
    """One prediction per example, as its kind decodes the logits of the example's features."""
    model.eval()
    feats = enc.features
    by_length = sorted(range(len(feats)), key=lambda i: len(feats[i].input_ids))  # batches with little padding
    logits: dict[int, torch.Tensor] = {}
    for i in range(0, len(feats), cfg.eval_batch_size):
        rows = by_length[i:i + cfg.eval_batch_size]
        batch = collate([feats[j] for j in rows], pad)
        batch = to_device({k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids",
                                                                   "pinyin_ids")}, device)
        out, _ = model(batch)
        for j, row in zip(rows, kind.reduce(out.float()).cpu()):  # one transfer a batch, not one a row
            logits[j] = row
    return kind.decode(cfg, examples, feats, [logits[i] for i in range(len(feats))])
