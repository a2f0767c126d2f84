"""Selecting every K-th image of a source for an INR zoo."""

import pytest
import torch

from symmerge.data import ImageSet
from symmerge.errors import SymmergeError
from symmerge.zoo import load_zoo
from symmerge.zoo.fit_inr import INRFitConfig, fit_inr_zoo


def _images(n=12):
    g = torch.Generator().manual_seed(0)
    return ImageSet("toy", torch.rand(n, 1, 8, 8, generator=g), torch.arange(n) % 3)


def test_stride_keeps_source_indices_and_labels(tmp_path):
    data = _images()
    cfg = INRFitConfig(hidden=(4,), steps=2)
    out = fit_inr_zoo(data, out=tmp_path / "z.safetensors", limit=3, stride=4, per_image=2,
                      config=cfg, progress=False)
    zoo = load_zoo(out)
    assert zoo.image_index.tolist() == [0, 0, 4, 4, 8, 8]
    assert torch.equal(zoo.labels, data.labels[zoo.image_index])
    assert zoo.provenance["stride"] == 4


def test_stride_limit_checked(tmp_path):
    with pytest.raises(SymmergeError, match="at stride 4"):
        fit_inr_zoo(_images(), out=tmp_path / "z.safetensors", limit=4, stride=4,
                    config=INRFitConfig(hidden=(4,), steps=2), progress=False)
    assert not (tmp_path / "z.safetensors").exists()
