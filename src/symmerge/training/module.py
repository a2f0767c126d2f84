"""The Lightning module that trains an autoencoder with a function-space loss."""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import lightning as L
import torch
from torch import Tensor

from symmerge.errors import SymmergeError
from symmerge.models import build_autoencoder
from symmerge.models.train_config import TrainConfig
from symmerge.specs import CNNSpec, SirenSpec, spec_from_json
from symmerge.training.losses import (
    DistillationLoss,
    RenderLoss,
    accuracy,
    cnn_accuracy_report,
)


class NonFiniteLossError(SymmergeError):
    """A training or validation loss became NaN or infinite."""


class FirstNonFinite:
    """The first non-finite loss of a stretch of steps and the step it came at, kept on
    the loss's device: watching a step costs no host synchronization, only reading the
    result (:meth:`found`, once per epoch) does."""

    def __init__(self) -> None:
        self._step: Tensor | None = None
        self._value: Tensor | None = None

    def reset(self) -> None:
        self._step = self._value = None

    def update(self, loss: Tensor, step: int) -> None:
        loss = loss.detach().float().reshape(())
        bad = ~torch.isfinite(loss)
        if self._step is None or self._value is None:
            self._step, self._value = torch.where(bad, step, -1), loss
            return
        first = bad & (self._step < 0)
        self._step = torch.where(first, step, self._step)
        self._value = torch.where(first, loss, self._value)

    def found(self) -> tuple[int, float] | None:
        """``(step, loss)`` of the first non-finite loss since :meth:`reset`, if any."""
        if self._step is None or self._value is None:
            return None
        step = int(self._step)
        return None if step < 0 else (step, float(self._value))


class AutoencoderModule(L.LightningModule):
    """``decoder(encoder(network))`` trained on render MSE (INRs) or distillation (CNNs).

    Loss data that is not a parameter (cached target renders, image sets) is
    attached with :meth:`attach_loss_data`: non-persistent buffers, which follow the
    module's device and are never stored in checkpoints. A non-finite training loss
    stops training at once on the CPU; on an accelerator it is watched on the device and
    checked once per epoch (before validation and before the epoch's checkpoint), so
    that a training step never waits for the device.
    """

    #: device types where reading a loss costs no synchronization: checked every step
    CHECK_EVERY_STEP: tuple[str, ...] = ("cpu",)

    def __init__(self, spec_json: str, config: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.spec = spec_from_json(spec_json)
        self.cfg = TrainConfig.model_validate(config)
        self.model = build_autoencoder(self.spec, self.cfg.encoder, self.cfg.decoder_widths)
        for name in ("_targets", "_test_x", "_test_y", "_accuracies"):
            self.register_buffer(name, None, persistent=False)
        self.render_loss: RenderLoss | None = None
        self.kd_loss: DistillationLoss | None = None
        self._bad_train = FirstNonFinite()
        self._bad_val = FirstNonFinite()

    # ------------------------------------------------------------------ data
    def attach_loss_data(
        self,
        *,
        targets: Tensor | None = None,
        train_images: Tensor | None = None,
        test_images: tuple[Tensor, Tensor] | None = None,
        accuracies: Tensor | None = None,
    ) -> None:
        """Cached target renders ``[N, R, R]`` (INR) or image sets (CNN): training images,
        held-out test images with labels, and the zoo's recorded test accuracies ``[N]``
        (``val_l1`` compares decoded accuracies with them; without them, with the
        original networks' accuracies on the test images). All moved to the module's
        device (and with it wherever it goes next)."""
        if isinstance(self.spec, SirenSpec):
            if targets is None:
                raise ValueError("a SIREN autoencoder needs cached target renders")
            self.render_loss = RenderLoss(self.spec, self.cfg.loss.resolution)
            self._targets = targets.to(self.device)
        elif isinstance(self.spec, CNNSpec):
            if train_images is None:
                raise ValueError("a CNN autoencoder needs training images for distillation")
            self.kd_loss = DistillationLoss(
                self.spec, train_images.to(self.device), temperature=self.cfg.loss.temperature,
                images_per_step=self.cfg.loss.images_per_step,
            )
            if test_images is not None:
                self._test_x, self._test_y = (t.to(self.device) for t in test_images)
            if accuracies is not None:
                self._accuracies = accuracies.to(self.device)

    # ------------------------------------------------------------------ steps
    def forward(self, params: Tensor) -> Tensor:
        return self.model(params)

    def _loss(
        self, params: Tensor, index: Tensor, generator: torch.Generator | None = None,
        decoded: Tensor | None = None,
    ) -> Tensor:
        """The loss of ``params``' reconstruction (``decoded``: already computed)."""
        if decoded is None:
            decoded = self.model(params)
        if self.render_loss is not None:
            return self.render_loss(decoded, self._targets[index])  # type: ignore[index]
        if self.kd_loss is not None:  # images drawn with ``generator`` (default: global RNG)
            return self.kd_loss(decoded, params, generator)
        raise RuntimeError("loss data not attached; call attach_loss_data first")

    def on_train_epoch_start(self) -> None:
        self._bad_train.reset()

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        params, index = batch
        loss = self._loss(params, index)
        self._bad_train.update(loss, self.global_step)
        if loss.device.type in self.CHECK_EVERY_STEP:
            self._check_training_loss()
        self.log("train_loss", loss, prog_bar=True, batch_size=params.shape[0])
        return loss

    def _check_training_loss(self) -> None:
        """Stop (every DDP process together) if a training loss of this epoch was not finite."""
        found = self._bad_train.found()
        if self._any_process(found is not None):
            what = (f"{found[1]} at step {found[0]}" if found is not None
                    else "non-finite on another process")
            raise NonFiniteLossError(f"training loss became {what}")

    def on_train_epoch_end(self) -> None:
        """Before the epoch's checkpoint is saved (the checkpoint callbacks run after this)."""
        self._check_training_loss()

    def on_validation_epoch_start(self) -> None:
        """Exact latent-norm statistics of the current weights over the training split."""
        self._check_training_loss()  # of the weights validation would see
        self._bad_val.reset()
        loader = self.trainer.train_dataloader if self.trainer is not None else None
        if loader is not None:
            self.model.recompute_latent_stats(p.to(self.device) for p, _ in loader)
            norm = self.model.latent_norm
            if isinstance(norm, torch.nn.BatchNorm1d) and self.trainer.world_size > 1:
                # every process saw its own share (of equal size): average the statistics
                for buf in (norm.running_mean, norm.running_var):
                    buf.copy_(self.trainer.strategy.reduce(buf, reduce_op="mean"))

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        params, index = batch
        # the same distillation images for this batch at every validation: comparable
        # losses for the best-checkpoint choice, and the training RNG stays untouched
        seed = (self.cfg.seed * 1_000_003 + batch_idx) % 2**63
        gen = torch.Generator(device=self.device).manual_seed(seed)
        decoded = self.model(params)  # once: the loss and the accuracies below
        loss = self._loss(params, index, gen, decoded)
        self._bad_val.update(loss, batch_idx)
        self.log("val_loss", loss, prog_bar=True, sync_dist=True, batch_size=params.shape[0])
        l1 = "val_l1" in self.cfg.monitors
        if (self.kd_loss is None or self._test_x is None or self._test_y is None
                or not (l1 or batch_idx == 0)):
            return
        images, labels = self._test_x, self._test_y
        if batch_idx == 0:  # a quick look at the first batch
            report = cnn_accuracy_report(self.spec, params, decoded, images, labels)
            self.log_dict({f"val_{k}": v for k, v in report.items()}, sync_dist=True,
                          batch_size=params.shape[0])
        if l1:  # over every validation network
            self.log("val_l1", self._accuracy_l1(params, index, decoded, images, labels),
                     sync_dist=True, batch_size=params.shape[0])

    def _accuracy_l1(
        self, params: Tensor, index: Tensor, decoded: Tensor, images: Tensor, labels: Tensor
    ) -> Tensor:
        """Mean ``|accuracy of decoded - recorded accuracy|`` of a batch on the test images
        (on the module's device)."""
        reference = (self._accuracies[index] if self._accuracies is not None
                     else accuracy(self.spec, params, images, labels))
        diff = accuracy(self.spec, decoded, images, labels) - reference.float()
        return diff.abs().mean()

    def on_validation_epoch_end(self) -> None:
        """Stop before the checkpoint callback saves weights whose loss is not finite."""
        found = self._bad_val.found()
        if self._any_process(found is not None):
            what = "non-finite on another process" if found is None else found[1]
            raise NonFiniteLossError(
                f"validation loss became {what} after epoch {self.current_epoch}"
            )

    def _any_process(self, flag: bool) -> bool:
        """``flag`` on any process (under DDP every process then stops together)."""
        trainer = self._trainer
        if trainer is None or trainer.world_size <= 1:
            return flag
        return bool(trainer.strategy.reduce_boolean_decision(flag, all=False))

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        params, index = batch
        self.log("test_loss", self._loss(params, index), sync_dist=True,
                 batch_size=params.shape[0])

    def configure_optimizers(self) -> Any:
        o = self.cfg.optim
        opt = torch.optim.AdamW(self.parameters(), lr=o.lr, weight_decay=o.weight_decay,
                                amsgrad=o.amsgrad)
        # the cosine's length: every optimizer step of max_epochs (Lightning's count)
        total = int(self.trainer.estimated_stepping_batches) if o.schedule == "cosine" else 0
        factor = partial(lr_factor, warmup_steps=o.warmup_steps, schedule=o.schedule,
                         total_steps=total)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def lr_factor(step: int, *, warmup_steps: int, schedule: str = "constant",
              total_steps: int = 0) -> float:
    """The learning rate of optimizer step ``step`` (0-based) as a fraction of ``lr``
    (:class:`symmerge.models.train_config.OptimConfig`): linear warm-up over
    ``warmup_steps``, then 1 (``constant``) or a half cosine that reaches 0 one step after
    ``total_steps`` (``cosine``)."""
    warm = max(warmup_steps, 1)
    factor = min(1.0, (step + 1) / warm)
    if schedule == "cosine" and step + 1 > warm:
        span = max(total_steps - warm + 1, 1)
        done = min((step + 1 - warm) / span, 1.0)
        factor *= 0.5 * (1.0 + math.cos(math.pi * done))
    return factor
