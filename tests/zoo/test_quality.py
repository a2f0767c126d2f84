"""Failed networks (diverged, non-finite, at chance level): the rule, the stored mark and
its derivation for zoos without it."""

from __future__ import annotations

import pytest
import torch

from symmerge import CNNSpec, SirenSpec
from symmerge.zoo import Zoo, failed_networks, save_zoo
from symmerge.zoo.quality import CHANCE_MARGIN, failed_mask
from tests.cli._util import overwrite_params

CNN = CNNSpec((1, 4, 10), "relu")


def test_the_rule_at_its_edges():
    chance = 0.1
    acc = torch.tensor([0.9, chance + CHANCE_MARGIN, chance + CHANCE_MARGIN + 1e-3, 0.078,
                        float("nan")])
    parts = failed_mask(accuracy=acc, classes=10, diverged=torch.tensor([0, 0, 1, 0, 0.0]))
    assert parts["chance"].tolist() == [False, True, False, True, True]
    assert parts["diverged"].tolist() == [False, False, True, False, False]
    assert failed_mask(accuracy=acc) == {}  # no classes: the accuracy says nothing


def test_derived_for_a_zoo_without_the_mark():
    """An old or imported zoo without ``failed``: derived from its accuracy and
    ``diverged``; networks at 0.098 and 0.078 are failed although none diverged."""
    params = CNN.init_params(5, generator=torch.Generator().manual_seed(0))
    acc = torch.tensor([0.9, 0.098, 0.6, 0.078, 0.95])
    z = Zoo.from_tensors(params, CNN, metrics={"test_accuracy": acc,
                                               "diverged": torch.zeros(5)})
    f = failed_networks(z)
    assert not f.stored and f.indices.tolist() == [1, 3]
    assert f.reasons == {"diverged": 0, "non_finite": 0, "chance": 2}
    assert "failed: 2 of 5 (chance 2)" in f.describe() and "derived" in f.describe()


def test_a_stored_mark_is_read_as_stored():
    params = CNN.init_params(3, generator=torch.Generator().manual_seed(0))
    z = Zoo.from_tensors(params, CNN, metrics={"test_accuracy": torch.tensor([0.9, 0.9, 0.9]),
                                               "failed": torch.tensor([0.0, 1.0, 0.0])})
    f = failed_networks(z)
    assert f.stored and f.indices.tolist() == [1] and "stored in the zoo" in f.describe()


def test_inrs_fail_only_when_not_finite(tmp_path):
    path = save_zoo(tmp_path / "z.safetensors", SirenSpec(), torch.zeros(4, 1185))
    assert failed_networks(Zoo(path)).count == 0
    params = torch.zeros(4, 1185)
    params[2, 5] = float("nan")
    overwrite_params(path, params)
    f = failed_networks(Zoo(path))
    assert f.indices.tolist() == [2] and f.reasons["non_finite"] == 1


@pytest.mark.parametrize("acc", [0.05, 0.15])
def test_margin_is_a_parameter(acc):
    params = CNN.init_params(1, generator=torch.Generator().manual_seed(0))
    z = Zoo.from_tensors(params, CNN, metrics={"accuracy": torch.tensor([acc])})
    assert failed_networks(z).count == 1
    assert failed_networks(z, margin=0.0).count == int(acc <= 0.1)
