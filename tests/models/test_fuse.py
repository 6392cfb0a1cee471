"""Batch norm folded into the layer before it: the same outputs, fewer layers; the model folder's
inference uses the folded copy and makes it again when the weights change."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from honing.models import create_model, fold_batch_norm


def _trained_stats(model: nn.Module, shape: tuple[int, ...]) -> nn.Module:
    """Batch-norm statistics away from their initial values (a few training-mode passes)."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, *shape) * 3 + 1)
    return model.eval()


@pytest.mark.parametrize("name, kwargs, shape, pairs", [
    ("cnn", {"channels": [4, 6], "batch_norm": True}, (1, 9, 9), 2),
    ("cnn", {"channels": [4], "batch_norm": True, "depthwise_separable": True}, (2, 9, 9), 1),
    ("mlp", {"hidden": [8, 5], "batch_norm": True, "residual": True}, (6,), 2),
    ("mobilenet", {}, (2, 9, 7), None),
])
def test_folding_keeps_the_outputs_and_removes_the_norms(name, kwargs, shape, pairs):
    model = _trained_stats(create_model(name, input_shape=shape, num_outputs=3, seed=0, **kwargs), shape)
    folded, n = fold_batch_norm(model)
    x = torch.randn(5, *shape)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), atol=1e-5, rtol=1e-4)
    left = sum(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in folded.modules())
    before = sum(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in model.modules())
    assert n > 0 and left == before - n and (pairs is None or n == pairs)
    assert any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in model.modules())  # the original kept


def test_a_model_without_batch_norm_is_not_copied():
    model = create_model("mlp", input_shape=(4,), num_outputs=2, seed=0)
    same, n = fold_batch_norm(model)
    assert same is model and n == 0


def test_a_model_folder_predicts_through_the_folded_copy_and_refolds_after_a_change(tmp_path):
    from honing.artifacts import load_model
    from honing.pipeline import train_once

    recipe = {"name": "bn", "data": {"source": "sklearn:digits", "image": True},
              "model": {"name": "cnn", "channels": [4], "batch_norm": True},
              "training": {"epochs": 2, "batch_size": 64}, "evaluate": {"baselines": False},
              "output": {"report": False}}
    train_once(recipe, out=tmp_path / "run", progress=False)
    loaded = load_model(tmp_path / "run" / "model")
    first = loaded.inference_model()
    assert first is not loaded.model and loaded.inference_model() is first  # folded once, then reused
    x = torch.randn(7, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded.forward_prepared(x), loaded.model.eval()(x), atol=1e-5, rtol=1e-4)
        loaded.model.blocks[0].norm.weight.mul_(2.0)  # the weights change: the copy is made again
    assert loaded.inference_model() is not first
    with torch.no_grad():
        torch.testing.assert_close(loaded.forward_prepared(x), loaded.model.eval()(x), atol=1e-5, rtol=1e-4)
