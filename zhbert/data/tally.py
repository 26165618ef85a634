"""Counters that make every dropped record traceable: a count per reason and a few example locations."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

EXAMPLES_PER_REASON = 5


class Tally:
    """`documents_in = documents_kept + sum(dropped.*)` is the invariant the manifests are checked on."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: defaultdict[str, list[str]] = defaultdict(list)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] += n

    def drop(self, reason: str, where: str) -> None:
        self.counts["dropped." + reason] += 1
        if len(self.examples[reason]) < EXAMPLES_PER_REASON:
            self.examples[reason].append(where)

    @property
    def dropped(self) -> dict[str, int]:
        return {k.removeprefix("dropped."): v for k, v in sorted(self.counts.items()) if k.startswith("dropped.")}

    def merge(self, other: Tally | dict[str, Any]) -> Tally:
        data = other.to_dict() if isinstance(other, Tally) else other
        self.counts.update(data["counts"])
        for reason, where in data["examples"].items():
            self.examples[reason].extend(where[: EXAMPLES_PER_REASON - len(self.examples[reason])])
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"counts": dict(sorted(self.counts.items())), "examples": dict(sorted(self.examples.items()))}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tally:
        return cls().merge(data)
