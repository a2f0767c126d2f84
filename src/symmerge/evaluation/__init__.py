"""Evaluating networks: classifiers (CNNs, MLPs) by accuracy and cross-entropy on held-out
images, INRs by PSNR and MSE against their image; the data a network is evaluated on
(its zoo's, a merged file's record, or an image source); the quality of a merge beside its
inputs'. Nothing is written.

Python API::

    net = load_network("cnns.safetensors:3")
    data = evaluation_data(net)                  # the zoo's held-out images
    quality = evaluate(net.params, net.spec, data)
    quality.metrics["accuracy"]
"""

from symmerge.evaluation.data import (
    DataSettings,
    EvalData,
    NoEvalData,
    evaluation_data,
    input_transform_name,
    load_eval_data,
    merge_evaluation_data,
    network_kind,
    training_data,
)
from symmerge.evaluation.quality import (
    METRICS,
    MergeQuality,
    Quality,
    classifier_metrics,
    evaluate,
    evaluate_batch,
    image_metrics,
    merge_quality,
)

__all__ = [
    "METRICS",
    "DataSettings",
    "EvalData",
    "MergeQuality",
    "NoEvalData",
    "Quality",
    "classifier_metrics",
    "evaluate",
    "evaluate_batch",
    "evaluation_data",
    "image_metrics",
    "input_transform_name",
    "load_eval_data",
    "merge_evaluation_data",
    "merge_quality",
    "network_kind",
    "training_data",
]
