"""Network -> PyTorch Geometric graph: one node per neuron, one edge per weight (or kernel)."""

from symmerge.graph.convert import (
    GraphAction,
    default_input_node_value,
    graph_action,
    graph_to_params,
    graphs_from_groups,
    params_to_graph,
    probe_node_features,
)
from symmerge.graph.template import (
    HIDDEN,
    INPUT,
    OUTPUT,
    GraphTemplate,
    graph_template,
    num_edge_types,
    num_node_types,
    template_on,
)

__all__ = [
    "HIDDEN",
    "INPUT",
    "OUTPUT",
    "GraphAction",
    "GraphTemplate",
    "default_input_node_value",
    "graph_action",
    "graph_template",
    "graph_to_params",
    "graphs_from_groups",
    "num_edge_types",
    "num_node_types",
    "params_to_graph",
    "probe_node_features",
    "template_on",
]
