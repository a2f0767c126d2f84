"""One registry of methods (:mod:`symmerge.methods.registry`): how each one brings networks
into one frame (:mod:`symmerge.methods.frames`), what it needs, what it is used for.

>>> from symmerge.methods import get_method, method_names
>>> method_names("merge")  # the methods `symmerge merge --method` accepts
... # doctest: +SKIP
>>> get_method("sort").exact
True
"""

from symmerge.methods.base import (
    FAMILIES,
    RESOURCES,
    USES,
    Method,
    MethodInputs,
    default_method,
    default_methods,
    get_method,
    load_models,
    method_names,
    methods_needing,
    missing_resource,
    reference_method,
)

#: The frames (:mod:`symmerge.methods.frames`) load the autoencoders and torch_geometric;
#: they are imported on first use, so that reading the registry (the CLI's help texts at
#: start-up) stays light.
_FRAMES = ("Canonical", "Frame", "Latent", "Matched", "Raw", "Repaired", "align_networks",
           "lerp", "weighted_mean")


def __getattr__(name: str) -> object:
    if name in _FRAMES:
        from symmerge.methods import frames

        return getattr(frames, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FAMILIES",
    "RESOURCES",
    "USES",
    "Canonical",
    "Frame",
    "Latent",
    "Matched",
    "Method",
    "MethodInputs",
    "Raw",
    "Repaired",
    "align_networks",
    "default_method",
    "default_methods",
    "get_method",
    "lerp",
    "load_models",
    "method_names",
    "methods_needing",
    "missing_resource",
    "reference_method",
    "weighted_mean",
]
