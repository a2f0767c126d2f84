"""Evaluation data: a zoo network's own (reproducing the zoo builders' stored held-out
accuracy and PSNR), a merged file's record, a given source; clear errors otherwise."""

import pytest
import torch

from symmerge import CNNSpec, MLPSpec, SirenSpec
from symmerge.errors import SymmergeError
from symmerge.evaluation import (
    DataSettings,
    NoEvalData,
    evaluate,
    evaluation_data,
    input_transform_name,
    load_eval_data,
    merge_evaluation_data,
    merge_quality,
)
from symmerge.evaluation.data import stored_settings
from symmerge.merge import Network, load_network, save_network
from symmerge.zoo import load_zoo, save_zoo
from symmerge.zoo.fit_inr import INRFitConfig, fit_inr_zoo
from symmerge.zoo.train_cnn import CNNTrainConfig, train_cnn_zoo
from tests.assets import cnn_zoo


@pytest.fixture(scope="module")
def cnn_path(tmp_path_factory):
    """A CNN zoo from the builder (inputs standardized in training, folded afterwards)."""
    path = tmp_path_factory.mktemp("cnn") / "cnn.safetensors"
    train_cnn_zoo("mnist-embedded", out=path, n=4, activation="relu", progress=False,
                  config=CNNTrainConfig(hidden=(6, 6), steps=80), workers=1)
    return path


@pytest.fixture(scope="module")
def inr_path(tmp_path_factory):
    """Three INRs of digits 0, 7 and 14 from the builder."""
    path = tmp_path_factory.mktemp("inr") / "inr.safetensors"
    fit_inr_zoo("mnist-embedded", out=path, limit=3, stride=7, per_image=1, progress=False,
                config=INRFitConfig(hidden=(8, 8), steps=60), workers=1)
    return path


def _stored_float32(value: float) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.float32)


def test_cnn_zoo_networks_reproduce_their_stored_held_out_accuracy(cnn_path):
    zoo = load_zoo(cnn_path)
    stored = zoo.metric("test_accuracy")
    assert len(set(stored.tolist())) > 1  # networks of different accuracies
    for i in range(len(zoo)):
        net = load_network(f"{cnn_path}:{i}")
        data = evaluation_data(net)
        assert data.settings.input_transform == "x * 2 - 1" and data.examples == 1000
        assert "seeded split (test_fraction 0.2, seed 0)" in data.description
        q = evaluate(net.params, net.spec, data)
        assert _stored_float32(q.metrics["accuracy"]) == stored[i]
    # the input transform matters: raw pixels give other numbers
    raw = evaluation_data(net, input_transform="none")
    assert evaluate(net.params, net.spec, raw).metrics != q.metrics


def test_the_shared_tiny_cnn_zoo_too(tmp_path):
    path = cnn_zoo().save(tmp_path / "cnn.safetensors")
    stored = load_zoo(path).metric("test_accuracy")
    for i in (0, 5):
        net = load_network(f"{path}:{i}")
        q = evaluate(net.params, net.spec, evaluation_data(net))
        assert _stored_float32(q.metrics["accuracy"]) == stored[i]


def test_a_file_with_a_source_gets_the_cnn_zoo_builders_split(cnn_path, tmp_path):
    """A state dict with ``data`` alone: the builder's default held-out images."""
    net = load_network(f"{cnn_path}:2")
    file = save_network(tmp_path / "net.safetensors", net.spec, net.params)
    alone = load_network(file)
    with pytest.raises(NoEvalData, match="records no evaluation data: pass data=SOURCE"):
        evaluation_data(alone)
    data = evaluation_data(alone, "mnist-embedded")
    assert data.settings == DataSettings("classifier", "mnist-embedded")
    assert "input transform none" in data.description
    sym = evaluation_data(alone, "mnist-embedded", input_transform="x*2-1")
    zoo_q = evaluate(net.params, net.spec, evaluation_data(net))
    assert evaluate(alone.params, alone.spec, sym).metrics == zoo_q.metrics
    assert torch.equal(sym.labels, evaluation_data(net).labels)


def test_inr_zoo_networks_are_measured_against_their_image(inr_path):
    zoo = load_zoo(inr_path)
    for i in range(len(zoo)):
        net = load_network(f"{inr_path}:{i}")
        data = evaluation_data(net)
        assert data.settings.image == 7 * i and data.inputs.shape == (28, 28)
        q = evaluate(net.params, net.spec, data)
        assert q.kind == "inr" and q.examples == 28 * 28
        # the fitter's own PSNR (another kernel: float32 rounding apart)
        assert q.metrics["psnr"] == pytest.approx(float(zoo.metric("psnr")[i]), abs=1e-3)
    other = evaluation_data(net, image=1)  # not its digit: much worse
    assert evaluate(net.params, net.spec, other).metrics["psnr"] < q.metrics["psnr"] - 3


def test_a_merged_file_records_its_data(cnn_path, tmp_path):
    nets = [load_network(f"{cnn_path}:{i}") for i in (0, 1)]
    data = merge_evaluation_data(nets)
    merged = (nets[0].params + nets[1].params) / 2
    report = merge_quality([(n.source, n.params) for n in nets], merged, nets[0].spec, data)
    out = save_network(tmp_path / "m.safetensors", nets[0].spec, merged,
                       quality=report.to_dict())
    assert stored_settings(out) == data.settings
    again = evaluate(merged, nets[0].spec, evaluation_data(load_network(out)))
    assert again.metrics == report.merged.metrics
    replaced = evaluation_data(load_network(out), "mnist-embedded", input_transform="none")
    assert replaced.settings.input_transform == "none"
    assert replaced.settings.test_fraction == data.settings.test_fraction


def test_merges_share_one_data(cnn_path, inr_path, tmp_path):
    zoo_net = load_network(f"{cnn_path}:0")
    file = load_network(save_network(tmp_path / "n.safetensors", zoo_net.spec, zoo_net.params))
    assert merge_evaluation_data([file, zoo_net]).settings == evaluation_data(zoo_net).settings
    with pytest.raises(NoEvalData, match="n.safetensors records no evaluation data"):
        merge_evaluation_data([file, file])  # one reason: said as it is
    other = load_network(save_network(tmp_path / "o.safetensors", zoo_net.spec, zoo_net.params))
    with pytest.raises(NoEvalData, match="no input records evaluation data: pass data=SOURCE"):
        merge_evaluation_data([file, other])
    inrs = [load_network(f"{inr_path}:{i}") for i in (0, 1)]
    with pytest.raises(NoEvalData, match=r"fit different images \(0, 7\)"):
        merge_evaluation_data(inrs)
    assert merge_evaluation_data([inrs[0], inrs[0]]).settings.image == 0


def test_given_sources_are_checked_against_the_network():
    def net(spec):
        return Network(spec, spec.init_params(1)[0], "nowhere.safetensors")

    mlp = evaluation_data(net(MLPSpec((784, 8, 10))), "mnist-embedded")
    assert mlp.inputs.shape == (1000, 784)  # flattened images
    with pytest.raises(SymmergeError, match="flatten to 784 values, the MLP takes 100"):
        evaluation_data(net(MLPSpec((100, 8, 10))), "mnist-embedded")
    with pytest.raises(SymmergeError, match="1 channels, the CNN takes 3"):
        evaluation_data(net(CNNSpec((3, 4, 10), "relu")), "mnist-embedded")
    with pytest.raises(SymmergeError, match="labels up to 9, the network has 5 outputs"):
        evaluation_data(net(CNNSpec((1, 4, 5), "relu")), "mnist-embedded")
    with pytest.raises(SymmergeError, match="unknown data source"):
        evaluation_data(net(CNNSpec((1, 4, 10), "relu")), "nope")
    with pytest.raises(SymmergeError, match="image is for INRs"):
        evaluation_data(net(CNNSpec((1, 4, 10), "relu")), "mnist-embedded", image=3)


def test_settings_are_validated():
    assert input_transform_name("x*2-1") == input_transform_name(" x * 2 - 1") == "x * 2 - 1"
    assert input_transform_name("none") == "none"
    with pytest.raises(SymmergeError, match="input_transform must be one of none, x\\*2-1"):
        input_transform_name("x/255")
    with pytest.raises(NoEvalData, match="pass image=N"):
        DataSettings("inr", "mnist-embedded")
    with pytest.raises(SymmergeError, match="kind must be one of classifier, inr"):
        DataSettings("gan", "mnist-embedded")
    with pytest.raises(SymmergeError, match="test_fraction must be in"):
        DataSettings("classifier", "mnist-embedded", test_fraction=1.5)
    with pytest.raises(SymmergeError, match="evaluation data must be an object"):
        DataSettings.from_dict({"kind": "classifier", "source": "x", "extra": 1})
    with pytest.raises(SymmergeError, match="required: kind, source"):  # not a TypeError
        DataSettings.from_dict({"kind": "classifier"})
    s = DataSettings("classifier", "mnist-embedded", 0.3, 4, "x * 2 - 1")
    assert DataSettings.from_dict(s.to_dict()) == s
    with pytest.raises(SymmergeError, match="image 5000 is out of range"):
        load_eval_data(DataSettings("inr", "mnist-embedded", image=5000),
                       SirenSpec((2, 4, 1)))


def test_a_zoo_whose_data_cannot_be_found_has_none(cnn_path, tmp_path):
    """Without ``data``, a zoo that names no usable images gives :class:`NoEvalData` (a merge
    then says it measured nothing); with ``data``, a bad source is an error."""
    zoo = load_zoo(cnn_path)
    for name, prov in (("imported", {"importer": "cnn-zoo"}),
                       ("moved", {"data": f"mnist:{tmp_path / 'gone'}"})):
        path = save_zoo(tmp_path / f"{name}.safetensors", zoo.spec, zoo.params, provenance=prov)
        nets = [load_network(f"{path}:{i}") for i in (0, 1)]
        with pytest.raises(NoEvalData) as info:
            merge_evaluation_data(nets)
        assert ("names no evaluation images: pass data=SOURCE" if name == "imported"
                else "directory not found") in str(info.value)
        assert merge_evaluation_data(nets, "mnist-embedded").examples == 1000
    with pytest.raises(SymmergeError, match="directory not found") as info:
        merge_evaluation_data(nets, f"mnist:{tmp_path / 'gone'}")
    assert not isinstance(info.value, NoEvalData)
