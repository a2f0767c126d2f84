"""Finished training runs, without the trainer: load one, encode, decode, reconstruct.

A run directory (written by :func:`symmerge.training.train`) holds ``config.yaml``,
``spec.json`` and ``model.safetensors`` (the best weights): all that rebuilding its
autoencoder needs. Wherever a run is taken (``run=``, ``pna_run=``), a model trained in
memory does as well: the :class:`~symmerge.training.TrainResult` of ``train(zoo)`` or a
:class:`LoadedRun` (:func:`as_run`). Nothing here imports Lightning;
:mod:`symmerge.training` builds on this module, not the reverse.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from symmerge.errors import SymmergeError
from symmerge.limits import check_range
from symmerge.models.autoencoder import Autoencoder, build_autoencoder
from symmerge.models.train_config import TrainConfig, load_config
from symmerge.specs.base import WeightSpaceSpec, spec_from_json
from symmerge.utils.device import module_device, reproducible
from symmerge.utils.io import error_summary, read_text, require_finite

#: the files of a finished run that :func:`load_run` reads
RUN_FILES = ("config.yaml", "spec.json", "model.safetensors")


@dataclass(frozen=True)
class LoadedRun:
    """A trained autoencoder (in eval mode) with the spec of the networks it encodes and
    the configuration it was built and trained with; ``path`` is its run directory (None
    for a model trained in memory). Unpacks as ``model, spec, config``."""

    model: Autoencoder
    spec: WeightSpaceSpec
    config: TrainConfig
    path: Path | None = None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.model, self.spec, self.config))


class TrainedModel(Protocol):
    """A model trained in memory with what describes it (a ``TrainResult``, a
    :class:`LoadedRun`): the autoencoder, the spec of its networks, its configuration."""

    @property
    def model(self) -> Autoencoder | None: ...

    @property
    def spec(self) -> WeightSpaceSpec | None: ...

    @property
    def config(self) -> TrainConfig | None: ...


#: What a ``run`` parameter takes: a finished run's directory or a trained model.
RunLike = str | os.PathLike | TrainedModel


def _run_path(run: RunLike) -> Path | None:
    """``run``'s directory: the path itself, or where a loaded or trained model came from
    (None: trained in memory)."""
    if isinstance(run, str | os.PathLike):
        return Path(run)
    where = getattr(run, "path", None) or getattr(run, "run_dir", None)
    return Path(where) if where is not None else None


def describe_run(run: RunLike) -> str:
    """How results and messages name ``run``: its directory, or ``in-memory model``."""
    path = _run_path(run)
    return str(path) if path is not None else "in-memory model"


def as_run(
    run: RunLike,
    spec: WeightSpaceSpec | None = None,
    *,
    what: str = "run",
    holder: str = "the input",
) -> LoadedRun:
    """``run`` as a :class:`LoadedRun`: a directory is loaded (:func:`load_run`); a model
    trained in memory (a ``TrainResult``, a :class:`LoadedRun`) is taken as it is, in eval
    mode, not copied. Either must have been trained on ``spec`` (when given); ``what``
    names ``run`` in errors and ``holder`` what holds the ``spec`` networks."""
    if isinstance(run, str | os.PathLike):
        return load_run(run, spec, what=what, holder=holder)
    model, run_spec, config = (getattr(run, k, None) for k in ("model", "spec", "config"))
    if not (isinstance(model, nn.Module) and isinstance(run_spec, WeightSpaceSpec)
            and isinstance(config, TrainConfig)):
        raise SymmergeError(f"{what} must be a finished run's directory or a trained model (the "
                            f"TrainResult of train, a LoadedRun), got {type(run).__name__}")
    name = describe_run(run)
    if spec is not None and run_spec != spec:
        raise SymmergeError(f"{what} {name} was trained on {run_spec.describe()}, but {holder} "
                            f"holds {spec.describe()}")
    return LoadedRun(model.eval(), run_spec, config, _run_path(run))  # type: ignore[arg-type]


def load_weights(model: nn.Module, state: Mapping[str, Tensor], what: str) -> None:
    """``model.load_state_dict(state)``; weights (``what``) that do not fit the model the
    run's config.yaml describes are one clear error, not torch's multi-line report."""
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        reason = lines[1] if len(lines) > 1 else (lines[0] if lines else type(exc).__name__)
        if len(reason) > 300:
            reason = reason[:300] + " ..."
        raise SymmergeError(f"{what} do not fit the model that config.yaml describes "
                            f"({reason}); was config.yaml edited?") from None


def load_run(
    run: str | os.PathLike[str],
    spec: WeightSpaceSpec | None = None,
    *,
    what: str = "run",
    holder: str = "the input",
) -> LoadedRun:
    """The best model of the finished run ``run`` (weights from ``model.safetensors``), in
    eval mode on the CPU, with its spec and config.

    Missing, corrupt or non-finite weights, weights that do not fit the run's
    config.yaml, and a run trained on another architecture than ``spec`` (when given)
    are one :class:`SymmergeError`; ``what`` names the run in it and ``holder`` what
    holds the ``spec`` networks.
    """
    path = Path(run)
    for name in RUN_FILES:
        if not (path / name).is_file():
            raise SymmergeError(f"{path} is not a finished training run (missing {name})")
    run_spec = spec_from_json(read_text(path / "spec.json", "run spec"))
    if spec is not None and run_spec != spec:
        raise SymmergeError(
            f"{what} {path} was trained on {run_spec.describe()}, but {holder} holds "
            f"{spec.describe()}"
        )
    cfg = load_config(path / "config.yaml")
    model = build_autoencoder(run_spec, cfg.encoder, cfg.decoder_widths)
    try:
        state = load_file(str(path / "model.safetensors"))
    except (SafetensorError, OSError) as exc:
        raise SymmergeError(
            f"cannot load {what} {path}: corrupt model.safetensors ({error_summary(exc)})"
        ) from None
    for name, tensor in state.items():
        require_finite(tensor, f"{what} {path}: model.safetensors tensor {name}")
    load_weights(model, state, f"cannot load {what} {path}: the weights in model.safetensors")
    return LoadedRun(model.eval(), run_spec, cfg, path)


def _batched(fn: Callable[[Tensor], Tensor], model: nn.Module, inputs: Tensor,
             batch_size: int, device: str | torch.device | None) -> Tensor:
    """``fn`` over ``inputs`` in batches on ``device`` (moving ``model`` there; default:
    where the model is), in eval mode, reproducibly (:func:`reproducible`); the result on
    ``inputs``' device."""
    check_range(batch_size, "batch_size", 1, sys.maxsize)
    if device is not None:
        model.to(device)
    dev = module_device(model)
    model.eval()
    with torch.no_grad(), reproducible(dev):
        return torch.cat([fn(x.to(dev, torch.float32)).to(inputs.device)
                          for x in inputs.split(batch_size)])


def encode(model: Autoencoder, params: Tensor, batch_size: int = 1024, *,
           device: str | torch.device | None = None) -> Tensor:
    """Latents ``[N, d]`` of ``params [N, P]``, batched, in eval mode, computed on
    ``device`` (the model is moved there; default: where it is), returned on ``params``'."""
    return _batched(model.encode, model, params, batch_size, device)


def decode(model: Autoencoder, latents: Tensor, batch_size: int = 1024, *,
           device: str | torch.device | None = None) -> Tensor:
    """Decoded networks ``[N, P]`` of latents ``[N, d]`` (as :func:`encode`), returned on
    ``latents``' device."""
    return _batched(model.decode, model, latents, batch_size, device)


def reconstruct(model: Autoencoder, params: Tensor, batch_size: int = 1024, *,
                device: str | torch.device | None = None) -> Tensor:
    """Decoded networks ``[N, P]`` of ``params [N, P]`` (``decode(encode(params))``, as
    :func:`encode`), returned on ``params``' device."""
    return _batched(model, model, params, batch_size, device)
