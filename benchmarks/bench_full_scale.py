"""Autoencoder settings and quality for ``symmerge quickstart --size full``.

Measures, on the full-size quickstart zoos (10,000 INRs, 1,000 ReLU and 1,000 tanh CNNs),
what the full run's four autoencoder trainings cost and reach, and the experiments of
issue 17 items 2-4. Every subcommand prints JSON (one line per row, then a summary).

    python benchmarks/bench_full_scale.py steptime --zoo Z --variants quick big ...
        # seconds of one training epoch on a subset of Z's training split (extrapolated)
    python benchmarks/bench_full_scale.py train --zoo Z --out RUN --variant NAME [--epochs E]
        # a full training run; test metrics and the per-epoch validation curve
    python benchmarks/bench_full_scale.py cnn-merge --zoo Z --run RUN [--pairs 64]
        # ae vs wm on held-out CNN pairs, and why (endpoint reconstruction vs path)
    python benchmarks/bench_full_scale.py shift --zoo Z --run RUN [--n 300]
        # render ratio on INRs fitted with another recipe to held-out digits
    python benchmarks/bench_full_scale.py train ... --train-size N [--val-size M]
        # ablation: N random networks of the training split (and M of the validation
        # split, for checkpoint selection), tested on the full test split

Variants (``--variant``) are named overrides of the ``quick`` preset (:data:`VARIANTS`).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from symmerge.training import train
from symmerge.utils.malloc import retain_freed_memory
from symmerge.utils.seed import sample_rows
from symmerge.zoo import Zoo, load_zoo

#: the decoder's hidden widths are these multiples of ``d_hidden``
_BIG_DECODER: dict[str, Any] = {"decoder_widths": (8, 16)}

#: the CNN autoencoders of ``--size full`` (``symmerge.pipeline.SIZES["full"]``)
_CNN_FULL: dict[str, Any] = {"encoder": {"d_hidden": 32, "d_latent": 64},
                             "decoder_widths": (4, 8), "split": {"fractions": (0.75, 0.1, 0.15)}}

#: Named overrides of the ``quick`` preset.
VARIANTS: dict[str, dict[str, Any]] = {
    "quick": {},
    "quick-pna": {"encoder": {"mode": "pna"}},
    # a larger latent and decoder (the decoder is cheap next to the encoder)
    "lat128": {"encoder": {"d_latent": 128}, **_BIG_DECODER},
    "lat128-pna": {"encoder": {"mode": "pna", "d_latent": 128}, **_BIG_DECODER},
    "lat64": {"encoder": {"d_latent": 64}, "decoder_widths": (4, 8)},
    # a wider encoder
    "wide32": {"encoder": {"d_hidden": 32, "d_latent": 128}, "decoder_widths": (4, 8)},
    # the readout's hidden layer is d_hidden wide: the latent has rank <= d_hidden
    "d32-b64": {"encoder": {"d_hidden": 32, "d_latent": 64}, "decoder_widths": (4, 8),
                "optim": {"batch_size": 64}},
    "d32-b64-noprobe": {"encoder": {"d_hidden": 32, "d_latent": 64, "probe_points": 0},
                        "decoder_widths": (4, 8), "optim": {"batch_size": 64}},
    # the latent's width alone, at the chosen d_hidden 32 (ablation)
    "d32-b64-lat32": {"encoder": {"d_hidden": 32, "d_latent": 32}, "decoder_widths": (4, 8),
                      "optim": {"batch_size": 64}},
    "d32-b64-lat128": {"encoder": {"d_hidden": 32, "d_latent": 128}, "decoder_widths": (4, 8),
                       "optim": {"batch_size": 64}},
    # a learning rate that decays (half cosine to 0 over the run) instead of a constant one
    "d32-b64-cos": {"encoder": {"d_hidden": 32, "d_latent": 64}, "decoder_widths": (4, 8),
                    "optim": {"batch_size": 64, "schedule": "cosine"}},
    # CNN runs as `--size full` trains them (split 75/10/15), then one change each
    "d32-cnn": _CNN_FULL,
    "d32-cnn-cos": {**_CNN_FULL, "optim": {"schedule": "cosine"}},
    "d32-cnn-t2": {**_CNN_FULL, "loss": {"temperature": 2.0}},
    "d32-cnn-l1": {**_CNN_FULL, "checkpoint": {"monitor": "val_l1"}},
    "d32-b64-pna": {"encoder": {"mode": "pna", "d_hidden": 32, "d_latent": 64},
                    "decoder_widths": (4, 8), "optim": {"batch_size": 64}},
    "d64-b64": {"encoder": {"d_hidden": 64, "d_latent": 128}, "decoder_widths": (2, 4),
                "optim": {"batch_size": 64}},
    "d48-b64": {"encoder": {"d_hidden": 48, "d_latent": 96}, "decoder_widths": (3, 6),
                "optim": {"batch_size": 64}},
    "d32": {"encoder": {"d_hidden": 32, "d_latent": 64}, "decoder_widths": (4, 8)},
    # a 20% test split: >= 64 disjoint held-out pairs in a 1,000-network zoo
    "d32-test20": {"encoder": {"d_hidden": 32, "d_latent": 64}, "decoder_widths": (4, 8),
                   "split": {"fractions": (0.7, 0.1, 0.2)}},
    "d64-test20-l1": {"encoder": {"d_hidden": 64, "d_latent": 128}, "decoder_widths": (2, 4),
                      "split": {"fractions": (0.7, 0.1, 0.2)},
                      "checkpoint": {"monitor": "val_l1"}},
    "d64": {"encoder": {"d_hidden": 64, "d_latent": 128}, "decoder_widths": (2, 4)},
    "lat128-b64": {"encoder": {"d_latent": 128}, **_BIG_DECODER,
                   "optim": {"batch_size": 64}},
    "lat128-noprobe": {"encoder": {"d_latent": 128, "probe_points": 0}, **_BIG_DECODER},
    "lat32-big-dec": {"encoder": {"d_latent": 32}, **_BIG_DECODER},
}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    """The machine, torch version and date of a measurement."""
    try:
        model = next((ln.split(":", 1)[1].strip() for ln in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines()
            if ln.startswith("Model name")), "unknown")
    except OSError:
        model = "unknown"
    return {"cpu": model, "cpus": os.cpu_count(), "platform": platform.platform(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "date": time.strftime("%Y-%m-%d %H:%M"), "load_average": load_average()}


def emit(row: dict[str, Any]) -> None:
    print(json.dumps(row, default=str), flush=True)


def sub_zoo(zoo: Zoo, train_count: int | None, *, seed: int = 0,
            val_count: int | None = None, test_count: int | None = None) -> Zoo:
    """``zoo`` restricted to ``train_count`` networks of its (seeded, by-image) training
    split, with its validation and test splits (or ``val_count`` / ``test_count`` of
    them) kept as a stored split: the test networks are the full zoo's. Each part is a
    seeded random sample (:func:`~symmerge.utils.seed.sample_rows`), not its first
    networks: the embedded digits are sorted by class, so the first 800 training INRs
    would all be zeros."""
    splits = zoo.splits(seed=seed)

    def part(idx: Tensor, count: int | None) -> Tensor:
        return idx if count is None else sample_rows(idx, count, seed)

    keep = {"train": part(splits["train"], train_count), "val": part(splits["val"], val_count),
            "test": part(splits["test"], test_count)}
    idx = torch.cat([keep["train"], keep["val"], keep["test"]])
    codes = torch.cat([torch.full((len(v),), i, dtype=torch.long)
                       for i, v in enumerate(keep.values())])
    metrics = {m: zoo.metric(m)[idx] for m in zoo.metric_names}
    image_index = zoo.image_index
    return Zoo.from_tensors(zoo.get_params(idx), zoo.spec, labels=zoo.labels[idx],
                            image_index=None if image_index is None else image_index[idx],
                            metrics=metrics, provenance=zoo.provenance, split=codes)


def val_curve(run: Path) -> list[dict[str, float]]:
    """Per-epoch validation metrics from ``RUN/logs/metrics.csv``."""
    path = run / "logs" / "metrics.csv"
    if not path.is_file():
        return []
    rows = []
    with path.open() as f:
        for r in csv.DictReader(f):
            vals = {k: float(v) for k, v in r.items() if v not in ("", None) and k.startswith(
                ("val_", "epoch"))}
            if any(k.startswith("val_") for k in vals):
                rows.append(vals)
    return rows


def summarize(metrics: dict[str, float]) -> dict[str, float]:
    """Test metrics with the targets' quantities (render ratio, accuracy gap)."""
    out = dict(metrics)
    if "test_render_mse" in metrics:
        out["ratio"] = metrics["test_render_mse"] / metrics["test_mean_image_mse"]
    if "test_acc_original" in metrics:
        out["acc_gap_points"] = 100 * (metrics["test_acc_original"]
                                       - metrics["test_acc_decoded"])
    return out


def cmd_steptime(args: argparse.Namespace) -> None:
    """One epoch in memory on ``--train-networks`` training networks per variant."""
    zoo = load_zoo(args.zoo)
    full_train = len(zoo.splits()["train"])
    small = sub_zoo(zoo, args.train_networks, val_count=args.val_networks,
                    test_count=args.val_networks)
    for name in args.variants:
        load0 = load_average()
        t, cpu = time.perf_counter(), time.process_time()
        r = train(small, preset="quick", overrides=VARIANTS[name], max_epochs=1,
                  progress=False)
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        fit = r.timings["fit_s"]
        per_net = fit / (args.train_networks + args.val_networks)
        emit({"variant": name, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
              "fit_s": round(fit, 2),
              "s_per_network": per_net, "full_train_networks": full_train,
              "est_epoch_s": round(per_net * full_train * 1.125, 1),
              "load_before": load0, "load_after": load_average()})


def cmd_train(args: argparse.Namespace) -> None:
    """A full run (resumes if RUN exists), its test metrics and validation curve."""
    load0 = load_average()
    t, cpu = time.perf_counter(), time.process_time()
    zoo: Zoo | Path = args.zoo
    if args.train_size is not None or args.val_size is not None:
        zoo = sub_zoo(load_zoo(args.zoo), args.train_size, val_count=args.val_size)
    r = train(zoo, args.out, preset="quick", overrides=VARIANTS[args.variant],
              max_epochs=args.epochs, progress=args.progress)
    wall = time.perf_counter() - t
    emit({"variant": args.variant, "overrides": VARIANTS[args.variant], "zoo": str(args.zoo),
          "train_size": args.train_size, "val_size": args.val_size, "run": str(args.out),
          "wall_s": round(wall, 1),
          "cpu_s": round(time.process_time() - cpu, 1),
          "epochs": r.timings.get("epochs"), "num_networks": r.num_networks,
          "metrics": summarize(r.metrics), "load_before": load0, "load_after": load_average(),
          "val_curve": val_curve(Path(args.out)), "machine": machine()})


def cmd_cnn_merge(args: argparse.Namespace) -> None:
    """``naive``, ``wm`` and ``ae`` (and ``ae-lift``) on held-out pairs of the run's test
    split; per method the barrier, and the endpoint and midpoint losses and accuracies
    (what separates reconstruction error from the flatness of the path)."""
    from symmerge.align import MatchOptions
    from symmerge.experiments import cnn_interpolation

    load0 = load_average()
    t = time.perf_counter()
    r = cnn_interpolation(args.zoo, run=args.run, methods=args.methods, pairs=args.pairs,
                          split="test", eval_images=args.eval_images, seed=0,
                          matching=MatchOptions(restarts=4, seed=0), device="cpu")
    out: dict[str, Any] = {"zoo": str(args.zoo), "run": str(args.run), "pairs": r.pairs,
                           "wall_s": round(time.perf_counter() - t, 1), "methods": {}}
    for m, per in r.methods.items():
        out["methods"][m] = {metric: {k: getattr(s, k) for k in (
            "barrier_mean", "barrier_sem", "start_mean", "end_mean", "mid_mean",
            "worst_mean", "barrier_vs_naive")} for metric, s in per.metrics.items()}
    out.update({"load_before": load0, "load_after": load_average(), "machine": machine()})
    emit(out)


def cmd_cnn_quality(args: argparse.Namespace) -> None:
    """Per-network accuracies of the run's test CNNs and their reconstructions on the
    zoo's held-out images: mean gap and Kendall tau over all test networks and over
    those above chance level (original accuracy > ``--chance``)."""
    from scipy.stats import kendalltau

    from symmerge.models.runs import load_run, reconstruct
    from symmerge.training.losses import accuracy
    from symmerge.zoo.images import held_out_images

    model, spec, cfg = load_run(args.run)
    zoo = load_zoo(args.zoo)
    test = zoo.splits(seed=cfg.split.seed, fractions=cfg.split.fractions,
                      by_image=cfg.split.by_image)["test"]
    held = held_out_images(zoo, cfg.loss.images)
    params = zoo.get_params(test).float()
    acc_o = accuracy(spec, params, held.images, held.labels)
    acc_d = accuracy(spec, reconstruct(model, params), held.images, held.labels)
    out: dict[str, Any] = {"zoo": str(args.zoo), "run": str(args.run),
                           "held_out_images": int(held.labels.shape[0])}
    for name, keep in (("all", torch.ones_like(acc_o, dtype=torch.bool)),
                       (f"above_{args.chance:g}", acc_o > args.chance)):
        o, d = acc_o[keep], acc_d[keep]
        out[name] = {"n": int(keep.sum()), "acc_original": float(o.mean()),
                     "acc_decoded": float(d.mean()),
                     "gap_points": float(100 * (d.mean() - o.mean())),
                     "l1_points": float(100 * (d - o).abs().mean()),
                     "kendall_tau": float(kendalltau(o.numpy(), d.numpy()).statistic)}
    chance = acc_o <= args.chance
    out["chance_level"] = {"n": int(chance.sum()),
                           "decoded_acc": acc_d[chance].tolist()}
    emit(out)


def _shift_recipes() -> dict[str, tuple[Any, float]]:
    """Recipes other than the zoo's (``quick``): (INR fit config, init scale)."""
    from symmerge.zoo.fit_inr import INR_PRESETS, INRFitConfig

    return {
        # the library's default INR recipe: lr 1e-2, no warm-up, 1,000-step cap, 28 dB
        "default": (INR_PRESETS["default"], 1.0),
        # init scale, learning rate and step count all changed
        "init2-lr5e-3": (INRFitConfig(lr=5e-3, steps=600, target_psnr=27.0), 2.0),
    }


def cmd_shift(args: argparse.Namespace) -> None:
    """Render ratio of ``--run`` on INRs fitted with other recipes to ``--n`` of its
    test-split digits, beside its ratio on the zoo's own networks of those digits."""
    from symmerge.data.images import load_images
    from symmerge.models.runs import load_run, reconstruct
    from symmerge.training.losses import RenderLoss
    from symmerge.zoo.fit_inr import fit_sirens, init_sirens

    model, spec, cfg = load_run(args.run)
    zoo = load_zoo(args.zoo)
    splits = zoo.splits(seed=cfg.split.seed, fractions=cfg.split.fractions,
                        by_image=cfg.split.by_image)
    test = splits["test"]
    image_index = zoo.image_index
    assert image_index is not None
    # one network per test digit (the first of its seeds), the first n digits
    first = {}
    for g in test.tolist():
        first.setdefault(int(image_index[g]), g)
    chosen = sorted(first.values())[: args.n]
    digits = torch.tensor([int(image_index[g]) for g in chosen])
    loss = RenderLoss(spec, cfg.loss.resolution)
    train_mean = loss.render_targets(zoo.get_params(splits["train"]).float()).mean(0)
    source = load_images(zoo.provenance.get("data", "mnist-embedded")
                         if isinstance(zoo.provenance.get("data"), str) else "mnist-embedded")
    pixels = source.images[digits]

    def ratio(params: Tensor) -> dict[str, float]:
        target = loss.render_targets(params)
        dec = loss.render_targets(reconstruct(model, params))
        mse = float(((dec - target) ** 2).mean())
        base = float(((train_mean - target) ** 2).mean())
        return {"render_mse": mse, "mean_image_mse": base, "ratio": mse / base}

    rows = [{"recipe": "quick (the zoo's, in distribution)", "n": len(chosen),
             **ratio(zoo.get_params(torch.tensor(chosen)).float())}]
    emit(rows[-1])
    for name, (config, scale) in _shift_recipes().items():
        if args.recipes and name not in args.recipes:
            continue
        t = time.perf_counter()
        init = init_sirens(spec, 1000 + args.seed, range(len(chosen))) * scale
        fit = fit_sirens(spec, pixels, init, config)
        rows.append({"recipe": name, "init_scale": scale, "config": repr(config),
                     "n": len(chosen), "fit_s": round(time.perf_counter() - t, 1),
                     "psnr_median": float(fit.psnr.median()),
                     "param_rms_ratio": float(fit.params.pow(2).mean().sqrt()
                                              / zoo.get_params(torch.tensor(chosen)).float()
                                              .pow(2).mean().sqrt()),
                     **ratio(fit.params.float()), "load": load_average()})
        emit(rows[-1])
        if args.save_dir is not None:
            args.save_dir.mkdir(parents=True, exist_ok=True)
            torch.save({"params": fit.params, "digits": digits},
                       args.save_dir / f"shift-{name}.pt")
    emit({"run": str(args.run), "rows": rows, "machine": machine()})


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("steptime", help="one epoch on a subset, extrapolated")
    p.add_argument("--zoo", type=Path, required=True)
    p.add_argument("--variants", nargs="+", default=["quick"], choices=sorted(VARIANTS))
    p.add_argument("--train-networks", type=int, default=640)
    p.add_argument("--val-networks", type=int, default=64)
    p.set_defaults(fn=cmd_steptime)
    p = sub.add_parser("train", help="a full training run")
    p.add_argument("--zoo", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--variant", default="quick", choices=sorted(VARIANTS))
    p.add_argument("--epochs", type=int)
    p.add_argument("--train-size", type=int, help="N random networks of the training split")
    p.add_argument("--val-size", type=int,
                   help="N random networks of the validation split (checkpoint selection)")
    p.add_argument("--progress", action="store_true")
    p.set_defaults(fn=cmd_train)
    p = sub.add_parser("cnn-merge", help="ae vs wm on held-out CNN pairs")
    p.add_argument("--zoo", type=Path, required=True)
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--pairs", type=int, default=64)
    p.add_argument("--eval-images", type=int, default=1000)
    p.add_argument("--methods", nargs="+", default=["naive", "wm", "ae", "ae-lift"])
    p.set_defaults(fn=cmd_cnn_merge)
    p = sub.add_parser("cnn-quality", help="decoded vs original accuracies, per network")
    p.add_argument("--zoo", type=Path, required=True)
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--chance", type=float, default=0.2)
    p.set_defaults(fn=cmd_cnn_quality)
    p = sub.add_parser("shift", help="render ratio on INRs fitted with other recipes")
    p.add_argument("--zoo", type=Path, required=True)
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--recipes", nargs="*")
    p.add_argument("--save-dir", type=Path)
    p.set_defaults(fn=cmd_shift)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    retain_freed_memory()
    args.fn(args)


if __name__ == "__main__":
    main()
