"""Installed as a package: the wheel carries everything the code reads (configs/ and fonts/ ship as zhbert/configs
and zhbert/fonts), so zhbert works from another folder with no source tree in reach.

The wheel is built from a copy of the sources and installed with `pip install --no-deps --target` (a fresh venv
would pull torch, gigabytes); this venv's python then runs it with that folder first on PYTHONPATH, ahead of the
editable install."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The wheel of this checkout, installed into a folder of its own."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    for name in ("zhbert", "configs", "fonts"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(src), "-w", str(tmp / "dist")],
                   check=True, capture_output=True)
    wheel = next((tmp / "dist").glob("zhbert-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(tmp / "site"), str(wheel)], check=True,
                   capture_output=True)
    return tmp / "site"


def installed(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(site)}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)


def test_the_wheel_holds_every_module(site):
    ours = {p.relative_to(ROOT).as_posix() for p in (ROOT / "zhbert").rglob("*.py")}
    assert ours <= {p.relative_to(site).as_posix() for p in (site / "zhbert").rglob("*.py")}
    for name in ("pinyin_context.npz", "pinyin_context.LICENSE.txt"):  # the pinyin reader prep uses by default
        assert (site / "zhbert" / "data" / name).read_bytes() == (ROOT / "zhbert" / "data" / name).read_bytes()


def test_tasks_glyphs_and_the_demo_config_from_another_folder(site, tmp_path):
    done = installed(site, tmp_path, sys.executable, "-c", "import zhbert; print(zhbert.__file__)")
    assert Path(done.stdout.strip()).is_relative_to(site), done.stderr  # the wheel, not the checkout

    done = installed(site, tmp_path, str(site / "bin" / "zhbert"), "tasks", "list")
    assert done.returncode == 0, done.stderr
    listed = {line.split()[0] for line in done.stdout.splitlines()}
    assert {"afqmc", "tnews", "cmrc2018", "sentiment", "msra_ner"} <= listed

    done = installed(site, tmp_path, str(site / "bin" / "zhbert"), "glyphs", "preview", "--chars", "中国龍",
                     "--out", "preview.png")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    code = """
from pathlib import Path
from zhbert.compare import _write_pretrain_toml
from zhbert.layout import RunDir
from zhbert.config import load
from zhbert.demo import demo_compare_config
from zhbert.train.config import PretrainConfig
cfg = demo_compare_config(Path("data/demo"))
for v in cfg.variants:
    pretrain = load(PretrainConfig, _write_pretrain_toml(cfg, v, RunDir(Path("runs") / v.name / "pretrain")))
    print(v.name, pretrain.model.embedding, pretrain.steps, pretrain.data.shards)
"""
    done = installed(site, tmp_path, sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == [f"char char 800 {tmp_path / 'data/demo/shards'}",
                                           f"fusion fusion 800 {tmp_path / 'data/demo/shards'}"]
