"""The examples run: ``examples/walkthrough.py`` at its small size writes nothing unless
given a directory, and its results are sane; the README's Python walkthrough runs."""

from __future__ import annotations

import importlib.util
import math
import os
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch_geometric  # noqa: F401 - imported before TMPDIR moves: it makes a folder there
from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parents[1]


def _tree(root: Path) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, dirs, files in os.walk(root) for f in files + dirs)


@pytest.fixture(scope="module")
def walkthrough() -> ModuleType:
    spec = importlib.util.spec_from_file_location("walkthrough", ROOT / "examples" /
                                                  "walkthrough.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["walkthrough"] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("walkthrough", None)


def test_walkthrough_runs_in_memory_and_writes_only_where_asked(walkthrough, quiet_places,
                                                                tmp_path):
    lines: list[str] = []
    walk = walkthrough.main("small", log=lines.append)
    for name, place in quiet_places.items():
        assert _tree(place) == [], f"{name} holds {_tree(place)}"
    assert len(lines) == 5 and lines[0].startswith("zoo: 40 SIRENs")

    zoo, spec = walk.zoo, walk.zoo.spec
    assert walk.training.run_dir is None and walk.training.spec == spec
    # sort keeps every function; ae gives one template per network
    torch.testing.assert_close(spec.render(walk.sorted_params), spec.render(zoo.params),
                               rtol=0, atol=1e-4)
    assert walk.templates.shape == zoo.params.shape
    # every merge method of the registry ran; the exact-frame merges are finite networks
    assert set(walk.merges) == set(walkthrough.method_names("merge"))
    assert all(math.isfinite(v) for v in walk.merge_mse.values())
    # the experiment ran the default methods, the autoencoder's included (no PNA run given)
    exp = walk.experiment
    assert set(exp.skipped) == {"pna-ae"} and {"naive", "wm", "ae", "ae-lift"} <= set(exp.methods)
    barriers = exp.barriers()
    assert all(math.isfinite(barriers[m]) for m in ("ae", "ae-lift"))
    assert exp.settings.run == "in-memory model" and exp.directory is None
    assert isinstance(walk.figure, Figure)
    assert isinstance(exp.figures()["curves.png"], Figure)

    out = tmp_path / "out"
    files = walkthrough.save(walk, out)
    assert all(Path(f).is_relative_to(out) and Path(f).is_file() for f in files)
    assert {"zoo.safetensors", "merges.png", "pair-interpolation/report.md",
            "pair-interpolation/curves.png"} <= set(_tree(out))
    for name, place in quiet_places.items():
        assert _tree(place) == [], f"{name} holds {_tree(place)}"


def test_walkthrough_command_line(walkthrough):
    args = walkthrough.parse_args(["--size", "full", "--out", "dir"])
    assert (args.size, args.out, args.seed) == ("full", "dir", 0)
    assert set(walkthrough.SIZES) == {"small", "full"}
    with pytest.raises(SystemExit):
        walkthrough.parse_args(["--size", "huge"])


def readme_python_blocks() -> list[str]:
    """The README's ```python blocks."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_readme_python_runs(quiet_places):
    """The README's Python blocks, run in order in one namespace: they agree with the API,
    and write only the files they save, in the working directory."""
    blocks = readme_python_blocks()
    assert len(blocks) == 3 and "pair_interpolation(zoo, run=result" in blocks[0]
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert isinstance(namespace["exp"].figures()["curves.png"], Figure)
    assert all(math.isfinite(v) for v in namespace["exp"].barriers().values())
    assert namespace["merged"].shape == (namespace["zoo"].spec.num_params,)
    # what the comments say
    assert tuple(namespace["templates"].shape) == (40, 1185)
    assert tuple(namespace["latents"].shape) == (40, 32)
    listed = re.search(r'method_names\("merge"\) +# (\(.*\))', blocks[1])
    assert listed is not None and eval(listed.group(1)) == namespace["method_names"]("merge")
    cwd = quiet_places["cwd"]
    assert {"zoo.safetensors", "runs/demo/model.safetensors", "exp/pairs/report.md"} <= set(
        _tree(cwd))
    assert {p.split(os.sep)[0] for p in _tree(cwd)} == {"zoo.safetensors", "runs", "exp"}
    for name in ("home", "tmp"):
        assert _tree(quiet_places[name]) == [], f"{name} holds {_tree(quiet_places[name])}"
