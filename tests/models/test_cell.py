"""``cellnet``: the NAS-Bench-201 cell DAG, its edges' operations, and export."""

from __future__ import annotations

import pytest
import torch

from honing import ConfigError
from honing.export import to_onnx
from honing.models import create_model
from honing.models import Cell

ACT = torch.nn.ReLU


def test_the_cell_sums_its_edges_along_the_dag():
    x = torch.randn(2, 4, 5, 5)
    only_skip_to_output = ["none", "none", "none", "skip", "none", "none"]  # 0->3 only
    assert torch.equal(Cell(only_skip_to_output, 4, lambda c: ACT())(x), x)
    chain = ["skip", "none", "skip", "none", "none", "skip"]  # 0->1->2->3, each the identity
    assert torch.equal(Cell(chain, 4, lambda c: ACT())(x), x)
    both = ["skip", "none", "none", "skip", "skip", "none"]  # 3 = 0 + 1, and 1 = 0
    assert torch.equal(Cell(both, 4, lambda c: ACT())(x), 2 * x)
    assert torch.equal(Cell(["none"] * 6, 4, lambda c: ACT())(x), torch.zeros_like(x))


def test_a_cellnet_trains_a_step_and_exports(tmp_path):
    model = create_model("cellnet", input_shape=(1, 8, 8), num_outputs=3, channels=8, stages=2, seed=0,
                         cell=["conv3x3", "skip", "avgpool3x3", "conv1x1", "none", "conv3x3"])
    x = torch.randn(16, 1, 8, 8)
    loss = torch.nn.functional.cross_entropy(model(x), torch.arange(16) % 3)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert to_onnx(model.eval(), tmp_path / "c.onnx", x[:2]).max_abs_diff < 1e-4


@pytest.mark.parametrize("cell, message", [
    (["skip"] * 5, "a list of 6 operations"),
    (["skip"] * 5 + ["sepconv"], r"cell\[5\] \(edge 2->3\): got 'sepconv'"),
])
def test_bad_cells_are_named(cell, message):
    with pytest.raises(ConfigError, match=message):
        create_model("cellnet", input_shape=(1, 8, 8), num_outputs=3, cell=cell)
