"""Canonicalizing a whole zoo."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from symmerge.align.matching import MatchOptions
from symmerge.canon.core import make_canonicalizer
from symmerge.errors import SymmergeError
from symmerge.models.runs import RunLike, describe_run
from symmerge.specs.siren import SirenSpec
from symmerge.symmetry.phase import canonicalize_phase
from symmerge.utils.device import resolve_device
from symmerge.zoo.io import Zoo, as_zoo


@dataclass(frozen=True)
class CanonicalizeReport:
    """Summary of :func:`canonicalize_zoo`: the canonical zoo (in memory) and the file it
    was written to (None: not written)."""

    zoo: Zoo
    out: Path | None
    method: str
    networks: int
    seconds: float
    exact: bool

    @property
    def networks_per_second(self) -> float:
        return self.networks / self.seconds if self.seconds > 0 else float("inf")


def canonicalize_zoo(
    zoo: str | os.PathLike[str] | Zoo,
    out: str | os.PathLike[str] | None = None,
    method: str | None = None,
    *,
    run: RunLike | None = None,
    batch_size: int = 1024,
    matching: MatchOptions = MatchOptions(),
    device: str | torch.device | None = "auto",
) -> CanonicalizeReport:
    """Canonicalize every network of ``zoo`` (a zoo file or a :class:`Zoo`) with
    ``method`` (default: the registry's default, the exact ``sort``), computing on
    ``device`` (``auto``: a CUDA GPU when there is one, see
    :func:`symmerge.utils.device.resolve_device`); the canonical zoo is written to ``out``
    if given.

    A zoo holding NaN or Inf parameters is refused. Labels and image indices are kept.
    Per-network metrics are kept for exact methods (the functions are unchanged) and
    dropped for lossy ones (they describe the original networks, not the reconstructions).
    ``matching`` sets the weight matching of the methods that match.
    """
    from symmerge.methods import default_method

    method = method or default_method("canonicalize")
    dev = resolve_device(device)
    z = as_zoo(zoo)
    canon = make_canonicalizer(method, z.spec, run=run, batch_size=batch_size,
                               matching=matching, holder=f"zoo {z.name}", device=dev)
    z.check_finite()
    params = z.params.float()
    t0 = time.perf_counter()
    with torch.no_grad():
        canonical = canon(params)
    seconds = time.perf_counter() - t0
    metrics = {m: z.metric(m) for m in z.metric_names} if canon.exact else z.split_metrics()
    result = _derived(z, canonical, metrics, {
        "canonicalized_from": z.name, "canonicalization": method, **canon.provenance(),
        **({"run": describe_run(run)} if run is not None else {}),
    })
    if out is not None:
        result.save(out)
    return CanonicalizeReport(result, None if out is None else Path(out), method, len(z),
                              seconds, canon.exact)


def canonicalize_phase_zoo(
    zoo: str | os.PathLike[str] | Zoo, out: str | os.PathLike[str], *, batch_size: int = 4096
) -> Path:
    """Phase-canonicalize every network of a SIREN zoo into a new zoo file ``out``.

    :func:`symmerge.symmetry.canonicalize_phase` in batches of ``batch_size``: every
    function is preserved and every hidden ``w0 * b`` ends in ``[0, pi/2]``. Labels,
    image indices, the stored split and every metric are kept.
    """
    z = as_zoo(zoo)
    if not isinstance(z.spec, SirenSpec):
        raise SymmergeError(
            f"zoo {z.name} holds {z.spec.describe()} networks; phase canonicalization "
            "applies to SIREN zoos only"
        )
    if batch_size < 1:
        raise SymmergeError(f"batch_size must be >= 1, got {batch_size}")
    z.check_finite()
    with torch.no_grad():
        canonical = torch.cat([canonicalize_phase(z.spec, chunk)
                               for chunk in z.params.split(batch_size)])
    metrics = {m: z.metric(m) for m in z.metric_names}
    return _derived(z, canonical, metrics, {"phase_canonicalized_from": z.name}).save(out)


def _derived(z: Zoo, params: Tensor, metrics: dict[str, Tensor], provenance: dict[str, Any]
             ) -> Zoo:
    """A zoo derived from ``z``: ``params`` with its spec, labels, image indices, stored split
    and provenance (plus ``provenance``), in memory."""
    return Zoo.from_tensors(
        params, z.spec, z.labels, image_index=z.image_index, metrics=metrics,
        provenance={**{k: v for k, v in z.provenance.items() if k != "symmerge_version"},
                    **provenance},
        split=z.stored_split,
    )
