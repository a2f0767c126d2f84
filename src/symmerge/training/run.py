"""One-call training pipeline: in memory, or into a run directory.

``train(zoo)`` trains in memory and writes nothing; ``train(zoo, out)`` trains into the
run directory ``out``, which holds ``config.yaml`` (resolved), ``spec.json``,
``checkpoints/last.ckpt`` (every epoch; what a run resumes from) and
``checkpoints/best.ckpt`` (the validation the config's ``checkpoint`` rule selects),
``model.safetensors`` (best weights, for safe loading), ``logs/metrics.csv`` and
``result.json`` (seed, version, timings, metrics), and the lock (``.symmerge.lock``) of
the process training it.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.strategies import DDPStrategy
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from symmerge import __version__
from symmerge.errors import SymmergeError
from symmerge.models.autoencoder import Autoencoder
from symmerge.models.runs import load_run, load_weights, reconstruct
from symmerge.models.train_config import (
    TrainConfig,
    load_config,
    resolve_config,
    save_config,
    validate_config,
)
from symmerge.specs import CNNSpec, SirenSpec, WeightSpaceSpec, spec_from_json
from symmerge.training.callbacks import (
    BestWeights,
    EarlyStop,
    RunCheckpoint,
    best_checkpoint,
    stopped_epoch,
)
from symmerge.training.launch import (
    accelerator_device,
    check_hardware,
    check_logger,
    describe_accelerator,
    interrupt_kept,
    owns_run,
    quiet_lightning,
    resolve_accelerator,
    seeded,
)
from symmerge.training.losses import RenderLoss, cnn_accuracy_report
from symmerge.training.metrics_log import STASH, restore_history, stash_history
from symmerge.training.module import AutoencoderModule, NonFiniteLossError
from symmerge.training.resume import RandomState, read_checkpoint
from symmerge.training.rundir import RunDirectory, check_run_dir, last_checkpoint
from symmerge.utils.device import torch_flags_kept
from symmerge.utils.io import (
    atomic_path,
    error_summary,
    load_weights_only,
    read_text,
    save_safetensors,
)
from symmerge.zoo import Zoo, as_zoo
from symmerge.zoo.fit_inr import INR_PRESETS, fit_sirens
from symmerge.zoo.images import held_out_images


@dataclass
class TrainResult:
    """What a training call produced; a run directory saves it as ``RUN/result.json``.

    ``model`` is the trained autoencoder (its best weights, in eval mode), with the
    ``spec`` of the networks it encodes and its ``config``: use it with
    :func:`symmerge.models.encode` and :func:`~symmerge.models.reconstruct`, or the
    ``ae`` canonicalizers. ``run_dir`` is None for a model trained in memory.
    """

    run_dir: str | None
    preset: str
    seed: int
    version: str
    zoo: str
    num_networks: dict[str, int]
    timings: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    #: training stopped before ``max_epochs`` by the config's early-stopping rule
    stopped_early: bool = False
    #: the run had trained all its epochs before this call, which did nothing (not saved)
    up_to_date: bool = False
    #: the trained autoencoder (None in the DDP worker processes of a run)
    model: Autoencoder | None = field(default=None, repr=False, compare=False)
    spec: WeightSpaceSpec | None = field(default=None, repr=False, compare=False)
    config: TrainConfig | None = field(default=None, repr=False, compare=False)

    #: the fields ``result.json`` does not hold
    NOT_SAVED: ClassVar[tuple[str, ...]] = ("up_to_date", "model", "spec", "config")

    def to_dict(self) -> dict[str, Any]:
        """The JSON-serializable fields (what ``result.json`` holds)."""
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)
                if f.name not in self.NOT_SAVED}

    def save(self) -> Path:
        if self.run_dir is None:
            raise SymmergeError("this model was trained in memory: it has no run directory "
                                "to save result.json in")
        path = Path(self.run_dir) / "result.json"
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True))
        return path

    @classmethod
    def read(cls, run: str | os.PathLike[str]) -> TrainResult:
        """The saved result of a run (without its model); a missing or damaged
        ``result.json`` is a :class:`SymmergeError` that says what is wrong with it."""
        path = Path(run) / "result.json"
        data = read_text(path, "run result")
        try:
            fields = json.loads(data)
            if not isinstance(fields, dict) or not isinstance(fields.get("metrics"), dict):
                raise TypeError("no metrics")
            return cls(**{k: v for k, v in fields.items() if k not in cls.NOT_SAVED})
        except (ValueError, TypeError) as exc:
            raise SymmergeError(f"cannot read run result {path}: {error_summary(exc)}") from exc

    @classmethod
    def load(cls, run: str | os.PathLike[str]) -> TrainResult | None:
        """:meth:`read`, or None if the run has no readable result."""
        try:
            return cls.read(run)
        except SymmergeError:
            return None


def _cnn_images(cfg: TrainConfig, zoo: Zoo) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """Training images (for distillation) and held-out test images with labels, as the
    zoo's builder split and transformed them (see :func:`symmerge.zoo.images.held_out_images`)."""
    held = held_out_images(zoo, cfg.loss.images)
    return held.train_images, (held.images, held.labels)


def mean_render_template(spec: SirenSpec, renders: Tensor) -> Tensor:
    """A SIREN ``[P]`` fitted to the mean of ``renders [N, R, R]`` (the decoder's start)."""
    mean = renders.mean(0, keepdim=True).unsqueeze(1).clamp(0.0, 1.0)
    init = spec.init_params(1, generator=torch.Generator().manual_seed(0))
    return fit_sirens(spec, mean, init, INR_PRESETS["default"]).params[0]


def _loaders(
    params: Tensor, splits: dict[str, Tensor], cfg: TrainConfig, world_size: int = 1,
    pin_memory: bool = False,
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
                               generator=g if train else None, pin_memory=pin_memory,
                               drop_last=train and share % cfg.optim.batch_size == 1)
    return out


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


def _with_max_epochs(cfg: TrainConfig, max_epochs: int | None, run: Path) -> TrainConfig:
    if max_epochs is None or max_epochs == cfg.optim.max_epochs:
        return cfg
    data = cfg.model_dump(mode="json")
    data["optim"]["max_epochs"] = max_epochs
    return validate_config(data, f"{run / 'config.yaml'} with max_epochs={max_epochs}")


def _epochs_trained(done: int, finished: TrainResult | None) -> int:
    """Epochs a run has trained: its last checkpoint's (``done``), or its exported
    result's if more (runs of older versions kept last.ckpt at the best epoch)."""
    epochs = finished.timings.get("epochs") if finished is not None else None
    return max(done, int(epochs)) if isinstance(epochs, int | float) else done


def split_note(zoo: Zoo, cfg: TrainConfig) -> str:
    """Which train/val/test split a run of ``cfg`` on ``zoo`` uses: the zoo's published
    one, or a seeded one (said so, since a paper preset then differs from the paper)."""
    if zoo.stored_split is not None:
        return f"split: the published train/val/test split stored in {zoo.name}"
    seeded_split = (f"seeded (seed {cfg.split.seed}, fractions "
                    f"{'/'.join(f'{f:g}' for f in cfg.split.fractions)})")
    if cfg.split.by_image and "is_test" in zoo.split_metrics():
        return f"split: the published test split of {zoo.name}; train/val {seeded_split}"
    return f"split: {seeded_split}, not published: {zoo.name} stores no published split"


def _keys(tree: dict[str, Any], prefix: str = "") -> list[str]:
    return [k for name, v in tree.items()
            for k in (_keys(v, f"{prefix}{name}.") if isinstance(v, dict) else [prefix + name])]


def _ignored(preset: str | None, config_file: Any, overrides: dict[str, Any] | None) -> str:
    """What a resumed run ignores of the caller's options (it keeps its config.yaml)."""
    parts = ([f"preset {preset}"] if preset is not None else []) + (
        [f"config file {config_file}"] if config_file is not None else []) + (
        _keys(overrides) if overrides else [])
    return f"; ignored: {', '.join(parts)}" if parts else ""


def _new_config(
    zoo: Zoo, preset: str | None, config_file: str | os.PathLike[str] | None,
    overrides: dict[str, Any] | None, max_epochs: int | None, say: Callable[[str], None],
) -> TrainConfig:
    """The configuration of a new run: ``preset`` (default ``quick``), then
    ``config_file``, then ``overrides`` and ``max_epochs``."""
    extra = copy.deepcopy(overrides or {})
    if max_epochs is not None:
        extra.setdefault("optim", {})["max_epochs"] = max_epochs
    cfg = resolve_config(preset or "quick", config_file, extra, zoo.spec)
    if cfg.preset.startswith("paper-"):
        say(split_note(zoo, cfg))
    return cfg


def train(
    zoo: Zoo | str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    preset: str | None = None,
    config_file: str | os.PathLike[str] | None = None,
    overrides: dict[str, Any] | None = None,
    max_epochs: int | None = None,
    accelerator: str = "auto",
    devices: int = 1,
    num_nodes: int = 1,
    logger: str = "csv",
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train an autoencoder on ``zoo`` (a :class:`~symmerge.zoo.Zoo`, in memory or a file,
    or a zoo file's path); the result holds the trained model (``result.model``).

    Without ``out`` the training happens in memory and writes nothing anywhere: no run
    directory, checkpoints or logs. The best weights (the config's ``checkpoint`` rule)
    are kept in memory, and early stopping applies; the model is the one a run
    directory would hold for the same zoo and configuration.

    With ``out``, it trains into the run directory ``out``. A new run resolves its
    configuration from ``preset`` (default ``quick``), ``config_file`` and
    ``overrides``. A run with ``checkpoints/last.ckpt`` resumes from it with its saved
    config.yaml (``max_epochs`` extends or shortens it) and ends as the uninterrupted
    run would have, bit for bit; a run that has trained all its epochs, or that its
    early-stopping rule stopped, is left as it is (the result says ``up_to_date``).
    The run directory is locked for the whole call; a call that fails before the run's
    first checkpoint leaves nothing of it behind. ``logger`` adds a TensorBoard or
    Weights & Biases log beside the CSV one (a run directory only).

    The options and the zoo are checked before any work. The training is seeded by the
    config's ``seed``; the caller's global random states (Python, NumPy, torch, CUDA)
    are as they were when it returns. ``log`` receives a line when a run resumes or has
    nothing to do, for a new run of a ``paper-*`` preset which split it uses
    (:func:`split_note`), and the hardware it trains on. ``accelerator="auto"`` trains
    on a GPU when there is one.
    """
    t0 = time.perf_counter()
    check_hardware(accelerator, devices, num_nodes)
    accelerator = resolve_accelerator(accelerator)
    if out is None and logger != "csv":
        raise SymmergeError(f"logger {logger!r} writes into a run directory: pass out, or "
                            "train in memory without that logger", params=("logger", "out"))
    check_logger(logger)
    run = None if out is None else Path(out)
    if run is not None:
        check_run_dir(run)
    zoo = as_zoo(zoo).check_finite()
    owner = owns_run()
    say = log if log is not None and owner else (lambda _msg: None)
    hardware = {"accelerator": accelerator, "devices": devices, "num_nodes": num_nodes}
    if run is None:
        cfg = _new_config(zoo, preset, config_file, overrides, max_epochs, say)
        say(describe_accelerator(**hardware))
        return _fit_and_export(None, zoo, cfg, None, **hardware, logger=logger,
                               progress=progress, owner=owner, t0=t0)
    with RunDirectory(run, owner=owner):
        last_ckpt = last_checkpoint(run)
        ckpt = None
        if last_ckpt.is_file():
            cfg = _with_max_epochs(_load_run_config(run, zoo.spec), max_epochs, run)
            ckpt = read_checkpoint(last_ckpt)
            done, total = ckpt["epoch"] + 1, cfg.optim.max_epochs
            stopped = stopped_epoch(ckpt)
            finished = TrainResult.load(run) if (run / "model.safetensors").is_file() else None
            trained = _epochs_trained(done, finished)
            if finished is not None and stopped is not None:
                say(f"{run} stopped early after epoch {stopped + 1} (its early-stopping rule); "
                    "nothing to do")
                return _up_to_date(finished, run)
            if finished is not None and trained >= total:
                say(f"{run} has trained {trained} epochs (max_epochs {total}); nothing to do "
                    "(a larger max_epochs extends it)")
                return _up_to_date(finished, run)
            if done < total and stopped is None:
                say(f"resuming {run} after epoch {done} of {total} with its saved config.yaml"
                    + _ignored(preset, config_file, overrides))
        else:
            cfg = _new_config(zoo, preset, config_file, overrides, max_epochs, say)
        say(describe_accelerator(**hardware))
        return _fit_and_export(run, zoo, cfg, ckpt, **hardware, logger=logger,
                               progress=progress, owner=owner, t0=t0)


def _up_to_date(finished: TrainResult, run: Path) -> TrainResult:
    """The saved result of a finished run, with its model (this call did nothing)."""
    loaded = load_run(run)
    finished.model, finished.spec, finished.config = loaded
    finished.up_to_date = True
    return finished


def _save_run_files(run: Path, cfg: TrainConfig, spec: WeightSpaceSpec, new: bool) -> None:
    save_config(cfg, run / "config.yaml")
    if new:
        (run / "logs" / STASH).unlink(missing_ok=True)  # history of an older, deleted run
        with atomic_path(run / "spec.json") as tmp:
            tmp.write_text(spec.to_json())


def _fit_and_export(
    run: Path | None, zoo: Zoo, cfg: TrainConfig, ckpt: dict[str, Any] | None, *,
    accelerator: str, devices: int, num_nodes: int, logger: str, progress: bool, owner: bool,
    t0: float,
) -> TrainResult:
    """Train ``cfg.optim.max_epochs`` epochs (from ``ckpt``, the last checkpoint, if
    resuming), then evaluate the best weights (the owner process) and, into a run
    directory ``run``, export them; seeded by the config, the caller's random states
    put back afterwards."""
    spec = zoo.spec
    params = zoo.params.float()
    splits = zoo.splits(seed=cfg.split.seed, fractions=cfg.split.fractions,
                        by_image=cfg.split.by_image)
    if len(splits["train"]) == 0 or len(splits["val"]) == 0:
        raise SymmergeError(f"too few networks ({len(zoo)}) in {zoo.name} for a train/val "
                            "split")
    done = ckpt["epoch"] + 1 if ckpt is not None else 0
    stopped = stopped_epoch(ckpt) is not None
    fit = done < cfg.optim.max_epochs and not stopped
    with seeded(cfg.seed):
        module = AutoencoderModule(spec.to_json(), cfg.model_dump(mode="json"))
        if ckpt is not None:  # weights that fit, before anything is written
            load_weights(module, ckpt["state_dict"], f"the weights in {last_checkpoint(run)}")
        elif cfg.scale_params:
            module.model.set_param_scale(params[splits["train"]])
        t_data = time.perf_counter()
        test_images = _attach_loss_data(module, zoo, cfg, params, splits, new=ckpt is None)
        t_data = time.perf_counter() - t_data
        if run is not None and owner and fit:
            _save_run_files(run, cfg, spec, new=ckpt is None)

        t_fit = time.perf_counter()
        best: dict[str, Tensor] | None = None
        if fit:
            loaders = _loaders(params, splits, cfg, world_size=devices * num_nodes,
                               pin_memory=accelerator == "cuda")
            with torch_flags_kept(), quiet_lightning():  # the Trainer turns determinism on
                trainer = _fit(run, module, loaders, cfg, ckpt, accelerator=accelerator,
                               devices=devices, num_nodes=num_nodes, logger=logger,
                               progress=progress, owner=owner)
            done = trainer.current_epoch
            stopped = any(isinstance(cb, EarlyStop) and cb.stopped_epoch is not None
                          for cb in trainer.callbacks)
            best = next((cb.state for cb in trainer.callbacks if isinstance(cb, BestWeights)),
                        None)
        t_fit = time.perf_counter() - t_fit
        if not owner:
            return TrainResult(None if run is None else str(run), cfg.preset, cfg.seed,
                               __version__, zoo.name, {})

        if run is not None:
            ckpt_dir = run / "checkpoints"
            path = ckpt_dir / "best.ckpt"
            best = load_weights_only(path if path.is_file() else last_checkpoint(run),
                                     "checkpoint")["state_dict"]
        if best is not None:  # else no validation ran: the last weights
            module.load_state_dict(best)
        if run is not None:
            _export_weights(module.model, run / "model.safetensors")

        device = accelerator_device(accelerator)  # Lightning hands the module back on the CPU
        module.to(device).eval()
        metrics = _evaluate(module, spec, params.to(device), splits, test_images)
    result = TrainResult(
        run_dir=None if run is None else str(run), preset=cfg.preset, seed=cfg.seed,
        version=__version__, zoo=zoo.name, num_networks={k: len(v) for k, v in splits.items()},
        timings={"total_s": time.perf_counter() - t0, "fit_s": t_fit, "loss_data_s": t_data,
                 "epochs": float(done)},
        metrics=metrics, stopped_early=stopped, model=module.model, spec=spec, config=cfg,
    )
    if run is not None:
        result.save()
    return result


def _attach_loss_data(
    module: AutoencoderModule, zoo: Zoo, cfg: TrainConfig, params: Tensor,
    splits: dict[str, Tensor], *, new: bool,
) -> tuple[Tensor, Tensor] | None:
    """Give ``module`` its loss data (target renders of an INR zoo, images of a CNN zoo;
    a new INR run's decoder starts at the mean training render); the held-out test
    images with labels of a CNN zoo."""
    spec = zoo.spec
    if isinstance(spec, SirenSpec):
        targets = RenderLoss(spec, cfg.loss.resolution).render_targets(params)
        module.attach_loss_data(targets=targets)
        if cfg.decoder_template and new:
            module.model.set_output_template(mean_render_template(spec, targets[splits["train"]]))
    elif isinstance(spec, CNNSpec):
        train_images, test_images = _cnn_images(cfg, zoo)
        recorded = zoo.metric("test_accuracy") if "test_accuracy" in zoo.metric_names else None
        module.attach_loss_data(train_images=train_images, test_images=test_images,
                                accuracies=recorded)
        return test_images
    return None


def _make_trainer(
    run: Path | None, cfg: TrainConfig, loaders: dict[str, DataLoader], *, accelerator: str,
    devices: int, num_nodes: int, logger: str, progress: bool,
) -> L.Trainer:
    callbacks: list[Callback]
    loggers: list[Any] | bool
    if run is None:  # in memory: no checkpoint files, no logs, nothing written
        callbacks, loggers = [BestWeights(cfg.checkpoint)], False
    else:
        ckpt_dir = run / "checkpoints"
        # best: at each validation the checkpoint rule selects; last: after every epoch,
        # with everything a resume needs (loops, optimizer, callbacks, random states)
        last_cb = RunCheckpoint(dirpath=ckpt_dir, filename="last", monitor=None,
                                  save_top_k=1, save_on_train_epoch_end=True,
                                  enable_version_counter=False)
        callbacks = [best_checkpoint(cfg.checkpoint, ckpt_dir), last_cb,
                     RandomState({"train": loaders["train"].generator})]
        loggers = [CSVLogger(save_dir=str(run), name="logs", version="")]
        if logger == "tensorboard":
            loggers.append(TensorBoardLogger(save_dir=str(run), name="tensorboard"))
        elif logger == "wandb":
            loggers.append(WandbLogger(save_dir=str(run), project="symmerge"))
    if cfg.early_stopping.enabled:
        callbacks.append(EarlyStop(cfg.early_stopping))
    steps = cfg.eval_every_n_steps  # validation every that many steps, else per epoch
    steps_per_epoch = max(1, len(loaders["train"]))
    # buffers (cached renders, images, latent statistics) are the same on every process
    # or reduced explicitly: DDP need not broadcast them before every forward
    strategy = DDPStrategy(broadcast_buffers=False) if devices * num_nodes > 1 else "auto"
    try:
        return L.Trainer(
            accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy,
            max_epochs=cfg.optim.max_epochs, gradient_clip_val=cfg.optim.grad_clip,
            precision=cfg.precision, callbacks=callbacks, logger=loggers,
            enable_checkpointing=run is not None, enable_progress_bar=progress,
            enable_model_summary=False, log_every_n_steps=min(50, steps_per_epoch),
            check_val_every_n_epoch=None if steps else cfg.eval_every_n_epochs,
            val_check_interval=steps or 1.0, num_sanity_val_steps=0,
            deterministic=True,  # threaded CPU scatter sums otherwise vary from run to run
        )
    except (MisconfigurationException, ValueError, TypeError, ImportError) as exc:
        raise SymmergeError(f"cannot train with accelerator {accelerator!r}, {devices} "
                            f"device(s), {num_nodes} node(s): {error_summary(exc)}") from None


def _fit(
    run: Path | None, module: AutoencoderModule, loaders: dict[str, DataLoader],
    cfg: TrainConfig, ckpt: dict[str, Any] | None, *, accelerator: str, devices: int,
    num_nodes: int, logger: str, progress: bool, owner: bool,
) -> L.Trainer:
    trainer = _make_trainer(run, cfg, loaders, accelerator=accelerator, devices=devices,
                            num_nodes=num_nodes, logger=logger, progress=progress)
    resume = run is not None and ckpt is not None
    last_ckpt = last_checkpoint(run) if run is not None else None
    if resume and owner:
        stash_history(run / "logs", ckpt["epoch"])
    try:
        with warnings.catch_warnings(), interrupt_kept(trainer):
            if resume:  # expected there; the metrics history is kept (metrics_log)
                warnings.filterwarnings("ignore", r"(Experiment logs|Checkpoint) directory .* "
                                        "exists and is not empty")
            trainer.fit(module, loaders["train"], loaders["val"],
                        ckpt_path=str(last_ckpt) if resume else None, weights_only=True)
    except NonFiniteLossError as exc:
        if last_ckpt is None:
            raise SymmergeError(f"{exc}; stopped. Lower the learning rate or check the "
                                "zoo.") from None
        kept = (f"The last good checkpoint, {last_ckpt}, is kept (resume with a lower "
                "learning rate through a new run, or check the zoo)." if last_ckpt.is_file()
                else "No checkpoint had been written yet, so nothing of the run is kept; "
                "lower the learning rate or check the zoo.")
        raise SymmergeError(f"{exc}; stopped. {kept}") from None
    finally:
        if resume and owner:
            restore_history(run / "logs")
    return trainer


@torch.no_grad()
def _evaluate(
    module: AutoencoderModule, spec: WeightSpaceSpec, params: Tensor, splits: dict[str, Tensor],
    test_images: tuple[Tensor, Tensor] | None,
) -> dict[str, float]:
    """Test metrics of the best model plus a trivial baseline for scale, and
    ``test_networks``: how many networks they are over (the test split, else val)."""
    test = params[splits["test"]] if len(splits["test"]) else params[splits["val"]]
    decoded = reconstruct(module.model, test)
    out: dict[str, float] = {"test_networks": float(test.shape[0])}
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
