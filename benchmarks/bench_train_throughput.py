"""Autoencoder training throughput at the paper-inr configuration: symmerge vs the reference design.

One training step = data -> graph, forward, render loss, backward, gradient clipping,
AdamW step (plus the LR scheduler), on ``--batch-size`` SIRENs [2, 32, 32, 1]. Both
implementations start from the same weights and see the same batches and dropout masks,
so their losses agree to float error (printed, as a check that both do the same work).
They are timed in the same process, their steps interleaved (alternating which goes
first), so that a shared, loaded machine slows both alike; the ratio is the number to
read.

* ``ours``: symmerge's ``AutoencoderModule`` (template-gather graph batch, class-gathered
  branches, batched render against target renders cached once per zoo);
* ``reference design``: ``benchmarks/reference_design.py`` on a copy of the same weights
  (per-network dense graphs and ``Batch.from_data_list``, every masked branch on every
  row, per-network rendering of decoded and original networks every step).

Also reported: FLOPs of one step (``torch.utils.flop_counter.FlopCounterMode``, forward +
backward, counted during an untimed warm-up step at ``--warmup-batch`` and scaled
linearly, which is exact here: every matmul's row count is proportional to the batch;
``--warmup-batch`` equal to ``--batch-size`` counts at the full batch), the machine's
float32 matmul rate (a square ``--matmul-size`` matmul at the same thread count, measured
between steps; the best is taken as peak), encoder-only inference throughput (eval, no
grad, graph building included) and, with ``--profile``, where ours spends its time.

Before timing, each implementation runs ``--warmup-steps`` untimed steps at the full
batch (updates undone): the first full-size step grows the heap and is slower.

    python benchmarks/bench_train_throughput.py [--steps 2] [--baseline-steps 2]
        [--batch-size 128] [--threads 2] [--zoo ZOO] [--profile] [--json OUT]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from gpu_common import peak_memory_mib, reset_peak_memory, synchronize
from reference_design import ReferenceDesignAutoencoder, ReferenceRenderLoss
from torch import Tensor
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from symmerge.models.train_config import TrainConfig, resolve_config
from symmerge.specs import SirenSpec
from symmerge.training.losses import RenderLoss
from symmerge.training.module import AutoencoderModule
from symmerge.utils.malloc import retain_freed_memory

PHASES = ("encode (incl. graph)", "decode+loss", "backward", "clip+step")

#: profiler op name -> category, for the breakdown of ours
OP_CATEGORIES: dict[str, tuple[str, ...]] = {
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul"),
    "gather/scatter/index": (
        "aten::index", "aten::index_select", "aten::gather", "aten::scatter_add_",
        "aten::scatter_reduce_", "aten::index_put_", "aten::_index_put_impl_",
        "aten::index_copy_", "aten::index_add_", "aten::embedding_dense_backward",
    ),
    "layer norm": ("aten::native_layer_norm", "aten::native_layer_norm_backward"),
    "elementwise": (
        "aten::mul", "aten::add", "aten::add_", "aten::sub", "aten::neg", "aten::silu",
        "aten::silu_backward", "aten::sin", "aten::cos", "aten::div", "aten::div_",
        "aten::mul_", "aten::where", "aten::bernoulli_", "aten::sqrt", "aten::pow",
        "aten::addcmul_", "aten::addcdiv_", "aten::lerp_", "aten::clamp", "aten::clamp_min",
        "aten::_foreach_mul_", "aten::_foreach_add_", "aten::_foreach_addcmul_",
        "aten::_foreach_addcdiv_", "aten::_foreach_lerp_", "aten::_foreach_sqrt",
        "aten::_foreach_div_", "aten::_foreach_norm",
    ),
    "copy/fill/alloc": (
        "aten::copy_", "aten::fill_", "aten::zero_", "aten::empty", "aten::empty_strided",
        "aten::cat", "aten::clone", "aten::_to_copy", "aten::contiguous", "aten::new_zeros",
    ),
    "reductions": ("aten::sum", "aten::mean", "aten::linalg_vector_norm", "aten::mse_loss",
                   "aten::mse_loss_backward"),
}


# ------------------------------------------------------------------------------ helpers
def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (``platform.processor()`` as a fallback)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def matmul_gflops(n: int, device: torch.device, repeats: int = 5) -> list[float]:
    """Rates (GFLOP/s) of ``repeats`` float32 ``n x n`` matmuls, after one warm-up."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    torch.mm(a, b)
    synchronize(device)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        rates.append(2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return rates


@dataclass
class Impl:
    """One implementation under test: a training step with per-phase timers."""

    name: str
    device: torch.device
    train_step: Callable[[Tensor, Tensor], tuple[float, dict[str, float]]]
    encode: Callable[[Tensor], Tensor]
    graph: Callable[[Tensor], Any]
    set_train: Callable[[bool], None]
    save: Callable[[], Any]
    load: Callable[[Any], None]
    step_times: list[float] = field(default_factory=list)
    phase_times: list[dict[str, float]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    infer_times: list[float] = field(default_factory=list)
    graph_times: list[float] = field(default_factory=list)
    flops_per_network: float = 0.0
    peak_mib: float | None = None  # device memory of a full-batch training step

    def timed_step(self, params: Tensor, index: Tensor, seed: int) -> None:
        """One timed step; ``seed`` fixes the dropout masks (same seed, same masks)."""
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        loss, phases = self.train_step(params, index)
        self.step_times.append(time.perf_counter() - t0)
        self.phase_times.append(phases)
        self.losses.append(loss)

    def timed_graph(self, params: Tensor) -> None:
        """Data -> graph only (also part of the ``encode`` phase of a step)."""
        synchronize(self.device)
        t0 = time.perf_counter()
        self.graph(params)
        synchronize(self.device)
        self.graph_times.append(time.perf_counter() - t0)

    def timed_encode(self, params: Tensor) -> None:
        """Encoder-only inference (graph included), without gradients."""
        with torch.no_grad():
            synchronize(self.device)
            t0 = time.perf_counter()
            self.encode(params)
            synchronize(self.device)
            self.infer_times.append(time.perf_counter() - t0)


class PhaseClock:
    """Wall time between consecutive :meth:`tick` calls, by phase name."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.times: dict[str, float] = {}
        synchronize(device)
        self._t = time.perf_counter()

    def tick(self, phase: str) -> None:
        """Close ``phase`` now and start the next one."""
        synchronize(self.device)
        now = time.perf_counter()
        self.times[phase] = now - self._t
        self._t = now


def _state_fns(
    model: torch.nn.Module, opt: torch.optim.Optimizer, sched: Any
) -> tuple[Callable[[], Any], Callable[[Any], None]]:
    """Save / restore weights, optimizer and scheduler state (around the warm-up step)."""

    def save() -> Any:
        return copy.deepcopy((model.state_dict(), opt.state_dict(), sched.state_dict()))

    def load(state: Any) -> None:
        model.load_state_dict(state[0])
        opt.load_state_dict(state[1])
        sched.load_state_dict(state[2])

    return save, load


def _optimizer(params: Any, cfg: TrainConfig) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW with the linear warm-up of ``AutoencoderModule.configure_optimizers``."""
    o = cfg.optim
    opt = torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
    warm = max(o.warmup_steps, 1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warm))
    return opt, sched


def _timed_step(
    device: torch.device,
    encode: Callable[[Tensor], Tensor],
    loss_of: Callable[[Tensor, Tensor, Tensor], Tensor],
    parameters: Callable[[], Iterator[torch.nn.Parameter]],
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    clip: float,
) -> Callable[[Tensor, Tensor], tuple[float, dict[str, float]]]:
    """One training step, timed by phase: encode, decode + loss (``loss_of(z, params,
    index)``), backward, gradient clipping + optimizer and scheduler step."""

    def step(params: Tensor, index: Tensor) -> tuple[float, dict[str, float]]:
        clock = PhaseClock(device)
        z = encode(params)
        clock.tick("encode (incl. graph)")
        loss = loss_of(z, params, index)
        clock.tick("decode+loss")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        clock.tick("backward")
        torch.nn.utils.clip_grad_norm_(parameters(), clip)
        opt.step()
        sched.step()
        clock.tick("clip+step")
        return float(loss.detach()), clock.times

    return step


def make_ours(
    spec: SirenSpec, cfg: TrainConfig, zoo: Tensor
) -> tuple[Impl, AutoencoderModule]:
    """symmerge's training step: ``AutoencoderModule`` with its cached target renders and,
    if the configuration asks for them, per-tensor parameter scales fitted to the zoo (as
    ``symmerge.training.train`` does).

    The step is ``module._loss`` spelled out in two phases (``model.encode``, then
    ``model.decode`` and the render loss), then backward, clipping (as Lightning's
    ``gradient_clip_val``) and the module's own optimizer and scheduler.
    """
    device = zoo.device
    module = AutoencoderModule(spec.to_json(), cfg.model_dump(mode="json")).to(device)
    if cfg.scale_params:
        module.model.set_param_scale(zoo)
    targets = RenderLoss(spec, cfg.loss.resolution).render_targets(zoo)
    module.attach_loss_data(targets=targets)
    optim = module.configure_optimizers()
    opt, sched = optim["optimizer"], optim["lr_scheduler"]["scheduler"]
    model, render_loss = module.model, module.render_loss
    assert render_loss is not None

    step = _timed_step(
        device, model.encode,
        lambda z, params, index: render_loss(model.decode(z), targets[index]),
        module.parameters, opt, sched, cfg.optim.grad_clip,
    )
    impl = Impl("ours", device, step, model.encode, model.graph, lambda on: module.train(on),
                *_state_fns(model, opt, sched))
    return impl, module


def make_reference(module: AutoencoderModule, cfg: TrainConfig) -> Impl:
    """The reference design on a copy of ``module``'s current weights."""
    model = copy.deepcopy(module.model)
    device = next(model.parameters()).device
    ref = ReferenceDesignAutoencoder(model)
    loss_fn = ReferenceRenderLoss(model.spec, cfg.loss.resolution)
    opt, sched = _optimizer(model.parameters(), cfg)

    step = _timed_step(  # targets re-rendered, network by network
        device, ref.encode, lambda z, params, index: loss_fn(ref.decode(z), params),
        model.parameters, opt, sched, cfg.optim.grad_clip,
    )
    return Impl("reference design", device, step, ref.encode, ref.graph, lambda on: ref.train(on),
                *_state_fns(model, opt, sched))


def count_flops(impl: Impl, params: Tensor, index: Tensor) -> float:
    """FLOPs of one training step (forward + backward matmuls), per network. The step
    also serves as warm-up; it is not timed and its update is undone."""
    state = impl.save()
    with FlopCounterMode(display=False) as counter:
        impl.train_step(params, index)
    impl.load(state)
    return counter.get_total_flops() / params.shape[0]


def warm_up(impl: Impl, params: Tensor, index: Tensor, steps: int) -> None:
    """Untimed full-batch steps, so the allocator's heap and other caches reach their
    steady state before timing (the first full step pays for growing them); the
    updates are undone. On a GPU, the peak device memory of these steps is recorded."""
    state = impl.save()
    reset_peak_memory(impl.device)
    for _ in range(steps):
        impl.train_step(params, index)
    impl.peak_mib = peak_memory_mib(impl.device) if steps else None
    impl.load(state)


def profile_ours(impl: Impl, params: Tensor, index: Tensor) -> dict[str, Any]:
    """One extra step of ours under ``torch.profiler``: self time by op category (CPU
    time on the CPU, device time on a GPU)."""
    gpu = impl.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
    with profile(activities=activities) as prof:
        impl.train_step(params, index)
    totals: dict[str, float] = {}
    top: list[tuple[str, float]] = []
    for ev in prof.key_averages():
        sec = (ev.self_device_time_total if gpu else ev.self_cpu_time_total) / 1e6
        cat = next((c for c, names in OP_CATEGORIES.items() if ev.key in names), "other")
        totals[cat] = totals.get(cat, 0.0) + sec
        top.append((ev.key, sec))
    top.sort(key=lambda kv: -kv[1])
    return {"categories_s": totals, "top_ops_s": dict(top[:15])}


def median(xs: list[float]) -> float:
    """The median of ``xs`` (NaN when empty)."""
    return statistics.median(xs) if xs else float("nan")


# --------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    """Parse arguments (``argv``, default ``sys.argv[1:]``), run both implementations,
    print and save the numbers."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=2, help="timed steps of ours")
    ap.add_argument("--baseline-steps", type=int, default=2,
                    help="timed steps of the reference design (at least 2 recommended)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--preset", default="paper-inr", choices=("paper-inr", "quick"),
                    help="training preset (quick: a small model, for smoke tests)")
    ap.add_argument("--warmup-steps", type=int, default=1,
                    help="untimed full-batch steps per implementation before timing")
    ap.add_argument("--warmup-batch", type=int, default=8,
                    help="batch of the (untimed, FLOP-counted) warm-up steps")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--zoo", help="SIREN zoo file (default: random SIREN initializations)")
    ap.add_argument("--device", default="cpu",
                    help="cpu or cuda[:i] (the reference design builds graphs on the CPU, "
                         "as its data loader does, then moves the batch)")
    ap.add_argument("--infer-repeats", type=int, default=2,
                    help="timed encoder-only passes per implementation")
    ap.add_argument("--matmul-size", type=int, default=2048)
    ap.add_argument("--no-baseline", action="store_true", help="time ours only")
    ap.add_argument("--profile", action="store_true",
                    help="profile one extra step of ours (op categories)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write all numbers to this JSON file")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.baseline_steps < 1 or args.warmup_steps < 0:
        ap.error("--steps and --baseline-steps must be positive, --warmup-steps >= 0")
    torch.set_num_threads(args.threads)
    malloc_tuned = retain_freed_memory()  # as the CLI does; SYMMERGE_MALLOC=0 to compare
    device = torch.device(args.device)
    load_start = os.getloadavg()
    t_start = time.perf_counter()

    B = args.batch_size
    if args.zoo:
        from symmerge.zoo import load_zoo

        zoo_file = load_zoo(args.zoo)
        spec = zoo_file.spec
        if not isinstance(spec, SirenSpec):
            ap.error(f"--zoo must hold SIRENs, it holds {spec.describe()}")
        zoo = zoo_file.params[: 2 * B].float().contiguous()
        source = f"zoo {args.zoo} (first {zoo.shape[0]} networks)"
    else:
        spec = SirenSpec()
        zoo = spec.init_params(2 * B, generator=torch.Generator().manual_seed(args.seed))
        source = "random SIREN initializations"
    zoo = zoo.to(device)
    if zoo.shape[0] < B:
        ap.error(f"the zoo has {zoo.shape[0]} networks, fewer than --batch-size {B}")
    batches = [torch.arange(i, i + B, device=device)
               for i in range(0, zoo.shape[0] - B + 1, B)]
    # the reference design has no probe features: both sides run without them
    cfg = resolve_config(args.preset, overrides={"encoder": {"probe_points": 0}}, spec=spec)
    torch.manual_seed(args.seed)

    RenderLoss(spec, cfg.loss.resolution).render_targets(zoo[:B])  # warm-up
    synchronize(device)
    t0 = time.perf_counter()
    RenderLoss(spec, cfg.loss.resolution).render_targets(zoo)
    synchronize(device)
    target_cache_nps = zoo.shape[0] / (time.perf_counter() - t0)

    ours, module = make_ours(spec, cfg, zoo)
    impls = [ours]
    if not args.no_baseline:
        impls.append(make_reference(module, cfg))  # same initial weights
    peaks = matmul_gflops(args.matmul_size, device)

    # warm-up steps at --warmup-batch, FLOP-counted, their updates undone
    small = batches[0][: args.warmup_batch]
    for impl in impls:
        impl.flops_per_network = count_flops(impl, zoo[small], small)
        warm_up(impl, zoo[batches[0]], batches[0], args.warmup_steps)

    for i in range(max(args.steps, 0 if args.no_baseline else args.baseline_steps)):
        idx = batches[i % len(batches)]
        order = impls if i % 2 == 0 else impls[::-1]
        for impl in order:
            limit = args.steps if impl is ours else args.baseline_steps
            if i < limit:
                impl.timed_step(zoo[idx], idx, seed=args.seed + 1000 + i)
        peaks += matmul_gflops(args.matmul_size, device, repeats=3)

    for r in range(3):
        for impl in impls if r % 2 == 0 else impls[::-1]:
            impl.timed_graph(zoo[batches[r % len(batches)]])
    for impl in impls:
        impl.set_train(False)
        impl.timed_encode(zoo[batches[0]][: args.warmup_batch])  # warm-up
        impl.infer_times.clear()
    for r in range(args.infer_repeats):
        for impl in impls if r % 2 == 0 else impls[::-1]:
            impl.timed_encode(zoo[batches[r % len(batches)]])
    peaks += matmul_gflops(args.matmul_size, device)

    prof = None
    if args.profile:
        ours.set_train(True)
        idx = batches[0]
        prof = profile_ours(ours, zoo[idx], idx)

    # ---------------------------------------------------------------------- report
    peak = max(peaks)
    rows = []
    for impl in impls:
        step_s = median(impl.step_times)
        flops = impl.flops_per_network * B
        rows.append({
            "impl": impl.name,
            "steps": len(impl.step_times),
            "step_s": impl.step_times,
            "median_step_s": step_s,
            "networks_per_s": B / step_s,
            "gflop_per_step": flops / 1e9,
            "achieved_gflops": flops / step_s / 1e9,
            "fraction_of_matmul_peak": flops / step_s / 1e9 / peak,
            "phases_median_s": {p: median([t[p] for t in impl.phase_times]) for p in PHASES},
            "losses": impl.losses,
            "graph_s": impl.graph_times,
            "graph_networks_per_s": B / median(impl.graph_times),
            "infer_s": impl.infer_times,
            "infer_networks_per_s": B / median(impl.infer_times),
            "peak_gpu_mib": impl.peak_mib,
        })
    env = {
        "cpu": cpu_model(), "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch": torch.__version__, "python": platform.python_version(),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
        "spec": spec.describe(), "source": source, "batch_size": B,
        "preset": args.preset, "encoder": cfg.encoder.model_dump(),
        "wall_s": time.perf_counter() - t_start, "malloc_retain_freed": malloc_tuned,
    }
    result = {
        "env": env, "args": vars(args), "rows": rows, "matmul_gflops": peaks,
        "matmul_peak_gflops": peak, "matmul_median_gflops": median(peaks),
        "target_cache_networks_per_s": target_cache_nps, "profile": prof,
    }

    print(f"{args.preset} ({spec.describe()}, d={cfg.encoder.d_hidden}, "
          f"{cfg.encoder.num_layers} layers, latent {cfg.encoder.d_latent}), batch {B}, "
          f"{source}; {env['gpu'] or 'CPU ' + env['cpu']}, {env['threads']} threads, "
          f"torch {torch.__version__}; freed memory retained: {malloc_tuned}; "
          f"load average {load_start[0]:.1f} -> {env['loadavg_end'][0]:.1f}")
    print()
    print("| implementation | timed steps | median step (s) | networks/s | GFLOP/step | "
          "GFLOP/s | of matmul peak |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['impl']} | {r['steps']} | {r['median_step_s']:.2f} | "
              f"{r['networks_per_s']:.2f} | {r['gflop_per_step']:.0f} | "
              f"{r['achieved_gflops']:.1f} | {100 * r['fraction_of_matmul_peak']:.0f}% |")
    if len(rows) > 1:
        ratio = rows[0]["networks_per_s"] / rows[1]["networks_per_s"]
        result["speedup"] = ratio
        result["flop_ratio"] = rows[1]["gflop_per_step"] / rows[0]["gflop_per_step"]
        result["infer_speedup"] = rows[0]["infer_networks_per_s"] / rows[1]["infer_networks_per_s"]
        common = min(len(ours.losses), len(impls[1].losses))
        result["max_loss_diff"] = max(
            abs(a - b) for a, b in zip(ours.losses[:common], impls[1].losses[:common], strict=True)
        )
        print(f"| **ours / reference** | | | **{ratio:.2f}x** | "
              f"{result['flop_ratio']:.2f}x fewer | | |")
    print()
    print(f"float32 matmul {args.matmul_size}^3 on {device}, {env['threads']} threads: peak "
          f"{peak:.1f} GFLOP/s, median {median(peaks):.1f} GFLOP/s over {len(peaks)} runs; "
          f"target render cache: {target_cache_nps:.0f} networks/s (once per zoo)")
    if "max_loss_diff" in result:
        print(f"same weights, batches and dropout masks: losses "
              f"{', '.join(f'{x:.6f}' for x in ours.losses)} (ours) vs "
              f"{', '.join(f'{x:.6f}' for x in impls[1].losses)} (reference design), "
              f"max difference {result['max_loss_diff']:.1e}")
    print()
    print("| phase (median s) | " + " | ".join(r["impl"] for r in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for p in PHASES:
        print(f"| {p} | " + " | ".join(f"{r['phases_median_s'][p]:.2f}" for r in rows) + " |")
    print()
    print("| encoder-only inference (eval, no grad, incl. graph) | "
          + " | ".join(r["impl"] for r in rows) + " |")
    print("|---|" + "---|" * len(rows))
    print("| networks/s | " + " | ".join(f"{r['infer_networks_per_s']:.1f}" for r in rows) + " |")
    print("| data -> graph alone, networks/s | "
          + " | ".join(f"{r['graph_networks_per_s']:.0f}" for r in rows) + " |")
    if prof is not None:
        total = sum(prof["categories_s"].values())
        print()
        print("| ours, op category (self time, one profiled step) | s | share |")
        print("|---|---|---|")
        for cat, sec in sorted(prof["categories_s"].items(), key=lambda kv: -kv[1]):
            print(f"| {cat} | {sec:.2f} | {100 * sec / total:.0f}% |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
