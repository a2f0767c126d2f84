"""symmerge in one Python session: zoo -> autoencoder -> canonicalize -> merge -> experiment.

Everything happens in memory and nothing is written unless an output directory is given:

    python examples/walkthrough.py                 # small: about half a minute on 2 CPU cores
    python examples/walkthrough.py --size full --out walkthrough-out

1. Fit a small zoo of SIRENs (implicit neural representations) to embedded MNIST digits,
   two networks per digit from different random initializations.
2. Train a ScaleGMN autoencoder on the zoo, in memory (no run directory).
3. Canonicalize the networks: ``sort`` (exact, no model) and ``ae`` (the autoencoder's
   reconstruction, one template per symmetry orbit).
4. Merge the two networks of one digit with every merge method of the registry.
5. Run the pair-interpolation experiment on held-out digits and get its figure.

From a notebook: ``from walkthrough import main; walk = main()``, then ``walk.figure``
(the merged digits) and ``walk.experiment.figures()["curves.png"]`` show themselves.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from matplotlib.figure import Figure

from symmerge.align import MatchOptions
from symmerge.canon import make_canonicalizer
from symmerge.data import load_images
from symmerge.experiments import PairInterpolationResult, pair_interpolation
from symmerge.merge import MergeResult, merge
from symmerge.methods import method_names
from symmerge.training import TrainResult, train
from symmerge.zoo import Zoo
from symmerge.zoo.fit_inr import fit_sirens, init_sirens, inr_config


@dataclass(frozen=True)
class Size:
    """How big each step is."""

    images: int  # digits the zoo is fitted to
    stride: int  # every stride-th embedded digit (they are sorted by class: all ten)
    fit_steps: int  # Adam steps per SIREN (the "quick" fit preset caps them at 300)
    ae_epochs: int  # autoencoder epochs
    restarts: int  # weight-matching restarts of the methods that match


#: ``small`` shows the path in seconds: its autoencoder, trained on 32 networks, does not
#: yet beat the mean image on held-out ones; ``full`` (the default quickstart's sizes) does.
SIZES = {
    "small": Size(images=20, stride=250, fit_steps=120, ae_epochs=8, restarts=1),
    "full": Size(images=500, stride=10, fit_steps=300, ae_epochs=30, restarts=4),
}


@dataclass
class Walkthrough:
    """What the walkthrough computed: the zoo, the trained autoencoder, the canonical
    forms, the merges of one digit's two networks (by method), the experiment's result and
    a figure of the merged digits."""

    zoo: Zoo
    training: TrainResult
    sorted_params: torch.Tensor
    templates: torch.Tensor
    merges: dict[str, MergeResult]
    merge_mse: dict[str, float]
    experiment: PairInterpolationResult
    figure: Figure


def fit_zoo(size: Size, seed: int = 0) -> Zoo:
    """Two SIRENs per digit, fitted as one batched computation and held in memory."""
    digits = load_images("mnist-embedded")
    image_index = (torch.arange(size.images) * size.stride).repeat_interleave(2)
    config = inr_config("quick", steps=size.fit_steps)
    spec = config.spec()  # [2, 32, 32, 1] SIRENs, w0 = 30
    init = init_sirens(spec, seed, range(len(image_index)))  # network g: its own seed
    fitted = fit_sirens(spec, digits.images[image_index], init, config)
    # the provenance names the images: the experiments find each network's digit there
    return Zoo.from_tensors(fitted.params, spec, digits.labels[image_index],
                            image_index=image_index, provenance={"data": "mnist-embedded"})


def merged_digits_figure(zoo: Zoo, pair: list[int], merges: dict[str, MergeResult]) -> Figure:
    """The digit, its two networks and each method's merge, rendered side by side (a
    matplotlib Figure made without pyplot: the backend is left alone)."""
    spec = zoo.spec
    digit = load_images("mnist-embedded").images[int(zoo.image_index[pair[0]]), 0]
    panels = {"digit": digit, "network A": spec.render(zoo.params[pair[0]]),
              "network B": spec.render(zoo.params[pair[1]])}
    panels.update({f"{m} merge": spec.render(r.params) for m, r in merges.items()})
    fig = Figure(figsize=(1.6 * len(panels), 1.9))
    for ax, (title, img) in zip(fig.subplots(1, len(panels)), panels.items(), strict=True):
        ax.imshow(img.detach().clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    return fig


def main(size: str = "small", out: str | os.PathLike[str] | None = None, seed: int = 0,
         log: Callable[[str], None] = print) -> Walkthrough:
    """Run the walkthrough at ``size`` (``small`` or ``full``); write its results into
    ``out`` only if given. Returns everything it computed."""
    s = SIZES[size]

    # 1. A zoo in memory: params [N, P], labels, image_index.
    zoo = fit_zoo(s, seed)
    log(f"zoo: {len(zoo)} SIRENs of {zoo.spec.describe()} on {s.images} digits")

    # 2. Train the autoencoder in memory: no out, so no run directory, checkpoint or log.
    training = train(zoo, preset="quick", max_epochs=s.ae_epochs, overrides={"seed": seed},
                     progress=False)
    m = training.metrics
    log(f"autoencoder: test render MSE {m['test_render_mse']:.4f} "
        f"(mean-image baseline {m['test_mean_image_mse']:.4f}) after {s.ae_epochs} epochs")

    # 3. Canonicalize: "sort" is exact (same functions), "ae" decodes one template per orbit.
    sorted_params = make_canonicalizer("sort", zoo.spec)(zoo.params)
    drift = (zoo.spec.render(sorted_params) - zoo.spec.render(zoo.params)).abs().max()
    templates = make_canonicalizer("ae", training.spec, model=training.model)(zoo.params)
    log(f"canonical forms: sort changes no render (max difference {float(drift):.1e}); "
        f"ae templates {tuple(templates.shape)}")

    # 4. Merge the two networks of the first digit with every merge method of the registry
    #    (those that need an autoencoder take the in-memory training result as run).
    pair = [0, 1]
    matching = MatchOptions(restarts=s.restarts, seed=seed)
    merges = {method: merge(zoo.params[pair], zoo.spec, method, run=training, matching=matching)
              for method in method_names("merge")}
    digit = load_images("mnist-embedded").images[int(zoo.image_index[0]), 0]
    merge_mse = {method: float(((zoo.spec.render(r.params) - digit) ** 2).mean())
                 for method, r in merges.items()}
    log("merged render MSE to the digit: "
        + ", ".join(f"{k} {v:.4f}" for k, v in merge_mse.items()))

    # 5. An experiment: interpolate between the two networks of each held-out digit.
    experiment = pair_interpolation(zoo, run=training, split="heldout", steps=11,
                                    matching=matching, seed=seed)
    barriers = experiment.barriers()  # mean loss barrier per method (MSE to the digit)
    log(f"pair interpolation over {experiment.pairs} held-out digits, barriers: "
        + ", ".join(f"{k} {v:.4f}" for k, v in barriers.items()))

    walk = Walkthrough(zoo, training, sorted_params, templates, merges, merge_mse, experiment,
                       merged_digits_figure(zoo, pair, merges))
    if out is not None:
        for path in save(walk, out):
            log(f"wrote {path}")
    return walk


def save(walk: Walkthrough, out: str | os.PathLike[str]) -> list[Path]:
    """Write the zoo, the experiment (metrics.json, curves, plots, report.md) and the
    merged-digits figure into ``out``; returns the files."""
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    files = [walk.zoo.save(root / "zoo.safetensors")]
    files += walk.experiment.save(root / "pair-interpolation")
    walk.figure.savefig(root / "merges.png", dpi=120, bbox_inches="tight")
    return [*files, root / "merges.png"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small",
                        help="small (seconds) or full (minutes)")
    parser.add_argument("--out", default=None, help="write the results here (default: nothing)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(**vars(parse_args()))
