"""Dynamic int8, its safetensors round trip, half precision and quantization-aware training."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from honing._core import ConfigError
from honing.compress._quantize import (
    HalfPrecision,
    finish_qat,
    is_qat,
    load_quantized,
    prepare_qat,
    quantize_dynamic,
    quantized_state_dict,
    to_half,
)
from honing.models import create_model


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 3))


def _rnn(cell: str) -> nn.Module:
    torch.manual_seed(0)
    return create_model("rnn", input_shape=(12, 5), num_outputs=4, cell=cell, hidden_size=24, layers=2,
                        bidirectional=True, head_hidden=16).eval()


def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> list[float]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_dynamic_int8_keeps_mlp_outputs_close() -> None:
    import torch.ao.nn.quantized.dynamic as nnqd

    model = _mlp()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 20, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    _fit(model, x, y, 30)
    model.train()
    q = quantize_dynamic(model)
    assert model.training and not q.training  # a copy, in eval mode
    assert all(isinstance(q[i], nnqd.Linear) for i in (0, 2, 4)) and isinstance(model[0], nn.Linear)
    with torch.no_grad():
        ref, out = model.eval()(x), q(x)
    assert (out - ref).abs().max() < 0.02 * ref.abs().max()
    assert (out.argmax(1) == ref.argmax(1)).float().mean() >= 0.95
    w = q[0].weight()  # per output channel, symmetric, scale = max|w| / 127
    assert w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric) and w.q_per_channel_axis() == 0
    assert torch.allclose(w.q_per_channel_scales().float(), model[0].weight.abs().amax(1) / 127)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_dynamic_int8_recurrent_layers(cell: str) -> None:
    import torch.ao.nn.quantized.dynamic as nnqd

    model = _rnn(cell)
    q = quantize_dynamic(model, layers=[cell])
    expected = nnqd.LSTM if cell == "lstm" else nnqd.GRU
    assert all(isinstance(layer.cell, expected) for layer in q.layers)
    assert isinstance(q.head.out, nn.Linear)  # only the recurrent layers were asked for
    x = torch.randn(64, 12, 5, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref, out = model(x), q(x)
    assert 0 < (out - ref).abs().max() < 0.02 * ref.abs().max()


def test_recurrent_cell_with_gain_stays_float() -> None:
    torch.manual_seed(0)
    model = create_model("rnn", input_shape=(6, 3), num_outputs=2, hidden_size=8, gain="adaptive").eval()
    q = quantize_dynamic(model)
    assert isinstance(q.layers[0].cell, nn.LSTM)  # its forward reads the float weights
    x = torch.randn(8, 6, 3)
    assert torch.allclose(q(x), model(x), atol=0.05)


def test_safetensors_round_trip_is_exact_and_small(tmp_path) -> None:
    torch.manual_seed(0)
    big = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
    q = quantize_dynamic(big)
    state = quantized_state_dict(q)
    assert all(isinstance(v, torch.Tensor) and not v.is_quantized for v in state.values())
    assert state["0.weight.int8"].dtype == torch.int8 and state["0.bias"].dtype == torch.float32
    save_file(state, tmp_path / "int8.safetensors")
    save_file(big.state_dict(), tmp_path / "float.safetensors")
    ratio = (tmp_path / "int8.safetensors").stat().st_size / (tmp_path / "float.safetensors").stat().st_size
    assert ratio < 0.3

    torch.manual_seed(123)  # a fresh model with other weights
    fresh = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
    loaded = load_quantized(fresh, load_file(tmp_path / "int8.safetensors"))
    x = torch.randn(32, 784)
    assert torch.equal(loaded(x), q(x))
    assert not torch.equal(fresh[0].weight, big[0].weight)  # the given model is left unchanged


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_safetensors_round_trip_recurrent_and_buffers(tmp_path, cell: str) -> None:
    torch.manual_seed(0)
    model = create_model("rnn", input_shape=(12, 5), num_outputs=4, cell=cell, hidden_size=16, head_hidden=8)
    model.head.register_buffer("shift", torch.randn(4))  # any other float tensor travels as is
    q = quantize_dynamic(model.eval())
    save_file(quantized_state_dict(q), tmp_path / "q.safetensors")
    torch.manual_seed(5)
    fresh = create_model("rnn", input_shape=(12, 5), num_outputs=4, cell=cell, hidden_size=16, head_hidden=8)
    fresh.head.register_buffer("shift", torch.zeros(4))
    loaded = load_quantized(fresh, load_file(tmp_path / "q.safetensors"))
    assert torch.equal(loaded.head.shift, model.head.shift)
    x = torch.randn(10, 12, 5)
    assert torch.equal(loaded(x), q(x))


def test_load_quantized_rejects_other_layers_and_shapes() -> None:
    state = quantized_state_dict(quantize_dynamic(_mlp()))
    with pytest.raises(ConfigError, match="int8 weights"):
        load_quantized(_rnn("lstm"), state)
    other = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 5))
    with pytest.raises(ConfigError, match="does not fit"):
        load_quantized(other, state)


def test_bad_layer_names_and_nothing_to_quantize() -> None:
    with pytest.raises(ConfigError, match=r"invalid layers: got \['conv'\]; allowed: .*'linear', 'lstm', 'gru'"):
        quantize_dynamic(_mlp(), layers=["conv"])
    with pytest.raises(ConfigError, match="nothing to quantize"):
        quantize_dynamic(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()))
    with pytest.raises(ConfigError, match="nothing to quantize"):
        quantize_dynamic(_mlp(), layers=["gru"])


@pytest.mark.parametrize("dtype,torch_dtype", [("fp16", torch.float16), ("bf16", torch.bfloat16)])
def test_half_precision(tmp_path, dtype: str, torch_dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    model = create_model("cnn", input_shape=(1, 12, 12), num_outputs=4, channels=[8, 16], batch_norm=True).eval()
    half = to_half(model, dtype)
    assert isinstance(half, HalfPrecision) and not half.training
    state = half.state_dict()
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch_dtype}
    assert next(model.parameters()).dtype == torch.float32  # the original is untouched
    x = torch.randn(16, 1, 12, 12)
    with torch.no_grad():
        ref, out = model(x), half(x)
    assert out.dtype == torch.float32
    tol = 0.01 if dtype == "fp16" else 0.05
    assert (out - ref).abs().max() < tol * ref.abs().max()

    save_file(state, tmp_path / "half.safetensors")
    save_file(model.state_dict(), tmp_path / "float.safetensors")
    ratio = (tmp_path / "half.safetensors").stat().st_size / (tmp_path / "float.safetensors").stat().st_size
    assert ratio < 0.65
    torch.manual_seed(9)
    fresh = HalfPrecision(create_model("cnn", input_shape=(1, 12, 12), num_outputs=4, channels=[8, 16],
                                       batch_norm=True), dtype=dtype).eval()
    fresh.load_state_dict(load_file(tmp_path / "half.safetensors"))
    with torch.no_grad():
        assert torch.equal(fresh(x), out)
    with pytest.raises(ConfigError, match="invalid dtype"):
        to_half(model, "fp8")


def _assert_on_int8_grid(weight: torch.Tensor) -> None:
    """QAT's grid: the 7-bit one (-64 .. 64) that the ONNX static path stores."""
    scale = weight.abs().flatten(1).amax(1) / 64  # (out,)
    k = weight / scale.view(-1, *[1] * (weight.dim() - 1))
    assert (k - k.round()).abs().max() < 1e-4
    assert k.abs().max() <= 64 + 1e-4


def test_qat_trains_and_leaves_int8_weights() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    before = [p.detach().clone() for p in model.parameters()]
    g = torch.Generator().manual_seed(3)
    x = torch.randn(64, 1, 6, 6, generator=g)
    y = (x[:, 0, :3].mean((1, 2)) > x[:, 0, 3:].mean((1, 2))).long()  # top half brighter than bottom
    assert prepare_qat(model) is model and is_qat(model)
    assert "0.parametrizations.weight.original" in model.state_dict()
    w0 = model[0].weight
    _assert_on_int8_grid(w0.detach())  # the layer sees rounded weights
    assert not torch.equal(w0, model[0].parametrizations.weight.original)
    losses = _fit(model.train(), x, y, 40)
    assert losses[-1] < 0.7 * losses[0]
    assert not torch.equal(model[0].parametrizations.weight.original, before[0])  # gradients reach the floats
    assert bool(model[3].input_quant.seen) and model[3].input_quant.low < model[3].input_quant.high

    model.eval()
    with torch.no_grad():
        qat_out = model(x)
    finish_qat(model)
    assert not is_qat(model)
    assert set(model.state_dict()) == {"0.weight", "0.bias", "3.weight", "3.bias"}
    assert not model[0]._forward_pre_hooks and not model[3]._forward_pre_hooks
    for layer in (model[0], model[3]):
        _assert_on_int8_grid(layer.weight.detach())
    with torch.no_grad():  # weights kept; only the input rounding is gone
        out = model(x)
    assert (out.argmax(1) == qat_out.argmax(1)).float().mean() >= 0.95
    assert (out - qat_out).abs().max() < 0.15 * qat_out.abs().max()

    # the ONNX static conversion (quantize_onnx, reduce_range) stores weights on this same grid
    from onnx import TensorProto
    from onnxruntime.quantization.quant_utils import get_qmin_qmax_for_qType

    qmin, qmax = get_qmin_qmax_for_qType(TensorProto.INT8, reduce_range=True, symmetric=True)
    assert (int(qmin), int(qmax)) == (-64, 64)


def test_qat_weights_only_and_errors() -> None:
    model = prepare_qat(_mlp(), activations=False)
    assert is_qat(model) and not hasattr(model[0], "input_quant") and not model[0]._forward_pre_hooks
    with pytest.raises(ConfigError, match="already prepared"):
        prepare_qat(model)
    finish_qat(model)
    assert not is_qat(model) and isinstance(model[0].weight, nn.Parameter)
    with pytest.raises(ConfigError, match="nothing to quantize"):
        prepare_qat(nn.Sequential(nn.ReLU()))


def test_fake_quant_input_is_frozen_in_eval() -> None:
    model = prepare_qat(nn.Sequential(nn.Linear(4, 2)))
    fq = model[0].input_quant
    x = torch.randn(8, 4)
    model.eval()(x)
    assert not bool(fq.seen)  # eval before any training batch: untouched
    model.train()(x)
    low, high = fq.low.item(), fq.high.item()
    assert low == pytest.approx(x.min().item()) and high == pytest.approx(x.max().item())
    model.eval()(x * 10)
    assert (fq.low.item(), fq.high.item()) == (low, high)
    model.train()(x * 10)
    assert fq.high.item() == pytest.approx(high + 0.01 * (10 * x.max().item() - high))


def test_round_trip_of_a_per_tensor_model_from_torch_ao() -> None:
    import warnings

    import torch.ao.quantization as tq

    model = _mlp()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = tq.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)  # torch's default: per tensor
    state = quantized_state_dict(q)
    assert state["0.weight.scale"].dim() == 0 and "0.weight.axis" not in state
    loaded = load_quantized(_mlp(seed=4), state)
    assert loaded[0].weight().qscheme() == torch.per_tensor_affine  # the saved scheme, not ours
    x = torch.randn(16, 20)
    assert torch.equal(loaded(x), q(x))
