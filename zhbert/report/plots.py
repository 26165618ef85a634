"""The report's two figures, drawn on bare matplotlib Figures (Agg canvas): no display, no pyplot global state.

Characters seen is the x axis of the pretraining plot because it is the one budget char and word models
share: a word token stands for several characters, so "tokens seen" would favour neither fairly.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from zhbert.report.collect import Runs

PRETRAIN_PNG = "pretrain_loss.png"
DOWNSTREAM_PNG = "downstream.png"


def plot_pretraining(runs: Runs, path: Path) -> Path:
    """Training MLM bits per character (left; no sentence-pair loss) and held-out bits per character (right: whole
    words masked, solid; single characters, dashed) against characters seen. Bits per character, not loss per
    token: a word token stands for several characters, so per-token losses of char and word models differ in kind."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, v in enumerate(runs.variants):
        pre, colour = runs.pretraining[v.name], colours[i % len(colours)]
        left.plot(*zip(*pre.train_curve), label=v.name, linewidth=1.2, color=colour)
        chars, words, single = zip(*pre.eval_curve)
        right.plot(chars, words, marker="o", markersize=3, label=f"{v.name}, whole words", linewidth=1.2, color=colour)
        if all(x is not None for x in single):
            right.plot(chars, single, marker="x", markersize=3, linestyle="--", linewidth=1.0, color=colour,
                       label=f"{v.name}, single chars")
    left.set(title="training MLM, bits per character", xlabel="characters seen", ylabel="bits per character")
    right.set(title="held-out, bits per character (same masks for all)", xlabel="characters seen",
              ylabel="bits per character")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{runs.name}: pretraining")
    fig.savefig(path, dpi=110)
    return path


def plot_downstream(runs: Runs, path: Path) -> Path:
    """One panel per task: per variant the mean over seeds with ± one std error bars, and each seed's score beside
    it; points rather than bars, so that the y axis can zoom to where the differences are without misleading
    with bar areas. The dashed line is the reference's mean; the no-pretraining controls come last, in grey."""
    n = len(runs.tasks)
    fig = Figure(figsize=(max(4.0, 3.4 * n), 4.4), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)
    names = [v.name for v in runs.variants] + runs.controls
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, task in zip(axes[0], runs.tasks):
        by_variant = runs.finetune[task]
        ax.axhline(by_variant[runs.reference].mean, color="grey", linestyle="--", linewidth=0.8)
        for i, v in enumerate(names):
            s = by_variant[v]
            colour = "grey" if v in runs.controls else colours[i % len(colours)]
            ax.errorbar(i, s.mean, yerr=s.std, fmt="o", markersize=7, capsize=5, color=colour)
            ax.scatter([i + 0.18] * len(s.scores), list(s.scores.values()), facecolor="none", edgecolor=colour, s=16)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_title(f"{task} ({runs.split(task)} {runs.metric(task)}, {len(runs.seeds[task])} seeds)", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{runs.name}: downstream, mean ± std over seeds (open dots: seeds)", fontsize=10)
    fig.savefig(path, dpi=110)
    return path
