"""A saved experiment reads back as the same typed result (``ExperimentResult.load``)."""

import json

import numpy as np
import pytest

from symmerge import SymmergeError
from symmerge.experiments import (
    CNNInterpolationResult,
    LatentMapResult,
    OrbitCollapseResult,
    OrbitInterpolationResult,
    PairInterpolationResult,
    cnn_interpolation,
    latent_map,
    orbit_collapse,
    orbit_interpolation,
    pair_interpolation,
)
from symmerge.experiments.results import ExperimentResult


def _experiments(assets):
    yield orbit_interpolation(assets.inr_zoo, run=assets.run, pna_run=assets.pna_run, runs=1,
                              orbit_size=4, steps=4, split="all")
    yield pair_interpolation(assets.inr_zoo, run=assets.run, pairs=3, steps=4, split="all",
                             methods=["naive", "wm", "ae"])
    yield cnn_interpolation(assets.cnn_zoo, run=assets.cnn_run, pairs=2, steps=3, top=None,
                            split="all", eval_images=50, methods=["naive", "wm", "ae"])
    yield orbit_collapse(assets.inr_zoo, run=assets.run, pna_run=assets.pna_run, networks=2,
                         orbit_size=3, background=12, map_orbits=1, maps=["tsne"], split="all")
    yield latent_map(assets.inr_zoo, run=assets.run, split="all", max_points=12, maps=["tsne"])


def test_every_experiment_reads_back_the_same(assets, tmp_path):
    kinds = set()
    for i, r in enumerate(_experiments(assets)):
        r.save(tmp_path / str(i))
        back = ExperimentResult.load(tmp_path / str(i))  # the saved class, through the base
        kinds.add(type(back))
        assert type(back) is type(r) and back.directory == tmp_path / str(i)
        assert json.dumps(back.to_json(), sort_keys=True) == json.dumps(r.to_json(),
                                                                        sort_keys=True)
        assert list(back.arrays()) == list(r.arrays())
        for k, v in r.arrays().items():
            assert back.arrays()[k].dtype == v.dtype
            np.testing.assert_array_equal(back.arrays()[k], v)
        assert back.settings == r.settings and back.runs == r.runs
        # the report of the loaded result is the saved one, word for word
        assert back.sections() == r.sections()
        assert type(r).load(tmp_path / str(i)).seed == r.seed
    assert kinds == {OrbitInterpolationResult, PairInterpolationResult, CNNInterpolationResult,
                     OrbitCollapseResult, LatentMapResult}


def test_loading_the_wrong_kind_or_nothing_is_a_clear_error(assets, tmp_path):
    r = next(_experiments(assets))
    r.save(tmp_path / "orbit")
    with pytest.raises(SymmergeError, match="not a LatentMapResult"):
        LatentMapResult.load(tmp_path / "orbit")
    with pytest.raises(SymmergeError, match="record not found"):
        ExperimentResult.load(tmp_path / "empty")
