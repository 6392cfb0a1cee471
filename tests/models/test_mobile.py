"""``mobilenet``: efficient blocks (inverted residual, depthwise-separable, squeeze-excitation,
skip connections) that train, export to ONNX and refuse bad block specs by name."""

from __future__ import annotations

import pytest
import torch

from honing import ConfigError
from honing.export import to_onnx
from honing.models import count_parameters, create_model

BLOCKS = [{"op": "ir", "out": 8, "expand": 3, "se": True},               # residual: 8 -> 8 channels, stride 1
          {"op": "dsconv", "out": 12, "kernel": 5, "stride": 2, "se": True},
          {"op": "conv", "out": 12, "kernel": 3}]                          # residual again


def test_blocks_with_skips_and_se_train_and_export(tmp_path):
    model = create_model("mobilenet", input_shape=(1, 12, 12), num_outputs=3, blocks=BLOCKS, stem=8, last=None, seed=0)
    assert [b.residual for b in model.blocks] == [True, False, True]
    assert sum(type(m).__name__ == "SqueezeExcite" for m in model.modules()) == 2
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 12, 12, generator=g)
    y = (x[:, 0, :6].mean((1, 2)) > 0).long() + (x[:, 0, 6:].mean((1, 2)) > 0).long()  # 3 classes
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    exported = to_onnx(model.eval(), tmp_path / "m.onnx", x[:4])
    assert exported.max_abs_diff < 1e-4


def test_width_scales_every_layer_and_the_default_fits_28_by_28_images():
    small = create_model("mobilenet", input_shape=(1, 28, 28), num_outputs=10)
    wide = create_model("mobilenet", input_shape=(1, 28, 28), num_outputs=10, width=2.0)
    assert small(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert 3 < count_parameters(wide) / count_parameters(small) < 4.5  # about width squared


@pytest.mark.parametrize("blocks, message", [
    ([{"op": "fire", "out": 8}], r"blocks\[0\].op"),
    ([{"op": "ir", "out": 8}, {"op": "ir"}], r"blocks\[1\]: missing out"),
    ([{"op": "ir", "out": 8, "kernel": 4}], r"blocks\[0\].kernel: got 4; allowed: an odd size"),
    ([{"op": "ir", "out": 8, "stride": 3}], r"blocks\[0\].stride"),
    ([{"op": "ir", "out": 8, "dilation": 2}], r"blocks\[0\]: unknown key\(s\) dilation"),
    ([], "blocks"),
])
def test_bad_block_specs_are_named(blocks, message):
    with pytest.raises(ConfigError, match=message):
        create_model("mobilenet", input_shape=(1, 12, 12), num_outputs=3, blocks=blocks)


def test_a_flatten_head_sees_every_position_and_exports(tmp_path):
    model = create_model("mobilenet", input_shape=(1, 12, 12), num_outputs=3, stem=4, stem_stride=2, last=None,
                         blocks=[{"op": "conv", "out": 6, "stride": 2}], global_pool=None, head_hidden=8, seed=0)
    assert model.head.hidden.in_features == 6 * 3 * 3  # 12 -> 6 (stem) -> 3 (block), 6 channels
    x = torch.randn(4, 1, 12, 12)
    assert to_onnx(model.eval(), tmp_path / "f.onnx", x).max_abs_diff < 1e-4
