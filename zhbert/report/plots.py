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
    """Training MLM loss (left) and held-out bits per character (right) against characters seen."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    for v in runs.variants:
        pre = runs.pretraining[v.name]
        left.plot(*zip(*pre.train_curve), label=v.name, linewidth=1.2)
        chars, _, bpc = zip(*pre.eval_curve)
        right.plot(chars, bpc, marker="o", markersize=3, label=v.name, linewidth=1.2)
    left.set(title="training MLM loss", xlabel="characters seen", ylabel="nats per masked token")
    right.set(title="held-out bits per character", xlabel="characters seen", ylabel="bits per character")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{runs.name}: pretraining")
    fig.savefig(path, dpi=110)
    return path


def plot_downstream(runs: Runs, path: Path) -> Path:
    """One panel per task: per variant the mean over seeds with ± one std error bars, and each seed's score beside
    it; points rather than bars, so that the y axis can zoom to where the differences are without misleading
    with bar areas. The dashed line is the reference's mean."""
    n = len(runs.tasks)
    fig = Figure(figsize=(max(4.0, 3.2 * n), 4.2), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)
    names = [v.name for v in runs.variants]
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, task in zip(axes[0], runs.tasks):
        by_variant = runs.finetune[task]
        ax.axhline(by_variant[runs.reference].mean, color="grey", linestyle="--", linewidth=0.8)
        for i, v in enumerate(names):
            s = by_variant[v]
            colour = colours[i % len(colours)]
            ax.errorbar(i, s.mean, yerr=s.std, fmt="o", markersize=7, capsize=5, color=colour)
            ax.scatter([i + 0.18] * len(s.scores), list(s.scores.values()), facecolor="none", edgecolor=colour, s=16)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_title(f"{task} ({runs.split(task)} {runs.metric(task)})", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{runs.name}: downstream, mean ± std over seeds {runs.seeds} (open dots: seeds)", fontsize=10)
    fig.savefig(path, dpi=110)
    return path
