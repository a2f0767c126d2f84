"""How many items a statistic needs before a report presents it as a finding.

Every statistic in a report states its n (pairs, networks, orbits, points). Below the
minimum of its kind (the constants here, defined once), the report says that the
number *cannot be judged at this size* (:data:`TOO_SMALL`) instead of presenting it
as a result, and the summary at the top of the report lists it. The minimums are
rules of thumb for a mean or a rank statistic to be more than its noise; their
reasons are in their docstrings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: the words every report uses for a statistic below its minimum n
TOO_SMALL = "cannot be judged at this size"

#: how tables and plots name the spread of their error bars and bands
BAND_NAMES = {"std": "std", "sem": "SEM"}

MIN_PAIRS = 10
"""Fewest pairs for a mean barrier (and its ratio to the reference method's) to be read
as a finding: below 10 a single pair moves the mean by a tenth or more of the spread,
and a paired comparison of two methods has fewer than 9 degrees of freedom (its
two-sided 95% t quantile is above 2.26, against 1.96 for many pairs)."""

MIN_NETWORKS = 10
"""Fewest networks for a statistic over networks: a Kendall tau (with n networks it
takes only n(n-1)/2 + 1 values, 3 networks: -1, -1/3, 1/3, 1; its spread under no
correlation, sqrt(2(2n+5) / (9n(n-1))), is 0.64 at n = 3 and 0.25 at n = 10) or a mean
accuracy or reconstruction error over networks."""

MIN_ORBITS = 3
"""Fewest orbits for a within / between orbit distance ratio: with 2 orbits the
between-orbit distances come from one pair of orbits, so the ratio says how far those
two networks are apart, not how orbits compare with unrelated networks."""

MIN_POINTS = 50
"""Fewest networks for a 5-fold cross-validated 5-NN label accuracy or a silhouette
score: below 50 a fold holds fewer than 10 networks (one per class of ten), so the
accuracy moves in steps of a tenth or more."""


@dataclass(frozen=True)
class Count:
    """The n of a statistic: ``n`` items of ``unit`` (plural, e.g. ``pairs``) and the
    ``minimum`` its kind needs (:data:`MIN_PAIRS`, ...)."""

    n: int
    unit: str
    minimum: int

    @property
    def judged(self) -> bool:
        """Whether ``n`` reaches the minimum: the statistic may be read as a finding."""
        return self.n >= self.minimum

    def __str__(self) -> str:
        """E.g. ``8 pairs``, ``1 network``."""
        unit = self.unit[:-1] if self.n == 1 and self.unit.endswith("s") else self.unit
        return f"{self.n} {unit}"

    def caveat(self, what: str) -> str:
        """``""`` when judged; else e.g. ``mean barrier over 8 pairs: cannot be judged at
        this size (at least 10 needed)``."""
        if self.judged:
            return ""
        return f"{what} over {self}: {TOO_SMALL} (at least {self.minimum} needed)"


@dataclass(frozen=True)
class Finding:
    """One line of a report's summary in plain words (Markdown), and what in it cannot be
    judged at this size (``too_small``: short names with their n; empty: all judged)."""

    text: str
    too_small: tuple[str, ...] = ()


def fmt(value: float, digits: int = 3) -> str:
    """A number for prose: ``digits`` significant digits, NaN as ``-``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}g}"


def summary_markdown(findings: Sequence[Finding]) -> str:
    """The ``## Summary`` section: a bullet per finding, then one line naming everything
    that cannot be judged at this size (or saying that nothing is too small)."""
    if not findings:
        return ""
    lines = ["## Summary", ""]
    lines += [f"- {f.text}" for f in findings]
    small = [s for f in findings for s in f.too_small]
    lines.append("")
    if small:
        lines.append("**Too small to judge at this size** (more pairs, networks or orbits "
                     "are needed before these numbers say anything): "
                     + "; ".join(small) + ".")
    else:
        lines.append("Every statistic above rests on enough pairs, networks or orbits to be "
                     "read as a finding (the minimums: `symmerge.experiments.evidence`).")
    return "\n".join(lines) + "\n"
