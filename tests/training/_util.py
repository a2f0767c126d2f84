"""Shared checks of the training tests."""

from __future__ import annotations

import os

import pytest
import torch

from symmerge.models import reconstruct
from symmerge.specs import CNNSpec, SirenSpec
from symmerge.training import TrainResult
from symmerge.zoo import Zoo, as_zoo
from symmerge.zoo.images import held_out_images


def assert_reported_metrics(result: TrainResult, zoo: Zoo | str | os.PathLike[str]) -> None:
    """The test metrics ``result`` reports are what they claim, recomputed here from its
    model and ``zoo``: for SIRENs the render MSE of the decoded test-split networks to
    their own renders and of the training split's mean render (the baseline); for CNNs
    the mean accuracy of the original and decoded test-split networks on the held-out
    images, and the mean absolute difference of the two; and over how many networks."""
    zoo = as_zoo(zoo)
    assert result.model is not None and result.config is not None
    s = result.config.split
    splits = zoo.splits(seed=s.seed, fractions=s.fractions, by_image=s.by_image)
    test = zoo.params[splits["test"] if len(splits["test"]) else splits["val"]]
    decoded = reconstruct(result.model, test).cpu()
    m = result.metrics
    assert m["test_networks"] == test.shape[0]  # the n of every test metric
    if isinstance(zoo.spec, SirenSpec):
        res = result.config.loss.resolution
        target = zoo.spec.render(test, res)
        train_mean = zoo.spec.render(zoo.params[splits["train"]], res).mean(0)
        assert m["test_render_mse"] == pytest.approx(
            float(((zoo.spec.render(decoded, res) - target) ** 2).mean()), rel=1e-4)
        assert m["test_mean_image_mse"] == pytest.approx(
            float(((train_mean - target) ** 2).mean()), rel=1e-4)
        assert m["test_mean_image_mse"] > 0  # the networks differ: a baseline to beat
    else:
        assert isinstance(zoo.spec, CNNSpec)
        held = held_out_images(zoo, result.config.loss.images)
        with torch.no_grad():
            acc_o, acc_d = ((zoo.spec.forward(p, held.images).argmax(-1) == held.labels)
                            .double().mean(-1) for p in (test, decoded))
        assert m["test_acc_original"] == pytest.approx(float(acc_o.mean()), abs=1e-6)
        assert m["test_acc_decoded"] == pytest.approx(float(acc_d.mean()), abs=1e-6)
        assert m["test_acc_l1"] == pytest.approx(float((acc_o - acc_d).abs().mean()), abs=1e-6)
