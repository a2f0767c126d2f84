"""Finished runs without the trainer: load_run, encode, decode, reconstruct, and an
inference path that never imports Lightning."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from symmerge import SirenSpec, SymmergeError
from symmerge.models.runs import (
    LoadedRun,
    as_run,
    decode,
    describe_run,
    encode,
    load_run,
    reconstruct,
)
from symmerge.training import TrainResult
from tests.assets import SIREN as SPEC


@pytest.fixture
def finished(assets):
    """A zoo file and a finished run on it (the shared assets)."""
    return assets.inr_zoo, assets.run


def test_load_run_returns_the_model_spec_and_config(finished):
    _, run = finished
    loaded = load_run(run, SPEC)
    assert isinstance(loaded, LoadedRun) and loaded.path == run
    epochs = TrainResult.load(run).timings["epochs"]
    assert loaded.spec == SPEC and loaded.config.optim.max_epochs == epochs
    assert not loaded.model.training
    model, spec, config = loaded  # unpacks as the tuple it used to be
    assert (model, spec, config) == (loaded.model, loaded.spec, loaded.config)


def test_encode_decode_reconstruct_agree(finished):
    _, run = finished
    model = load_run(run).model
    params = SPEC.init_params(7, generator=torch.Generator().manual_seed(1))
    latents = encode(model, params, batch_size=3)
    assert latents.shape == (7, 8)
    torch.testing.assert_close(latents, encode(model, params))  # batches: float rounding
    decoded = decode(model, latents, batch_size=2)
    assert decoded.shape == params.shape
    torch.testing.assert_close(decoded, reconstruct(model, params), rtol=0, atol=1e-6)
    with pytest.raises(SymmergeError, match="batch_size must be an integer"):
        encode(model, params, batch_size=0)


def test_a_run_of_another_architecture_is_refused(finished):
    _, run = finished
    other = SirenSpec((2, 8, 8, 1))
    with pytest.raises(SymmergeError, match=r"pna_run .* was trained on .* but zoo z\.safetensors"
                                            " holds"):
        load_run(run, other, what="pna_run", holder="zoo z.safetensors")


@pytest.mark.parametrize("name", ["config.yaml", "spec.json", "model.safetensors"])
def test_an_unfinished_run_is_refused_naming_the_missing_file(finished, tmp_path, name):
    _, run = finished
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in ("config.yaml", "spec.json", "model.safetensors"):
        if f != name:
            (copy / f).write_bytes((run / f).read_bytes())
    with pytest.raises(SymmergeError, match=f"not a finished training run \\(missing {name}\\)"):
        load_run(copy)


_INFERENCE = textwrap.dedent("""
    import json, sys
    from symmerge.canon import make_canonicalizer
    from symmerge.cli.app import main
    from symmerge.models import encode, load_run
    from symmerge.zoo import load_zoo

    zoo, run, out = sys.argv[1:4]
    loaded = load_run(run)
    params = load_zoo(zoo).params[:4]
    latents = encode(loaded.model, params)
    canonical = make_canonicalizer("ae", loaded.spec, model=loaded.model)(params)
    try:
        main(["encode", "--run", run, "--zoo", zoo, "--out", out, "--device", "cpu"])
    except SystemExit as exc:
        code = exc.code
    print(json.dumps({"latents": list(latents.shape), "canonical": list(canonical.shape),
                      "cli": code, "imported": sorted(
                          m for m in ("lightning", "pytorch_lightning") if m in sys.modules)}))
""")


def test_the_inference_path_never_imports_lightning(finished, tmp_path):
    """Load a run, encode, canonicalize with ``ae`` and ``symmerge encode``, in a fresh
    process: Lightning is never imported."""
    zoo, run = finished
    proc = subprocess.run([sys.executable, "-c", _INFERENCE, str(zoo), str(run),
                           str(tmp_path / "latents.safetensors")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"latents": [4, 8], "canonical": [4, SPEC.num_params], "cli": 0,
                      "imported": []}
    assert (tmp_path / "latents.safetensors").is_file()


def test_a_model_trained_in_memory_takes_the_place_of_a_run(finished):
    """``as_run``: a directory is loaded; a TrainResult or LoadedRun is taken as it is
    (not copied), checked against the networks' spec; anything else is refused."""
    zoo, run = finished
    loaded = as_run(run, SPEC)
    assert loaded.path == run and describe_run(run) == str(run)
    memory = LoadedRun(loaded.model, loaded.spec, loaded.config)
    assert as_run(memory, SPEC).model is loaded.model and describe_run(memory) == "in-memory model"
    result = TrainResult(None, "quick", 0, "0", "in-memory zoo", {}, model=loaded.model,
                         spec=loaded.spec, config=loaded.config)
    taken = as_run(result)
    assert taken.model is loaded.model and taken.path is None
    assert describe_run(TrainResult.load(run)) == str(TrainResult.load(run).run_dir)
    with pytest.raises(SymmergeError, match=r"pna_run in-memory model was trained on .* but zoo "
                                            r"z\.safetensors holds"):
        as_run(memory, SirenSpec((2, 8, 8, 1)), what="pna_run", holder="zoo z.safetensors")
    with pytest.raises(SymmergeError, match="run must be a finished run's directory or a trained "
                                            "model .* got TrainResult"):
        as_run(TrainResult.load(run))  # saved results hold no model
    with pytest.raises(SymmergeError, match="got object"):
        as_run(object())
