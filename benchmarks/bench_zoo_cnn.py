"""CNN zoo training: batched vs. sequential throughput, and full zoos.

* ``compare``: train the same ``--n`` networks (same hyperparameters, inits,
  minibatches and dropout masks) with the batched trainer (grouped
  convolutions, one process, ``--threads``) and with the per-network recipe
  (``nn.Module`` + ``torch.optim.Adam``) one network at a time, in the same
  process; alternates ``--repeats`` times. Reports networks trained per minute,
  the ratio and both test-accuracy distributions. ``--steps`` shortens training
  (throughput per step does not depend on it).
* ``full``: ``--n`` ReLU and ``--n`` tanh networks with the default recipe via
  ``train_cnn_zoo`` (``--workers`` processes): time and accuracy distributions.
* ``threads``: the batched trainer alone on ``--n`` networks in one process with
  each of ``--threads`` torch threads (alternated ``--repeats`` times): networks
  per minute, and whether the parameters are bitwise the same for every count.

    python benchmarks/bench_zoo_cnn.py compare [--n 16] [--steps 200] [--threads 1]
    python benchmarks/bench_zoo_cnn.py full [--n 200] [--workers 2] [--out-dir runs]
    python benchmarks/bench_zoo_cnn.py threads [--n 50] [--steps 100] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from zoo_bench_common import cpu_seconds, machine

from symmerge.data import load_images
from symmerge.zoo import Zoo
from symmerge.zoo.train_cnn import (
    CNNData,
    cnn_config,
    draw_networks,
    train_cnn_module,
    train_cnn_zoo,
    train_cnns,
)


def quantiles(t: torch.Tensor, scale: float = 100.0) -> dict[str, float]:
    t = t.double() * scale
    q = torch.quantile(t, torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0], dtype=torch.float64)).tolist()
    return {"min": round(q[0], 1), "p10": round(q[1], 1), "median": round(q[2], 1),
            "p90": round(q[3], 1), "max": round(q[4], 1), "spread": round(q[4] - q[0], 1)}


def compare(args: argparse.Namespace) -> dict[str, object]:
    torch.set_num_threads(args.threads)
    cfg = cnn_config(args.preset, steps=args.steps)
    data = CNNData.from_images(load_images("mnist-embedded"), cfg)
    out: dict[str, object] = {"machine": machine(), "n": args.n, "steps": cfg.steps,
                              "batch_size": cfg.batch_size}
    for activation in args.activations:
        spec = cfg.spec(activation, 1, data.n_classes)
        times: dict[str, list[float]] = {"batched": [], "sequential": []}
        for _ in range(args.repeats):
            hps, init, streams = draw_networks(spec, cfg, args.seed, range(args.n),
                                               data.train_x.shape[0])
            t = time.perf_counter()
            batched = train_cnns(spec, data, hps, init, cfg, streams)
            times["batched"].append(time.perf_counter() - t)
            hps, init, streams = draw_networks(spec, cfg, args.seed, range(args.n),
                                               data.train_x.shape[0])
            t = time.perf_counter()
            seq = [train_cnn_module(spec, data, {k: float(v[i]) for k, v in hps.items()}, init[i],
                                    cfg, streams[i]) for i in range(args.n)]
            times["sequential"].append(time.perf_counter() - t)
        seq_acc = torch.cat([r.test_accuracy for r in seq])
        out[activation] = {
            "batched": {"seconds": [round(x, 1) for x in times["batched"]],
                        "networks_per_min": round(60 * args.n / min(times["batched"]), 2),
                        "test_accuracy": quantiles(batched.test_accuracy)},
            "sequential": {"seconds": [round(x, 1) for x in times["sequential"]],
                           "networks_per_min": round(60 * args.n / min(times["sequential"]), 2),
                           "test_accuracy": quantiles(seq_acc)},
            "speedup": round(min(times["sequential"]) / min(times["batched"]), 2),
            "max_abs_param_diff": float(
                (batched.params - torch.cat([r.params for r in seq])).abs().max()),
        }
    return out


def full(args: argparse.Namespace) -> dict[str, object]:
    out: dict[str, object] = {"machine": machine(), "n": args.n, "preset": args.preset,
                              "workers": args.workers}
    for activation in args.activations:
        path = Path(args.out_dir) / f"cnn_zoo_{activation}_{args.n}.safetensors"
        cpu0, t = cpu_seconds(), time.perf_counter()
        train_cnn_zoo("mnist-embedded", out=path, n=args.n, activation=activation,
                      seed=args.seed, config=args.preset, workers=args.workers, fresh=args.fresh,
                      progress=not args.quiet)
        seconds = time.perf_counter() - t
        cpu = cpu_seconds() - cpu0
        zoo = Zoo(path)
        test, train = zoo.metric("test_accuracy"), zoo.metric("train_accuracy")
        corr = {}
        for name in ("lr", "weight_decay", "init_scale", "dropout", "train_fraction"):
            v = zoo.metric(name).double()
            v = v.log() if name in ("lr", "weight_decay", "init_scale") else v
            corr[name] = round(float(torch.corrcoef(torch.stack([v, test.double()]))[0, 1]), 2)
        out[activation] = {
            "seconds": round(seconds, 1), "networks_per_min": round(60 * args.n / seconds, 2),
            "cpu_seconds": round(cpu, 1),
            "idle_machine_minutes_estimate": round(
                cpu / min(args.workers, os.cpu_count() or 1) / 60, 2),
            "loadavg_15m_end": round(os.getloadavg()[2], 2),
            "test_accuracy": quantiles(test), "train_accuracy": quantiles(train),
            "corr_test_accuracy_with": corr,
        }
    return out


def threads(args: argparse.Namespace) -> dict[str, object]:
    cfg = cnn_config(args.preset, steps=args.steps)
    data = CNNData.from_images(load_images("mnist-embedded"), cfg)
    out: dict[str, object] = {"machine": machine(), "n": args.n, "steps": cfg.steps}
    for activation in args.activations:
        spec = cfg.spec(activation, 1, data.n_classes)
        times: dict[int, list[float]] = {t: [] for t in args.threads}
        params: dict[int, torch.Tensor] = {}
        for _ in range(args.repeats):
            for t in args.threads:
                torch.set_num_threads(t)
                hps, init, streams = draw_networks(spec, cfg, args.seed, range(args.n),
                                                   data.train_x.shape[0])
                start = time.perf_counter()
                params[t] = train_cnns(spec, data, hps, init, cfg, streams).params
                times[t].append(time.perf_counter() - start)
        first = params[args.threads[0]]
        out[activation] = {
            f"threads_{t}": {"seconds": [round(x, 1) for x in times[t]],
                             "networks_per_min": round(60 * args.n / min(times[t]), 2)}
            for t in args.threads
        } | {"bitwise_equal": all(torch.equal(first, p) for p in params.values()),
             "loadavg_1m_end": round(os.getloadavg()[0], 2)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compare")
    c.add_argument("--n", type=int, default=16)
    c.add_argument("--steps", type=int, default=200)
    c.add_argument("--preset", default="default")
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--repeats", type=int, default=2)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--activations", nargs="+", default=["relu", "tanh"])
    f = sub.add_parser("full")
    f.add_argument("--n", type=int, default=200)
    f.add_argument("--preset", default="default")
    f.add_argument("--workers", type=int, default=2)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--activations", nargs="+", default=["relu", "tanh"])
    f.add_argument("--out-dir", default="runs")
    f.add_argument("--fresh", action="store_true")
    f.add_argument("--quiet", action="store_true")
    t = sub.add_parser("threads")
    t.add_argument("--n", type=int, default=50)
    t.add_argument("--steps", type=int, default=100)
    t.add_argument("--preset", default="default")
    t.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    t.add_argument("--repeats", type=int, default=3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--activations", nargs="+", default=["relu", "tanh"])
    args = p.parse_args()
    print(json.dumps({"compare": compare, "full": full, "threads": threads}[args.cmd](args),
                     indent=1))


if __name__ == "__main__":
    main()
