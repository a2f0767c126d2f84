"""The metrics against direct computations (one network at a time through its
``nn.Module``), on every device; a merge's quality beside its inputs'."""

import math

import pytest
import torch

from symmerge import CNNSpec, MLPSpec, SirenSpec
from symmerge.errors import SymmergeError
from symmerge.evaluation import (
    DataSettings,
    EvalData,
    Quality,
    classifier_metrics,
    evaluate,
    evaluate_batch,
    image_metrics,
    merge_quality,
)
from symmerge.specs.siren import coordinate_grid


def _direct_classifier(spec, params, x, y):
    """Accuracy and mean cross-entropy of each network, one ``nn.Module`` at a time, in
    float64: ``-log softmax(logits)[label]`` written out."""
    acc, ce = [], []
    for p in params:
        with torch.no_grad():
            logits = spec.module(p.double().cpu()).double()(x.double().cpu())
        acc.append(sum(int(row.argmax()) == int(t) for row, t in zip(logits, y, strict=True))
                   / len(y))
        picked = logits[torch.arange(len(y)), y.cpu()]
        ce.append(float((torch.logsumexp(logits, dim=1) - picked).mean()))
    return torch.tensor(acc, dtype=torch.float64), torch.tensor(ce, dtype=torch.float64)


@pytest.mark.parametrize("spec", [CNNSpec((1, 3, 4, 5), "relu"), CNNSpec((2, 3, 5), "tanh"),
                                  MLPSpec((12, 6, 5), "relu")], ids=["cnn-relu", "cnn-tanh",
                                                                      "mlp"])
def test_classifier_metrics_match_a_direct_computation(spec, device):
    gen = torch.Generator().manual_seed(0)
    params = spec.init_params(5, generator=gen, dtype=torch.float64) * 3  # confident logits
    x = (torch.randn(23, spec.layout[0], 7, 7, generator=gen, dtype=torch.float64)
         if isinstance(spec, CNNSpec) else torch.randn(23, 12, generator=gen,
                                                       dtype=torch.float64))
    y = torch.randint(0, spec.layout[-1], (23,), generator=gen)
    acc, ce = _direct_classifier(spec, params, x, y)
    assert len(set(acc.tolist())) > 1  # the networks differ: a mix-up would show
    # chunks that do not divide the counts: every network and image counted once
    got = classifier_metrics(spec, params.to(device), x, y, net_chunk=2, image_chunk=4)
    assert got["accuracy"].device.type == device.type
    torch.testing.assert_close(got["accuracy"].cpu(), acc, rtol=0, atol=1e-12)
    torch.testing.assert_close(got["cross_entropy"].cpu(), ce, rtol=1e-10, atol=1e-10)
    # the labels matter: shifted labels give other numbers
    other = classifier_metrics(spec, params.to(device), x, (y + 1) % spec.layout[-1])
    assert not torch.allclose(other["cross_entropy"].cpu(), ce)


def test_image_metrics_match_a_direct_computation(device):
    spec = SirenSpec((2, 8, 8, 1))
    gen = torch.Generator().manual_seed(1)
    params = spec.init_params(3, generator=gen, dtype=torch.float64)
    target = torch.rand(9, 9, generator=gen, dtype=torch.float64)
    got = image_metrics(spec, params.to(device), target.to(device), chunk=2)
    grid = coordinate_grid(9, dtype=torch.float64)
    for b in range(3):
        with torch.no_grad():
            img = spec.module(params[b]).double()(grid).reshape(9, 9)
        mse = float(((img - target) ** 2).mean())
        assert float(got["mse"][b]) == pytest.approx(mse, rel=1e-10)
        assert float(got["psnr"][b]) == pytest.approx(10 * math.log10(1.0 / mse), rel=1e-10)
    assert got["psnr"].device.type == device.type


def _classifier_data(spec, n=17, seed=2):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *(spec.layout[:1]), 8, 8, generator=gen)
    y = torch.randint(0, spec.layout[-1], (n,), generator=gen)
    return EvalData(DataSettings("classifier", "test-images"), x, y, f"{n} test images")


def test_evaluate_and_merge_quality_agree_with_the_metrics(device):
    spec = CNNSpec((1, 3, 4), "relu")
    data = _classifier_data(spec)
    params = spec.init_params(3, generator=torch.Generator().manual_seed(3)).to(device)
    direct = classifier_metrics(spec, params, data.inputs, data.labels)
    one = evaluate(params[1], spec, data)
    assert isinstance(one, Quality) and one.kind == "classifier" and one.examples == 17
    assert one.metrics == {"accuracy": float(direct["accuracy"][1]),
                           "cross_entropy": float(direct["cross_entropy"][1])}
    assert one.data == "17 test images" and "accuracy" in one.line()
    report = merge_quality([("a", params[0].cpu()), ("b", params[1])], params[2], spec, data)
    assert [name for name, _ in report.inputs] == ["a", "b"]
    assert [q.metrics["accuracy"] for _, q in report.inputs] == direct["accuracy"][:2].tolist()
    assert report.merged.metrics["cross_entropy"] == float(direct["cross_entropy"][2])
    table = report.table().splitlines()
    assert table[0] == "quality on 17 test images:" and table[1].split() == [
        "network", "accuracy", "cross_entropy"]
    assert [row.split()[0] for row in table[2:]] == ["a", "b", "merged"]
    stored = report.to_dict()
    assert stored["data"] == data.settings.to_dict()
    assert stored["inputs"][1] == {"network": "b", **report.inputs[1][1].metrics}
    assert stored["merged"] == report.merged.metrics


def test_evaluate_refuses_what_it_cannot_measure():
    spec = CNNSpec((1, 3, 4), "relu")
    data = _classifier_data(spec)
    with pytest.raises(SymmergeError, match=r"one network \[P\]"):
        evaluate(spec.init_params(2), spec, data)
    with pytest.raises(SymmergeError, match="NaN or infinite"):
        evaluate_batch(torch.full((1, spec.num_params), float("nan")), spec, data)
    with pytest.raises(SymmergeError, match="does not render"):
        image_metrics(spec, spec.init_params(1), torch.zeros(4, 4))
