"""Behaviour specific to each architecture."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from honing._core import ConfigError
from honing.models import count_parameters, create_model
from honing.models._transformer import sinusoidal_positions


def _capture_block_io(block: nn.Module) -> dict[str, torch.Tensor]:
    seen: dict[str, torch.Tensor] = {}
    block.register_forward_hook(lambda m, inp, out: seen.update(inp=inp[0], out=out))
    return seen


# --- mlp ---------------------------------------------------------------------------------------

def test_mlp_flattens_any_input_shape():
    model = create_model("mlp", input_shape=(2, 3, 4), num_outputs=5, hidden=[7], seed=0).eval()
    assert model.blocks[0].linear.in_features == 24
    x = torch.randn(6, 2, 3, 4)
    torch.testing.assert_close(model(x), model(x.reshape(6, 24)))


def test_mlp_residual_uses_identity_or_projection():
    model = create_model("mlp", input_shape=(6,), num_outputs=2, hidden=[16, 16, 8], residual=True)
    assert isinstance(model.blocks[0].skip, nn.Linear) and model.blocks[0].skip.bias is None  # 6 -> 16
    assert isinstance(model.blocks[1].skip, nn.Identity)  # 16 -> 16
    assert isinstance(model.blocks[2].skip, nn.Linear)  # 16 -> 8
    plain = create_model("mlp", input_shape=(6,), num_outputs=2, hidden=[16, 16, 8])
    assert all(b.skip is None for b in plain.blocks)


@pytest.mark.parametrize("residual", [True, False])
def test_mlp_skip_path_carries_signal_past_a_zeroed_block(residual):
    model = create_model("mlp", input_shape=(6,), num_outputs=2, hidden=[16, 16, 16], residual=residual, seed=0).eval()
    with torch.no_grad():
        model.blocks[1].linear.weight.zero_()
        model.blocks[1].linear.bias.zero_()
    seen = _capture_block_io(model.blocks[1])
    x = torch.randn(8, 6)
    with torch.no_grad():
        y = model(x)
    if residual:
        torch.testing.assert_close(seen["out"], seen["inp"])  # the block reduces to its identity skip
        assert y.std(dim=0).min() > 1e-4  # and the output still depends on the input
    else:
        assert torch.count_nonzero(seen["out"]) == 0
        torch.testing.assert_close(y, y[:1].expand_as(y))  # output no longer depends on the input


def test_mlp_batch_norm_settings():
    model = create_model("mlp", input_shape=(6,), num_outputs=2, hidden=[8], batch_norm=True,
                         bn_momentum=0.3, bn_eps=1e-3)
    bn = model.blocks[0].norm
    assert isinstance(bn, nn.BatchNorm1d) and bn.momentum == 0.3 and bn.eps == 1e-3
    assert model.blocks[0].linear.bias is None  # the norm's shift replaces it
    model.train()
    model(torch.randn(16, 6) * 5 + 3)
    assert not torch.allclose(bn.running_mean, torch.zeros(8))


# --- cnn ---------------------------------------------------------------------------------------

def test_depthwise_separable_cnn_has_fewer_parameters():
    kw = dict(input_shape=(16, 12, 12), num_outputs=4, channels=[32, 64], kernel_size=3)
    plain = create_model("cnn", **kw)
    dws = create_model("cnn", depthwise_separable=True, **kw)
    assert count_parameters(dws) < 0.3 * count_parameters(plain)
    assert dws.blocks[1].depthwise.groups == 32 and dws.blocks[1].conv.kernel_size == (1, 1)
    assert dws(torch.randn(2, 16, 12, 12)).shape == (2, 4)


@pytest.mark.parametrize("pool", ["max", "avg", None])
def test_cnn_works_on_any_image_size(pool):
    model = create_model("cnn", input_shape=(3, 16, 16), num_outputs=4, channels=[4, 4, 4], pool=pool).eval()
    for h, w in [(16, 16), (1, 1), (3, 17), (40, 9)]:
        assert model(torch.randn(2, 3, h, w)).shape == (2, 4)


def test_cnn_pooling_halves_the_map():
    model = create_model("cnn", input_shape=(1, 8, 8), num_outputs=2, channels=[3, 3], pool="avg")
    seen = _capture_block_io(model.blocks[1])
    model(torch.randn(1, 1, 8, 8))
    assert seen["out"].shape == (1, 3, 2, 2)


def test_cnn_adds_channel_axis_to_2d_input():
    model = create_model("cnn", input_shape=(9, 9), num_outputs=3, channels=[4], seed=0).eval()
    assert model.blocks[0].conv.in_channels == 1
    x = torch.randn(2, 9, 9)
    assert model(x).shape == (2, 3)


def test_cnn_global_pool_modes():
    kw = dict(input_shape=(1, 12, 12), num_outputs=3, channels=[4, 8], seed=0)
    avg, mx, flat = (create_model("cnn", global_pool=g, **kw).eval() for g in ("avg", "max", None))
    x = torch.randn(2, 1, 12, 12)
    feats = flat.blocks[1](flat.blocks[0](x))  # (2, 8, 3, 3)
    assert flat.head.out.in_features == 8 * 3 * 3  # every position of the last map
    assert count_parameters(flat) - count_parameters(avg) == 3 * 8 * (3 * 3 - 1)  # a wider linear head
    assert flat(x).shape == mx(x).shape == (2, 3)
    mx_feats = mx.blocks[1](mx.blocks[0](x))
    assert torch.allclose(mx.head(mx_feats.amax(dim=(2, 3))), mx(x))  # the per-channel maxima
    assert torch.allclose(flat.head(feats.flatten(1)), flat(x))
    with pytest.raises(ConfigError, match="global_pool.*allowed: 'avg', 'max', None"):
        create_model("cnn", global_pool="sum", **kw)


@pytest.mark.parametrize("shape", [(64,), (1, 2, 8, 8)])
def test_cnn_rejects_other_ranks(shape):
    with pytest.raises(ConfigError, match=r"input_shape.*\(C, H, W\) or \(H, W\)"):
        create_model("cnn", input_shape=shape, num_outputs=2)


# --- rnn ---------------------------------------------------------------------------------------

def test_rnn_treats_1d_input_as_a_signal_and_any_length_works():
    model = create_model("rnn", input_shape=(20,), num_outputs=2, hidden_size=5).eval()
    assert model.layers[0].cell.input_size == 1
    assert model(torch.randn(3, 20)).shape == (3, 2)
    assert model(torch.randn(3, 7)).shape == (3, 2)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_rnn_last_step_pooling_uses_each_directions_final_state(cell):
    model = create_model("rnn", input_shape=(6, 3), num_outputs=2, cell=cell, hidden_size=4,
                         bidirectional=True, seed=0).eval()
    rnn = model.layers[0].cell
    assert isinstance(rnn, nn.LSTM if cell == "lstm" else nn.GRU) and rnn.bidirectional
    feats: dict[str, torch.Tensor] = {}
    model.head.register_forward_pre_hook(lambda m, inp: feats.update(h=inp[0]))
    x = torch.randn(5, 6, 3)
    with torch.no_grad():
        model(x)
        _, state = rnn(x)
    h_n = state[0] if cell == "lstm" else state  # (2, N, H)
    torch.testing.assert_close(feats["h"], torch.cat([h_n[0], h_n[1]], dim=1))


def test_rnn_mean_pooling_and_stacking():
    model = create_model("rnn", input_shape=(6, 3), num_outputs=2, layers=3, hidden_size=4, pool="mean",
                         dropout=0.5, seed=0)
    assert len(model.layers) == 3 and model.layers[1].cell.input_size == 4
    feats: dict[str, torch.Tensor] = {}
    model.head.register_forward_pre_hook(lambda m, inp: feats.update(h=inp[0]))
    seen = _capture_block_io(model.layers[2])
    model.eval()
    model(torch.randn(2, 6, 3))
    torch.testing.assert_close(feats["h"], seen["out"].mean(dim=1))


def _reference_recurrence(cell: nn.Module, gain: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A step-by-step LSTM/GRU where every gate is f(c * pre-activation)."""
    W, U = cell.weight_ih_l0, cell.weight_hh_l0
    b, b2 = cell.bias_ih_l0, cell.bias_hh_l0
    N, H = x.shape[0], cell.hidden_size
    h, c = torch.zeros(N, H), torch.zeros(N, H)
    outs = []
    for t in range(x.shape[1]):
        if isinstance(cell, nn.LSTM):
            pre = (gain * (x[:, t] @ W.T + b + h @ U.T + b2)).chunk(4, dim=1)
            i, f, g, o = pre[0].sigmoid(), pre[1].sigmoid(), pre[2].tanh(), pre[3].sigmoid()
            c = f * c + i * g
            h = o * c.tanh()
        else:
            gx, gh = (x[:, t] @ W.T + b).chunk(3, dim=1), (h @ U.T + b2).chunk(3, dim=1)
            cr, cz, cn = gain.chunk(3)
            r = (cr * (gx[0] + gh[0])).sigmoid()
            z = (cz * (gx[1] + gh[1])).sigmoid()
            n = (cn * (gx[2] + r * gh[2])).tanh()
            h = (1 - z) * n + z * h
        outs.append(h)
    return torch.stack(outs, dim=1)  # (N, T, H)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_rnn_adaptive_gain_scales_every_gate_pre_activation(cell):
    model = create_model("rnn", input_shape=(5, 3), num_outputs=2, cell=cell, hidden_size=4, gain="adaptive", seed=0)
    layer = model.layers[0]
    with torch.no_grad():
        layer.gain.uniform_(0.3, 2.5)
        layer.cell.bias_ih_l0.normal_()
        layer.cell.bias_hh_l0.normal_()
        x = torch.randn(2, 5, 3)
        torch.testing.assert_close(layer(x), _reference_recurrence(layer.cell, layer.gain[0], x))


def test_rnn_rejects_images():
    with pytest.raises(ConfigError, match=r"rnn.*\(T, F\)"):
        create_model("rnn", input_shape=(1, 28, 28), num_outputs=10)


# --- transformer -------------------------------------------------------------------------------

def test_sinusoidal_table():
    table = sinusoidal_positions(10, 6)
    pos = torch.arange(10.0)
    torch.testing.assert_close(table[:, 0], torch.sin(pos))
    torch.testing.assert_close(table[:, 1], torch.cos(pos))
    torch.testing.assert_close(table[:, 4], torch.sin(pos / 10000 ** (4 / 6)))
    assert sinusoidal_positions(4, 5).shape == (4, 5)


def test_transformer_without_positions_is_permutation_invariant_and_positions_break_it():
    kw = dict(input_shape=(8, 3), num_outputs=2, layers=1, heads=2, width=8, seed=0)
    x = torch.randn(4, 8, 3)
    perm = torch.randperm(8)
    for positional in (None, "sinusoidal", "learned"):
        model = create_model("transformer", positional=positional, **kw).eval()
        if positional == "learned":
            with torch.no_grad():
                model.pos_embed.normal_()
        same = torch.allclose(model(x), model(x[:, perm]), atol=1e-5)
        assert same == (positional is None), positional


def test_transformer_cls_token_and_sequence_lengths():
    model = create_model("transformer", input_shape=(5,), num_outputs=3, width=8, heads=2, pool="cls").eval()
    assert model.embed.in_features == 1 and model.cls_token.shape == (1, 1, 8)
    assert model(torch.randn(2, 5)).shape == (2, 3)
    assert model(torch.randn(2, 40)).shape == (2, 3)  # sinusoidal positions extend
    learned = create_model("transformer", input_shape=(5, 2), num_outputs=3, width=8, heads=2,
                           positional="learned", pool="cls")
    assert learned.pos_embed.shape == (1, 6, 8)
    assert learned(torch.randn(2, 3, 2)).shape == (2, 3)  # shorter is fine
    with pytest.raises(ConfigError, match="learned positions"):
        learned(torch.randn(2, 6, 2))


def test_transformer_heads_must_divide_width():
    with pytest.raises(ConfigError, match=r"heads: got 5 with width=64.*1, 2, 4, 8, 16, 32, 64"):
        create_model("transformer", input_shape=(5, 2), num_outputs=2, width=64, heads=5)


def test_transformer_ff_width_default_and_attention_heads():
    model = create_model("transformer", input_shape=(5, 2), num_outputs=2, width=12, heads=3)
    assert model.blocks[0].ff_in.out_features == 48 and model.blocks[0].attn.heads == 3
    assert math.prod(model.blocks[0].attn.qkv.weight.shape) == 36 * 12
