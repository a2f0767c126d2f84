"""INR zoo fitting: batched vs. sequential throughput, time breakdown, full zoo.

Subcommands (on the CPU, ``full`` also on a GPU; every number is measured in the run
that prints it):

* ``compare``: fit the same ``--n`` embedded digits (every ``5000 / n``-th, so
  all classes) with the batched fitter (one process, ``--threads``) and with the
  per-network recipe (one ``nn.Module`` SIREN, ``torch.optim.Adam``, same init,
  schedule and stopping rule) one network at a time, in the same process and
  thread setting; alternates the two ``--repeats`` times. Reports networks/s,
  the ratio and both PSNR distributions, with the preset's target PSNR and
  with stopping disabled (``--no-target``: the same step budget for all).
* ``profile``: where a batched step's time goes (matmuls, sines, other
  elementwise work, Adam) against the machine's measured sgemm peak and sine
  throughput, and the resulting floor.
* ``full``: the default zoo of all 5,000 embedded digits via ``fit_inr_zoo``
  (``--workers`` processes, or ``--device cuda``; ``--limit`` and ``--per-image``
  size it, e.g. ``--per-image 14`` for 70,000 networks): wall time, PSNR
  distribution, steps, and a smoothness check (PSNR of the 56x56 render against
  the bilinearly upsampled digit).

    python benchmarks/bench_zoo_inr.py compare [--n 100] [--preset default] [--threads 1]
    python benchmarks/bench_zoo_inr.py profile [--batch 32] [--threads 1]
    python benchmarks/bench_zoo_inr.py full [--workers 2] [--out runs/inr_zoo_default.safetensors]
        [--device cuda --per-image 14 --chunk-size 17500 --micro-batch 17500]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
import torch.nn.functional as F
from gpu_common import synchronize
from zoo_bench_common import cpu_seconds, machine

from symmerge.data import load_images
from symmerge.specs import SirenSpec
from symmerge.zoo import Zoo
from symmerge.zoo.fit_inr import (
    SirenGridLoss,
    _targets,
    fit_inr_zoo,
    fit_siren_module,
    fit_sirens,
    init_sirens,
    inr_config,
)


def quantiles(t: torch.Tensor) -> dict[str, float]:
    q = torch.quantile(t.double(), torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)).tolist()
    return {"p10": round(q[0], 2), "median": round(q[1], 2), "p90": round(q[2], 2),
            "mean": round(float(t.double().mean()), 2)}


def smoothness(spec: SirenSpec, params: torch.Tensor, images: torch.Tensor,
               device: str = "cpu", batch: int = 256) -> torch.Tensor:
    """PSNR of the 2x render against the bilinear 2x upsampling of the digit (per network),
    computed on ``device`` in batches of ``batch`` networks; returned on the CPU."""
    res = images.shape[-1] * 2
    out = []
    for s in range(0, params.shape[0], batch):
        img = images[s : s + batch].to(device)
        up = F.interpolate(img, size=(res, res), mode="bilinear", align_corners=True)[:, 0]
        r = spec.render(params[s : s + batch].to(device), res)
        out.append((-10 * torch.log10(((r - up) ** 2).mean(dim=(1, 2)))).cpu())
    return torch.cat(out)


# ------------------------------------------------------------------- compare
def compare(args: argparse.Namespace) -> dict[str, object]:
    torch.set_num_threads(args.threads)
    digits = load_images("mnist-embedded")
    stride = len(digits) // args.n
    images = digits.images[::stride][: args.n]
    results: dict[str, object] = {"machine": machine(), "n": args.n, "preset": args.preset}
    settings = [("target", inr_config(args.preset))]
    if args.no_target:
        settings.append(("no_target", inr_config(args.preset, target_psnr=99.0)))
    for name, cfg in settings:
        spec = cfg.spec(1)
        init = init_sirens(spec, args.seed, range(args.n))
        runs: dict[str, list[float]] = {"batched": [], "sequential": []}
        out: dict[str, object] = {}
        for _ in range(args.repeats):
            t = time.perf_counter()
            b = fit_sirens(spec, images, init, cfg)
            runs["batched"].append(time.perf_counter() - t)
            t = time.perf_counter()
            seq = [fit_siren_module(spec, images[i], init[i], cfg) for i in range(args.n)]
            runs["sequential"].append(time.perf_counter() - t)
        s_psnr = torch.cat([r.psnr for r in seq])
        s_steps = torch.cat([r.steps for r in seq]).double()
        for key, res_psnr, res_steps in (("batched", b.psnr, b.steps.double()),
                                         ("sequential", s_psnr, s_steps)):
            best = min(runs[key])
            out[key] = {"seconds": [round(x, 2) for x in runs[key]],
                        "networks_per_s": round(args.n / best, 3),
                        "us_per_net_step": round(best / float(res_steps.sum() + args.n) * 1e6, 1),
                        "psnr": quantiles(res_psnr), "steps": quantiles(res_steps)}
        out["speedup"] = round(min(runs["sequential"]) / min(runs["batched"]), 2)
        out["median_psnr_gap_db"] = round(float(b.psnr.median() - s_psnr.median()), 3)
        seq_params = torch.cat([r.params for r in seq])
        out["max_abs_param_diff"] = float((b.params - seq_params).abs().max())
        results[name] = out
    return results


# ------------------------------------------------------------------- profile
def _best(fn, repeats: int = 9) -> float:
    """Fastest of ``repeats`` timed calls (the machine is shared: the minimum is the signal)."""
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


def profile(args: argparse.Namespace) -> dict[str, object]:
    torch.set_num_threads(args.threads)
    spec, b, res = SirenSpec(), args.batch, 28
    h = spec.layout[1]
    npx = res * res
    cfg = inr_config("default")
    digits = load_images("mnist-embedded").images[:: 5000 // b][:b]
    params = init_sirens(spec, 0, range(b)) * 1.0
    kernel = SirenGridLoss(spec, res)
    targets = _targets(digits)

    # Machine peaks: large sgemm, sine throughput (both with this thread count).
    big = torch.randn(2048, 2048)
    t_mm = _best(lambda: big @ big)
    peak = 2 * 2048**3 / t_mm / 1e9
    z = torch.randn(b, npx, h)
    out = torch.empty_like(z)
    t_sin = _best(lambda: torch.sin(z, out=out))
    t_cos = _best(lambda: torch.cos(z, out=out))
    ns_trig = (t_sin + t_cos) / 2 / z.numel() * 1e9

    # One batched step, whole and in parts (same shapes as SirenGridLoss).
    t_kernel = _best(lambda: kernel(params, targets))
    m, v, g = torch.zeros_like(params), torch.zeros_like(params), torch.randn_like(params)

    def adam() -> None:
        m.lerp_(g, 0.1)
        v.mul_(0.99).addcmul_(g, g, value=0.01)
        denom = (v.sqrt() / 0.5).add_(1e-8)
        params.clone().addcdiv_(m, denom, value=-1e-3)

    t_adam = _best(adam)
    a1, w1, dz = torch.randn(b, npx, h), torch.randn(b, h, h), torch.randn(b, npx, h)
    bias = torch.randn(b, 1, h)
    t_matmul = (_best(lambda: torch.baddbmm(bias, a1, w1.mT))  # forward, hidden layer
                + _best(lambda: torch.bmm(dz.mT, a1))  # weight gradient
                + _best(lambda: torch.bmm(dz, w1))  # input gradient
                + _best(lambda: torch.bmm(dz[..., :1].mT, a1))  # output layer weight gradient
                + _best(lambda: torch.bmm(dz[..., :1], w1[:, :1, :])))  # output layer input grad
    sx = torch.randn(b, res, h)
    t_trig = (_best(lambda: torch.sin(z)) + _best(lambda: torch.cos(z, out=out))
              + 4 * _best(lambda: torch.sin(sx)))
    t_other = max(t_kernel - t_matmul - t_trig, 0.0)
    flops = 3 * 2 * npx * h * h + 3 * 2 * npx * h  # hidden and output layer: forward + 2 grads
    trig_elems = 2 * npx * h + 4 * res * h
    per = 1e6 / b
    floor_us = (flops / (peak * 1e9) + trig_elems * ns_trig * 1e-9) * 1e6
    step_us = (t_kernel + t_adam) * per
    return {
        "machine": machine(), "batch": b,
        "sgemm_peak_gflops": round(peak, 1), "sin_cos_ns_per_element": round(ns_trig, 3),
        "flops_per_net_step": flops, "trig_per_net_step": trig_elems,
        "us_per_net_step": {
            "total": round(step_us, 1),
            "matmul": round(t_matmul * per, 1),
            "sine_cosine": round(t_trig * per, 1),
            "other_elementwise_and_reductions": round(t_other * per, 1),
            "adam": round(t_adam * per, 1),
        },
        "matmul_gflops_achieved": round(flops / (t_matmul * per * 1e-6) / 1e9, 1),
        "floor_us_per_net_step": round(floor_us, 1),
        "step_over_floor": round(step_us / floor_us, 2),
        "default_config": cfg.to_dict(),
    }


# ---------------------------------------------------------------------- full
def full(args: argparse.Namespace) -> dict[str, object]:
    cfg = inr_config(args.preset, micro_batch=args.micro_batch, steps=args.steps)
    cpu0 = cpu_seconds()
    load0 = os.getloadavg()
    t = time.perf_counter()
    path = fit_inr_zoo("mnist-embedded", out=args.out, limit=args.limit,
                       per_image=args.per_image, seed=args.seed, config=cfg,
                       chunk_size=args.chunk_size, workers=args.workers, fresh=args.fresh,
                       progress=not args.quiet, device=args.device)
    synchronize(args.device)
    seconds = time.perf_counter() - t
    cpu = cpu_seconds() - cpu0
    load1 = os.getloadavg()
    zoo = Zoo(path)
    psnr, steps = zoo.metric("psnr"), zoo.metric("steps")
    digits = load_images("mnist-embedded").images
    smooth = smoothness(zoo.spec, zoo.params, digits[zoo.image_index], args.device,
                        batch=4096 if args.device != "cpu" else 256)
    per_class = {int(c): round(float(psnr[zoo.labels == c].median()), 2)
                 for c in zoo.labels.unique()}
    return {
        "machine": machine(), "preset": args.preset, "workers": args.workers,
        "device": args.device, "config": cfg.to_dict(), "chunk_size": args.chunk_size,
        "networks": len(zoo), "seconds": round(seconds, 1), "minutes": round(seconds / 60, 2),
        "cpu_seconds": round(cpu, 1),
        "idle_machine_minutes_estimate": (  # CPU fits only
            round(cpu / min(args.workers, os.cpu_count() or 1) / 60, 2)
            if args.device == "cpu" else None),
        "loadavg_start_end_15m": [round(load0[2], 2), round(load1[2], 2)],
        "networks_per_s": round(len(zoo) / seconds, 2),
        "psnr": {**quantiles(psnr), "min": round(float(psnr.min()), 2),
                 "max": round(float(psnr.max()), 2),
                 "below_26db": round(float((psnr < 26).double().mean()), 4)},
        "target_psnr": cfg.target_psnr,
        "psnr_median_by_class": per_class,
        "steps": {**quantiles(steps),
                  "at_cap": round(float((steps == cfg.steps).double().mean()), 4)},
        "smoothness_2x_psnr": quantiles(smooth),
        "total_net_steps": int(steps.sum()),
        "us_per_net_step_wall": round(seconds / float(steps.sum() + len(zoo)) * 1e6, 1),
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Run the subcommand of ``argv`` (default ``sys.argv[1:]``); print and return its JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compare")
    c.add_argument("--n", type=int, default=100)
    c.add_argument("--preset", default="default")
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--repeats", type=int, default=2)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--no-target", action="store_true", help="also compare without stopping")
    pr = sub.add_parser("profile")
    pr.add_argument("--batch", type=int, default=32)
    pr.add_argument("--threads", type=int, default=1)
    f = sub.add_parser("full")
    f.add_argument("--workers", type=int, default=2)
    f.add_argument("--preset", default="default")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--out", default="runs/inr_zoo_default.safetensors")
    f.add_argument("--fresh", action="store_true")
    f.add_argument("--quiet", action="store_true")
    f.add_argument("--limit", type=int, help="first N digits (default: all 5,000)")
    f.add_argument("--per-image", type=int, default=1, help="networks per digit")
    f.add_argument("--chunk-size", type=int, default=128, help="networks per resumable chunk")
    f.add_argument("--micro-batch", type=int,
                   help="networks per fused kernel call (default: the preset's)")
    f.add_argument("--steps", type=int, help="step cap (default: the preset's)")
    f.add_argument("--device", default="cpu", help="cpu or cuda (one process drives a GPU)")
    args = p.parse_args(argv)
    result = {"compare": compare, "profile": profile, "full": full}[args.cmd](args)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
