"""Every tensor the library makes lives on the device of its inputs.

Two checks that need no GPU, and one that uses it where there is one:

* static: every tensor factory call in ``src/symmerge`` (``torch.zeros``, ``torch.rand``,
  ``torch.tensor``, ...) names its device, is moved at once (``torch.rand(...).to(x)``),
  runs under ``with torch.device(...)``, or builds a module (``__init__``: modules follow
  ``.to(device)``); the exceptions are listed below with their reasons;
* at run time on the CPU: the library's functions run on CPU inputs under
  ``with torch.device("meta")``, so that any tensor made without naming its device lands
  on the ``meta`` device, where it either fails when it meets the inputs or shows up in
  the outputs; the outputs must be the CPU ones, bit for bit;
* on every available device (``device`` fixture): inputs there give outputs there (the
  real test on a GPU machine).
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from symmerge.align import MatchOptions, sort_canonicalize, weight_matching
from symmerge.align.canonical import closest_scales
from symmerge.canon import AECanonicalizer, AELiftCanonicalizer, SortCanonicalizer
from symmerge.graph import (
    graph_action,
    graph_to_params,
    graphs_from_groups,
    params_to_graph,
    probe_node_features,
)
from symmerge.merge import merge
from symmerge.models.runs import encode, reconstruct
from symmerge.specs import CNNSpec, MLPSpec, SirenSpec
from symmerge.symmetry import (
    GroupElement,
    canonicalize_phase,
    function_error,
    make_orbit,
    sample_group_elements,
)
from symmerge.training.losses import DistillationLoss, RenderLoss, accuracy, cnn_accuracy_report
from tests.devices import assert_on, tensors
from tests.models._util import random_params, tiny_model

SRC = Path(__file__).resolve().parents[1] / "src" / "symmerge"

#: torch functions that make a new tensor on the default device unless told otherwise
FACTORIES = frozenset({
    "arange", "as_tensor", "asarray", "empty", "empty_strided", "eye", "full", "linspace",
    "logspace", "ones", "rand", "randint", "randn", "randperm", "range", "scalar_tensor",
    "tensor", "tril_indices", "triu_indices", "zeros",
})

#: where tensors are made on the CPU on purpose: ``path`` (a module or folder under
#: src/symmerge) or ``path::function`` -> the reason
CPU_BY_DESIGN = {
    "data/": "image sources: files and the embedded digits are read into CPU memory",
    "zoo/io.py": "zoo files are read into CPU memory; safetensors copies device tensors "
                 "to the host when writing",
    "zoo/importers.py": "importers read published files into CPU memory",
    "zoo/shards.py": "resumable chunks are files in CPU memory",
    "zoo/quality.py": "failed-network marks: bookkeeping of a zoo's metrics, in CPU memory "
                      "as the zoo",
    "zoo/images.py": "index bookkeeping of the held-out images (CPU, as the images)",
    "zoo/fit_inr.py": "zoo builder: per-network seeded CPU draws and host bookkeeping; the "
                      "fits run on their device= and come back on the CPU, as documented",
    "zoo/train_cnn.py": "zoo builder: per-network seeded CPU generators (the zoo is the "
                        "same for any device, chunking or workers) moved once per step",
    "graph/template.py::_build_template": "runs inside graph_template's "
                                          "`with torch.device('cpu')`; template_on caches "
                                          "the template per device",
}


def _factory_calls(tree: ast.AST) -> list[tuple[ast.Call, str]]:
    """``(call, enclosing function)`` for every factory call that does not name a device."""
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}

    def enclosing(node: ast.AST) -> tuple[str, bool]:
        in_device_block = False
        while node in parents:
            node = parents[node]
            if isinstance(node, ast.With) and any(
                isinstance(i.context_expr, ast.Call) and ast.unparse(i.context_expr.func)
                == "torch.device" for i in node.items
            ):
                in_device_block = True
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                return node.name, in_device_block
        return "<module>", in_device_block

    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in FACTORIES and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "torch"):
            continue
        if any(k.arg in ("device", "out") for k in node.keywords):
            continue
        parent = parents.get(node)
        if isinstance(parent, ast.Attribute) and parent.attr == "to":
            continue  # made and moved at once
        function, in_device_block = enclosing(node)
        if not in_device_block and function != "__init__":  # modules follow .to(device)
            found.append((node, function))
    return found


def _excused(path: str, function: str) -> bool:
    return any(path.startswith(k) if k.endswith("/") else k in (path, f"{path}::{function}")
               for k in CPU_BY_DESIGN)


def test_every_tensor_factory_names_its_device():
    offenders = []
    for file in sorted(SRC.rglob("*.py")):
        rel = file.relative_to(SRC).as_posix()
        for call, function in _factory_calls(ast.parse(file.read_text(), str(file))):
            if not _excused(rel, function):
                offenders.append(f"{rel}:{call.lineno} {function}: {ast.unparse(call.func)}")
    assert offenders == [], "tensors made on the default device:\n" + "\n".join(offenders)


def test_every_exception_is_still_needed():
    files = {f.relative_to(SRC).as_posix(): f for f in SRC.rglob("*.py")}
    for key in CPU_BY_DESIGN:
        path, _, function = key.partition("::")
        matches = [rel for rel in files if rel.startswith(path) if path.endswith("/")] or (
            [path] if path in files else [])
        assert matches, f"{key}: no such module"
        calls = [fn for rel in matches
                 for _, fn in _factory_calls(ast.parse(files[rel].read_text()))]
        assert (function in calls) if function else calls, f"{key} has nothing to excuse"


# ---------------------------------------------------------------- run time
SIREN = SirenSpec((2, 6, 5, 1))
RELU = MLPSpec((3, 5, 4, 2), "relu")
CNN = CNNSpec((1, 3, 4, 3), "tanh")
SMALL = MLPSpec((3, 2, 2), "relu")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Inputs:
    """Networks, models, loss modules and images on one device (built outside any
    device context: module constructors make their parameters on the CPU)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.siren = random_params(SIREN, 3, torch.float32).to(device)
        self.relu = random_params(RELU, 3, torch.float32).to(device)
        self.cnn = random_params(CNN, 3, torch.float32).to(device)
        self.small = random_params(SMALL, 2, torch.float32).to(device)
        self.sign_ae = tiny_model(SIREN, torch.float32, probe_points=4).to(device)
        self.cnn_ae = tiny_model(CNN, torch.float32).to(device)
        self.pna = tiny_model(RELU, torch.float32, mode="pna").to(device)
        self.render = RenderLoss(SIREN, 5).to(device)
        self.distill = DistillationLoss(CNN, torch.randn(6, 1, 16, 16, generator=_gen())
                                        ).to(device)
        self.images = torch.randn(5, 1, 16, 16, generator=_gen(1)).to(device)
        self.labels = (torch.arange(5) % 3).to(device)


def _report(x: Inputs) -> Any:
    values = cnn_accuracy_report(CNN, x.cnn, x.cnn.flip(0), x.images, x.labels).values()
    return torch.tensor(list(values), device="cpu")  # a report of floats: compared as such


def _distill(x: Inputs) -> Any:
    torch.manual_seed(0)  # the global generator of the images' device picks them
    return x.distill(x.cnn, x.cnn.flip(0)), x.distill(x.cnn, x.cnn, _gen(2))


CASES: dict[str, Callable[[Inputs], Any]] = {
    "group elements": lambda x: (
        (e := sample_group_elements(SIREN, 3, phase=True, generator=_gen(), device=x.device))
        .apply(SIREN, x.siren), e.inverse().compose(e).apply(SIREN, x.siren),
        GroupElement.identity(SIREN, 3, device=x.device).apply(SIREN, x.siren)),
    "orbit": lambda x: make_orbit(RELU, x.relu[0], 4, noise_std=0.1, generator=_gen()),
    "phase": lambda x: canonicalize_phase(SIREN, x.siren),
    "forward and render": lambda x: (
        SIREN.forward(x.siren, SIREN.probe_inputs(8, generator=_gen(), device=x.device)),
        SIREN.render(x.siren, 5), CNN.neuron_values(x.cnn, x.images),
        RELU.init_params(2, generator=_gen(), device=x.device)),
    "function error": lambda x: torch.tensor(function_error(SIREN, x.siren, x.siren.flip(0)),
                                             device="cpu"),
    "graphs": lambda x: (
        (b := params_to_graph(RELU, x.relu)).x, b.edge_attr, b.edge_index, b.batch, b.ptr,
        graph_to_params(RELU, b), probe_node_features(SIREN, x.siren, x.siren[:, :2]),
        (m := graphs_from_groups([(RELU, x.relu), (SMALL, x.small)])).batch, m.ptr),
    "graph action": lambda x: graph_action(RELU, sample_group_elements(
        RELU, 3, generator=_gen(), device=x.device)),
    "encoders": lambda x: (x.sign_ae.encode(x.siren), x.sign_ae(x.siren),
                           x.cnn_ae.encode(x.cnn), x.pna.encode(x.relu)),
    "param scale": lambda x: copy.deepcopy(x.sign_ae).set_param_scale(x.siren),
    "render loss": lambda x: x.render(x.siren, x.render.render_targets(x.siren.flip(0))),
    "distillation loss": _distill,
    "accuracy": lambda x: (accuracy(CNN, x.cnn, x.images, x.labels), _report(x)),
    "weight matching": lambda x: (
        weight_matching(RELU, x.relu[0], x.relu, MatchOptions(restarts=1)).aligned,
        weight_matching(SIREN, x.siren[0], x.siren, MatchOptions(strategy="forward")).aligned),
    "sort": lambda x: (sort_canonicalize(RELU, x.relu)[0], SortCanonicalizer(SIREN)(x.siren),
                       closest_scales(RELU, x.relu[0], x.relu).apply(RELU, x.relu)),
    "ae canonicalizers": lambda x: (
        AECanonicalizer(SIREN, x.sign_ae)(x.siren), AELiftCanonicalizer(SIREN, x.sign_ae)(x.siren),
        AECanonicalizer(SIREN, x.sign_ae).encode(x.siren)),
    "merge": lambda x: (
        merge(x.relu, RELU, "wm").params, merge(x.siren, SIREN, "sort").params,
        merge(x.relu[:2], RELU, "naive", alpha=0.3).params,
        merge(x.relu, RELU, "ae", canonicalizer=AECanonicalizer(RELU, x.pna)).params),
    "encode and reconstruct": lambda x: (encode(x.sign_ae, x.siren),
                                         reconstruct(x.sign_ae, x.siren)),
}


@pytest.fixture(scope="module")
def cpu_inputs() -> Inputs:
    return Inputs(torch.device("cpu"))


@pytest.mark.parametrize("name", CASES)
def test_nothing_is_made_on_the_default_device(cpu_inputs, name):
    """Under ``with torch.device("meta")`` a tensor made without naming its device is a
    meta tensor: it cannot meet the CPU inputs (an error) and must not reach the outputs."""
    want = CASES[name](cpu_inputs)
    with torch.device("meta"):
        got = CASES[name](cpu_inputs)
    assert_on(got, "cpu")
    pairs = list(zip(tensors(got), tensors(want), strict=True))
    assert all(torch.equal(a, b) for a, b in pairs)


@pytest.mark.parametrize("name", CASES)
def test_outputs_live_on_the_inputs_device(device, name):
    assert_on(CASES[name](Inputs(device)), device)
