"""Session-wide tiny zoos and autoencoder runs (built once, see tests/experiments/assets.py)."""

import pytest

from tests.experiments.assets import Assets, build_assets


@pytest.fixture(scope="session")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Assets:
    return build_assets(str(tmp_path_factory.getbasetemp()))
