"""Training learns: an autoencoder overfits a tiny zoo of each family, in memory.

These fail when training stops learning (no optimizer step, a zero learning rate, a
loss cut off from the decoder): the networks the trained model decodes are compared
with those the same model decoded before its first step, and with a trivial baseline.
"""

from __future__ import annotations

import copy

import pytest
from torch import Tensor

from symmerge.models import reconstruct
from symmerge.models.autoencoder import Autoencoder
from symmerge.training import TrainResult, train
from symmerge.training.losses import RenderLoss, cnn_accuracy_report
from symmerge.training.module import AutoencoderModule
from symmerge.zoo import Zoo
from symmerge.zoo.images import held_out_images
from tests.assets import TINY_AE, cnn_zoo, inr_zoo

#: the CNN autoencoder sees each of its 12 training networks every 3 steps, with a fresh
#: batch of 64 distillation images per step
CNN_AE = {**TINY_AE, "optim": {"batch_size": 4, "warmup_steps": 2, "lr": 1e-2},
          "loss": {"images_per_step": 64}}


@pytest.fixture
def initial_models(monkeypatch: pytest.MonkeyPatch) -> list[Autoencoder]:
    """Filled with a copy of each trained autoencoder as it is before its first step
    (Lightning's ``on_train_start`` hook)."""
    models: list[Autoencoder] = []

    def keep(module: AutoencoderModule) -> None:
        models.append(copy.deepcopy(module.model))

    monkeypatch.setattr(AutoencoderModule, "on_train_start", keep, raising=False)
    return models


def training_networks(zoo: Zoo, result: TrainResult) -> Tensor:
    """The networks of the split the run trained on."""
    s = result.config.split
    return zoo.params[zoo.splits(seed=s.seed, fractions=s.fractions, by_image=s.by_image)["train"]]


def decoded_by(model: Autoencoder, params: Tensor) -> Tensor:
    """``params`` reconstructed by ``model`` in eval mode, its latent-norm statistics
    those of ``params`` (as validation sets them for the trained model)."""
    model.recompute_latent_stats([params])
    return reconstruct(model.eval(), params)


def test_inr_autoencoder_overfits_a_tiny_zoo(initial_models):
    zoo = inr_zoo()
    result = train(zoo, preset="quick", overrides=TINY_AE, max_epochs=30, progress=False)
    assert result.model is not None and len(initial_models) == 1
    params = training_networks(zoo, result)
    loss = RenderLoss(zoo.spec, result.config.loss.resolution)
    targets = loss.render_targets(params)

    def render_mse(decoded: Tensor) -> float:
        return float(((loss.render_targets(decoded) - targets) ** 2).mean())

    mean_image = float(((targets.mean(0, keepdim=True) - targets) ** 2).mean())
    before = render_mse(decoded_by(initial_models[0], params))
    after = render_mse(decoded_by(result.model, params))
    assert after < 0.5 * before, (before, after)
    assert after < mean_image, (mean_image, after)


def test_cnn_autoencoder_decodes_networks_better_than_chance(initial_models):
    zoo = cnn_zoo()
    result = train(zoo, preset="quick", overrides=CNN_AE, max_epochs=25, progress=False)
    assert result.model is not None and len(initial_models) == 1
    params = training_networks(zoo, result)
    held = held_out_images(zoo, result.config.loss.images)

    def accuracy(model: Autoencoder) -> dict[str, float]:
        return cnn_accuracy_report(zoo.spec, params, decoded_by(model, params), held.images,
                                   held.labels)

    before, after = accuracy(initial_models[0]), accuracy(result.model)
    chance = 1 / 10
    assert after["acc_original"] > 3 * chance  # the zoo's CNNs learned: there is something to copy
    assert after["acc_decoded"] > 2 * chance, after
    assert after["acc_decoded"] > before["acc_decoded"] + chance, (before, after)
    assert after["acc_l1"] < before["acc_l1"], (before, after)
