"""Batched SIREN fitting: thousands of INRs as one computation.

Every network is a :class:`~symmerge.specs.SirenSpec` (default ``[2, 32, 32, 1]``,
w0 30, +0.5 offset) initialized as the published MNIST-INR zoo
(``SirenSpec.init_params``) and fitted full-batch to the pixels of one image
with Adam under a shared learning-rate schedule. The B networks of a batch are
evaluated and differentiated together by hand-written batched kernels
(:class:`SirenGridLoss`): the first layer uses the grid's separability,
``sin(a x_c + b y_r + c) = sin(a x_c) cos(b y_r + c) + cos(a x_c) sin(b y_r + c)``,
so it needs ``4 R`` instead of ``2 R^2`` sines per neuron; hidden layers are
batched matmuls. Each network stops on its own at the target PSNR or the step
cap; finished networks leave the batch (their state is removed, not masked),
so nobody's result depends on who shares its batch.

Python API::

    fit_inr_zoo("mnist-embedded", out="zoo.safetensors", limit=1000, per_image=2, seed=0,
                config="quick")     # or an INRFitConfig
    fit_sirens(spec, images, init, config)  # the batched fitter on tensors
    fit_siren_module(spec, image, init, config)  # the per-network reference recipe
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.nn.utils import parameters_to_vector

from symmerge.data.images import ImageSet, load_images
from symmerge.errors import SymmergeError
from symmerge.specs.siren import SirenSpec, coordinate_grid
from symmerge.zoo.io import save_zoo
from symmerge.zoo.shards import (
    ChunkPlan,
    Progress,
    generator_for,
    preset_config,
    run_chunked,
    tensor_digest,
)

# --------------------------------------------------------------------- config
#: networks per kernel call on the CPU (their activations stay in cache); accelerators take
#: the whole batch, one kernel launch per layer
CPU_MICRO_BATCH = 32
#: default networks per resumable zoo chunk on the CPU and on an accelerator
CPU_CHUNK, ACCELERATOR_CHUNK = 128, 8192


@dataclass(frozen=True)
class INRFitConfig:
    """How every SIREN of a zoo is fitted (see :data:`INR_PRESETS`).

    The learning rate at update ``t`` (0-based) is ``lr`` times a linear warmup
    over ``warmup`` updates and then a cosine decay from 1 to ``final_lr_ratio``
    at ``steps`` (``schedule="cosine"``), or constant. A network stops when its
    PSNR reaches ``target_psnr`` or after ``steps`` Adam updates.
    """

    hidden: tuple[int, ...] = (32, 32)
    w0: float = 30.0
    output_offset: float = 0.5
    lr: float = 1e-2
    schedule: str = "cosine"
    warmup: int = 0
    final_lr_ratio: float = 0.0
    steps: int = 1000
    target_psnr: float = 28.0
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-8
    micro_batch: int | None = None
    dtype: str = "float32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        problems = []
        if not self.hidden or any(h <= 0 for h in self.hidden):
            problems.append(f"hidden sizes must be positive, got {list(self.hidden)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            problems.append(f"learning rate must be positive and finite, got {self.lr}")
        for name in ("w0", "output_offset", "eps"):
            if not math.isfinite(getattr(self, name)):
                problems.append(f"{name} must be finite, got {getattr(self, name)}")
        if math.isnan(self.target_psnr):  # inf is fine: never stop early
            problems.append("target_psnr must be a number (inf: never stop early), got nan")
        if self.schedule not in ("cosine", "constant"):
            problems.append(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if self.steps <= 0:
            problems.append(f"step cap must be positive, got {self.steps}")
        if self.warmup < 0 or (self.warmup and self.warmup >= self.steps):
            problems.append(f"warmup must be in [0, steps), got {self.warmup}")
        if not 0.0 <= self.final_lr_ratio <= 1.0:
            problems.append(f"final_lr_ratio must be in [0, 1], got {self.final_lr_ratio}")
        if not all(0.0 <= b < 1.0 for b in self.betas) or len(self.betas) != 2:
            problems.append(f"betas must be two numbers in [0, 1), got {self.betas}")
        if self.micro_batch is not None and self.micro_batch <= 0:
            problems.append(f"micro_batch must be positive, got {self.micro_batch}")
        if self.dtype not in ("float32", "float64"):
            problems.append(f"dtype must be float32 or float64, got {self.dtype!r}")
        if problems:
            raise SymmergeError("invalid INR fit config: " + "; ".join(problems))

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    def lr_at(self, step: int) -> float:
        """Learning rate of the Adam update number ``step`` (0-based)."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        if self.schedule == "constant":
            return self.lr
        u = (step - self.warmup) / max(1, self.steps - self.warmup)
        cos = 0.5 * (1.0 + math.cos(math.pi * min(u, 1.0)))
        return self.lr * (self.final_lr_ratio + (1.0 - self.final_lr_ratio) * cos)

    def spec(self, channels: int = 1) -> SirenSpec:
        return SirenSpec((2, *self.hidden, channels), w0=self.w0, output_offset=self.output_offset)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"], d["betas"] = list(self.hidden), list(self.betas)
        return d


#: ``default``: Adam at 1e-2, betas (0.9, 0.99), cosine decay to 0 over the
#: 1,000-step cap, stop at 28 dB: nearly every embedded digit reaches the target
#: before the cap. ``quick``: 2e-2 with a 50-step warmup, 300-step cap, stop at
#: 27 dB: lower PSNR in fewer steps, for demos and tests. Both keep the INRs smooth
#: between pixels; higher rates without warmup fit the grid better but oscillate
#: between pixels. The measured PSNRs, steps and the recipes compared: BENCHMARKS.md,
#: "INR zoos".
INR_PRESETS: dict[str, INRFitConfig] = {
    "default": INRFitConfig(),
    "quick": INRFitConfig(lr=2e-2, warmup=50, steps=300, target_psnr=27.0),
}


def inr_config(config: INRFitConfig | str | None, **overrides: Any) -> INRFitConfig:
    """A preset by name (or a config), with non-None ``overrides`` applied."""
    return preset_config(INR_PRESETS, config, "INR", **overrides)


def psnr_from_mse(mse: Tensor) -> Tensor:
    """PSNR in dB for images in [0, 1] (peak 1)."""
    return -10.0 * torch.log10(mse)


# ------------------------------------------------------------- batched kernel
class SirenGridLoss:
    """Per-network MSE and its gradient for B SIRENs on the ``R x R`` pixel grid.

    Hand-written backward pass (no autograd graph): the forward keeps the sine
    outputs and reuses each pre-activation buffer for its cosine. Matches
    ``spec.render`` + autograd up to float rounding (tested).
    """

    def __init__(self, spec: SirenSpec, resolution: int, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> None:
        if spec.layout[0] != 2:
            raise SymmergeError(f"INR fitting needs 2 input coordinates, got layout {spec.layout}")
        self.spec = spec
        self.resolution = resolution
        axis = torch.linspace(-1.0, 1.0, resolution, dtype=dtype)
        self.axis = axis.to(device).view(1, resolution, 1)

    def __call__(self, params: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """``params [B, P]``, ``targets [B, R*R, C]`` -> ``(mse [B], grad [B, P])``."""
        spec, w0, axis, res = self.spec, self.spec.w0, self.axis, self.resolution
        ws, bs = spec.unflatten(params)
        nb, npx, last = params.shape[0], res * res, spec.num_layers - 1
        # Layer 0, separably: z[r, c] = w0 (W[:, 0] x_c + W[:, 1] y_r + b).
        ax = (ws[0][..., 0] * w0).unsqueeze(1) * axis  # [B, R (c), H]
        ay = torch.addcmul(bs[0].unsqueeze(1), ws[0][..., 1].unsqueeze(1), axis).mul_(w0)
        sx, cx, sy, cy = torch.sin(ax), torch.cos(ax), torch.sin(ay), torch.cos(ay)
        h = torch.mul(sx.unsqueeze(1), cy.unsqueeze(2))
        h = h.addcmul_(cx.unsqueeze(1), sy.unsqueeze(2)).view(nb, npx, -1)
        acts, coss = [h], []
        for layer in range(1, last):
            z = torch.baddbmm(bs[layer].unsqueeze(1) * w0, h, ws[layer].mT * w0)
            h = torch.sin(z)
            coss.append(torch.cos(z, out=z))
            acts.append(h)
        # Output layer as multiply + reduce: a batched matrix-vector product takes a
        # different kernel for B = 1, which would make results depend on the batch size.
        y = torch.stack([(h * w.unsqueeze(1)).sum(-1) for w in ws[last].unbind(1)], dim=-1)
        y = y.add_(bs[last].unsqueeze(1) + spec.output_offset)
        r = y.sub_(targets)
        mse = r.square().mean(dim=(1, 2))
        dy = r.mul_(2.0 / r[0].numel())
        gws: list[Tensor] = [dy] * spec.num_layers  # placeholders, all overwritten below
        gbs: list[Tensor] = [dy] * spec.num_layers
        # Output layer backward as multiply + reduce too (batched matrix-vector products).
        gws[last] = torch.stack([(h * d.unsqueeze(-1)).sum(1) for d in dy.unbind(-1)], dim=1)
        gbs[last] = dy.sum(1)
        da = sum(dy[..., c : c + 1] * ws[last][:, c].unsqueeze(1) for c in range(dy.shape[-1]))
        for layer in range(last - 1, 0, -1):
            dz = coss[layer - 1].mul_(da)
            gws[layer] = torch.bmm(dz.mT, acts[layer - 1]).mul_(w0)
            gbs[layer] = dz.sum(1).mul_(w0)
            da = torch.bmm(dz, ws[layer] * w0)
        c0 = torch.mul(cx.unsqueeze(1), cy.unsqueeze(2))
        c0 = c0.addcmul_(sx.unsqueeze(1), sy.unsqueeze(2), value=-1.0)
        dz = c0.mul_(da.view_as(c0))  # [B, r, c, H]
        sum_r, sum_c = dz.sum(2), dz.sum(1)  # over columns -> [B, r, H]; over rows -> [B, c, H]
        gbs[0] = sum_r.sum(1).mul_(w0)
        gws[0] = torch.stack([(sum_c * axis).sum(1), (sum_r * axis).sum(1)], dim=-1).mul_(w0)
        return mse, spec.flatten(gws, gbs)


def _targets(images: Tensor) -> Tensor:
    """``[B, C, R, R]`` images -> ``[B, R*R, C]`` in the coordinate grid's point order."""
    b, c, h, w = images.shape
    return images.permute(0, 2, 3, 1).reshape(b, h * w, c)


def _check_images(images: Tensor) -> Tensor:
    if images.ndim == 3:
        images = images.unsqueeze(1)
    if images.ndim != 4 or images.shape[-1] != images.shape[-2]:
        raise SymmergeError(
            f"INR fitting needs square images [N, C, R, R], got {tuple(images.shape)}"
        )
    return images


@dataclass(frozen=True)
class INRFitResult:
    """Fitted ``params [B, P]``, final ``psnr [B]`` (dB) and Adam ``steps [B]`` taken."""

    params: Tensor
    psnr: Tensor
    steps: Tensor


def fit_sirens(
    spec: SirenSpec,
    images: Tensor,
    init: Tensor,
    config: INRFitConfig,
    *,
    progress: Progress | None = None,
    device: torch.device | str | None = None,
) -> INRFitResult:
    """Fit B SIRENs ``init [B, P]`` to ``images [B, C, R, R]`` (or ``[B, R, R]``) at once.

    Full batch over the pixels, Adam (same update as ``torch.optim.Adam``),
    learning rate ``config.lr_at(step)``. At each step the loss of the current
    parameters is computed first; networks at ``target_psnr`` or at the step cap
    stop with those parameters and leave the batch. A network whose loss
    becomes non-finite stops with its last finite parameters. Runs on ``device``
    (default: where ``init`` is); results are returned on the CPU.
    """
    images = _check_images(images)
    dtype = config.torch_dtype
    init = spec.check_params(init).to(dtype)
    if init.ndim != 2 or init.shape[0] != images.shape[0]:
        raise SymmergeError(
            f"need one init per image: {tuple(init.shape)} vs {tuple(images.shape)}"
        )
    if images.shape[1] != spec.layout[-1]:
        raise SymmergeError(
            f"images have {images.shape[1]} channels, spec outputs {spec.layout[-1]}"
        )
    dev = torch.device(device) if device is not None else init.device
    kernel = SirenGridLoss(spec, images.shape[-1], dtype, dev)
    n = init.shape[0]
    out_params = init.detach().cpu().float().clone()
    out_psnr = torch.full((n,), float("nan"), dtype=torch.float32)
    out_steps = torch.zeros(n, dtype=torch.long)
    idx = torch.arange(n)
    params, targets = init.to(dev).clone(), _targets(images.to(dev, dtype))
    m, v = torch.zeros_like(params), torch.zeros_like(params)
    prev = params.clone()
    prev_psnr = torch.full((n,), float("nan"), device=dev)
    b1, b2 = config.betas
    mb = config.micro_batch or (CPU_MICRO_BATCH if dev.type == "cpu" else max(1, n))
    for step in range(config.steps + 1):
        mse = torch.empty(params.shape[0], dtype=dtype, device=dev)
        grad = torch.empty_like(params)
        for s in range(0, params.shape[0], mb):
            mse[s : s + mb], grad[s : s + mb] = kernel(params[s : s + mb], targets[s : s + mb])
        psnr = psnr_from_mse(mse).float()
        bad = ~torch.isfinite(psnr)
        done = bad | (psnr >= config.target_psnr) | (step == config.steps)
        if bool(done.any()):
            done_cpu, bad_done = done.cpu(), bad[done].cpu()
            final = torch.where(bad.unsqueeze(1), prev, params)[done].cpu().float()
            final_psnr = torch.where(bad, prev_psnr, psnr)[done].cpu()
            out_params[idx[done_cpu]] = final
            out_psnr[idx[done_cpu]] = final_psnr
            out_steps[idx[done_cpu]] = torch.where(bad_done, max(step - 1, 0), step)
            if progress is not None:
                progress(int(done_cpu.sum()), final_psnr)
            keep = ~done
            if not bool(keep.any()):
                break
            idx, params, targets = idx[keep.cpu()], params[keep], targets[keep]
            m, v, grad, psnr = m[keep], v[keep], grad[keep], psnr[keep]
        prev.resize_as_(params).copy_(params)
        prev_psnr = psnr
        t = step + 1
        m.lerp_(grad, 1.0 - b1)
        v.mul_(b2).addcmul_(grad, grad, value=1.0 - b2)
        denom = (v.sqrt() / math.sqrt(1.0 - b2**t)).add_(config.eps)
        params.addcdiv_(m, denom, value=-config.lr_at(step) / (1.0 - b1**t))
    return INRFitResult(out_params, out_psnr, out_steps)


# --------------------------------------------------------- reference recipe
def fit_siren_module(
    spec: SirenSpec, image: Tensor, init: Tensor, config: INRFitConfig
) -> INRFitResult:
    """The per-network recipe: one ``nn.Module``, ``torch.optim.Adam``, autograd.

    Same initialization, schedule and stopping rule as :func:`fit_sirens`; the
    sequential baseline of the benchmarks and the reference of the tests.
    """
    image = _check_images(image if image.ndim == 4 else image.unsqueeze(0))
    dtype = config.torch_dtype
    module = spec.module(spec.check_params(init).reshape(-1).to(dtype))
    coords = coordinate_grid(image.shape[-1], dtype=dtype)
    target = _targets(image.to(dtype))[0]
    opt = torch.optim.Adam(module.parameters(), lr=config.lr, betas=config.betas, eps=config.eps,
                           foreach=False)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: config.lr_at(s) / config.lr)
    prev = parameters_to_vector(module.parameters()).detach()
    prev_psnr = torch.tensor(float("nan"))
    for step in range(config.steps + 1):
        loss = torch.mean((module(coords) - target) ** 2)
        psnr = psnr_from_mse(loss.detach()).float()
        if not bool(torch.isfinite(psnr)):
            return INRFitResult(prev.float().unsqueeze(0), prev_psnr.reshape(1),
                                torch.tensor([max(step - 1, 0)]))
        if psnr >= config.target_psnr or step == config.steps:
            break
        prev, prev_psnr = parameters_to_vector(module.parameters()).detach(), psnr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return INRFitResult(spec.from_module(module).float().unsqueeze(0), psnr.reshape(1),
                        torch.tensor([step]))


# ------------------------------------------------------------------- zoos
@dataclass(frozen=True)
class _INRChunk:
    """Fits one chunk of an INR zoo (picklable, for worker processes)."""

    spec: SirenSpec
    config: INRFitConfig
    pixels: Tensor
    labels: Tensor
    seed: int
    per_image: int
    device: str = "cpu"
    source_index: Tensor | None = None  # index in the data source of each row of pixels

    def __call__(self, chunk: int, items: range, report: Progress) -> dict[str, Tensor]:
        local = torch.tensor([g // self.per_image for g in items], dtype=torch.long)
        res = fit_sirens(self.spec, self.pixels[local],
                         init_sirens(self.spec, self.seed, items), self.config, progress=report,
                         device=self.device)
        image_index = local if self.source_index is None else self.source_index[local]
        return {"params": res.params, "psnr": res.psnr, "steps": res.steps.float(),
                "image_index": image_index, "labels": self.labels[local]}


def init_sirens(spec: SirenSpec, seed: int, indices: Sequence[int]) -> Tensor:
    """Published-zoo initialization of networks ``indices``; network g uses seed (seed, g)."""
    return torch.cat([spec.init_params(1, generator=generator_for(seed, "inr", int(g)))
                      for g in indices])


def fit_inr_zoo(
    data: str | ImageSet = "mnist-embedded",
    *,
    out: str | os.PathLike[str],
    limit: int | None = None,
    stride: int = 1,
    per_image: int = 1,
    seed: int = 0,
    config: INRFitConfig | str = "default",
    chunk_size: int | None = None,
    fresh: bool = False,
    keep_shards: bool = False,
    progress: bool = True,
    max_chunks: int | None = None,
    workers: int | None = None,
    device: str = "cpu",
) -> Path | None:
    """Fit a SIREN zoo to the first ``limit`` images of ``data``, ``per_image`` networks each.

    ``stride > 1`` takes every ``stride``-th image instead (images ``0, stride, 2 stride,
    ...``; the embedded MNIST digits are sorted by class, so a stride of 10 gives all
    classes); ``image_index`` always holds the index in the data source.

    Network ``g = i * per_image + k`` fits image ``i`` from its own seed
    ``(seed, g)``; the zoo stores ``params``, ``labels``, ``image_index`` and the
    metrics ``psnr`` (dB, images in [0, 1]) and ``steps``. Work is done in
    chunks of ``chunk_size`` networks under ``<out>.shards/`` (resumable, locked
    against a second run into the same ``out``, and split across ranks when
    launched by ``torchrun``); the zoo is written atomically at the end.
    ``workers`` local processes fit chunks in parallel (default: one
    single-threaded worker per torch thread, which beats intra-op threads on a
    busy CPU; the zoo is bitwise the same for any number of workers, threads or
    ranks). ``device`` (e.g. ``"cuda"``) runs the fits there, in one
    process. Returns ``out``, or ``None`` if ``max_chunks`` stopped the run early.
    """
    cfg = inr_config(config)
    if per_image <= 0:
        raise SymmergeError(f"per_image must be positive, got {per_image}")
    if limit is not None and limit <= 0:
        raise SymmergeError(f"limit must be positive, got {limit}")
    if stride <= 0:
        raise SymmergeError(f"stride must be positive, got {stride}")
    images = data if isinstance(data, ImageSet) else load_images(data)
    selected = torch.arange(0, len(images), stride)
    if limit is not None and limit > len(selected):
        raise SymmergeError(
            f"limit {limit} exceeds the {len(selected)} images of {images.name}"
            + (f" at stride {stride}" if stride > 1 else ""), params=("limit", "stride")
        )
    n_images = len(selected) if limit is None else limit
    selected = selected[:n_images]
    pixels = _check_images(images.images[selected])
    spec = cfg.spec(pixels.shape[1])
    if chunk_size is None:
        chunk_size = CPU_CHUNK if torch.device(device).type == "cpu" else ACCELERATOR_CHUNK
    plan = ChunkPlan(n_images * per_image, chunk_size)
    labels = images.labels[selected]
    run = {
        "kind": "inr",
        "data": images.name,
        "data_digest": tensor_digest(pixels),
        "limit": n_images,
        "stride": stride,
        "per_image": per_image,
        "seed": seed,
        "spec": spec.to_dict(),
        # the micro-batch changes no result: not part of the run's identity
        "config": {k: v for k, v in cfg.to_dict().items() if k != "micro_batch"},
    }

    fit_chunk = _INRChunk(spec, cfg, pixels, labels, seed, per_image, str(device),
                          selected if stride > 1 else None)
    if torch.device(device).type != "cpu":
        workers = 1  # one process drives the accelerator

    def assemble(t: dict[str, Tensor]) -> Path:
        provenance = {"builder": "symmerge.zoo.fit_inr", **run}
        return save_zoo(out, spec, t["params"], t["labels"], image_index=t["image_index"],
                        metrics={"psnr": t["psnr"], "steps": t["steps"]}, provenance=provenance)

    return run_chunked(out, plan, run, fit_chunk, assemble, desc="INR zoo", progress_metric="psnr",
                       progress=progress, fresh=fresh, keep_shards=keep_shards,
                       max_chunks=max_chunks, workers=workers)
