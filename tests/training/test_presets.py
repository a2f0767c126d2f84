"""The ``paper-*`` presets hold the values of the configurations the paper ran.

Every expected value below is written out from the reference's files, not taken from
symmerge's configuration: the ScaleGMN autoencoder YAMLs of
odyboufalaki/Symmetry-Aware-Graph-Metanetwork-Autoencoders (``configs/mnist_rec/
scalegmn_autoencoder{,_ablation,_baseline}.yml``, ``configs/cifar10_rec/scalegmn_
{relu,tanh}.yml``, read with ``train_autoencoder.py`` / ``train_autoencoder_cnn.py``) and
the Neural Graphs configurations it vendors (``src/neural_graphs/experiments/
{inr_classification,cnn_generalization}/configs``: ``base.yaml``, ``model/pna.yaml``,
``data/mnist.yaml``, ``data/zoo_cifar_nfn_{relu,tanh}.yaml``). Keys the reference does not
have (options of another encoder, symmerge's additions) are marked as such.
"""

from __future__ import annotations

import copy

import pytest
import torch

from symmerge import SymmergeError
from symmerge.models import build_autoencoder
from symmerge.models.train_config import PRESETS, resolve_config
from symmerge.specs import CNNSpec, SirenSpec
from symmerge.training import train
from symmerge.training.run import split_note
from symmerge.zoo import load_zoo, save_zoo
from tests.training.test_run import TINY


def updated(base: dict, **changes: dict) -> dict:
    """``base`` with some of its sections' values replaced."""
    out = copy.deepcopy(base)
    for section, values in changes.items():
        if isinstance(out.get(section), dict):
            out[section].update(values)
        else:
            out[section] = values
    return out


#: symmerge's additions (METHOD.md 4.2), all off: no reference has them
NO_ADDITIONS = {"latent_norm": False, "probe_points": 0, "decode_standardized": False,
                "phase_canonical": False}
#: options of the PNA encoder, which a ScaleGMN model does not read (their defaults)
PNA_ONLY = {"rff_sigma": 3.0, "rff_dim": 128, "pna_norm": "graph"}
#: the train/val/test split when a zoo stores none (a zoo of the published data stores
#: the reference's split files, and training uses them)
SEEDED_SPLIT = {"seed": 0, "fractions": [0.8, 0.1, 0.1], "by_image": True}

# configs/mnist_rec/scalegmn_autoencoder.yml
PAPER_INR = {
    "preset": "paper-inr",
    "family": "siren",  # data.dataset: labeled_mnist_inr, layer_layout [2, 32, 32, 1]
    "activation": "any",  # a SIREN zoo is sine
    "seed": 0,  # train_args.seed
    "encoder": {
        "mode": "sign",  # scalegmn_args.symmetry
        "d_hidden": 128,  # scalegmn_args.d_hid
        "num_layers": 4,  # scalegmn_args.num_layers
        "d_latent": 128,  # readout_args.d_out: *d_hid
        "dropout": 0.2,  # gnn_args.dropout
        "ablate": False,  # gnn_args.ablate_symmetry
        "bidirectional": False,  # scalegmn_args.direction: forward
        "num_io_mlps": 2,  # gnn_args.msg_num_mlps / upd_num_mlps
        "edge_pos_embed": True,  # edge_pos_embed
        "node_pos_embed": True,  # node_pos_embed
        "skip": True,  # gnn_skip_connections
        "update_edges": True,  # gnn_args.update_edge_attr
        **PNA_ONLY,
        "max_hidden_layers": None,  # layer_layout: the zoo's depth
        "input_node_value": 1.0,  # the reference's INR graphs give input nodes 1.0
        "mlp_on_io": False,  # gnn_args.mlp_on_io
        "standardize": "rms",  # unused: no parameter statistics are fitted (below)
        **NO_ADDITIONS,
    },
    "decoder_widths": [2, 4],  # decoder_args.d_hidden
    "optim": {
        "lr": 1e-3,  # optimizer_args.lr (optimizer_name: AdamW)
        "weight_decay": 0.01,  # optimizer_args.weight_decay
        "amsgrad": False,  # AdamW's default
        "warmup_steps": 1000,  # scheduler_args.warmup_steps (WarmupLRScheduler)
        "grad_clip": 10.0,  # clip_grad_max_norm
        "batch_size": 128,  # batch_size
        "max_epochs": 150,  # train_args.num_epochs
        "schedule": "constant",  # WarmupLRScheduler: lr after the warm-up, to the end
    },
    # image_size [28, 28], pixel_expansion 1; the CNN loss keys are unused for INRs
    "loss": {"resolution": 28, "temperature": 0.6, "images_per_step": 128, "images": None},
    "split": SEEDED_SPLIT,
    "eval_every_n_epochs": 1,  # train_autoencoder.py validates after every epoch
    "eval_every_n_steps": None,
    # train_args.patience 50; stop when the last 50 validation losses strictly increase
    "early_stopping": {"enabled": True, "monitor": "val_loss", "rule": "increasing",
                       "patience": 50},
    "checkpoint": {"monitor": "val_loss", "ties": "later"},  # val_loss <= best_val_loss
    "scale_params": False,  # symmerge's addition, off
    "decoder_template": False,  # symmerge's addition, off
    "precision": "32",  # float32 throughout
}
# _ablation.yml: gnn_args.ablate_symmetry True, every other value as above
PAPER_INR_ABLATION = updated(PAPER_INR, preset="paper-inr-ablation", encoder={"ablate": True})
# _baseline.yml: scalegmn_args.symmetry permutation, train_args.num_epochs 100
PAPER_INR_PERMUTATION = updated(PAPER_INR, preset="paper-inr-permutation",
                                encoder={"mode": "permutation"}, optim={"max_epochs": 100})

# configs/cifar10_rec/scalegmn_relu.yml
PAPER_CNN_RELU = {
    "preset": "paper-cnn-relu",
    "family": "cnn",  # data.dataset: cifar10 (Small CNN Zoo), layer_layout [1, 16, 16, 16, 10]
    "activation": "relu",  # data.activation_function
    "seed": 0,  # train_args.seed
    "encoder": {
        "mode": "scale",  # scalegmn_args.symmetry
        "d_hidden": 256,  # d_hid
        "num_layers": 4,  # num_layers
        "d_latent": 256,  # readout_args.d_out: *d_hid
        "dropout": 0.2,  # gnn_args.dropout
        "ablate": False,  # ablate_symmetry
        "bidirectional": False,  # direction: forward
        "num_io_mlps": 2,  # msg_num_mlps / upd_num_mlps
        "edge_pos_embed": False,  # edge_pos_embed
        "node_pos_embed": True,  # node_pos_embed
        "skip": False,  # gnn_skip_connections
        "update_edges": True,  # update_edge_attr
        **PNA_ONLY,
        "max_hidden_layers": None,
        "input_node_value": 0.0,  # the reference's CNN graphs give input nodes 0
        "mlp_on_io": True,  # gnn_args.mlp_on_io
        "standardize": "rms",  # unused: no parameter statistics are fitted
        **NO_ADDITIONS,
    },
    "decoder_widths": [2, 4],  # decoder_args.d_hidden
    "optim": {"lr": 1e-3, "weight_decay": 0.01, "amsgrad": False, "warmup_steps": 1000,
              "grad_clip": 5.0, "batch_size": 64, "max_epochs": 300,
              "schedule": "constant"},  # WarmupLRScheduler
    # KnowledgeDistillation with the loss's default temperature 0.6; images: symmerge
    # draws 128 training images per step where the reference uses the test set (a fix)
    "loss": {"resolution": 28, "temperature": 0.6, "images_per_step": 128, "images": None},
    "split": SEEDED_SPLIT,  # idcs_file cifar10_split.csv when the zoo stores it
    "eval_every_n_epochs": 1,
    "eval_every_n_steps": None,
    # train_args.early_stopping False, patience 15 (epochs_no_improve >= patience)
    "early_stopping": {"enabled": False, "monitor": "val_l1", "rule": "no_improvement",
                       "patience": 15},
    "checkpoint": {"monitor": "val_l1", "ties": "later"},  # avg_err <= best_val_l1_err
    "scale_params": False,
    "decoder_template": False,
    "precision": "32",
}
# configs/cifar10_rec/scalegmn_tanh.yml: symmetry sign, msg/upd_num_mlps 3,
# early_stopping True; every other value as the ReLU file
PAPER_CNN_TANH = updated(PAPER_CNN_RELU, preset="paper-cnn-tanh", activation="tanh",
                         encoder={"mode": "sign", "num_io_mlps": 3},
                         early_stopping={"enabled": True})

# Neural Graphs, model=pna, experiments/inr_classification (data=mnist)
PAPER_NG_INR = {
    "preset": "paper-ng-inr",
    "family": "siren",  # inr_model: INRPerLayer 2 -> 32 -> 32 -> 1
    "activation": "any",
    "seed": 42,  # base.yaml seed
    "encoder": {
        "mode": "pna",  # model: pna (GNNForClassification with a PNA backbone)
        "d_hidden": 128,  # d_hid
        "num_layers": 4,  # gnn_backbone.num_layers
        "d_latent": None,  # pooling_method cat of the output nodes, pooling_layer_idx last
        "dropout": 0.0,  # gnn_backbone.dropout
        "ablate": False,  # ScaleGMN only
        "bidirectional": False,  # rev_edge_features False
        "num_io_mlps": 2,  # ScaleGMN only
        "edge_pos_embed": False,  # the graph constructor embeds node positions only
        "node_pos_embed": True,  # use_pos_embed
        "skip": False,  # PNA without residual connections
        "update_edges": True,  # update_edge_attr (final_edge_update False)
        "rff_sigma": 3.0,  # inp_factor (sin_emb)
        "rff_dim": 128,  # sin_emb_dim
        "pna_norm": "graph",  # norm: layernorm (PyG graph mode; per network here, a fix)
        "max_hidden_layers": None,
        "input_node_value": 0.0,  # input nodes carry no bias
        "mlp_on_io": False,  # ScaleGMN only
        "standardize": "mean-std",  # data.stats: per-layer means and stds
        **NO_ADDITIONS,
    },
    "decoder_widths": [2, 4],  # the autoencoder's decoder d_hid -> 2 d_hid -> 4 d_hid
    "optim": {
        "lr": 1e-3,  # optim.lr
        "weight_decay": 5e-4,  # optim.weight_decay
        "amsgrad": True,  # optim.amsgrad
        "warmup_steps": 1000,  # scheduler.warmup_steps
        "grad_clip": 10.0,  # clip_grad_max_norm
        "batch_size": 128,  # batch_size
        "max_epochs": 300,  # n_epochs
        "schedule": "constant",  # the warm-up scheduler only
    },
    "loss": {"resolution": 28, "temperature": 0.6, "images_per_step": 128, "images": None},
    "split": SEEDED_SPLIT,  # data.splits_path mnist_splits.json when the zoo stores it
    "eval_every_n_epochs": 1,  # unused: validation by steps
    "eval_every_n_steps": 2150,  # eval_every
    "early_stopping": {"enabled": False, "monitor": "val_loss", "rule": "no_improvement",
                       "patience": 50},  # none in the reference
    "checkpoint": {"monitor": "val_loss", "ties": "later"},  # val_loss <= best_val_loss
    "scale_params": True,  # the reference standardizes (data.stats of the training set)
    "decoder_template": False,
    "precision": "32",
}
# Neural Graphs, model=pna, experiments/cnn_generalization (data=zoo_cifar_nfn_relu)
PAPER_NG_CNN_RELU = updated(
    PAPER_NG_INR, preset="paper-ng-cnn-relu", family="cnn", activation="relu",
    encoder={"d_hidden": 256},  # d_hid
    optim={"lr": 1e-4, "grad_clip": 5.0, "batch_size": 64},  # optim.lr, clip, batch_size
    eval_every_n_epochs=1, eval_every_n_steps=None,  # evaluates after every epoch
    checkpoint={"monitor": "val_l1"},  # val_l1_err <= best_val_l1_err
    scale_params=False,  # data.stats all null, normalize False
)
PAPER_NG_CNN_TANH = updated(PAPER_NG_CNN_RELU, preset="paper-ng-cnn-tanh", activation="tanh")

EXPECTED = {c["preset"]: c for c in (
    PAPER_INR, PAPER_INR_ABLATION, PAPER_INR_PERMUTATION, PAPER_CNN_RELU, PAPER_CNN_TANH,
    PAPER_NG_INR, PAPER_NG_CNN_RELU, PAPER_NG_CNN_TANH)}


def spec_of(preset: str) -> SirenSpec | CNNSpec:
    """The architecture of the preset's published zoo."""
    if "cnn" not in preset:
        return SirenSpec()
    return CNNSpec(activation="tanh" if preset.endswith("tanh") else "relu")


def test_every_paper_preset_is_tested():
    assert {p for p in PRESETS if p.startswith("paper-")} == set(EXPECTED)


@pytest.mark.parametrize("preset", sorted(EXPECTED))
def test_paper_preset_has_every_reference_value(preset):
    resolved = resolve_config(preset, spec=spec_of(preset)).model_dump(mode="json")
    assert resolved == EXPECTED[preset]


#: Trainable parameters of the reference's models (encoder, decoder), counted as it
#: counts them, and what it creates but never uses, by name and size.
SCALEGMN_READOUT_PHI = "PermScaleInvariantReadout.phi, an MLP built but never called"
REFERENCE_COUNTS = {
    "paper-inr": (1_936_256, 772_513, {SCALEGMN_READOUT_PHI: 2 * 128**2 + 4 * 128}),
    "paper-inr-ablation": (1_936_256, 772_513, {SCALEGMN_READOUT_PHI: 2 * 128**2 + 4 * 128}),
    "paper-inr-permutation": (728_960, 772_513, {}),
    "paper-cnn-relu": (5_861_376, 5_751_146, {SCALEGMN_READOUT_PHI: 2 * 256**2 + 4 * 256}),
    "paper-cnn-tanh": (9_290_752, 5_751_146, {
        SCALEGMN_READOUT_PHI: 2 * 256**2 + 4 * 256,
        # with three I/O MLPs each message function has an input-node MLP
        # (eq_layers_in), but input nodes never receive messages: one per layer
        "the input-node message MLPs of the 4 layers": 4 * (2 * 256**2 + 4 * 256),
    }),
    "paper-ng-inr": (1_218_432, 772_513, {}),
    # the CNN graph constructor's activation embedding (use_act_embed: 7 activations x
    # d_hid), which the Small CNN Zoo data never feeds (no activations field)
    "paper-ng-cnn-relu": (4_734_720, 6_930_794, {"activation embedding": 7 * 256}),
    "paper-ng-cnn-tanh": (4_734_720, 6_930_794, {"activation embedding": 7 * 256}),
}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("preset", sorted(REFERENCE_COUNTS))
def test_paper_preset_parameter_counts(preset):
    """METHOD.md 3.8: the same model, less the reference's parameters that never get a
    gradient (``test_every_parameter_gets_a_gradient`` checks that none of ours is dead)."""
    encoder, decoder, unused = REFERENCE_COUNTS[preset]
    cfg = resolve_config(preset, spec=spec_of(preset))
    model = build_autoencoder(spec_of(preset), cfg.encoder, cfg.decoder_widths)
    assert count(model.encoder) == encoder - sum(unused.values())
    assert count(model.decoder) == decoder


def test_our_presets_are_the_paper_setups_with_our_additions():
    for ours, paper in (("inr", "paper-inr"), ("cnn-relu", "paper-cnn-relu"),
                        ("cnn-tanh", "paper-cnn-tanh")):
        a, b = (resolve_config(p, spec=spec_of(paper)).model_dump() for p in (ours, paper))
        diff = {k for k in a if a[k] != b[k]}
        assert diff == {"preset", "encoder", "scale_params"} | (
            {"decoder_template"} if ours == "inr" else set())
        assert a["scale_params"] and a["encoder"]["decode_standardized"]
        assert {k for k in a["encoder"] if a["encoder"][k] != b["encoder"][k]} == {
            "decode_standardized"}
    assert not any(p.startswith("paper-") for p in ("quick", "inr", "cnn-relu", "cnn-tanh"))


def test_val_l1_monitor_needs_a_cnn_zoo():
    with pytest.raises(SymmergeError, match="val_l1.*CNN zoo"):
        resolve_config("quick", overrides={"checkpoint": {"monitor": "val_l1"}},
                       spec=SirenSpec())


def test_split_note_says_whether_the_split_is_published(siren_zoo, tmp_path):
    spec = SirenSpec((2, 8, 8, 1))
    params = spec.init_params(10, generator=torch.Generator().manual_seed(0))
    stored = tmp_path / "stored.safetensors"
    save_zoo(stored, spec, params, split=torch.arange(10) % 3)
    is_test = tmp_path / "is_test.safetensors"
    save_zoo(is_test, spec, params, metrics={"is_test": (torch.arange(10) > 7).float()})
    cfg = resolve_config("paper-inr")
    assert "published train/val/test split" in split_note(load_zoo(stored), cfg)
    assert "published test split" in split_note(load_zoo(is_test), cfg)
    note = split_note(load_zoo(siren_zoo), cfg)
    assert "seeded (seed 0, fractions 0.8/0.1/0.1), not published" in note

    lines: list[str] = []
    train(siren_zoo, tmp_path / "run", preset="paper-inr", overrides=TINY, max_epochs=1,
          progress=False, log=lines.append)
    assert [ln for ln in lines if not ln.startswith("training on ")] == [note]
