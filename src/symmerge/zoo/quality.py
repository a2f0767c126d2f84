"""Which networks of a zoo failed to train, by one documented rule.

A network is **failed** when any of these holds:

* its builder stopped it at non-finite values (the metric ``diverged`` is 1);
* its parameters hold NaN or Inf;
* it is a classifier (a zoo with an accuracy metric, :data:`ACCURACY_METRICS`, and a
  spec with two or more outputs) whose accuracy is at most chance (one over the number
  of classes) plus :data:`CHANCE_MARGIN`.

A CNN zoo built by :func:`symmerge.zoo.train_cnn.train_cnn_zoo` stores the mark as the
metric ``failed`` (1.0 failed, 0.0 usable); for zoos without it (built before the mark
existed, imported, derived) :func:`failed_networks` derives it from the same rule, so
every zoo file keeps working. ``symmerge zoo info`` counts failed networks and the
experiments leave them out of their pairs, orbits and maps (their reports say how many).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from symmerge.specs.base import WeightSpaceSpec
from symmerge.zoo.io import Zoo

#: the zoo metric that stores the mark (1.0: failed, 0.0: usable)
FAILED_METRIC = "failed"
#: a classifier whose accuracy is at most ``1 / classes + CHANCE_MARGIN`` counts as
#: failed: an interpolation between it and a trained network measures the broken network
#: rather than the alignment, and a zoo's accuracy spread (METHOD.md 5.2) reaches down to
#: chance; 0.05 (five points) keeps every network that learned more than a constant
#: guess with some noise, and drops the ones that predict (almost) one class
CHANCE_MARGIN = 0.05
#: accuracy metrics, the held-out ones first: the first the zoo has decides
ACCURACY_METRICS = ("test_accuracy", "accuracy", "val_accuracy", "train_accuracy")
#: the zoo metric of networks their builder stopped at non-finite values
DIVERGED_METRIC = "diverged"
_FLOAT32_SLACK = 1e-6


def rule_text(margin: float = CHANCE_MARGIN) -> str:
    """The rule in words, for reports and ``zoo info``."""
    return (f"diverged, non-finite parameters, or accuracy <= chance + {margin:g} "
            "(classifiers)")


def classes_of(spec: WeightSpaceSpec) -> int | None:
    """The number of classes of a classifier spec (its output width, at least 2); None
    for a network with a single output (an INR)."""
    layout = getattr(spec, "layout", None)
    if not layout or int(layout[-1]) < 2:
        return None
    return int(layout[-1])


def accuracy_metric(metric_names: list[str]) -> str | None:
    """The accuracy metric the rule reads (:data:`ACCURACY_METRICS`, held-out first)."""
    return next((m for m in ACCURACY_METRICS if m in metric_names), None)


def failed_mask(
    *,
    accuracy: Tensor | None = None,
    classes: int | None = None,
    diverged: Tensor | None = None,
    non_finite: Tensor | None = None,
    margin: float = CHANCE_MARGIN,
) -> dict[str, Tensor]:
    """The rule on per-network tensors ``[N]``: a bool mask per reason (``diverged``,
    ``non_finite``, ``chance``) for those given (accuracy needs ``classes``); a
    non-finite accuracy counts as chance level."""
    out: dict[str, Tensor] = {}
    if diverged is not None:
        out["diverged"] = torch.as_tensor(diverged).reshape(-1).double() > 0.5
    if non_finite is not None:
        out["non_finite"] = torch.as_tensor(non_finite).reshape(-1).bool()
    if accuracy is not None and classes is not None:
        acc = torch.as_tensor(accuracy).reshape(-1).double()
        # accuracies are stored as float32: 0.15 reads as 0.15000000596
        out["chance"] = ~(acc > 1.0 / classes + margin + _FLOAT32_SLACK)  # NaN: failed
    return out


@dataclass(frozen=True)
class FailedNetworks:
    """The failed networks of a zoo: ``mask`` (bool ``[N]``), whether the mark was read
    from the zoo (``stored``, else derived by the rule), the count per reason (a network
    may have several) and the rule in words."""

    mask: Tensor
    stored: bool
    reasons: dict[str, int] = field(default_factory=dict)
    rule: str = ""

    @property
    def count(self) -> int:
        return int(self.mask.sum())

    @property
    def indices(self) -> Tensor:
        return torch.nonzero(self.mask).flatten()

    def describe(self) -> str:
        """E.g. ``failed: 2 of 32 (chance 2; derived: diverged, ... (classifiers))``."""
        n = self.mask.numel()
        why = ", ".join(f"{k.replace('_', '-')} {v}" for k, v in self.reasons.items() if v)
        where = "stored in the zoo" if self.stored else "derived"
        return (f"failed: {self.count} of {n}" + (f" ({why})" if why else "")
                + f"; rule ({where}): {self.rule}")


def failed_networks(zoo: Zoo, *, check_params: bool = True,
                    margin: float = CHANCE_MARGIN) -> FailedNetworks:
    """The failed networks of ``zoo`` (a :class:`~symmerge.zoo.Zoo`): its stored
    ``failed`` metric if it has one, else the rule (see the module) applied to its
    ``diverged`` metric, its parameters (``check_params``: read them all once) and its
    accuracy. ``reasons`` always come from the rule."""
    names = zoo.metric_names
    acc_name = accuracy_metric(names)
    parts = failed_mask(
        accuracy=zoo.metric(acc_name) if acc_name else None,
        classes=classes_of(zoo.spec),
        diverged=zoo.metric(DIVERGED_METRIC) if DIVERGED_METRIC in names else None,
        non_finite=(torch.isin(torch.arange(len(zoo)), zoo.non_finite().networks)
                    if check_params else None),
        margin=margin,
    )
    derived = torch.zeros(len(zoo), dtype=torch.bool)
    for m in parts.values():
        derived |= m
    stored = FAILED_METRIC in names
    mask = zoo.metric(FAILED_METRIC).double() > 0.5 if stored else derived
    return FailedNetworks(mask, stored, {k: int(v.sum()) for k, v in parts.items()},
                          rule_text(margin))
