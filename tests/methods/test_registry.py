"""The registry of methods: one entry per method, the only place that names them; what
each entry declares agrees with what it builds; consumers (CLI, merge, canonicalize,
experiments) read it, so that one new entry is a new method everywhere."""

from __future__ import annotations

import ast
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import symmerge
from symmerge import MLPSpec, SirenSpec, SymmergeError
from symmerge.align import MatchOptions
from symmerge.canon import AECanonicalizer, make_canonicalizer
from symmerge.methods import (
    FAMILIES,
    Canonical,
    Method,
    MethodInputs,
    Raw,
    default_methods,
    get_method,
    method_names,
    reference_method,
)
from symmerge.methods import registry as registry_module
from symmerge.methods.registry import REGISTRY
from tests.models._util import tiny_model

SRC = Path(symmerge.__file__).parent
NAMES = tuple(m.name for m in REGISTRY)
SPEC = SirenSpec((2, 6, 6, 1))
#: for the methods that do not apply to SIRENs
OTHER_SPEC = MLPSpec((2, 6, 6, 1), "tanh")


def _inputs(spec=SPEC):
    model = tiny_model(spec, dtype=torch.float32)
    data = spec.probe_inputs(16, generator=torch.Generator().manual_seed(1))
    return MethodInputs(spec, {"run": model, "pna_run": model}, matching=MatchOptions(),
                        data=data)


def test_names_are_unique_and_the_expected_ones():
    assert len(set(NAMES)) == len(NAMES)
    assert set(NAMES) == {"naive", "wm", "wm-perm", "wm+repair", "sort", "ae", "ae-latent",
                          "ae-lift", "pna-ae", "pna-ae-latent"}
    assert method_names() == NAMES and reference_method() == "naive"


@pytest.mark.parametrize("entry", REGISTRY, ids=lambda m: m.name)
def test_what_an_entry_declares_is_what_it_builds(entry):
    spec = SPEC if SPEC.family in entry.families else OTHER_SPEC
    frame = entry.build(_inputs(spec))
    assert frame.exact == entry.exact
    if "canonicalize" in entry.uses:
        assert frame.canonicalizer is not None
    if frame.canonicalizer is not None:
        assert frame.canonicalizer.exact == entry.exact
    a, b = spec.init_params(4, generator=torch.Generator().manual_seed(0)).split(2)
    alphas = torch.linspace(0, 1, 3, dtype=torch.float64)
    extras: dict = {}
    paths = frame.paths(a, b, alphas, extras)
    assert paths.shape == (2, 3, spec.num_params)
    if entry.exact:  # the endpoints compute the inputs' functions
        from symmerge.symmetry import assert_function_preserved

        assert_function_preserved(spec, a, paths[:, 0])
        assert_function_preserved(spec, b, paths[:, -1])
    if "merge" in entry.uses:
        aligned, _ = frame.align(torch.cat([a, b]), torch.full((4,), 0.25))
        assert aligned.shape == (4, spec.num_params)


def test_declared_needs_are_used():
    """A method that needs a run cannot be built without it (and says which)."""
    for entry in REGISTRY:
        for need in entry.needs:
            with pytest.raises(SymmergeError, match=f"pass {need}=DIR"):
                entry.build(MethodInputs(SPEC))
        if not entry.needs:
            entry.build(MethodInputs(SPEC))


def test_defaults_and_uses():
    assert method_names("merge") == ("naive", "wm", "sort", "ae", "ae-lift")
    assert method_names("canonicalize") == ("sort", "ae", "ae-lift")
    assert method_names("interpolate") == NAMES
    assert default_methods("siren") == ("naive", "wm", "sort", "ae", "ae-latent", "ae-lift",
                                        "pna-ae")
    assert default_methods("cnn") == ("naive", "wm", "wm-perm", "wm+repair", "sort", "ae",
                                      "ae-latent", "ae-lift", "pna-ae")
    assert default_methods("mlp") == ("naive", "wm", "sort", "ae", "ae-latent", "ae-lift",
                                      "pna-ae")
    # repaired paths need the networks' inputs: the experiments give them for CNNs only
    assert get_method("wm+repair").families == {"mlp", "cnn"}
    assert all(m.families == FAMILIES for m in REGISTRY if m.name != "wm+repair")
    with pytest.raises(SymmergeError, match="unknown merge method 'soup'; choose one of naive"):
        get_method("soup", "merge")
    with pytest.raises(SymmergeError, match="'wm' is no canonicalization method"):
        get_method("wm", "canonicalize")
    with pytest.raises(ValueError, match="uses"):
        Method("x", "x", build=lambda i: Raw(), exact=True, uses=frozenset({"fly"}))


def _string_literals(tree: ast.AST) -> list[tuple[int, str, bool]]:
    """(line, text, is a docstring) of every string constant."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [(n.lineno, n.value, id(n) in docstrings) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def method_name_literals(root: Path, names: tuple[str, ...]) -> list[str]:
    """Where a string literal outside the registry is a method's name, or (outside
    docstrings) names one in backticks, as report prose would."""
    mention = re.compile(r"`(" + "|".join(re.escape(n) for n in names) + r")`")
    found = []
    for path in sorted(root.rglob("*.py")):
        if path == root / "methods" / "registry.py":
            continue
        for line, text, doc in _string_literals(ast.parse(path.read_text())):
            if text in names or (not doc and mention.search(text)):
                found.append(f"{path.relative_to(root)}:{line}: {text[:60]!r}")
    return found


def test_the_registry_is_the_only_place_that_names_methods():
    assert method_name_literals(SRC, NAMES) == []


def test_the_grep_finds_names(tmp_path):
    """The check above can fail: a list of names, a dispatch on one, prose naming one."""
    (tmp_path / "methods").mkdir()
    (tmp_path / "a.py").write_text('METHODS = ("naive", "wm")\n')
    (tmp_path / "b.py").write_text('def f(m):\n    """Uses ``sort``."""\n'
                                   '    return m == "sort" or f"`ae-lift` is {m}"\n')
    (tmp_path / "methods" / "registry.py").write_text('X = "naive"\n')
    assert method_name_literals(tmp_path, NAMES) == [
        "a.py:1: 'naive'", "a.py:1: 'wm'", "b.py:3: 'sort'", "b.py:3: '`ae-lift` is '"]


def test_every_cli_choice_list_comes_from_the_registry():
    """The commands' method options list exactly the registry's methods for their use."""
    import typer.main

    from symmerge.cli.app import _register, app

    _register()
    root = typer.main.get_command(app)
    help_of = {}
    for path in (("merge",), ("canonicalize",), ("experiment", "orbit-interpolation"),
                 ("experiment", "pair-interpolation"), ("experiment", "cnn-interpolation")):
        cmd = root
        for name in path:
            cmd = cmd.commands[name]
        help_of[path] = {p.name: p.help for p in cmd.params}
    assert help_of[("merge",)]["method"] == " | ".join(method_names("merge"))
    assert help_of[("canonicalize",)]["method"] == " | ".join(method_names("canonicalize"))
    for path, h in help_of.items():
        if path[0] == "experiment":
            assert ", ".join(method_names("interpolate")) in h["methods"]
            assert "(" + ", ".join(m for m in NAMES if "run" in get_method(m).needs) + ")" \
                in h["run"]


def test_one_new_entry_is_a_new_method_everywhere(monkeypatch, tmp_path):
    """A method added to the registry alone is accepted by merge, canonicalize, the
    experiments and the CLI's help."""
    from symmerge.experiments.common import Autoencoders, resolve_methods
    from symmerge.merge import merge

    half = Method("half-sort", "sorted, then halved (a test method)",
                  build=lambda i: Canonical(_Halved(i.spec)), exact=False,
                  uses=frozenset({"canonicalize", "merge", "interpolate"}),
                  default_for=frozenset({"mlp"}))
    monkeypatch.setattr(registry_module, "REGISTRY", (*REGISTRY, half))
    spec = MLPSpec((3, 5, 2), "tanh")
    params = spec.init_params(3, generator=torch.Generator().manual_seed(1))
    assert "half-sort" in method_names("merge") and "half-sort" in default_methods("mlp")
    torch.testing.assert_close(merge(params, spec, "half-sort").params, params.mean(0) / 2)
    torch.testing.assert_close(make_canonicalizer("half-sort", spec)(params), params / 2)
    todo, skipped = resolve_methods(None, spec, Autoencoders(spec))
    assert "half-sort" in todo and "half-sort" not in skipped


class _Halved(AECanonicalizer.__mro__[1]):  # a Canonicalizer of the networks halved
    exact = False

    def _canonicalize(self, params):
        return params / 2


def test_a_method_refuses_a_family_it_does_not_apply_to(monkeypatch):
    from symmerge.merge import merge

    only = replace(get_method("naive"), name="siren-only", families=frozenset({"siren"}),
                   default_for=frozenset({"siren"}), reference=False)
    monkeypatch.setattr(registry_module, "REGISTRY", (*REGISTRY, only))
    spec = MLPSpec((3, 5, 2), "tanh")
    with pytest.raises(SymmergeError, match="'siren-only' does not apply to mlp networks"):
        merge(spec.init_params(2), spec, "siren-only")
