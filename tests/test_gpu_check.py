"""The one-call GPU check (benchmarks/gpu_check.py) in its CPU mode, on the corpus slice the tests share: every stage
it runs on a GPU runs here at a tiny size, so the script cannot rot while no GPU is lent."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from zhbert.finetune.bundled import build_tasks

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checked(small_corpus, tmp_path_factory) -> tuple[dict, str]:
    """One CPU run of the whole check: its gpu_check.json and what it printed."""
    tmp = tmp_path_factory.mktemp("gpu-check")
    build_tasks(tmp / "tasks", names=["sentiment"])
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--cpu", "--corpus",
                           str(small_corpus), "--tasks", str(tmp / "tasks"), "--out", str(tmp / "out"), "--work",
                           str(tmp / "work")], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return json.loads((tmp / "out" / "gpu_check.json").read_text()), done.stdout


@pytest.mark.slow
def test_every_stage_runs_and_the_summary_is_printed_and_written(checked):
    results, printed = checked
    stages = {"preflight", "data", "bench", "resume", "finetune", "tests",
              "pretrain char-zero1", "pretrain word-zero1", "pretrain fusion-zero3"}
    assert stages <= set(results) and all(results[s]["ok"] for s in stages)
    assert results["size"]["name"] == "cpu" and "GPU check summary" in printed
    assert all(s in printed for s in stages)  # one line per stage in the table


@pytest.mark.slow
def test_bench_times_each_kind_against_hf_at_each_length(checked):
    bench = checked[0]["bench"]
    assert {(r["seq"], r["model"]) for r in bench["rows"]} == {
        (seq, m) for seq in (32, 64) for m in ("char", "word", "fusion", "hf-21128", "hf-51128")}
    assert all(r["tokens_per_s"] > 0 and r["flops_per_token"] > 0 for r in bench["rows"])
    assert bench["peak_tflops"] is None and all(r["mfu"] is None for r in bench["rows"])  # no peak known for a CPU
    assert set(bench["ratios"]) == {f"seq{s} {k} / HF tokens/s" for s in (32, 64) for k in ("char", "word", "fusion")
                                    } | {f"seq{s} fusion / char step time" for s in (32, 64)}


@pytest.mark.slow
def test_pretraining_runs_and_the_killed_run_resumes_exactly(checked):
    results = checked[0]
    for run in ("char-zero1", "word-zero1", "fusion-zero3"):
        r = results[f"pretrain {run}"]
        assert r["ranks_agree"] and r["tokens_per_s"] > 0 and r["eval_mlm_loss"] > 0
    resume = results["resume"]
    assert 0 < resume["killed_after_step"] < 12 and resume["compared_steps"] > 0
    assert resume["exact"] and resume["max_rel_diff"] == 0  # on a CPU, bit for bit


@pytest.mark.slow
def test_finetune_and_the_test_selection_report_results(checked):
    results = checked[0]
    assert results["finetune"]["metric"] == "accuracy" and 0 <= results["finetune"]["test"] <= 1
    assert re.fullmatch(r"\d+ passed in [\d.]+s", results["tests"]["summary"])  # none failed
    assert results["data"]["sequences"] > 0 and 0 < results["data"]["real_token_share"] <= 1
