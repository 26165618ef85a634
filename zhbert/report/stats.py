"""Is a difference between two variants larger than the seed spread? A paired t-test over seeds.

The same seeds fine-tune every variant, so seed s of one variant and seed s of the reference share the head
initialisation, dropout and batch order: the per-seed differences cancel that shared noise, and a paired test
on them is the honest check with as few as three seeds. No scipy: for the integer degrees of freedom a t-test
has, Student's t CDF is a finite trigonometric series (Abramowitz & Stegun, Handbook of Mathematical
Functions, 26.7.3 and 26.7.4), exact up to floating point.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

ALPHA = 0.05
"""Two-sided level of the test and of the confidence interval (95%)."""


def t_within(t: float, dof: int) -> float:
    """P(|T| ≤ t) for Student's T with ``dof`` degrees of freedom (A&S 26.7.3 odd, 26.7.4 even)."""
    if dof < 1:
        raise ValueError(f"degrees of freedom must be ≥ 1, not {dof}")
    t = abs(t)
    if math.isinf(t):
        return 1.0
    theta = math.atan(t / math.sqrt(dof))
    c2 = math.cos(theta) ** 2
    if dof % 2:  # 2/π (θ + sin θ (cos θ + 2/3 cos³θ + … + 2·4⋯(ν−3) / 1·3⋯(ν−2) cos^(ν−2) θ))
        term, series = math.cos(theta), 0.0
        for k in range(1, dof - 1, 2):  # k = 1, 3, …, ν−2
            series += term
            term *= c2 * (k + 1) / (k + 2)
        return 2 / math.pi * (theta + math.sin(theta) * series)
    term, series = 1.0, 0.0  # sin θ (1 + 1/2 cos²θ + 1·3/2·4 cos⁴θ + … + 1·3⋯(ν−3) / 2·4⋯(ν−2) cos^(ν−2) θ)
    for k in range(0, dof - 1, 2):  # k = 0, 2, …, ν−2
        series += term
        term *= c2 * (k + 1) / (k + 2)
    return math.sin(theta) * series


def t_pvalue(t: float, dof: int) -> float:
    """Two-sided p-value of a t statistic."""
    return max(0.0, 1.0 - t_within(t, dof))


def t_quantile(p: float, dof: int) -> float:
    """The t with P(T ≤ t) = p (p > 0.5), by bisection on the CDF: 4.303 for p = 0.975 and 2 d.o.f."""
    if not 0.5 < p < 1:
        raise ValueError(f"p must be in (0.5, 1), not {p}")
    within = 2 * p - 1
    lo, hi = 0.0, 1.0
    while t_within(hi, dof) < within:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_within(mid, dof) < within else (lo, mid)
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2


@dataclass
class PairedTest:
    """A paired t-test of ``variant − reference`` over the seeds both have."""

    n: int
    """Seeds paired."""
    diff: float
    """Mean of the per-seed differences (= difference of the means)."""
    sd: float
    """Standard deviation of the per-seed differences (n − 1 in the denominator)."""
    t: float | None
    """The t statistic; None with one seed, inf when every seed moved by the same nonzero amount."""
    p: float | None
    """Two-sided p-value; None with one seed."""
    ci95: tuple[float, float] | None
    """95% confidence interval of the mean difference; None with one seed."""

    @property
    def distinguishable(self) -> bool:
        """True when the difference is larger than the seed spread at the 95% level."""
        return self.p is not None and self.p < ALPHA


def paired_t(variant: list[float], reference: list[float]) -> PairedTest:
    """Paired t-test of two lists of scores, element i of each from the same seed."""
    if len(variant) != len(reference) or not variant:
        raise ValueError(f"need the same nonzero number of seeds on both sides, not {len(variant)} and "
                         f"{len(reference)}")
    d = [v - r for v, r in zip(variant, reference)]
    n, mean = len(d), statistics.fmean(d)
    if n == 1:
        return PairedTest(1, mean, 0.0, None, None, None)
    sd = statistics.stdev(d)
    se = sd / math.sqrt(n)
    if se == 0:
        t = 0.0 if mean == 0 else math.copysign(math.inf, mean)
    else:
        t = mean / se
    half = t_quantile(1 - ALPHA / 2, n - 1) * se
    return PairedTest(n, mean, sd, t, t_pvalue(t, n - 1), (mean - half, mean + half))
