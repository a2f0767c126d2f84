"""Canonicalization throughput vs. pairwise weight matching, on the same pairs, in one run.

Builds ``--pairs`` orbit pairs ``(O_i, Õ_(i+1))`` (PD transforms, noise 0.005) of
SIRENs, then times, on CPU unless ``--device`` says otherwise:

* ``ae`` (batched reconstruction), ``sort`` and ``ae-lift`` (default ``forward``
  matching to the template, and the ``descent`` strategy for comparison):
  canonicalize all ``2 * pairs`` networks (each network once, independently);
* ``wm``: weight-match the second network of every pair to the first
  (``pairs`` matchings, the paper's LAP extended to signs).

Networks/s counts networks processed (canonicalized, or aligned for ``wm``);
pairs/s counts pairs made comparable. Without ``--run`` an untrained autoencoder
of the ``quick`` preset's size is used: the timing of ``ae`` does not depend on
the weights, while ``ae-lift``'s matching may take a different number of sweeps.

    python benchmarks/bench_canonicalize.py [--zoo ZOO] [--run RUN] [--pairs 512]
        [--device cpu|cuda] [--methods ae,sort,ae-lift,ae-lift-descent,wm]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch
from gpu_common import peak_memory_mib, reset_peak_memory, synchronize

from symmerge import SirenSpec
from symmerge.align import MatchOptions, weight_matching
from symmerge.canon import AECanonicalizer, AELiftCanonicalizer, SortCanonicalizer
from symmerge.experiments.report import markdown_table
from symmerge.symmetry import make_orbit

#: row name -> ``--methods`` key
METHOD_KEYS = {"ae": "ae", "sort": "sort", "ae-lift": "ae-lift",
               "ae-lift (descent)": "ae-lift-descent", "wm (pairwise)": "wm"}


def orbit_pairs(
    spec, bases: torch.Tensor, pairs: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``pairs`` pairs spread over the base networks: clean and noisy copies of one orbit."""
    per = -(-pairs // bases.shape[0])
    a, b = [], []
    for i, base in enumerate(bases):
        gen_a, gen_b = (torch.Generator().manual_seed(seed + i) for _ in range(2))
        clean, _ = make_orbit(spec, base, per, "PD", generator=gen_a)
        noisy, _ = make_orbit(spec, base, per, "PD", noise_std=0.005, generator=gen_b)
        a.append(clean)
        b.append(noisy.roll(-1, dims=0))
    return torch.cat(a)[:pairs], torch.cat(b)[:pairs]


def load_model(spec, run: str | None):
    if run is not None:
        from symmerge.models.runs import load_run

        model, run_spec, _ = load_run(run)
        if run_spec != spec:
            raise SystemExit(f"run {run} is for {run_spec.describe()}, not {spec.describe()}")
        return model, f"trained run {run}"
    from symmerge.models import build_autoencoder
    from symmerge.training import resolve_config

    cfg = resolve_config("quick", spec=spec)
    torch.manual_seed(0)
    return build_autoencoder(spec, cfg.encoder, cfg.decoder_widths).eval(), \
        "untrained quick-preset autoencoder"


def timed(fn, repeats: int, device: torch.device) -> tuple[float, float | None]:
    """Median wall time of ``fn()`` over ``repeats`` runs (after one warm-up run), each
    run from an idle device to the end of its queued work, and the peak device memory
    (MiB, CUDA only) over all of them."""
    synchronize(device)
    reset_peak_memory(device)
    fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), peak_memory_mib(device)


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv`` (default ``sys.argv[1:]``), time every method, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zoo", help="INR zoo to take base networks from (default: random SIRENs)")
    ap.add_argument("--run", help="autoencoder run (default: untrained, quick-preset sized)")
    ap.add_argument("--pairs", type=int, default=512)
    ap.add_argument("--bases", type=int, default=8, help="base networks the pairs come from")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the LAPs run on the CPU)")
    ap.add_argument("--methods", default=",".join(METHOD_KEYS.values()),
                    help="comma-separated subset of " + ", ".join(METHOD_KEYS.values()))
    ap.add_argument("--json", help="also write the numbers to this JSON file")
    args = ap.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not args.methods or set(args.methods) - set(METHOD_KEYS.values()):
        ap.error(f"--methods takes names from {', '.join(METHOD_KEYS.values())}")

    if args.zoo:
        from symmerge.zoo import load_zoo

        zoo = load_zoo(args.zoo)
        spec = zoo.spec
        bases = zoo.get_params(list(range(min(args.bases, len(zoo))))).float()
        source = f"zoo {args.zoo}"
    else:
        spec = SirenSpec()
        bases = spec.init_params(args.bases, generator=torch.Generator().manual_seed(args.seed))
        source = "random SIREN initializations"
    dev = torch.device(args.device)
    a, b = (t.to(dev) for t in orbit_pairs(spec, bases, args.pairs, args.seed))
    both = torch.cat([a, b])
    model, model_note = load_model(spec, args.run)
    model = model.to(dev)

    canon = {
        "ae": AECanonicalizer(spec, model, batch_size=args.batch_size),
        "sort": SortCanonicalizer(spec, batch_size=args.batch_size),
        "ae-lift": AELiftCanonicalizer(spec, model, batch_size=args.batch_size),
        "ae-lift (descent)": AELiftCanonicalizer(spec, model, batch_size=args.batch_size,
                                                 matching=MatchOptions(strategy="descent")),
    }
    rows = []
    with torch.no_grad():
        for name, c in canon.items():
            if METHOD_KEYS[name] not in args.methods:
                continue
            sec, peak = timed(lambda c=c: c(both), args.repeats, dev)
            rows.append({"method": name, "networks": both.shape[0], "seconds": sec,
                         "networks_per_s": both.shape[0] / sec, "pairs_per_s": args.pairs / sec,
                         "peak_gpu_mib": peak})
        if "wm" in args.methods:
            opts = MatchOptions(seed=args.seed)
            sec, peak = timed(lambda: weight_matching(spec, a, b, opts).aligned, args.repeats,
                              dev)
            rows.append({"method": "wm (pairwise)", "networks": a.shape[0], "seconds": sec,
                         "networks_per_s": a.shape[0] / sec, "pairs_per_s": args.pairs / sec,
                         "peak_gpu_mib": peak})

    env = {
        "spec": spec.describe(), "pairs": args.pairs, "source": source, "model": model_note,
        "device": str(dev),
        "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
        "repeats": args.repeats, "batch_size": args.batch_size,
    }
    print(f"{spec.describe()}, {args.pairs} PD orbit pairs (noise 0.005) from {source}; "
          f"{model_note}; {dev}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"median of {args.repeats}")
    print(markdown_table(rows, [
        ("method", "method"), ("networks", "networks"), ("seconds", "seconds"),
        ("networks_per_s", "networks/s"), ("pairs_per_s", "pairs/s"),
    ]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": env, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
