"""Metrics as JSON lines (one record per line, read by `zhbert compare` and by people with jq) and as
TensorBoard events. Only rank 0 writes; the records are already reduced over ranks."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from zhbert.layout import METRICS, TENSORBOARD


class MetricsLog:
    """Append-only: a resumed run adds a ``{"kind": "resume"}`` record and goes on, so the file tells the
    whole story; `read_metrics` keeps the last record of each (kind, step)."""

    def __init__(self, folder: Path, enabled: bool, tensorboard: bool):
        self.enabled = enabled
        self.path = folder / METRICS
        self.writer = None
        if enabled:
            folder.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(folder / TENSORBOARD))

    def write(self, kind: str, step: int, **values: Any) -> None:
        if not self.enabled:
            return
        record = {"kind": kind, "step": step, "time": round(time.time(), 3), **values}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        if self.writer is not None:
            for name, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(f"{kind}/{name}", value, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics(folder: str | Path, kind: str) -> list[dict[str, Any]]:
    """The records of ``kind`` in step order, the last one written for each step (a resumed run repeats
    the steps after its checkpoint)."""
    path = Path(folder) / METRICS
    by_step: dict[int, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["kind"] == kind:
            by_step[record["step"]] = record
    return [by_step[s] for s in sorted(by_step)]
