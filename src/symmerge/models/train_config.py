"""Validated training configuration (pydantic + YAML) and presets.

What a run directory's ``config.yaml`` holds: the description of an autoencoder (built
from it by :func:`symmerge.models.runs.load_run`) and of the training that made it. It
lives beside the models, not in :mod:`symmerge.training`, so that loading and using a
trained run needs no trainer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from symmerge.errors import SymmergeError
from symmerge.limits import MAX_SEED
from symmerge.models.config import EncoderConfig
from symmerge.specs.base import WeightSpaceSpec
from symmerge.utils.io import atomic_path, read_text


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OptimConfig(_Strict):
    """AdamW (``amsgrad``: its AMSGrad variant) with linear warm-up,
    ``lr * min(1, (s + 1) / warmup_steps)`` at optimizer step ``s`` (0-based, as the
    reference's ``WarmupLRScheduler``), and gradient-norm clipping. ``schedule`` says what
    follows the warm-up: ``constant`` (the reference's: ``lr`` to the end) or ``cosine``
    (ours, opt-in: a half cosine from ``lr`` towards 0 at the run's last step of
    ``max_epochs``; a run extended with a larger ``max_epochs`` stretches its curve)."""

    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    amsgrad: bool = False
    warmup_steps: int = Field(1000, ge=0)
    grad_clip: float = Field(10.0, gt=0)
    batch_size: int = Field(128, gt=0)
    max_epochs: int = Field(150, gt=0)
    schedule: Literal["constant", "cosine"] = "constant"


class LossConfig(_Strict):
    """INR: render MSE; CNN: knowledge distillation on fresh training images each step."""

    resolution: int = Field(28, gt=0)
    temperature: float = Field(0.6, gt=0)
    images_per_step: int = Field(128, gt=0)
    #: CNN image source; default: the zoo's provenance (its split and input transform too)
    images: str | None = None


class SplitConfig(_Strict):
    """Seeded train/val/test fractions; ``by_image``: networks of one image stay in one
    split and a published test split is kept (:meth:`symmerge.zoo.Zoo.splits`). Run
    directories written before this option existed load with ``by_image: false``."""

    seed: int = Field(0, ge=0, le=MAX_SEED)
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    by_image: bool = True


Monitor = Literal["val_loss", "val_l1"]


class EarlyStoppingConfig(_Strict):
    """Stop a run before ``max_epochs`` when the monitored validation metric (``monitor``)
    stops improving; checked after every validation.

    ``rule``: ``increasing`` stops when the last ``patience`` values rose at every step
    (strictly increasing: the reference's INR rule); ``no_improvement`` stops after
    ``patience`` validations in a row none of which reached the best value so far (a
    value equal to the best counts as reaching it: the reference's CNN rule). A stopped
    run is finished: rerunning it does nothing.
    """

    enabled: bool = False
    monitor: Monitor = "val_loss"
    rule: Literal["increasing", "no_improvement"] = "no_improvement"
    patience: int = Field(50, ge=1)


class CheckpointConfig(_Strict):
    """Which validation selects ``checkpoints/best.ckpt`` (the exported model): the lowest
    ``monitor``; ``ties``: whether a later validation with a value equal to the best
    replaces it (``later``, the reference's ``<=``) or not (``earlier``)."""

    monitor: Monitor = "val_loss"
    ties: Literal["earlier", "later"] = "earlier"


class TrainConfig(_Strict):
    """Everything a training run needs besides the zoo; saved resolved in RUN/config.yaml.

    Monitors: ``val_loss`` (render MSE of INRs, distillation loss of CNNs) and, for CNN
    zoos, ``val_l1``: the mean over the validation networks of ``|accuracy of the decoded
    CNN on the held-out images - the zoo's test_accuracy|`` (the original network's
    accuracy on those images when the zoo records none). Validation runs every
    ``eval_every_n_epochs`` epochs, or with ``eval_every_n_steps`` every that many
    training steps (counted across epochs) instead.

    symmerge's additions to the reference method (``scale_params``,
    ``decoder_template``, the encoder's ``latent_norm``, ``probe_points``,
    ``standardize``, ``decode_standardized``, ``phase_canonical`` and the PNA encoder's
    options) are listed, with their keys, in METHOD.md 4.2; the ``paper-*`` presets turn
    none of them on unless the reference does the same.
    """

    preset: str = "custom"
    family: Literal["siren", "cnn", "mlp", "any"] = "any"
    activation: Literal["sine", "relu", "tanh", "any"] = "any"
    seed: int = Field(0, ge=0, le=MAX_SEED)
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    decoder_widths: tuple[int, ...] = (2, 4)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    eval_every_n_epochs: int = Field(1, gt=0)
    eval_every_n_steps: int | None = Field(None, gt=0)
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    #: fit the autoencoder's per-tensor parameter scale to the training split
    scale_params: bool = True
    #: SIREN zoos: start the decoder at a SIREN fitted to the mean training render
    decoder_template: bool = True
    #: ``bf16-mixed``: bfloat16 autocast for the decoder's hidden layers and the CNN
    #: distillation passes; the encoder (the latent's invariance), the decoder's output
    #: layer and SIREN renders stay float32. Opt-in: ``32`` in every preset.
    precision: Literal["32", "bf16-mixed"] = "32"

    @property
    def monitors(self) -> set[str]:
        """The validation metrics that checkpoint selection and early stopping read."""
        stop = {self.early_stopping.monitor} if self.early_stopping.enabled else set()
        return {self.checkpoint.monitor} | stop

    def check_spec(self, spec: WeightSpaceSpec) -> None:
        """Raise if this configuration cannot train on networks of ``spec``."""
        if self.family != "any" and spec.family != self.family:
            raise SymmergeError(
                f"preset {self.preset!r} is for {self.family} zoos, but the zoo holds "
                f"{spec.describe()}"
            )
        if self.activation != "any" and spec.activation != self.activation:
            raise SymmergeError(
                f"preset {self.preset!r} is for {self.activation} networks, but the zoo holds "
                f"{spec.activation} networks"
            )
        mode = self.encoder.mode
        if mode in ("sign", "scale") and mode != spec.symmetry:
            raise SymmergeError(
                f"encoder mode {mode!r} does not match the zoo's {spec.symmetry} symmetry "
                f"({spec.activation} networks)"
            )
        if spec.family not in ("siren", "cnn"):
            raise SymmergeError(
                f"training needs a function-space loss: SIREN (render) or CNN (distillation) "
                f"zoos, got {spec.family}"
            )
        if "val_l1" in self.monitors and spec.family != "cnn":
            raise SymmergeError(
                f"monitor val_l1 (decoded accuracies) needs a CNN zoo, the zoo holds "
                f"{spec.describe()}; monitor val_loss instead"
            )


def merge_overrides(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` laid on top, nested dictionaries merged key by key (a new
    dictionary; neither argument changes)."""
    out = dict(base)
    for k, v in over.items():
        nested = isinstance(v, dict) and isinstance(out.get(k), dict)
        out[k] = merge_overrides(out[k], v) if nested else v
    return out


# The ``paper-*`` presets hold every value of the configurations the paper ran (METHOD.md
# 4.6): the ScaleGMN autoencoder YAMLs (``configs/mnist_rec/scalegmn_autoencoder.yml``,
# its ``_ablation`` and ``_baseline`` variants, ``configs/cifar10_rec/scalegmn_relu.yml``
# and ``scalegmn_tanh.yml``) and the Neural Graphs configurations (``model=pna`` with
# ``experiments/inr_classification`` and ``experiments/cnn_generalization``). None of
# symmerge's additions is on in them, except the standardization of the Neural Graphs
# INR, which its reference does too (with training-set statistics). They keep symmerge's
# fixes of the reference's flaws (METHOD.md 4.6).

#: what a paper preset's encoder leaves off: symmerge's additions (METHOD.md 4.2)
_NO_ADDITIONS: dict[str, Any] = {"latent_norm": False, "probe_points": 0,
                                 "decode_standardized": False, "phase_canonical": False}

#: what every configuration the paper ran has in common
_PAPER: dict[str, Any] = {
    "decoder_widths": (2, 4),
    "optim": {"warmup_steps": 1000},
    "checkpoint": {"ties": "later"},
    "decoder_template": False,
}
#: what the ScaleGMN autoencoder configurations have in common
_SCALEGMN: dict[str, Any] = merge_overrides(_PAPER, {
    "seed": 0,
    "encoder": {"num_layers": 4, "dropout": 0.2, "ablate": False, "bidirectional": False,
                "node_pos_embed": True, "update_edges": True, **_NO_ADDITIONS},
    "optim": {"lr": 1e-3, "weight_decay": 0.01, "amsgrad": False},
    "eval_every_n_epochs": 1,
    "scale_params": False,
})
_PAPER_INR: dict[str, Any] = merge_overrides(_SCALEGMN, {
    "family": "siren",
    "encoder": {"mode": "sign", "d_hidden": 128, "d_latent": 128, "num_io_mlps": 2,
                "skip": True, "edge_pos_embed": True, "mlp_on_io": False,
                "input_node_value": 1.0},
    "optim": {"grad_clip": 10.0, "batch_size": 128, "max_epochs": 150},
    "loss": {"resolution": 28},
    "early_stopping": {"enabled": True, "monitor": "val_loss", "rule": "increasing",
                       "patience": 50},
    "checkpoint": {"monitor": "val_loss"},
})
_PAPER_CNN: dict[str, Any] = merge_overrides(_SCALEGMN, {
    "family": "cnn",
    "encoder": {"d_hidden": 256, "d_latent": 256, "skip": False, "edge_pos_embed": False,
                "mlp_on_io": True, "input_node_value": 0.0},
    "optim": {"grad_clip": 5.0, "batch_size": 64, "max_epochs": 300},
    "loss": {"temperature": 0.6},
    "early_stopping": {"enabled": False, "monitor": "val_l1", "rule": "no_improvement",
                       "patience": 15},
    "checkpoint": {"monitor": "val_l1"},
})
#: the Neural Graphs configurations (``model=pna``)
_PAPER_NG: dict[str, Any] = merge_overrides(_PAPER, {
    "seed": 42,
    "encoder": {"mode": "pna", "num_layers": 4, "d_latent": None, "dropout": 0.0,
                "skip": False, "edge_pos_embed": False, "node_pos_embed": True,
                "update_edges": True, "rff_sigma": 3.0, "rff_dim": 128, "pna_norm": "graph",
                "input_node_value": 0.0, "standardize": "mean-std", **_NO_ADDITIONS},
    "optim": {"weight_decay": 5e-4, "amsgrad": True, "max_epochs": 300},
    "early_stopping": {"enabled": False},
})
_PAPER_NG_CNN: dict[str, Any] = merge_overrides(_PAPER_NG, {
    "family": "cnn",
    "encoder": {"d_hidden": 256},
    "optim": {"lr": 1e-4, "grad_clip": 5.0, "batch_size": 64},
    "loss": {"temperature": 0.6},
    "eval_every_n_epochs": 1,
    "checkpoint": {"monitor": "val_l1"},
    "scale_params": False,  # its CNN statistics are null: no standardization
})

#: Presets (METHOD.md 4.6). Ours: ``quick`` is sized for a 2-core machine; ``inr``,
#: ``cnn-relu`` and ``cnn-tanh`` are the paper's setups plus the parameter scale (and the
#: INR decoder template) of METHOD.md 4.2.
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "encoder": {"mode": "auto", "d_hidden": 16, "num_layers": 2, "d_latent": 32,
                    "dropout": 0.0, "latent_norm": True, "probe_points": 256},
        "optim": {"lr": 3e-3, "weight_decay": 0.01, "warmup_steps": 50, "grad_clip": 10.0,
                  "batch_size": 32, "max_epochs": 60},
        "loss": {"images_per_step": 64},
    },
    "paper-inr": _PAPER_INR,
    "paper-inr-ablation": merge_overrides(_PAPER_INR, {"encoder": {"ablate": True}}),
    "paper-inr-permutation": merge_overrides(_PAPER_INR, {"encoder": {"mode": "permutation"},
                                                          "optim": {"max_epochs": 100}}),
    "paper-cnn-relu": merge_overrides(_PAPER_CNN, {
        "activation": "relu", "encoder": {"mode": "scale", "num_io_mlps": 2},
    }),
    "paper-cnn-tanh": merge_overrides(_PAPER_CNN, {
        "activation": "tanh", "encoder": {"mode": "sign", "num_io_mlps": 3},
        "early_stopping": {"enabled": True},
    }),
    "paper-ng-inr": merge_overrides(_PAPER_NG, {
        "family": "siren",
        "encoder": {"d_hidden": 128},
        "optim": {"lr": 1e-3, "grad_clip": 10.0, "batch_size": 128},
        "loss": {"resolution": 28},
        "eval_every_n_steps": 2150,
        "checkpoint": {"monitor": "val_loss"},
        "scale_params": True,  # per-layer mean/std of the training networks, as the reference
    }),
    "paper-ng-cnn-relu": merge_overrides(_PAPER_NG_CNN, {"activation": "relu"}),
    "paper-ng-cnn-tanh": merge_overrides(_PAPER_NG_CNN, {"activation": "tanh"}),
}
_OURS: dict[str, Any] = {"encoder": {"decode_standardized": True}, "scale_params": True}
PRESETS["inr"] = merge_overrides(PRESETS["paper-inr"], {**_OURS, "decoder_template": True})
PRESETS["cnn-relu"] = merge_overrides(PRESETS["paper-cnn-relu"], _OURS)
PRESETS["cnn-tanh"] = merge_overrides(PRESETS["paper-cnn-tanh"], _OURS)


#: Preset values that depend on the zoo's family, applied before files and overrides.
#: ``quick`` gives dense networks (INRs, MLPs) probe features at 256 random inputs,
#: which improve their reconstructions markedly; CNNs keep none: probe images (random or
#: real) did not help CNN autoencoders. Both measured in BENCHMARKS.md, "Autoencoder
#: reconstruction quality, `quick` preset" (``benchmarks/bench_ae_quality.py``).
FAMILY_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {"cnn": {"encoder": {"probe_points": 0}}},
}


def validate_config(data: dict[str, Any], where: str) -> TrainConfig:
    """A :class:`TrainConfig` from ``data``, or one clear error naming ``where``."""
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise SymmergeError(f"invalid training config ({where}): {loc}: {first['msg']}") from exc


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    text = read_text(p, "config file")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise SymmergeError(f"cannot parse config {p}: {exc}") from exc
    if not isinstance(data, dict):
        raise SymmergeError(f"config {p} must be a YAML mapping")
    return data


def resolve_config(
    preset: str = "quick",
    config_file: str | os.PathLike[str] | None = None,
    overrides: dict[str, Any] | None = None,
    spec: WeightSpaceSpec | None = None,
) -> TrainConfig:
    """Preset (with its :data:`FAMILY_PRESETS` values for ``spec``'s family), then a YAML
    file, then explicit overrides; ``mode: auto`` resolved from ``spec``."""
    if preset not in PRESETS:
        raise SymmergeError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    data = merge_overrides({"preset": preset}, PRESETS[preset])
    if spec is not None:
        data = merge_overrides(data, FAMILY_PRESETS.get(preset, {}).get(spec.family, {}))
    if config_file is not None:
        data = merge_overrides(data, read_yaml(config_file))
    if overrides:
        data = merge_overrides(data, overrides)
    if spec is not None and data.get("encoder", {}).get("mode", "auto") == "auto":
        data = merge_overrides(data, {"encoder": {"mode": spec.symmetry}})
    cfg = validate_config(data, f"preset {preset}" + (f" + {config_file}" if config_file else ""))
    if spec is not None:
        cfg.check_spec(spec)
    return cfg


def config_yaml(cfg: TrainConfig) -> str:
    """``cfg`` as YAML, every key in declaration order (what RUN/config.yaml holds)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def save_config(cfg: TrainConfig, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(config_yaml(cfg))


def load_config(path: str | os.PathLike[str]) -> TrainConfig:
    """A saved run's configuration (older runs made plain splits: ``by_image`` false)."""
    data = read_yaml(path)
    split = data.get("split")
    if isinstance(split, dict) and "by_image" not in split:
        data["split"] = {**split, "by_image": False}
    return validate_config(data, str(path))
