"""Param groups: no weight decay on biases / norms / gains; exact per-layer lrs with layer decay."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from honing._core import ConfigError
from honing.optim import create_optimizer, param_groups_layer_decay, param_groups_weight_decay


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 2)
        self.scale_gain = nn.Parameter(torch.ones(1, 4, 1, 1))  # a 4-D gain: excluded by name
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)

    def forward(self, x):
        h = self.bn(self.conv(x)) * self.scale_gain
        return self.head(h.mean(dim=(2, 3)))


def _by_name(groups):
    return {n: g for g in groups for n in g["param_names"]}


def test_no_decay_on_biases_norms_and_gains():
    groups = param_groups_weight_decay(ConvNet(), 0.05)
    names = _by_name(groups)
    assert {n for n, g in names.items() if g["weight_decay"] == 0.05} == {"conv.weight", "head.weight"}
    assert {n for n, g in names.items() if g["weight_decay"] == 0.0} == {
        "conv.bias", "bn.weight", "bn.bias", "head.bias", "scale_gain"
    }
    assert "frozen.weight" not in names  # frozen parameters left out
    assert all(len(g["params"]) == len(g["param_names"]) for g in groups)


def test_no_decay_list_and_model_hook():
    model = ConvNet()
    names = _by_name(param_groups_weight_decay(model, 0.1, no_decay=["head"]))
    assert names["head.weight"]["weight_decay"] == 0.0 and names["conv.weight"]["weight_decay"] == 0.1
    model.no_weight_decay = lambda: {"conv.weight"}
    names = _by_name(param_groups_weight_decay(model, 0.1))
    assert names["conv.weight"]["weight_decay"] == 0.0


def test_layer_decay_from_layer_groups_gives_exact_lrs(gain_mlp_cls):
    model = gain_mlp_cls()  # layer_groups: [fc1, hidden_gain], [norm], [fc2]
    groups = param_groups_layer_decay(model, 1e-2, 0.1, 0.5)
    names = _by_name(groups)
    expected = {"fc1.weight": 2.5e-3, "fc1.bias": 2.5e-3, "hidden_gain": 2.5e-3, "norm.weight": 5e-3,
                "norm.bias": 5e-3, "fc2.weight": 1e-2, "fc2.bias": 1e-2}
    assert {n: g["lr"] for n, g in names.items()} == pytest.approx(expected, rel=0, abs=0)
    assert {n: g["weight_decay"] for n, g in names.items()} == {
        "fc1.weight": 0.1, "fc1.bias": 0.0, "hidden_gain": 0.0, "norm.weight": 0.0, "norm.bias": 0.0,
        "fc2.weight": 0.1, "fc2.bias": 0.0,
    }
    assert [g["layer"] for g in groups] == [0, 0, 1, 2, 2]


def test_layer_decay_falls_back_to_top_level_children():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.Linear(4, 1))
    opt = create_optimizer(model, "sgd", lr=0.8, layer_decay=0.5)
    lrs = {n: g["lr"] for g in opt.param_groups for n in g["param_names"]}
    assert lrs == {"0.weight": 0.2, "0.bias": 0.2, "2.weight": 0.4, "2.bias": 0.4, "3.weight": 0.8, "3.bias": 0.8}


def test_unmatched_parameters_go_to_the_last_layer():
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(2, 2)
            self.b = nn.Linear(2, 2)

        def layer_groups(self):
            return [["a"]]

    names = _by_name(param_groups_layer_decay(M(), 1.0, 0.0, 0.5))
    assert names["a.weight"]["lr"] == 1.0 and names["b.weight"]["lr"] == 1.0


def test_create_optimizer_from_module_uses_groups(gain_mlp_cls):
    opt = create_optimizer(gain_mlp_cls(), "adamw", lr=1e-3, weight_decay=0.01)
    names = {n: g["weight_decay"] for g in opt.param_groups for n in g["param_names"]}
    assert names["fc1.weight"] == 0.01 and names["hidden_gain"] == 0.0 and names["norm.weight"] == 0.0
    opt = create_optimizer(gain_mlp_cls(), "adam", lr=1e-3, layer_decay=0.1)
    assert sorted({g["lr"] for g in opt.param_groups}) == pytest.approx([1e-5, 1e-4, 1e-3])


def test_bad_group_arguments():
    with pytest.raises(ConfigError, match="invalid layer_decay: got 0; allowed"):
        param_groups_layer_decay(nn.Linear(2, 2), 1.0, 0.0, 0)
    with pytest.raises(ConfigError, match="invalid weight_decay: got -1"):
        param_groups_weight_decay(nn.Linear(2, 2), -1)
    with pytest.raises(ConfigError, match="invalid model"):
        param_groups_weight_decay([torch.zeros(2)], 0.1)
