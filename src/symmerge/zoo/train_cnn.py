"""Batched training of small-CNN zoos with per-network random hyperparameters.

In the spirit of the Small CNN Zoo (Unterthiner et al. 2020; METHOD.md 1.4, 5.2):
every network (default layout ``[C, 16, 16, 16, n_classes]``, 3x3 stride-2
convolutions, global average pooling, dense logits) draws its own learning
rate, L2 weight decay, initialization scale, dropout rate and fraction of the
training split, and is trained with Adam on its own minibatches. The B networks
of a chunk train together as grouped convolutions (one ``conv2d`` with
``groups=B`` per layer, channels-last), each on its own images
``[B, batch, C, H, W]``.

All randomness of network ``g`` (hyperparameters, initialization, training
subset, minibatches, dropout masks) comes from its own generator seeded with
``(seed, "cnn", g)``, so chunking, resuming and ranks do not change it; the
same ``g`` and seed give the same hyperparameters for ReLU and tanh zoos. On the
CPU its arithmetic does not depend on its batch neighbours or the thread count
either (single-threaded kernels, one thread per part of the batch), so the zoo
is bitwise the same for any chunk size, number of workers or threads.

Python API::

    train_cnn_zoo("mnist-embedded", out="cnn.safetensors", n=200, activation="relu", seed=0,
                  config="quick")   # or a CNNTrainConfig
    train_cnns(spec, data, hparams, init, config, streams)   # the batched trainer
    train_cnn_module(spec, data, hparams[i], init[i], config, stream)   # reference recipe
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from symmerge.data.images import ImageSet, load_images
from symmerge.errors import SymmergeError
from symmerge.specs.cnn import CNNSpec
from symmerge.zoo.io import save_zoo
from symmerge.zoo.quality import FAILED_METRIC, failed_mask
from symmerge.zoo.shards import (
    ChunkPlan,
    Progress,
    generator_for,
    preset_config,
    run_chunked,
    tensor_digest,
)

#: hyperparameters drawn per network, in draw order; stored as zoo metrics
HPARAMS = ("lr", "weight_decay", "init_scale", "dropout", "train_fraction")
_LOG_UNIFORM = ("lr", "weight_decay", "init_scale")
#: minibatches drawn per generator call (fixed: it orders each network's random stream)
STREAM_BLOCK = 50


@dataclass(frozen=True)
class CNNTrainConfig:
    """Training recipe and hyperparameter ranges of a CNN zoo (see :data:`CNN_PRESETS`).

    ``lr``, ``weight_decay`` and ``init_scale`` are log-uniform ranges, ``dropout``
    and ``train_fraction`` uniform; each network's learning rate follows a cosine
    decay to 0 over ``steps`` (or stays constant). ``weight_decay`` is an L2 penalty on the
    weights (not biases) added to the gradient; ``init_scale`` multiplies
    PyTorch's default initialization of the weights; dropout acts on the pooled
    features before the dense layer. Stored networks take ``x * 2 - 1`` of pixels
    ``x`` in [0, 1] (the Small CNN Zoo's convention). ``inputs="standardize"``
    trains them on inputs standardized per channel with the training split's
    mean and standard deviation, folded into the first convolution afterwards
    (exact with valid padding; tanh networks train markedly better than on
    ``"symmetric"`` [-1, 1] inputs, which train the stored parametrization directly).
    The held-out test images are ``ImageSet.split(test_fraction, seed=split_seed)``.
    """

    hidden: tuple[int, ...] = (16, 16, 16)
    kernel_size: int = 3
    stride: int = 2
    steps: int = 1000
    batch_size: int = 32
    schedule: str = "cosine"
    lr: tuple[float, float] = (3e-3, 5e-2)
    weight_decay: tuple[float, float] = (1e-6, 1e-3)
    init_scale: tuple[float, float] = (0.5, 2.0)
    dropout: tuple[float, float] = (0.0, 0.25)
    train_fraction: tuple[float, float] = (0.05, 1.0)
    test_fraction: float = 0.2
    split_seed: int = 0
    inputs: str = "standardize"
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    eval_batch: int = 50

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        for name in (*HPARAMS, "betas"):
            object.__setattr__(self, name, tuple(float(x) for x in getattr(self, name)))
        problems = []
        if not self.hidden or any(h <= 0 for h in self.hidden):
            problems.append(f"hidden sizes must be positive, got {list(self.hidden)}")
        if self.steps <= 0 or self.batch_size <= 0 or self.eval_batch <= 0:
            problems.append("steps, batch_size and eval_batch must be positive")
        for name in HPARAMS:
            lo, hi = getattr(self, name) if len(getattr(self, name)) == 2 else (1.0, 0.0)
            positive = name in _LOG_UNIFORM
            if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo or (
                positive and lo <= 0
            ) or lo < 0:
                problems.append(f"{name} range must be [lo, hi] with 0 {'<' if positive else '<='} "
                                f"lo <= hi, got {list(getattr(self, name))}")
        if self.inputs not in ("standardize", "symmetric"):
            problems.append(f"inputs must be 'standardize' or 'symmetric', got {self.inputs!r}")
        if self.schedule not in ("cosine", "constant"):
            problems.append(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if self.dropout[1] >= 1.0:
            problems.append("dropout must stay below 1")
        if not 0.0 < self.train_fraction[0] <= self.train_fraction[1] <= 1.0:
            problems.append("train_fraction must be in (0, 1]")
        if not 0.0 < self.test_fraction < 1.0:
            problems.append(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if problems:
            raise SymmergeError("invalid CNN training config: " + "; ".join(problems))

    def lr_factor(self, step: int) -> float:
        """Multiplier of each network's learning rate at update ``step`` (0-based)."""
        if self.schedule == "constant":
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * step / self.steps))

    def spec(self, activation: str, in_channels: int = 1, n_classes: int = 10) -> CNNSpec:
        return CNNSpec((in_channels, *self.hidden, n_classes), activation,
                       kernel_size=self.kernel_size, stride=self.stride)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


#: ``default``: 1,000 Adam steps of 32 images per network (8 epochs of the 4,000
#: training digits at full data), learning rate log-uniform in [3e-3, 5e-2] with
#: cosine decay, L2 in [1e-6, 1e-3], init scale in [0.5, 2], dropout in
#: [0, 0.25], training fraction in [0.05, 1]: a spread of accuracies on the
#: embedded digits, with a tail of weak and a few failed (ReLU, high learning rate)
#: networks (measured: BENCHMARKS.md, "CNN zoos"). ``quick``: 300 steps, for demos
#: and tests.
CNN_PRESETS: dict[str, CNNTrainConfig] = {
    "default": CNNTrainConfig(),
    "quick": CNNTrainConfig(steps=300),
}


def cnn_config(config: CNNTrainConfig | str | None, **overrides: Any) -> CNNTrainConfig:
    """A preset by name (or a config), with non-None ``overrides`` applied."""
    return preset_config(CNN_PRESETS, config, "CNN", **overrides)


# ----------------------------------------------------------------- data
@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch's CPU kernels single-threaded inside the block (restored afterwards).

    A multi-threaded reduction splits its sum over the threads, so its rounding
    depends on the thread count; a zoo must not.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class CNNData:
    """Training inputs and labels of the train and held-out test splits.

    Training inputs are ``(u - shift[c]) / scale[c]`` with ``u = 2 x - 1`` the
    stored networks' input (:func:`fold_inputs` maps trained parameters back).
    """

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    n_classes: int
    shift: Tensor
    scale: Tensor

    def transform(self) -> dict[str, Any]:
        """How training inputs were made from the stored networks' inputs ``u``."""
        return {"shift": self.shift.tolist(), "scale": self.scale.tolist(),
                "formula": "(u - shift[c]) / scale[c], u = x * 2 - 1, folded into layer 0"}

    @classmethod
    def from_images(cls, images: ImageSet, config: CNNTrainConfig) -> CNNData:
        if images.images.ndim != 4:
            raise SymmergeError(
                f"CNN training needs images [N, C, H, W], got {tuple(images.images.shape)}"
            )
        if images.num_classes < 2:
            raise SymmergeError(f"{images.name}: CNN training needs at least 2 classes")
        train, test = images.split(config.test_fraction, seed=config.split_seed)
        if len(train) == 0 or len(test) == 0:
            raise SymmergeError(
                f"{images.name}: too few images ({len(images)}) for a train/test split"
            )
        u = images.images.to(torch.float32) * 2.0 - 1.0
        channels = u.shape[1]
        if config.inputs == "standardize":
            with single_threaded():  # sums in a fixed order: the same inputs for any thread count
                shift, scale = u[train].mean(dim=(0, 2, 3)), u[train].std(dim=(0, 2, 3))
            scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        else:
            shift, scale = torch.zeros(channels), torch.ones(channels)
        x = (u - shift.view(1, -1, 1, 1)) / scale.view(1, -1, 1, 1)
        return cls(x[train].contiguous(), images.labels[train], x[test].contiguous(),
                   images.labels[test], images.num_classes, shift, scale)


def fold_inputs(spec: CNNSpec, params: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """Parameters ``[B, P]`` trained on ``(u - shift) / scale`` -> the same networks on ``u``.

    ``W0 / scale`` per input channel and ``b0 - sum(W0 * shift / scale)``: exact for
    convolutions without padding (every kernel tap sees an input pixel).
    """
    ws, bs = spec.unflatten(params)
    w0 = ws[0] / scale.to(params).view(1, 1, -1, 1, 1)
    b0 = bs[0] - (w0 * shift.to(params).view(1, 1, -1, 1, 1)).sum(dim=(2, 3, 4))
    return spec.flatten([w0, *ws[1:]], [b0, *bs[1:]])


# ------------------------------------------------------------- randomness
class NetStream:
    """One network's random stream after its hyperparameters and init: subset, batches, dropout."""

    def __init__(self, generator: torch.Generator, n_train: int, fraction: float,
                 batch_size: int, features: int) -> None:
        self.g = generator
        size = max(1, round(fraction * n_train))
        self.subset = torch.randperm(n_train, generator=generator)[:size]
        self.batch_size, self.features = batch_size, features
        self._idx: Tensor | None = None
        self._u: Tensor | None = None
        self._pos = STREAM_BLOCK

    def next(self) -> tuple[Tensor, Tensor]:
        """Training-split indices ``[batch]`` and dropout uniforms ``[batch, features]``."""
        if self._pos == STREAM_BLOCK:
            shape = (STREAM_BLOCK, self.batch_size)
            pick = torch.randint(len(self.subset), shape, generator=self.g)
            self._idx = self.subset[pick]
            self._u = torch.rand(STREAM_BLOCK, self.batch_size, self.features, generator=self.g)
            self._pos = 0
        assert self._idx is not None and self._u is not None
        out = self._idx[self._pos], self._u[self._pos]
        self._pos += 1
        return out


def draw_networks(
    spec: CNNSpec, config: CNNTrainConfig, seed: int, indices: Sequence[int], n_train: int
) -> tuple[dict[str, Tensor], Tensor, list[NetStream]]:
    """Hyperparameters ``{name: [B]}``, initial ``params [B, P]`` and streams of ``indices``."""
    hps: dict[str, list[float]] = {k: [] for k in HPARAMS}
    inits, streams = [], []
    for g_index in indices:
        g = generator_for(seed, "cnn", int(g_index))
        u = torch.rand(len(HPARAMS), generator=g, dtype=torch.float64)
        for k, name in enumerate(HPARAMS):
            lo, hi = getattr(config, name)
            if name in _LOG_UNIFORM:
                value = math.exp(math.log(lo) + float(u[k]) * (math.log(hi) - math.log(lo)))
            else:
                value = lo + float(u[k]) * (hi - lo)
            hps[name].append(value)
        inits.append(spec.init_params(1, generator=g, scale=hps["init_scale"][-1]))
        streams.append(NetStream(g, n_train, hps["train_fraction"][-1], config.batch_size,
                                 spec.layout[-2]))
    return ({k: torch.tensor(v, dtype=torch.float64) for k, v in hps.items()},
            torch.cat(inits), streams)


# ------------------------------------------------------------------ training
def weight_mask(spec: CNNSpec) -> Tensor:
    """``[P]`` with 1 on weight entries and 0 on biases (where L2 decay applies)."""
    mask = torch.zeros(spec.num_params)
    for (key, _), a, b in zip(spec.param_shapes, spec.offsets[:-1], spec.offsets[1:],
                              strict=True):
        if key.endswith("weight"):
            mask[a:b] = 1.0
    return mask


def _inplace_activation(name: str):
    """In-place ReLU / tanh (autograd differentiates both through their outputs)."""
    return F.relu_ if name == "relu" else torch.tanh_


def train_logits(spec: CNNSpec, params: Tensor, x: Tensor, keep: Tensor | None = None) -> Tensor:
    """Logits ``[B, N, K]`` of ``params [B, P]`` on per-network images ``x [B, N, C, H, W]``.

    Grouped channels-last convolutions; ``keep [B, N, F]`` (already scaled by
    ``1 / (1 - p)``) multiplies the pooled features (dropout).
    """
    ws, bs = spec.unflatten(params)
    nets, n = x.shape[:2]
    act = _inplace_activation(spec.activation)
    h = x.transpose(0, 1).reshape(n, -1, *x.shape[-2:])
    h = h.contiguous(memory_format=torch.channels_last)
    for w, b in zip(ws[:-1], bs[:-1], strict=True):
        h = act(F.conv2d(h, w.reshape(-1, *w.shape[2:]), b.reshape(-1), stride=spec.stride,
                         groups=nets))
    pooled = h.mean(dim=(-2, -1)).reshape(n, nets, -1).transpose(0, 1)  # [B, N, F]
    if keep is not None:
        pooled = pooled * keep
    return torch.baddbmm(bs[-1].unsqueeze(1), pooled, ws[-1].mT)


@torch.no_grad()
def accuracy(spec: CNNSpec, params: Tensor, x: Tensor, y: Tensor, batch: int = 50) -> Tensor:
    """``[B, N]`` bool: network b classifies image n correctly (shared images, batched)."""
    out = [spec.forward(params, x[s : s + batch]).argmax(-1) == y[s : s + batch]
           for s in range(0, x.shape[0], batch)]
    return torch.cat(out, dim=1)


@dataclass(frozen=True)
class CNNTrainResult:
    """Trained ``params [B, P]``, ``train_accuracy`` (own training subset), ``test_accuracy``
    and ``diverged`` (1.0 where training stopped at the last finite parameters)."""

    params: Tensor
    train_accuracy: Tensor
    test_accuracy: Tensor
    diverged: Tensor | None = None


def _evaluate(spec: CNNSpec, params: Tensor, data: CNNData, subsets: Sequence[Tensor],
              batch: int) -> tuple[Tensor, Tensor]:
    member = torch.zeros(params.shape[0], data.train_x.shape[0], dtype=torch.bool)
    for b, s in enumerate(subsets):
        member[b, s] = True
    correct = accuracy(spec, params, data.train_x, data.train_y, batch).cpu()
    train_acc = (correct & member).sum(1) / member.sum(1)
    test_acc = accuracy(spec, params, data.test_x, data.test_y, batch).float().mean(1).cpu()
    return train_acc.float(), test_acc


def train_cnns(
    spec: CNNSpec,
    data: CNNData,
    hparams: dict[str, Tensor],
    init: Tensor,
    config: CNNTrainConfig,
    streams: Sequence[NetStream],
    *,
    progress: Progress | None = None,
    device: torch.device | str | None = None,
) -> CNNTrainResult:
    """Train B CNNs ``init [B, P]`` at once, network b with ``hparams[name][b]`` and ``streams[b]``.

    Per network: mean cross-entropy on its minibatch, L2 on the weights, Adam
    (the ``torch.optim.Adam`` update with the network's own learning rate). A network
    whose parameters become non-finite stops with its last finite parameters.
    Runs on ``device`` (default: where ``init`` is); results come back on the CPU.

    On the CPU a network's result is bitwise the same whatever batch it trains in
    and however many torch threads there are: the kernels run single-threaded
    (the convolution backward of oneDNN splits its weight and bias sums over
    threads, so their order depends on the thread count) and the batch is cut into
    one part per torch thread, each part trained in its own Python thread.
    """
    dev = torch.device(device) if device is not None else init.device
    nb = init.shape[0]
    if dev.type != "cpu":
        return _train_batch(spec, data, hparams, init, config, streams, progress, dev)
    parts = torch.arange(nb).tensor_split(min(torch.get_num_threads(), nb))
    lock, stop = threading.Lock(), threading.Event()

    def report(n: float, values: Tensor | None) -> None:
        with lock:
            progress(n, values)  # type: ignore[misc]

    def train_part(idx: Tensor) -> CNNTrainResult:
        torch.set_num_threads(1)  # this thread's OpenMP setting
        return _train_batch(spec, data, {k: v[idx] for k, v in hparams.items()}, init[idx],
                            config, [streams[i] for i in idx.tolist()],
                            None if progress is None else report, dev, stop)

    with single_threaded():
        if len(parts) == 1:
            return _train_batch(spec, data, hparams, init, config, streams, progress, dev)
        with ThreadPoolExecutor(len(parts), thread_name_prefix="train_cnns") as pool:
            futures = [pool.submit(train_part, idx) for idx in parts]
            try:
                for f in wait(futures, return_when=FIRST_EXCEPTION).done:
                    f.result()  # re-raise a part's error
            finally:
                stop.set()  # after an error or interrupt, the other parts stop at their next step
            results = [f.result() for f in futures]
    return CNNTrainResult(*(torch.cat([getattr(r, f.name) for r in results])
                            for f in fields(CNNTrainResult)))


class _Stopped(Exception):
    """A part of :func:`train_cnns` gave up because another part failed."""


def _train_batch(spec: CNNSpec, data: CNNData, hparams: dict[str, Tensor], init: Tensor,
                 config: CNNTrainConfig, streams: Sequence[NetStream], progress: Progress | None,
                 dev: torch.device, stop: threading.Event | None = None) -> CNNTrainResult:
    """The batched trainer of :func:`train_cnns` in the calling thread.

    On the CPU a batch of one network trains as two copies of it: a single group
    takes other convolution kernels, whose sums round differently.
    """
    if dev != data.train_x.device:
        data = CNNData(*(t.to(dev) for t in (data.train_x, data.train_y, data.test_x,
                                              data.test_y)), data.n_classes, data.shift,
                       data.scale)
    nb = init.shape[0]
    copies = 2 if nb == 1 and dev.type == "cpu" else 1
    params = init.detach().to(dev, torch.float32).repeat(copies, 1)
    rows = params.shape[0]
    lr = hparams["lr"].to(dev, torch.float32).repeat(copies).unsqueeze(1)
    wd = (hparams["weight_decay"].to(dev, torch.float32).repeat(copies).unsqueeze(1)
          * weight_mask(spec).to(dev))
    p_drop = hparams["dropout"].to(torch.float32).repeat(copies).view(rows, 1, 1)
    m, v = torch.zeros_like(params), torch.zeros_like(params)
    stopped = torch.zeros(rows, 1, dtype=torch.bool, device=dev)  # diverged: kept as they were
    b1, b2 = config.betas
    reported = 0.0
    for step in range(config.steps):
        if stop is not None and stop.is_set():
            raise _Stopped
        if progress is not None and step and step % STREAM_BLOCK == 0:
            progress(nb * STREAM_BLOCK / config.steps, None)  # fractional networks
            reported += nb * STREAM_BLOCK / config.steps
        draws = [s.next() for s in streams] * copies
        idx = torch.stack([d[0] for d in draws]).to(dev)  # [B, batch]
        keep = ((torch.stack([d[1] for d in draws]) >= p_drop) / (1.0 - p_drop)).to(dev)
        x, y = data.train_x[idx], data.train_y[idx]
        params.requires_grad_(True)
        logits = train_logits(spec, params, x, keep)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                               reduction="sum") / config.batch_size
        (grad,) = torch.autograd.grad(loss, params)
        params = params.detach()
        before = params.clone()
        grad = grad.addcmul_(wd, params)
        t = step + 1
        m.lerp_(grad, 1.0 - b1)
        v.mul_(b2).addcmul_(grad, grad, value=1.0 - b2)
        denom = (v.sqrt() / math.sqrt(1.0 - b2**t)).add_(config.eps)
        params.sub_((m / denom).mul_(lr * (config.lr_factor(step) / (1.0 - b1**t))))
        stopped |= ~torch.isfinite(params).all(1, keepdim=True)  # no host sync: masks only
        params = torch.where(stopped, before, params)
        m, v = m.masked_fill_(stopped, 0.0), v.masked_fill_(stopped, 0.0)
    train_acc, test_acc = _evaluate(spec, params, data, [s.subset for s in streams] * copies,
                                    config.eval_batch)
    if progress is not None:
        progress(nb - reported, test_acc[:nb])
    return CNNTrainResult(params[:nb].cpu(), train_acc[:nb], test_acc[:nb],
                          stopped[:nb].squeeze(1).float().cpu())


def train_cnn_module(
    spec: CNNSpec,
    data: CNNData,
    hparams: dict[str, float],
    init: Tensor,
    config: CNNTrainConfig,
    stream: NetStream,
) -> CNNTrainResult:
    """The per-network recipe (``nn.Module``, ``torch.optim.Adam``, autograd), same randomness.

    The sequential baseline of the benchmarks and the reference of the tests.
    """
    module = spec.module(init.reshape(-1).to(torch.float32))
    params = list(module.parameters())
    opt = torch.optim.Adam(params, lr=float(hparams["lr"]), betas=config.betas, eps=config.eps,
                           foreach=False)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, config.lr_factor)
    wd, p = float(hparams["weight_decay"]), float(hparams["dropout"])
    conv_act = _inplace_activation(spec.activation)
    for _ in range(config.steps):
        idx, u = stream.next()
        h = data.train_x[idx]
        for conv in module.seq[:-1]:
            h = conv_act(conv(h))
        pooled = h.mean(dim=(-2, -1)) * ((u >= p) / (1.0 - p))
        loss = F.cross_entropy(module.seq[-1](pooled), data.train_y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            for layer in module.seq:
                layer.weight.grad.add_(layer.weight, alpha=wd)
        opt.step()
        sched.step()
    flat = spec.from_module(module).unsqueeze(0)
    train_acc, test_acc = _evaluate(spec, flat, data, [stream.subset], config.eval_batch)
    return CNNTrainResult(flat, train_acc, test_acc)


# ------------------------------------------------------------------- zoos
@dataclass(frozen=True)
class _CNNChunk:
    """Trains one chunk of a CNN zoo (picklable, for worker processes)."""

    spec: CNNSpec
    config: CNNTrainConfig
    data: CNNData
    seed: int
    device: str = "cpu"

    def __call__(self, chunk: int, items: range, report: Progress) -> dict[str, Tensor]:
        hps, init, streams = draw_networks(self.spec, self.config, self.seed, items,
                                           self.data.train_x.shape[0])
        res = train_cnns(self.spec, self.data, hps, init, self.config, streams, progress=report,
                         device=self.device)
        params = fold_inputs(self.spec, res.params, self.data.shift, self.data.scale)
        return {"params": params, "train_accuracy": res.train_accuracy, "diverged": res.diverged,
                "test_accuracy": res.test_accuracy, **{k: v.float() for k, v in hps.items()}}


def train_cnn_zoo(
    data: str | ImageSet = "mnist-embedded",
    *,
    out: str | os.PathLike[str],
    n: int,
    activation: str = "relu",
    seed: int = 0,
    config: CNNTrainConfig | str = "default",
    chunk_size: int = 50,
    fresh: bool = False,
    keep_shards: bool = False,
    progress: bool = True,
    max_chunks: int | None = None,
    workers: int | None = None,
    device: str = "cpu",
) -> Path | None:
    """Train a zoo of ``n`` CNNs with random hyperparameters on ``data``'s training split.

    The zoo stores ``params``, the metrics ``train_accuracy`` (on the network's
    own training subset), ``test_accuracy`` (held-out split), ``diverged`` (1 for a
    network that kept its last finite parameters), ``failed`` (1 for a diverged network
    or one at chance level: :mod:`symmerge.zoo.quality`) and the drawn hyperparameters
    (:data:`HPARAMS`); ``labels`` are -1. Chunking, resuming,
    ranks, ``workers`` and ``device`` behave as in :func:`symmerge.zoo.fit_inr.fit_inr_zoo`;
    on the CPU the zoo is bitwise the same for any chunk size, number of workers
    or threads (:func:`train_cnns`).
    """
    cfg = cnn_config(config)
    if n <= 0:
        raise SymmergeError(f"n must be positive, got {n}")
    images = data if isinstance(data, ImageSet) else load_images(data)
    prepared = CNNData.from_images(images, cfg)
    spec = cfg.spec(activation, images.images.shape[1], prepared.n_classes)
    side = min(images.images.shape[-2:])
    if side < spec.min_input_size():
        raise SymmergeError(f"images of size {side} are too small for {spec.describe()}")
    plan = ChunkPlan(n, chunk_size)
    run = {
        "kind": "cnn",
        "data": images.name,
        "data_digest": tensor_digest(images.images),
        "n": n,
        "seed": seed,
        "spec": spec.to_dict(),
        "config": cfg.to_dict(),
    }

    def assemble(t: dict[str, Tensor]) -> Path:
        provenance = {"builder": "symmerge.zoo.train_cnn", "input_transform": "x * 2 - 1",
                      "training_inputs": prepared.transform(), **run}
        metrics = {k: t[k] for k in ("train_accuracy", "test_accuracy", "diverged", *HPARAMS)}
        marks = failed_mask(accuracy=t["test_accuracy"], classes=prepared.n_classes,
                            diverged=t["diverged"])
        metrics[FAILED_METRIC] = (marks["chance"] | marks["diverged"]).float()
        return save_zoo(out, spec, t["params"], metrics=metrics, provenance=provenance)

    if torch.device(device).type != "cpu":
        workers = 1  # one process drives the accelerator
    return run_chunked(out, plan, run, _CNNChunk(spec, cfg, prepared, seed, str(device)), assemble,
                       desc=f"CNN zoo ({activation})", progress_metric="test_accuracy",
                       progress=progress, fresh=fresh, keep_shards=keep_shards,
                       max_chunks=max_chunks, workers=workers)
