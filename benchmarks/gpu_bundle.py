"""Fill `.gpucheck/`, the git-ignored folder that the one-call GPU check (benchmarks/gpu_check.py) carries to a
machine with no internet: wheels of the packages its image lacks, a slice of the demo corpus, the bundled
`sentiment` task.

    .venv/bin/python benchmarks/gpu_bundle.py            # or: make gpu-bundle

The GPU image (Python 3.12, x86-64) has torch with CUDA, transformers, tokenizers, safetensors, pillow, fonttools,
pyarrow, numpy, pandas, tqdm, ninja, psutil, py-cpuinfo, msgpack, einops, xxhash, fsspec, huggingface-hub and
pytest (/work/.library/device/KINDS.md lists them). The wheels below are the rest of what zhbert and DeepSpeed
import, each at the version installed here (the one the tests pass with). jieba is left out (19 MB): zhbert
segments with rjieba and imports jieba only for `--segment.backend=jieba` and for building font subsets.
DeepSpeed is an sdist on PyPI; it is built here into a pure-Python wheel (`DS_BUILD_OPS=0`: no op compiled,
DeepSpeed compiles the ones it needs at first use), so nothing is compiled on the GPU machine to install it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEELS = ("hjson", "pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions",
          "rjieba", "pypinyin", "opencc", "datasets", "dill", "multiprocess")
"""Downloaded as Python 3.12 manylinux x86-64 (or pure-Python) wheels, without their dependencies."""
BUILT = ("deepspeed",)
"""No wheel on PyPI: built here from the sdist against this venv's torch, without build isolation."""
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")
SLICE = {"peoples_daily": 1500, "reviews": 800, "msra_news": 1500, "xinhua_idioms": 400, "xinhua_dictionary": 200}
"""Documents kept per source, from the start of each: the slice tests/conftest.py's small_corpus takes, so the
carried slice also stands in for the corpus in the tests run there (ZHBERT_TEST_CORPUS)."""


def pinned(names: tuple[str, ...]) -> list[str]:
    return [f"{name}=={version(name)}" for name in names]


def download_wheels(out: Path) -> None:
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
                    "3.12", "--implementation", "cp", "--abi", "cp312", *platforms, "-d", str(out), *pinned(WHEELS)],
                   check=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out),
                    *pinned(BUILT)], check=True, env=os.environ | {"DS_BUILD_OPS": "0"})
    built = sorted(out.glob("deepspeed-*.whl"))
    if len(built) != 1 or not built[0].name.endswith("-py3-none-any.whl"):
        sys.exit(f"expected one pure-Python deepspeed wheel in {out}, found {[p.name for p in built]}")


def write_corpus(out: Path) -> None:
    """The first documents of each source of the demo corpus (`zhbert corpus fetch`), as JSON lines."""
    from zhbert.data.sources import fetch_corpus

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fetch_corpus(Path(tmp), names=list(SLICE))
        for source, n in SLICE.items():
            with open(Path(tmp) / f"{source}.jsonl", encoding="utf-8") as f:
                lines = [line for _, line in zip(range(n), f)]
            (out / f"{source}.jsonl").write_text("".join(lines), encoding="utf-8")


def write_tasks(out: Path) -> None:
    from zhbert.finetune.bundled import build_tasks

    build_tasks(out, names=["sentiment"])


def size_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / ".gpucheck")
    args = ap.parse_args()
    if (args.out / "wheels").exists():
        shutil.rmtree(args.out / "wheels")  # one version of each wheel: two would stop the whole install there
    download_wheels(args.out / "wheels")
    write_corpus(args.out / "corpus")
    write_tasks(args.out / "tasks")
    for part in ("wheels", "corpus", "tasks"):
        print(f"{args.out / part}: {size_mib(args.out / part):.1f} MiB")
    print(f"carry {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}: "
          f"{size_mib(args.out):.1f} MiB (the working tree and carried paths together may be 64 MiB)")


if __name__ == "__main__":
    main()
