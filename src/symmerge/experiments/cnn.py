"""CNN interpolation: pairs of independently trained zoo CNNs (METHOD.md 6.3), evaluated
on held-out images (never the images the CNNs or the autoencoder trained on)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from symmerge.errors import SymmergeError
from symmerge.experiments.common import (
    CNN_METHODS,
    PathOptions,
    classifier_curves,
    load_autoencoders,
    open_zoo,
    prepare_out,
    resolve_methods,
    run_methods,
    split_members,
    split_phrase,
)
from symmerge.experiments.interpolation import InterpolationResult, _finish
from symmerge.experiments.metrics import alpha_grid
from symmerge.specs import CNNSpec
from symmerge.utils.device import resolve_device
from symmerge.zoo import Zoo
from symmerge.zoo.images import held_out_images

ACCURACY_METRICS = ("test_accuracy", "accuracy", "val_accuracy", "train_accuracy")


def cnn_pairs(zoo: Zoo, pool: Tensor, pairs: int, top: int | None, generator: torch.Generator
              ) -> tuple[Tensor, str | None]:
    """``pairs`` disjoint random pairs ``[n, 2]`` from ``pool`` (after keeping its ``top``
    networks by the zoo's accuracy metric, if it has one); also the metric used."""
    metric = next((m for m in ACCURACY_METRICS if m in zoo.metric_names), None)
    if top is not None and metric is not None and pool.numel() > top:
        acc = zoo.metric(metric)[pool]
        pool = pool[torch.sort(torch.argsort(acc, descending=True, stable=True)[:top]).values]
    if pairs < 1:
        raise SymmergeError(f"need at least one pair, got {pairs}")
    if pool.numel() < 2 * pairs:
        raise SymmergeError(
            f"asked for {pairs} disjoint pairs, but only {pool.numel()} networks are eligible"
        )
    order = torch.randperm(pool.numel(), generator=generator, device=generator.device)
    chosen = pool[order[: 2 * pairs]].reshape(pairs, 2)
    return torch.sort(chosen, dim=1).values, metric


def cnn_interpolation(
    zoo: str | os.PathLike[str] | Zoo,
    out: str | os.PathLike[str],
    *,
    run: str | os.PathLike[str] | None = None,
    pna_run: str | os.PathLike[str] | None = None,
    methods: Sequence[str] | None = None,
    pairs: int = 20,
    steps: int = 21,
    top: int | None = 1500,
    split: str = "test",
    images: str | None = None,
    eval_images: int | None = 10000,
    seed: int = 0,
    restarts: int = 0,
    max_iter: int = 100,
    net_chunk: int = 64,
    image_chunk: int = 1000,
    device: str | torch.device | None = "auto",
) -> InterpolationResult:
    """Interpolate ``pairs`` disjoint pairs of independently trained CNNs of one zoo, on
    ``device`` (``auto``: a CUDA GPU when there is one).

    Networks come from ``split`` (the run's split) and, if the zoo records
    accuracies, its ``top`` most accurate. Each interpolant is evaluated on up to
    ``eval_images`` held-out images (:func:`held_out_images`): accuracy and mean
    cross-entropy at ``steps`` alphas, mean ± SEM over pairs. Methods include
    ``wm`` (signed / scale-aware matching) and ``wm-perm`` (the paper's
    permutation-only matching). Outputs as :func:`orbit_interpolation`.
    """
    z = open_zoo(zoo)
    spec = z.spec
    if not isinstance(spec, CNNSpec):
        raise SymmergeError(
            f"cnn-interpolation needs a CNN zoo, but {z.path} holds {spec.describe()}"
        )
    alphas = alpha_grid(steps)
    dev = resolve_device(device)
    aes = load_autoencoders(spec, run, pna_run, restarts=restarts, max_iter=max_iter, seed=seed,
                            holder=f"zoo {z.path}", device=dev)
    todo, skipped = resolve_methods(methods, CNN_METHODS, aes)
    held = held_out_images(z, images, eval_images)
    gen = torch.Generator().manual_seed(seed)
    chosen, acc_metric = cnn_pairs(z, split_members(z, split, aes.split), pairs, top, gen)
    out_dir = prepare_out(out)  # after the checks that can fail
    n = chosen.shape[0]
    params = z.get_params(chosen.reshape(-1)).float().reshape(n, 2, -1).to(dev)
    opts = PathOptions(restarts=restarts, max_iter=max_iter, seed=seed)
    curve_fn = classifier_curves(spec, held.images, held.labels, net_chunk=net_chunk,
                                 image_chunk=image_chunk)
    results = run_methods(todo, spec, params[:, 0], params[:, 1], alphas, curve_fn, aes, opts)
    settings = {
        "zoo": str(z.path), "run": str(aes.run) if aes.run else None,
        "pna_run": str(aes.pna_run) if aes.pna_run else None, "pairs": n, "steps": steps,
        "top": top, "split": split, "split_settings": aes.split, "seed": seed,
        "wm_restarts": restarts, "wm_max_iter": max_iter, "images": held.source,
        "ae_lift_strategy": aes.lift_strategy,
        "images_assumed": held.assumed, "held_out": held.how,
        "eval_images": int(held.labels.numel()),
    }
    metrics: dict[str, Any] = {
        "settings": settings, "pairs": n, "networks": chosen.tolist(),
        "activation": spec.activation, "selection_metric": acc_metric,
        "encoder_modes": aes.encoder_modes,
    }
    title = f"CNN interpolation ({spec.activation})"
    chosen_from = split_phrase(split) + (f", top {top} by {acc_metric}" if acc_metric and top
                                         else "")
    text = (
        f"{n} disjoint pairs of independently trained {spec.activation} CNNs "
        f"({chosen_from}), "
        f"{steps} alpha steps, evaluated on {held.labels.numel()} held-out images of "
        f"`{held.source}` ({held.how}). Cross-entropy barrier (first table) and accuracy "
        "barrier (second table: max over alpha of the straight line minus the accuracy). "
        "Mean ± SEM over pairs in the plots."
    )
    return _finish(
        "cnn-interpolation", out_dir, title, text, alphas, results, n, metrics,
        [("cross_entropy", "cross-entropy", False), ("accuracy", "accuracy", False)],
        [("cross_entropy", "cross-entropy"), ("accuracy", "accuracy")], todo, skipped,
        held.source if held.assumed else None, band="sem",
        higher_is_better={"accuracy": True},
    )
