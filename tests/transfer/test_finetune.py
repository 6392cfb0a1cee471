"""``transfer.finetune``: the one-call Python path on a honing Dataset (LoRA merged, few-shot)."""

from __future__ import annotations

import torch
from torch import nn

from honing import transfer
from honing.data import load


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU())


def _accuracy(model: nn.Module, split) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(split.x).argmax(1) == split.y).float().mean())


def test_finetune_trains_and_returns_a_plain_merged_model() -> None:
    data = load("sklearn:digits", seed=0)
    model, result = transfer.finetune(_net(), data, strategy="lora", feature_dim=16, lr=1e-2, epochs=4,
                                      lora={"r": 4, "targets": ["0", "2"]}, progress=False)
    assert not transfer.has_lora(model)  # merged
    assert result.best_epoch is not None and len(result.history) == 4
    assert _accuracy(model, data.test) > 0.5  # 10 classes; the backbone is random, only adapters + head train


def test_finetune_few_shot_fits_prototypes_without_training() -> None:
    data = load("sklearn:digits", seed=0)
    model, result = transfer.finetune(_net(), data, strategy="few_shot", shots=10, feature_dim=16)
    assert result is None and isinstance(model.head, transfer.PrototypeHead)
    assert model.trainable_parameters() == 0
    assert _accuracy(model, data.test) > 0.3  # random features, 10 examples per class; chance is 0.1
