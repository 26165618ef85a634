"""The keyed step cache behind `zhbert demo`, the data build and `zhbert compare`: a step is redone only when the
key of its inputs changed or its outputs are gone (cramming's way of keying prepared data by its config)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from zhbert.files import read_json, write_json
from zhbert.layout import STEPS


class StepCache:
    """Remembers the key each finished step ran with, in ``<folder>/steps.json``."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / STEPS
        self.done = read_json(self.path) if self.path.exists() else {}

    def current(self, name: str, key: str | None, outputs: list[Path]) -> bool:
        """Whether ``name`` last ran with ``key`` and its outputs exist (key None: never; the step checks itself)."""
        return key is not None and self.done.get(name) == key and all(p.exists() for p in outputs)

    def mark(self, name: str, key: str | None) -> None:
        self.done[name] = key
        write_json(self.path, self.done)

    def run(self, name: str, key: str | None, outputs: list[Path], fn: Callable[[], object]) -> None:
        """Run ``fn`` unless it is current (see `current`)."""
        t = time.perf_counter()
        if self.current(name, key, outputs):
            print(f"── {name}: up to date")
            return
        print(f"── {name}")
        fn()
        self.mark(name, key)
        print(f"── {name}: done in {time.perf_counter() - t:.1f}s")
