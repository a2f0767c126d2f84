"""Canonicalizing a whole zoo file."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from symmerge.canon.core import make_canonicalizer
from symmerge.zoo.io import load_zoo, save_zoo


@dataclass(frozen=True)
class CanonicalizeReport:
    """Summary of :func:`canonicalize_zoo`."""

    out: Path
    method: str
    networks: int
    seconds: float
    exact: bool

    @property
    def networks_per_second(self) -> float:
        return self.networks / self.seconds if self.seconds > 0 else float("inf")


def canonicalize_zoo(
    zoo: str | os.PathLike[str],
    out: str | os.PathLike[str],
    method: str = "sort",
    *,
    run: str | os.PathLike[str] | None = None,
    batch_size: int = 1024,
    restarts: int = 0,
    max_iter: int = 100,
    seed: int = 0,
    strategy: str = "forward",
) -> CanonicalizeReport:
    """Canonicalize every network of ``zoo`` into a new zoo file ``out``.

    A zoo holding NaN or Inf parameters is refused. Labels and image indices are kept.
    Per-network metrics are kept for exact methods (the functions are unchanged) and
    dropped for ``ae`` (they describe the original networks, not the reconstructions).
    """
    z = load_zoo(zoo)
    canon = make_canonicalizer(
        method, z.spec, run=run, batch_size=batch_size, restarts=restarts, max_iter=max_iter,
        seed=seed, strategy=strategy, holder=f"zoo {z.path}",
    )
    z.check_finite()
    params = z.params.float()
    t0 = time.perf_counter()
    with torch.no_grad():
        canonical = canon(params)
    seconds = time.perf_counter() - t0
    metrics = {m: z.metric(m) for m in z.metric_names} if canon.exact else z.split_metrics()
    provenance = {
        **{k: v for k, v in z.provenance.items() if k != "symmerge_version"},
        "canonicalized_from": str(z.path),
        "canonicalization": method,
        **({"lift_strategy": strategy} if method == "ae-lift" else {}),
        **({"run": str(run)} if run is not None else {}),
    }
    save_zoo(out, z.spec, canonical, z.labels, image_index=z.image_index, metrics=metrics,
             provenance=provenance)
    return CanonicalizeReport(Path(out), method, len(z), seconds, canon.exact)
