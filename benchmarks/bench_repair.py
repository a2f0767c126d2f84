"""REPAIR on weight-matched CNN merges: midpoint and barrier with and without repair.

For pairs of networks of a CNN zoo (by default the quickstart's two zoos, 32 ReLU and 32
tanh CNNs of the ``quick`` preset, built here as the quickstart builds them), every pair
is interpolated with ``naive``, ``wm`` and ``wm+repair`` (the registry's methods: the
same weight matching, then REPAIR at each alpha with that alpha's targets, measured on
``--repair-images`` training-split images) and evaluated on the zoo's held-out images.
Failed networks (diverged or at chance: symmerge.zoo.quality) are left out, as the
experiments leave them out. Reports, per zoo and method, mean ± std over pairs of the
midpoint (alpha 0.5) cross-entropy and accuracy and of the cross-entropy barrier, the
per-pair difference ``wm+repair - wm`` and the ratios of the means.

    python benchmarks/bench_repair.py [--zoo ZOO ...] [--zoo-dir DIR] [--split heldout]
        [--pairs N] [--steps 11] [--repair-images 500] [--restarts 4] [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from zoo_bench_common import machine

from symmerge.align import MatchOptions
from symmerge.experiments.common import classifier_curves, run_methods, usable_members
from symmerge.experiments.metrics import alpha_grid, barriers
from symmerge.experiments.results import SplitSettings
from symmerge.limits import REPAIR_IMAGES
from symmerge.methods import MethodInputs, get_method
from symmerge.utils.seed import sample_rows
from symmerge.zoo import load_zoo
from symmerge.zoo.images import held_out_images
from symmerge.zoo.train_cnn import train_cnn_zoo

#: the plain average, weight matching, and weight matching with REPAIR (registry names)
METHODS = ("naive", "wm", "wm+repair")
#: the quickstart's CNN zoo stage at the default size (symmerge.pipeline)
QUICKSTART_ZOO = {"n": 32, "seed": 0, "config": "quick"}


def quickstart_zoos(directory: Path) -> list[Path]:
    """The quickstart's ReLU and tanh CNN zoos in ``directory`` (built if missing)."""
    paths = []
    for act in ("relu", "tanh"):
        path = directory / f"cnn-{act}.safetensors"
        if not path.is_file():
            train_cnn_zoo("mnist-embedded", out=path, activation=act, progress=False,
                          **QUICKSTART_ZOO)
        paths.append(path)
    return paths


def choose_pairs(pool: list[int], count: int | None, seed: int) -> list[tuple[int, int]]:
    """All pairs of ``pool``, or ``count`` of them drawn with ``seed``."""
    every = list(itertools.combinations(sorted(pool), 2))
    if count is None or count >= len(every):
        return every
    pick = torch.randperm(len(every), generator=torch.Generator().manual_seed(seed))[:count]
    return [every[i] for i in sorted(pick.tolist())]


def mean_std(x: np.ndarray) -> dict[str, float]:
    return {"mean": float(x.mean()), "std": float(x.std(ddof=1)) if x.size > 1 else math.nan,
            "n": int(x.size)}


def bench_zoo(path: Path, args: argparse.Namespace) -> dict[str, object]:
    zoo = load_zoo(path)
    spec = zoo.spec
    held = held_out_images(zoo, limit=args.eval_images)
    data = sample_rows(held.train_images, args.repair_images, args.seed)
    members, failed = usable_members(zoo, args.split, SplitSettings())  # as the experiments
    pool = members.tolist()
    pairs = choose_pairs(pool, args.pairs, args.seed)
    idx = torch.tensor(pairs)
    a, b = zoo.get_params(idx[:, 0]).float(), zoo.get_params(idx[:, 1]).float()
    inputs = MethodInputs(spec, matching=MatchOptions(restarts=args.restarts, seed=args.seed),
                          data=data)
    frames = {m: get_method(m).build(inputs) for m in METHODS}
    alphas = alpha_grid(args.steps)
    mid = int(torch.argmin((alphas - 0.5).abs()))
    curve_fn = classifier_curves(spec, held.images, held.labels)
    t0 = time.perf_counter()
    runs = run_methods(frames, a, b, alphas, curve_fn)
    seconds = time.perf_counter() - t0
    ce = {m: runs.curves[m]["cross_entropy"].numpy() for m in METHODS}
    acc = {m: runs.curves[m]["accuracy"].numpy() for m in METHODS}
    methods = {}
    for m in METHODS:
        methods[m] = {
            "midpoint_cross_entropy": mean_std(ce[m][:, mid]),
            "midpoint_accuracy": mean_std(acc[m][:, mid]),
            "barrier_cross_entropy": mean_std(barriers(ce[m], alphas)),
            "barrier_accuracy": mean_std(barriers(acc[m], alphas, higher_is_better=True)),
            "path_seconds": round(runs.seconds[m], 2),
        }
    endpoints = ce["naive"][:, [0, -1]]
    diff = ce["wm+repair"][:, mid] - ce["wm"][:, mid]
    ratio = {k: methods["wm+repair"][k]["mean"] / methods["wm"][k]["mean"]  # type: ignore[index]
             for k in ("midpoint_cross_entropy", "barrier_cross_entropy")}
    return {
        "zoo": str(path), "activation": spec.activation, "spec": spec.to_dict(),
        "split": args.split, "networks": len(pool), "failed_left_out": failed,
        "pairs": len(pairs),
        "eval_images": int(held.labels.numel()), "held_out": held.how,
        "repair_images": int(data.shape[0]), "alphas": alphas.tolist(), "midpoint_alpha":
        float(alphas[mid]), "endpoint_cross_entropy": mean_std(endpoints.mean(axis=1)),
        "methods": methods,
        "repair_minus_wm_midpoint_cross_entropy": {**mean_std(diff),
                                                   "pairs_lowered": int((diff < 0).sum())},
        "ratio_repair_to_wm": ratio, "seconds": round(seconds, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zoo", type=Path, nargs="+", help="CNN zoo files (default: the "
                   "quickstart's two, built in --zoo-dir)")
    p.add_argument("--zoo-dir", type=Path, default=Path("bench-repair-zoos"),
                   help="where the quickstart zoos are built (reused when there)")
    p.add_argument("--split", default="heldout", help="networks: train | val | test | "
                   "heldout | all, of the default zoo split (seed 0, 80/10/10)")
    p.add_argument("--pairs", type=int, default=None,
                   help="pairs per zoo (default: every pair of the split's usable networks)")
    p.add_argument("--steps", type=int, default=11, help="alphas (odd: one at 0.5)")
    p.add_argument("--repair-images", type=int, default=REPAIR_IMAGES)
    p.add_argument("--eval-images", type=int, default=None,
                   help="held-out images per evaluation (default: all of them)")
    p.add_argument("--restarts", type=int, default=4,
                   help="weight-matching restarts (the quickstart's setting)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    zoos = args.zoo or quickstart_zoos(args.zoo_dir)
    build = time.perf_counter() - t0
    rows = [bench_zoo(z, args) for z in zoos]
    result = {"machine": machine(), "zoo_build_seconds": round(build, 1),
              "settings": {k: str(v) if isinstance(v, Path) else v
                           for k, v in vars(args).items() if k != "zoo"},
              "rows": rows, "seconds": round(time.perf_counter() - t0, 1)}
    for r in rows:
        print(f"{r['activation']}: {r['pairs']} pairs of {r['networks']} {r['split']} networks, "
              f"{r['eval_images']} held-out images, repair on {r['repair_images']}")
        for m, s in r["methods"].items():  # type: ignore[union-attr]
            mc, ma, bc = (s[k] for k in ("midpoint_cross_entropy", "midpoint_accuracy",
                                         "barrier_cross_entropy"))
            print(f"  {m:10s} midpoint CE {mc['mean']:.3f} ± {mc['std']:.3f}  acc "
                  f"{ma['mean']:.3f} ± {ma['std']:.3f}  CE barrier {bc['mean']:.3f} ± "
                  f"{bc['std']:.3f}")
        d = r["repair_minus_wm_midpoint_cross_entropy"]
        print(f"  repair - wm, midpoint CE: {d['mean']:+.3f} ± {d['std']:.3f} (lower in "
              f"{d['pairs_lowered']} of {d['n']} pairs); ratio {r['ratio_repair_to_wm']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
