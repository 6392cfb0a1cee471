"""LoRA: only the adapters and the head train; merging folds them back with the same outputs."""

from __future__ import annotations

import pytest
import torch
from _transfer_helpers import fit, snapshot, toy_classes
from torch import nn

from honing import transfer
from honing._core import ConfigError


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc_in = nn.Linear(6, 8)
        self.fc_mid = nn.Linear(8, 8)
        self.fc_out = nn.Linear(8, 8)

    def forward(self, x):
        return torch.relu(self.fc_out(torch.relu(self.fc_mid(torch.relu(self.fc_in(x))))))


def _lora_model(**lora):
    return transfer.create(Encoder(), 3, feature_dim=8, strategy="lora", lora={"r": 2, **lora})[0]


def test_lora_trains_only_adapters_and_head():
    model = _lora_model()  # default targets: every linear layer
    names = [n for n, _ in model.backbone.module.named_parameters()]
    assert sum("lora_A" in n for n in names) == 3 and sum("lora_B" in n for n in names) == 3
    assert transfer.has_lora(model)
    total = sum(p.numel() for p in model.parameters())
    adapters = (2 * 6 + 8 * 2) + 2 * (2 * 8 + 8 * 2)  # fc_in: A 2x6, B 8x2; fc_mid, fc_out: A 2x8, B 8x2
    assert model.trainable_parameters() == adapters + 8 * 3 + 3 < total
    before = snapshot(model)

    fit(model, toy_classes(), epochs=3)

    after = snapshot(model)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    base = {k for k in before if k.startswith("backbone.") and "lora_" not in k}
    assert len(base) == 6 and not changed & base  # base weights bit-identical
    assert {k for k in before if "lora_" in k} <= changed  # lora_A and lora_B both moved
    assert {"head.0.weight", "head.0.bias"} <= changed


def test_merge_lora_keeps_outputs_and_removes_adapters():
    model = _lora_model(alpha=4.0)
    fit(model, toy_classes(), epochs=2)
    x = toy_classes(n=10, seed=1)[0]
    model.eval()
    with torch.no_grad():
        expected = model(x)
    lora_b = model.backbone.module.fc_mid.lora_B["default"].weight
    assert lora_b.abs().sum() > 0  # the adapters change the output, so merging has work to do

    assert transfer.merge_lora(model) is model

    assert not transfer.has_lora(model)
    assert not any("lora_" in n for n, _ in model.named_parameters())
    assert all(type(m) is nn.Linear for m in model.backbone.module.children())
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=0)
    assert transfer.merge_lora(model) is model  # nothing to merge: a no-op


def test_lora_targets_choose_the_layers():
    model = _lora_model(targets=["fc_mid"])
    adapted = {n.split(".")[0] for n, _ in model.backbone.module.named_parameters() if "lora_" in n}
    assert adapted == {"fc_mid"}
    assert model.backbone.module.fc_in.weight.requires_grad is False


def test_bad_lora_targets_list_the_layer_names():
    with pytest.raises(ConfigError, match=r"\['attn'\] match no module.*'fc_in', 'fc_mid', 'fc_out'"):
        _lora_model(targets=["fc_in", "attn"])
    with pytest.raises(ConfigError, match="invalid lora.r: got 0"):
        _lora_model(r=0)
