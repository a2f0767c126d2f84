"""CNN interpolation: pairs of independently trained zoo CNNs (METHOD.md 6.3), evaluated
on held-out images (never the images the CNNs or the autoencoder trained on)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import torch
from torch import Tensor

from symmerge.align.matching import MatchOptions
from symmerge.errors import SymmergeError
from symmerge.experiments.common import (
    check_seed,
    classifier_curves,
    lift_strategy,
    load_autoencoders,
    network_selection,
    open_zoo,
    progress_bar,
    resolve_methods,
    run_methods,
    usable_members,
)
from symmerge.experiments.interpolation import _numpy, summarize
from symmerge.experiments.metrics import alpha_grid
from symmerge.experiments.results import CNNInterpolationResult, CNNInterpolationSettings
from symmerge.merge.repair import REPAIR_IMAGES
from symmerge.methods import Repaired
from symmerge.models.runs import RunLike
from symmerge.specs import CNNSpec
from symmerge.utils.device import resolve_device
from symmerge.utils.seed import sample_rows
from symmerge.zoo import Zoo
from symmerge.zoo.images import held_out_images
from symmerge.zoo.quality import accuracy_metric


def cnn_pairs(zoo: Zoo, pool: Tensor, pairs: int, top: int | None, generator: torch.Generator,
              *, excluded: int = 0) -> tuple[Tensor, str | None]:
    """``pairs`` disjoint random pairs ``[n, 2]`` from ``pool`` (after keeping its ``top``
    networks by the zoo's accuracy metric, if it has one); also the metric used.
    ``excluded``: failed networks already left out of ``pool`` (for the message)."""
    metric = accuracy_metric(zoo.metric_names)
    if top is not None and metric is not None and pool.numel() > top:
        acc = zoo.metric(metric)[pool]
        pool = pool[torch.sort(torch.argsort(acc, descending=True, stable=True)[:top]).values]
    if pairs < 1:
        raise SymmergeError(f"pairs must be at least 1, got {pairs}")
    if pool.numel() < 2 * pairs:
        left_out = (f" ({excluded} failed networks of the split left out: diverged or at "
                    "chance level)" if excluded else "")
        raise SymmergeError(
            f"asked for {pairs} disjoint pairs, but only {pool.numel()} networks are "
            f"eligible{left_out}"
        )
    order = torch.randperm(pool.numel(), generator=generator, device=generator.device)
    chosen = pool[order[: 2 * pairs]].reshape(pairs, 2)
    return torch.sort(chosen, dim=1).values, metric


def cnn_interpolation(
    zoo: str | os.PathLike[str] | Zoo,
    *,
    run: RunLike | None = None,
    pna_run: RunLike | None = None,
    methods: Sequence[str] | None = None,
    pairs: int = 20,
    steps: int = 21,
    top: int | None = 1500,
    split: str = "test",
    images: str | None = None,
    eval_images: int | None = 10000,
    seed: int = 0,
    matching: MatchOptions | None = None,
    net_chunk: int = 64,
    image_chunk: int = 1000,
    device: str | torch.device | None = "auto",
    progress: bool = True,
) -> CNNInterpolationResult:
    """Interpolate ``pairs`` disjoint pairs of independently trained CNNs of one zoo (a file
    or a :class:`~symmerge.zoo.Zoo`), on ``device`` (``auto``: a CUDA GPU when there is
    one). Writes nothing.

    Networks come from ``split`` (the run's split) and, if the zoo records
    accuracies, its ``top`` most accurate. Each interpolant is evaluated on up to
    ``eval_images`` held-out images (:func:`held_out_images`): accuracy and mean
    cross-entropy at ``steps`` alphas, mean ± SEM over pairs. The default methods are the
    registry's for CNNs, the permutation-only weight matching (the paper's baseline)
    and repaired weight matching among them; repaired paths measure activations on
    :data:`~symmerge.merge.repair.REPAIR_IMAGES` training-split images (a seeded sample,
    never the evaluation images). ``matching`` as
    :func:`~symmerge.experiments.orbit_interpolation`.

    Failed networks (diverged or at chance level: :mod:`symmerge.zoo.quality`, the zoo's
    stored mark or the rule) are left out before pairs are drawn; ``result.selection``
    records how many, the split's n and how many endpoints the autoencoder trained on.
    ``progress``: a bar on stderr over the methods.
    """
    t0 = time.perf_counter()
    check_seed(seed)
    matching = MatchOptions(seed=seed) if matching is None else matching
    z = open_zoo(zoo)
    spec = z.spec
    if not isinstance(spec, CNNSpec):
        raise SymmergeError(
            f"cnn-interpolation needs a CNN zoo, but {z.name} holds {spec.describe()}"
        )
    alphas = alpha_grid(steps)
    dev = resolve_device(device)
    aes = load_autoencoders(spec, run, pna_run, holder=f"zoo {z.name}", device=dev)
    todo, skipped = resolve_methods(methods, spec, aes)
    held = held_out_images(z, images, eval_images)
    gen = torch.Generator().manual_seed(seed)
    pool, excluded = usable_members(z, split, aes.split)
    chosen, acc_metric = cnn_pairs(z, pool, pairs, top, gen, excluded=excluded)
    n = chosen.shape[0]
    params = z.get_params(chosen.reshape(-1)).float().reshape(n, 2, -1).to(dev)
    repair_data = sample_rows(held.train_images, REPAIR_IMAGES, seed).to(dev)
    frames = aes.frames(todo, matching, data=repair_data)
    repaired = tuple(m for m, f in frames.items() if isinstance(f, Repaired))
    curve_fn = classifier_curves(spec, held.images, held.labels, net_chunk=net_chunk,
                                 image_chunk=image_chunk)
    with progress_bar(len(frames), f"cnn-interpolation ({spec.activation})", progress) as bar:
        results = run_methods(frames, params[:, 0], params[:, 1], alphas, curve_fn, bar)
    settings = CNNInterpolationSettings(
        zoo=z.name, run=aes.path("run"), pna_run=aes.path("pna_run"), pairs=n, steps=steps,
        top=top, split=split, split_settings=aes.split, seed=seed, matching=matching,
        images=held.source, ae_lift_strategy=lift_strategy(frames),
        images_assumed=held.assumed, held_out=held.how, eval_images=int(held.labels.numel()),
        repaired=repaired, repair_images=int(repair_data.shape[0]) if repaired else 0,
    )
    higher = frozenset({"accuracy"})
    return CNNInterpolationResult(
        settings=settings, runs=tuple(aes.runs.values()), alphas=alphas.numpy(),
        curves=_numpy(results), methods=summarize(results, alphas, n, higher_is_better=higher),
        skipped=skipped, primary_metric="cross_entropy", pairs=n, networks=chosen.numpy(),
        higher_is_better=higher, activation=spec.activation, selection_metric=acc_metric,
        selection=network_selection(z, aes, split, pool, excluded, chosen),
        seconds=time.perf_counter() - t0,
    )
