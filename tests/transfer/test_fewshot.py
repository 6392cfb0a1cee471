"""Few-shot prototypes: separable blobs classified from 1 and 5 shots; seeded support sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from honing import transfer
from honing._core import DataError


def _blobs(per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three gaussian blobs in 8-D around 4 * e_0, 4 * e_1, 4 * e_2 (well apart in angle)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(3).repeat_interleave(per_class)
    x = 4.0 * F.one_hot(y, 8).float() + 0.5 * torch.randn(len(y), 8, generator=g)
    return x, y


def _identity_model() -> transfer.TransferModel:
    lin = nn.Linear(8, 8)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(8))
        lin.bias.zero_()
    return transfer.create(lin, 3, feature_dim=8, strategy="few_shot")[0]


@pytest.mark.parametrize("shots", [1, 5])
def test_prototypes_classify_held_out_points(shots):
    x, y = _blobs(10, seed=0)
    test_x, test_y = _blobs(50, seed=1)
    model = transfer.fit_prototypes(_identity_model(), x, y, shots=shots, seed=3)

    assert isinstance(model.head, transfer.PrototypeHead)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    idx = torch.as_tensor(transfer.support_indices(y, shots, seed=3))
    for c in range(3):  # the prototype: the mean normalised embedding of the class's support rows
        rows = idx[y[idx] == c]
        assert len(rows) == shots
        torch.testing.assert_close(model.head.prototypes[c], F.normalize(x[rows], dim=1).mean(0))
    with torch.no_grad():
        accuracy = (model(test_x).argmax(1) == test_y).float().mean().item()
    assert accuracy == 1.0


def test_prototype_head_logits_are_scaled_cosines():
    head = transfer.PrototypeHead(2, 3, scale=5.0)
    head.fit(torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]]), torch.tensor([0, 1]))
    logits = head(torch.tensor([[1.0, 0.0, 1.0]]))
    torch.testing.assert_close(logits, torch.tensor([[5.0 / 2**0.5, 5.0 / 2**0.5]]))
    with pytest.raises(DataError, match=r"no example of classes \[1\]"):
        head.fit(torch.ones(2, 3), torch.tensor([0, 0]))


def test_support_indices_pick_k_per_class_seeded():
    y = np.repeat([0, 1, 2], 10)
    picked = transfer.support_indices(y, 4, seed=7)
    assert np.bincount(y[picked]).tolist() == [4, 4, 4]
    assert len(set(picked.tolist())) == 12 and picked.tolist() == sorted(picked.tolist())
    assert np.array_equal(picked, transfer.support_indices(torch.as_tensor(y), 4, seed=7))
    assert not np.array_equal(picked, transfer.support_indices(y, 4, seed=8))


def test_support_indices_too_few_rows():
    y = np.array([0, 0, 0, 1, 1, 2])
    with pytest.raises(DataError, match="class 2 has 1 training rows; shots=2"):
        transfer.support_indices(y, 2)
