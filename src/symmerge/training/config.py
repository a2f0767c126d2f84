"""Validated training configuration (pydantic + YAML) and presets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from symmerge.errors import SymmergeError
from symmerge.limits import MAX_SEED
from symmerge.models import EncoderConfig
from symmerge.specs import WeightSpaceSpec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OptimConfig(_Strict):
    """AdamW with linear warm-up to a constant learning rate, gradient-norm clipping."""

    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_steps: int = Field(1000, ge=0)
    grad_clip: float = Field(10.0, gt=0)
    batch_size: int = Field(128, gt=0)
    max_epochs: int = Field(150, gt=0)


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


class TrainConfig(_Strict):
    """Everything a training run needs besides the zoo; saved resolved in RUN/config.yaml."""

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
    #: fit the autoencoder's per-tensor parameter scale to the training split
    scale_params: bool = True
    #: SIREN zoos: start the decoder at a SIREN fitted to the mean training render
    decoder_template: bool = True
    #: ``bf16-mixed``: bfloat16 autocast for the decoder's hidden layers and the CNN
    #: distillation passes; the encoder (the latent's invariance), the decoder's output
    #: layer and SIREN renders stay float32. Opt-in: ``32`` in every preset.
    precision: Literal["32", "bf16-mixed"] = "32"

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


_PAPER_INR: dict[str, Any] = {
    "family": "siren",
    "encoder": {"mode": "sign", "d_hidden": 128, "num_layers": 4, "d_latent": 128},
    "optim": {"lr": 1e-3, "weight_decay": 0.01, "warmup_steps": 1000, "grad_clip": 10.0,
              "batch_size": 128, "max_epochs": 150},
}
_PAPER_CNN: dict[str, Any] = {
    "family": "cnn",
    "encoder": {"d_hidden": 256, "num_layers": 4, "d_latent": 256, "skip": False,
                "edge_pos_embed": False, "mlp_on_io": True},
    "optim": {"lr": 1e-3, "weight_decay": 0.01, "warmup_steps": 1000, "grad_clip": 5.0,
              "batch_size": 64, "max_epochs": 300},
    "loss": {"temperature": 0.6},
}

#: Presets from METHOD.md 4.6; ``quick`` is sized for a 2-core machine.
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "encoder": {"mode": "auto", "d_hidden": 16, "num_layers": 2, "d_latent": 32,
                    "dropout": 0.0, "latent_norm": True, "probe_points": 256},
        "optim": {"lr": 3e-3, "weight_decay": 0.01, "warmup_steps": 50, "grad_clip": 10.0,
                  "batch_size": 32, "max_epochs": 60},
        "loss": {"images_per_step": 64},
    },
    "paper-inr": _PAPER_INR,
    "paper-cnn-relu": {
        **_PAPER_CNN, "activation": "relu",
        "encoder": {**_PAPER_CNN["encoder"], "mode": "scale", "num_io_mlps": 2},
    },
    "paper-cnn-tanh": {
        **_PAPER_CNN, "activation": "tanh",
        "encoder": {**_PAPER_CNN["encoder"], "mode": "sign", "num_io_mlps": 3},
    },
}


#: Preset values that depend on the zoo's family, applied before files and overrides.
#: ``quick`` gives dense networks (INRs, MLPs) probe features at 256 random inputs
#: (test render-MSE ratio 0.74 -> 0.42 in ``benchmarks/bench_ae_quality.py``); CNNs keep
#: none: probe images (random or real) did not help CNN autoencoders (BENCHMARKS.md).
FAMILY_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {"cnn": {"encoder": {"probe_points": 0}}},
}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def validate_config(data: dict[str, Any], where: str) -> TrainConfig:
    """A :class:`TrainConfig` from ``data``, or one clear error naming ``where``."""
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise SymmergeError(f"invalid training config ({where}): {loc}: {first['msg']}") from exc


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    from symmerge.utils.io import read_text

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
    data = _merge({"preset": preset}, PRESETS[preset])
    if spec is not None:
        data = _merge(data, FAMILY_PRESETS.get(preset, {}).get(spec.family, {}))
    if config_file is not None:
        data = _merge(data, read_yaml(config_file))
    if overrides:
        data = _merge(data, overrides)
    if spec is not None and data.get("encoder", {}).get("mode", "auto") == "auto":
        data = _merge(data, {"encoder": {"mode": spec.symmetry}})
    cfg = validate_config(data, f"preset {preset}" + (f" + {config_file}" if config_file else ""))
    if spec is not None:
        cfg.check_spec(spec)
    return cfg


def save_config(cfg: TrainConfig, path: str | os.PathLike[str]) -> None:
    from symmerge.utils.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


def load_config(path: str | os.PathLike[str]) -> TrainConfig:
    """A saved run's configuration (older runs made plain splits: ``by_image`` false)."""
    data = read_yaml(path)
    split = data.get("split")
    if isinstance(split, dict) and "by_image" not in split:
        data["split"] = {**split, "by_image": False}
    return validate_config(data, str(path))
