"""One-call training pipeline and run directories.

A run directory holds ``config.yaml`` (resolved), ``spec.json``,
``checkpoints/{best,last}.ckpt``, ``model.safetensors`` (best weights, for safe
loading), ``logs/metrics.csv`` and ``result.json`` (seed, version, timings, metrics).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from symmerge import __version__
from symmerge.errors import SymmergeError
from symmerge.models import build_autoencoder
from symmerge.specs import CNNSpec, SirenSpec, WeightSpaceSpec, spec_from_json
from symmerge.training.config import (
    TrainConfig,
    load_config,
    resolve_config,
    save_config,
    validate_config,
)
from symmerge.training.losses import RenderLoss, cnn_accuracy_report
from symmerge.training.metrics_log import STASH, restore_history, stash_history
from symmerge.training.module import AutoencoderModule, NonFiniteLossError
from symmerge.utils.io import atomic_path, load_weights_only, read_text, save_safetensors
from symmerge.zoo import Zoo, load_zoo
from symmerge.zoo.images import held_out_images


@dataclass
class TrainResult:
    """What a training run produced; saved as ``RUN/result.json``."""

    run_dir: str
    preset: str
    seed: int
    version: str
    zoo: str
    num_networks: dict[str, int]
    timings: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def save(self) -> Path:
        path = Path(self.run_dir) / "result.json"
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))
        return path


def _cnn_images(cfg: TrainConfig, zoo: Zoo) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """Training images (for distillation) and held-out test images with labels, as the
    zoo's builder split and transformed them (see :func:`symmerge.zoo.images.held_out_images`)."""
    held = held_out_images(zoo, cfg.loss.images)
    return held.train_images, (held.images, held.labels)


def mean_render_template(spec: SirenSpec, renders: Tensor) -> Tensor:
    """A SIREN ``[P]`` fitted to the mean of ``renders [N, R, R]`` (the decoder's start)."""
    from symmerge.zoo.fit_inr import INR_PRESETS, fit_sirens

    mean = renders.mean(0, keepdim=True).unsqueeze(1).clamp(0.0, 1.0)
    init = spec.init_params(1, generator=torch.Generator().manual_seed(0))
    return fit_sirens(spec, mean, init, INR_PRESETS["default"]).params[0]


def _loaders(
    params: Tensor, splits: dict[str, Tensor], cfg: TrainConfig, world_size: int = 1
) -> dict[str, DataLoader]:
    g = torch.Generator().manual_seed(cfg.seed)
    out = {}
    for name, idx in splits.items():
        ds = TensorDataset(params[idx], idx)
        train = name == "train"
        # A batch of one cannot be standardized by the latent norm in training mode. Under
        # DDP every process gets ceil(n / world_size) networks (the sampler pads).
        share = math.ceil(len(idx) / world_size)
        out[name] = DataLoader(ds, batch_size=cfg.optim.batch_size, shuffle=train,
                               generator=g if train else None,
                               drop_last=train and share % cfg.optim.batch_size == 1)
    return out


def last_checkpoint(run: str | os.PathLike[str]) -> Path:
    """Where a run keeps the checkpoint it resumes from (a run with one resumes)."""
    return Path(run) / "checkpoints" / "last.ckpt"


def _load_run_config(run: Path, spec: WeightSpaceSpec) -> TrainConfig:
    for name in ("config.yaml", "spec.json"):
        if not (run / name).is_file():
            raise SymmergeError(
                f"cannot resume {run}: it has checkpoints but no {name}; "
                "choose a new run directory"
            )
    cfg = load_config(run / "config.yaml")
    try:
        saved = spec_from_json(read_text(run / "spec.json", "run spec"))
    except SymmergeError as exc:
        raise SymmergeError(f"cannot resume {run}: corrupt spec.json ({exc})") from exc
    if saved != spec:
        raise SymmergeError(
            f"run {run} was trained on {saved.describe()}, the zoo holds {spec.describe()}"
        )
    return cfg


def _checkpoint_epoch(path: Path) -> int:
    """The epoch a Lightning checkpoint was saved in; a clear error if it is unreadable."""
    try:
        return int(load_weights_only(path, "checkpoint")["epoch"])
    except (SymmergeError, KeyError, TypeError, ValueError) as exc:
        raise SymmergeError(
            f"cannot resume from {path}: corrupt or not a Lightning checkpoint ({exc}); "
            "delete it to start over, or choose a new run directory"
        ) from exc


#: logger -> packages that can serve it (any one is enough)
_LOGGER_PACKAGES = {"csv": (), "tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",)}


def _check_logger(logger: str) -> None:
    if logger not in _LOGGER_PACKAGES:
        raise SymmergeError(f"unknown logger {logger!r}; choose csv, tensorboard or wandb")
    packages = _LOGGER_PACKAGES[logger]
    if packages and all(importlib.util.find_spec(p) is None for p in packages):
        raise SymmergeError(
            f"the {logger} logger needs the {packages[0]} package: pip install {packages[0]}"
        )


def train(
    zoo_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    preset: str = "quick",
    config_file: str | os.PathLike[str] | None = None,
    overrides: dict[str, Any] | None = None,
    max_epochs: int | None = None,
    accelerator: str = "cpu",
    devices: int = 1,
    num_nodes: int = 1,
    logger: str = "csv",
    progress: bool = True,
) -> TrainResult:
    """Train an autoencoder on a zoo; resumes from ``out/checkpoints/last.ckpt`` if present."""
    t0 = time.perf_counter()
    _check_logger(logger)
    zoo = load_zoo(zoo_path)
    spec = zoo.spec
    run = Path(out)
    if run.exists() and not run.is_dir():
        raise SymmergeError(f"run directory {run} is an existing file")
    last_ckpt = last_checkpoint(run)
    resuming = last_ckpt.is_file()
    if resuming:
        cfg = _load_run_config(run, spec)
        resumed_epoch = _checkpoint_epoch(last_ckpt)
        if max_epochs is not None and max_epochs != cfg.optim.max_epochs:
            data = cfg.model_dump(mode="json")
            data["optim"]["max_epochs"] = max_epochs
            cfg = validate_config(data, f"{run / 'config.yaml'} with max_epochs={max_epochs}")
            if rank_zero_only.rank == 0:
                save_config(cfg, run / "config.yaml")
        if rank_zero_only.rank == 0:
            stash_history(run / "logs", resumed_epoch)
    else:
        extra = copy.deepcopy(overrides or {})
        if max_epochs is not None:
            extra.setdefault("optim", {})["max_epochs"] = max_epochs
        cfg = resolve_config(preset, config_file, extra, spec)
        run.mkdir(parents=True, exist_ok=True)
        (run / "logs" / STASH).unlink(missing_ok=True)  # history of an older, deleted run
        save_config(cfg, run / "config.yaml")
        with atomic_path(run / "spec.json") as tmp:
            tmp.write_text(spec.to_json())
    L.seed_everything(cfg.seed, verbose=False)

    params = zoo.params.float()
    splits = zoo.splits(seed=cfg.split.seed, fractions=cfg.split.fractions,
                        by_image=cfg.split.by_image)
    if len(splits["train"]) == 0 or len(splits["val"]) == 0:
        raise SymmergeError(f"zoo {zoo.path} has too few networks ({len(zoo)}) for a split")

    module = AutoencoderModule(spec.to_json(), cfg.model_dump(mode="json"))
    if cfg.scale_params:  # restored from the checkpoint when resuming
        module.model.set_param_scale(params[splits["train"]])
    t_data = time.perf_counter()
    test_images = None
    if isinstance(spec, SirenSpec):
        targets = RenderLoss(spec, cfg.loss.resolution).render_targets(params)
        module.attach_loss_data(targets=targets)
        if cfg.decoder_template and not resuming:
            module.model.set_output_template(mean_render_template(spec, targets[splits["train"]]))
    elif isinstance(spec, CNNSpec):
        train_images, test_images = _cnn_images(cfg, zoo)
        module.attach_loss_data(train_images=train_images, test_images=test_images)
    t_data = time.perf_counter() - t_data
    loaders = _loaders(params, splits, cfg, world_size=devices * num_nodes)

    ckpt_dir = run / "checkpoints"
    best_cb = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_loss", mode="min",
                              save_last=True, enable_version_counter=False)
    loggers: list[Any] = [CSVLogger(save_dir=str(run), name="logs", version="")]
    if logger == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=str(run), name="tensorboard"))
    elif logger == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        loggers.append(WandbLogger(save_dir=str(run), project="symmerge"))
    steps_per_epoch = max(1, len(loaders["train"]))
    strategy = "ddp" if devices * num_nodes > 1 else "auto"
    trainer = L.Trainer(
        accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy,
        max_epochs=cfg.optim.max_epochs, gradient_clip_val=cfg.optim.grad_clip,
        callbacks=[best_cb], logger=loggers, enable_progress_bar=progress,
        enable_model_summary=False, log_every_n_steps=min(50, steps_per_epoch),
        check_val_every_n_epoch=cfg.eval_every_n_epochs, num_sanity_val_steps=0,
        deterministic=True,  # threaded CPU scatter sums otherwise vary from run to run
    )
    t_fit = time.perf_counter()
    try:
        with warnings.catch_warnings():
            if resuming:  # expected there; the metrics history is kept (metrics_log)
                warnings.filterwarnings("ignore", r"(Experiment logs|Checkpoint) directory .* "
                                        "exists and is not empty")
            trainer.fit(module, loaders["train"], loaders["val"],
                        ckpt_path=str(last_ckpt) if resuming else None, weights_only=True)
    except NonFiniteLossError as exc:
        kept = (f"The last good checkpoint, {last_ckpt}, is kept (resume with a lower "
                "learning rate through a new run, or check the zoo)." if last_ckpt.is_file()
                else "No checkpoint had been written yet; lower the learning rate or check "
                "the zoo.")
        raise SymmergeError(f"{exc}; stopped. {kept}") from None
    finally:
        if resuming and trainer.global_rank == 0:
            restore_history(run / "logs")
    t_fit = time.perf_counter() - t_fit
    if trainer.global_rank != 0:
        return TrainResult(str(run), cfg.preset, cfg.seed, __version__, str(zoo.path), {})

    # not best_cb.best_model_path: after a resume it may name the run's former location
    best = ckpt_dir / "best.ckpt" if (ckpt_dir / "best.ckpt").is_file() else last_ckpt
    state = load_weights_only(best, "checkpoint")["state_dict"]
    module.load_state_dict(state)
    _export_weights(module.model, run / "model.safetensors")

    module.eval()
    metrics = _evaluate(module, spec, params, splits, test_images)
    result = TrainResult(
        run_dir=str(run), preset=cfg.preset, seed=cfg.seed, version=__version__,
        zoo=str(zoo.path), num_networks={k: len(v) for k, v in splits.items()},
        timings={"total_s": time.perf_counter() - t0, "fit_s": t_fit, "loss_data_s": t_data,
                 "epochs": float(trainer.current_epoch)},
        metrics=metrics,
    )
    result.save()
    return result


@torch.no_grad()
def _evaluate(
    module: AutoencoderModule, spec: WeightSpaceSpec, params: Tensor, splits: dict[str, Tensor],
    test_images: tuple[Tensor, Tensor] | None,
) -> dict[str, float]:
    """Test metrics of the best model plus a trivial baseline for scale."""
    test = params[splits["test"]] if len(splits["test"]) else params[splits["val"]]
    decoded = reconstruct(module.model, test)
    out: dict[str, float] = {}
    if isinstance(spec, SirenSpec):
        loss = RenderLoss(spec, module.cfg.loss.resolution)
        target = loss.render_targets(test)
        train_mean = loss.render_targets(params[splits["train"]]).mean(0, keepdim=True)
        out["test_render_mse"] = float(((loss.render_targets(decoded) - target) ** 2).mean())
        out["test_mean_image_mse"] = float(((train_mean - target) ** 2).mean())
    elif isinstance(spec, CNNSpec) and test_images is not None:
        images, labels = test_images
        out.update({f"test_{k}": v for k, v in
                    cnn_accuracy_report(spec, test, decoded, images, labels).items()})
    return out


def _export_weights(model: torch.nn.Module, path: Path) -> None:
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_safetensors(path, state)


def load_autoencoder(
    run: str | os.PathLike[str],
) -> tuple[torch.nn.Module, WeightSpaceSpec, TrainConfig]:
    """The best model of a finished run (weights from ``model.safetensors``), in eval mode."""
    run = Path(run)
    for name in ("config.yaml", "spec.json", "model.safetensors"):
        if not (run / name).is_file():
            raise SymmergeError(f"{run} is not a finished training run (missing {name})")
    try:
        spec = spec_from_json(read_text(run / "spec.json", "run spec"))
        cfg = load_config(run / "config.yaml")
        model = build_autoencoder(spec, cfg.encoder, cfg.decoder_widths)
        state = load_file(str(run / "model.safetensors"))
        model.load_state_dict(state)
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise SymmergeError(
            f"cannot load run {run}: corrupt or incompatible files ({exc})"
        ) from exc
    return model.eval(), spec, cfg


@torch.no_grad()
def encode(model: torch.nn.Module, params: Tensor, batch_size: int = 1024) -> Tensor:
    """Latents ``[N, d]`` of ``params [N, P]``, batched, in eval mode."""
    model.eval()
    return torch.cat([model.encode(p) for p in params.float().split(batch_size)])


@torch.no_grad()
def reconstruct(model: torch.nn.Module, params: Tensor, batch_size: int = 1024) -> Tensor:
    """Decoded networks ``[N, P]`` of ``params [N, P]``, batched, in eval mode."""
    model.eval()
    return torch.cat([model(p) for p in params.float().split(batch_size)])


def check_zoo_matches(spec: WeightSpaceSpec, zoo: Zoo) -> None:
    """Raise unless the zoo holds networks of the run's architecture."""
    if zoo.spec != spec:
        raise SymmergeError(
            f"the run was trained on {spec.describe()}, but {zoo.path} holds {zoo.spec.describe()}"
        )
