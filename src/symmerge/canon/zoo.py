"""Canonicalizing a whole zoo file."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from symmerge.canon.core import make_canonicalizer
from symmerge.errors import SymmergeError
from symmerge.specs.siren import SirenSpec
from symmerge.symmetry.phase import canonicalize_phase
from symmerge.utils.device import resolve_device
from symmerge.zoo.io import Zoo, load_zoo, save_zoo


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
    device: str | torch.device | None = "auto",
) -> CanonicalizeReport:
    """Canonicalize every network of ``zoo`` into a new zoo file ``out``, computing on
    ``device`` (``auto``: a CUDA GPU when there is one, see
    :func:`symmerge.utils.device.resolve_device`).

    A zoo holding NaN or Inf parameters is refused. Labels and image indices are kept.
    Per-network metrics are kept for exact methods (the functions are unchanged) and
    dropped for ``ae`` (they describe the original networks, not the reconstructions).
    """
    dev = resolve_device(device)
    z = load_zoo(zoo)
    canon = make_canonicalizer(
        method, z.spec, run=run, batch_size=batch_size, restarts=restarts, max_iter=max_iter,
        seed=seed, strategy=strategy, holder=f"zoo {z.path}", device=dev,
    )
    z.check_finite()
    params = z.params.float()
    t0 = time.perf_counter()
    with torch.no_grad():
        canonical = canon(params)
    seconds = time.perf_counter() - t0
    metrics = {m: z.metric(m) for m in z.metric_names} if canon.exact else z.split_metrics()
    _save_derived(z, out, canonical, metrics, {
        "canonicalized_from": str(z.path),
        "canonicalization": method,
        **({"lift_strategy": strategy} if method == "ae-lift" else {}),
        **({"run": str(run)} if run is not None else {}),
    })
    return CanonicalizeReport(Path(out), method, len(z), seconds, canon.exact)


def canonicalize_phase_zoo(
    zoo: str | os.PathLike[str], out: str | os.PathLike[str], *, batch_size: int = 4096
) -> Path:
    """Phase-canonicalize every network of a SIREN zoo into a new zoo file ``out``.

    :func:`symmerge.symmetry.canonicalize_phase` in batches of ``batch_size``: every
    function is preserved and every hidden ``w0 * b`` ends in ``[0, pi/2]``. Labels,
    image indices, the stored split and every metric are kept.
    """
    z = load_zoo(zoo)
    if not isinstance(z.spec, SirenSpec):
        raise SymmergeError(
            f"zoo {z.path} holds {z.spec.describe()} networks; phase canonicalization "
            "applies to SIREN zoos only"
        )
    if batch_size < 1:
        raise SymmergeError(f"batch_size must be >= 1, got {batch_size}")
    z.check_finite()
    with torch.no_grad():
        canonical = torch.cat([canonicalize_phase(z.spec, chunk)
                               for chunk in z.params.split(batch_size)])
    metrics = {m: z.metric(m) for m in z.metric_names}
    return _save_derived(z, out, canonical, metrics, {"phase_canonicalized_from": str(z.path)})


def _save_derived(
    z: Zoo, out: str | os.PathLike[str], params: Tensor, metrics: dict[str, Tensor],
    provenance: dict[str, Any],
) -> Path:
    """Write ``params`` as a zoo derived from ``z``: its spec, labels, image indices, stored
    split and provenance (plus ``provenance``)."""
    return save_zoo(
        out, z.spec, params, z.labels, image_index=z.image_index, split=z.stored_split,
        metrics=metrics,
        provenance={**{k: v for k, v in z.provenance.items() if k != "symmerge_version"},
                    **provenance},
    )
