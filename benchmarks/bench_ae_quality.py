"""Reconstruction quality of the ``quick`` autoencoder preset on a 1,000-INR zoo.

Builds (or reuses) a zoo of 1,000 SIRENs fitted with the ``quick`` INR preset to
every 5th embedded MNIST digit (100 per class), trains the ``quick`` autoencoder
preset on it, and reports the wall time of training and the test render MSE next to
the MSE of predicting the training split's mean image. ``--variants`` trains
further configurations on the same zoo and split in the same run (e.g. the quick
preset without its latent norm), for a same-machine comparison.

    python benchmarks/bench_ae_quality.py [--zoo runs/inr1000_quick.safetensors]
        [--out-dir runs/ae_quality] [--variants latent_norm_off] [--max-epochs E]
        [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from symmerge.experiments.report import markdown_table
from symmerge.training import train
from symmerge.utils.malloc import retain_freed_memory
from symmerge.zoo.fit_inr import fit_inr_zoo

#: Overrides of the quick preset compared with ``--variants``.
VARIANTS: dict[str, dict[str, Any]] = {
    "quick": {},
    "latent_norm_off": {"encoder": {"latent_norm": False}},
    "probes_off": {"encoder": {"probe_points": 0}},
    "seed1": {"seed": 1},
    "pna": {"encoder": {"mode": "pna"}},
}


def build_zoo(path: Path) -> float:
    """Fit the 1,000-network zoo unless ``path`` exists; returns seconds spent."""
    if path.is_file():
        return 0.0
    t = time.perf_counter()
    fit_inr_zoo("mnist-embedded", out=path, limit=1000, stride=5, config="quick", seed=0)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", type=Path, default=Path("runs/inr1000_quick.safetensors"))
    ap.add_argument("--out-dir", type=Path, default=Path("runs/ae_quality"))
    ap.add_argument("--variants", nargs="*", default=[], choices=sorted(VARIANTS))
    ap.add_argument("--max-epochs", type=int, help="override the preset's epochs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    malloc_tuned = retain_freed_memory()  # as the CLI does; SYMMERGE_MALLOC=0 to compare
    args.zoo.parent.mkdir(parents=True, exist_ok=True)
    zoo_s = build_zoo(args.zoo)
    rows = []
    for name in ["quick", *[v for v in args.variants if v != "quick"]]:
        run = args.out_dir / name
        shutil.rmtree(run, ignore_errors=True)
        t = time.perf_counter()
        result = train(args.zoo, run, preset="quick", overrides=VARIANTS[name],
                       max_epochs=args.max_epochs, progress=False)
        wall = time.perf_counter() - t
        m = result.metrics
        rows.append({
            "variant": name, "train_wall_s": wall, "epochs": result.timings["epochs"],
            "test_render_mse": m["test_render_mse"],
            "test_mean_image_mse": m["test_mean_image_mse"],
            "ratio": m["test_render_mse"] / m["test_mean_image_mse"],
        })
        print(json.dumps(rows[-1]), flush=True)
    print()
    print(markdown_table(rows, [
        ("variant", "variant"), ("train_wall_s", "train wall (s)"), ("epochs", "epochs"),
        ("test_render_mse", "test render MSE"), ("test_mean_image_mse", "mean-image MSE"),
        ("ratio", "ratio"),
    ]))
    if args.json:
        info = {"machine": platform.platform(), "cpus": os.cpu_count(), "threads": args.threads,
                "malloc_retain_freed": malloc_tuned,
                "torch": torch.__version__, "zoo": str(args.zoo), "zoo_fit_s": zoo_s}
        args.json.write_text(json.dumps({"info": info, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
