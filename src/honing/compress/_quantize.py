"""Post-training quantization (dynamic int8, half precision) and quantization-aware training.

``quantize_dynamic`` stores the weights of Linear/LSTM/GRU layers in int8 and quantizes their
inputs on the fly at run time (PyTorch's ``torch.ao`` dynamic quantization, fbgemm kernels):
about 2x faster Linear layers on CPU and a 4x smaller file, with no calibration data. Weights are
per output channel, symmetric, on the grid ``scale * k`` with ``k`` in [-127, 127] and
``scale = max|w| / 127`` for each row. ``prepare_qat`` trains on the 7-bit grid (``max|w| / 64``)
that ``honing.export.quantize_onnx`` stores by default (onnxruntime's ``reduce_range``, which
CPUs without VNNI run without saturating), so a QAT model loses nothing more when it is converted.

Why ``torch.ao`` although it is deprecated in torch 2.13: its successor torchao measured slower
than float32 on CPU in eager mode here (MLP 784-512-256-10 at batch 256: fp32 2.5 ms, torch.ao int8
1.2 ms, torchao int8 2.8 ms) and has no dynamic LSTM/GRU. The deprecation warnings are silenced
only around the ``torch.ao`` calls.

A quantized model holds packed weights that ``safetensors`` cannot store; ``quantized_state_dict``
gives plain tensors (int8 values, scales, zero points, float biases and every other float tensor)
and ``load_quantized`` rebuilds the exact same model from them and a freshly built float model.

``to_half`` keeps a float16/bfloat16 copy whose forward takes and returns float32.

Quantization-aware training: ``prepare_qat`` makes every Linear/Conv layer see its weight rounded
to the int8 grid above (recomputed each forward from the current weight) and, optionally, its
input rounded to a uint8 grid from running min/max; gradients pass straight through the rounding
to the float weights, so fine-tuning learns weights that survive int8. ``finish_qat`` leaves the
rounded weights in place and removes the fake quantization.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from honing._core import ConfigError, check_choice, check_number

LAYER_TYPES: dict[str, type[nn.Module]] = {"linear": nn.Linear, "lstm": nn.LSTM, "gru": nn.GRU}
HALF_DTYPES: dict[str, torch.dtype] = {"fp16": torch.float16, "bf16": torch.bfloat16}
_QMAX = 127  # symmetric int8 grid: -127 .. 127 (PyTorch's dynamic int8 weights)
# QAT trains on the grid the ONNX static path stores: honing.export.quantize_onnx keeps weights on
# onnxruntime's 7-bit grid (reduce_range: -64 .. 64, scale max|w| / 64), which AVX2-only CPUs
# run without int16 saturation
_QAT_QMAX = 64
_EPS = torch.finfo(torch.float32).eps  # smallest scale, as torch.ao's observers clamp it
_GROUP_KEYS = ("int8", "scale", "zero_point", "axis")  # "<weight>.<key>" in quantized_state_dict


# ---------------------------------------------------------------------------------------------
# dynamic int8


@contextmanager
def _quiet_torch_ao() -> Iterator[None]:
    """Silence torch.ao's deprecation warnings (module and quantized-tensor creation) only here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning, message=r".*quantiz.*deprecated")
        yield


def _check_layers(layers: Sequence[str]) -> tuple[str, ...]:
    if isinstance(layers, str):
        layers = (layers,)
    bad = [name for name in layers if name not in LAYER_TYPES]
    if bad or not layers:
        raise ConfigError(f"invalid layers: got {list(layers)!r}; allowed: a non-empty list of {', '.join(map(repr, LAYER_TYPES))}")
    return tuple(dict.fromkeys(layers))


def quantizable_layers(model: nn.Module, layers: Sequence[str] = ("linear", "lstm", "gru")) -> list[str]:
    """Names of the modules ``quantize_dynamic`` replaces: exactly nn.Linear / nn.LSTM / nn.GRU.

    Subclasses (e.g. the output projection of nn.MultiheadAttention) are left alone, and so is the
    cell of a honing RNN layer with a gain, whose forward reads the float weights itself.
    """
    from honing.models import RecurrentLayer

    types = tuple(LAYER_TYPES[name] for name in _check_layers(layers))
    modules = dict(model.named_modules())
    names = []
    for name, module in modules.items():
        if type(module) not in types or not name:
            continue
        parent = modules[name.rpartition(".")[0]]
        if isinstance(parent, RecurrentLayer) and (parent.gain is not None or parent.fixed_gain is not None):
            continue
        names.append(name)
    return names


def _qconfig() -> Any:
    from torch.ao.quantization import PerChannelMinMaxObserver, PlaceholderObserver, QConfig

    return QConfig(
        activation=PlaceholderObserver.with_args(dtype=torch.quint8, quant_min=0, quant_max=255, is_dynamic=True),
        weight=PerChannelMinMaxObserver.with_args(
            dtype=torch.qint8, qscheme=torch.per_channel_symmetric, quant_min=-_QMAX, quant_max=_QMAX
        ),
    )


def _quantize_in_place(model: nn.Module, names: list[str]) -> nn.Module:
    import torch.ao.quantization as tq

    qconfig = _qconfig()
    with _quiet_torch_ao():
        return tq.quantize_dynamic(model, {name: qconfig for name in names}, dtype=torch.qint8, inplace=True)


def quantize_dynamic(model: nn.Module, *, layers: Sequence[str] = ("linear", "lstm", "gru")) -> nn.Module:
    """A copy of ``model`` in eval mode with int8 weights in its Linear/LSTM/GRU layers.

    Activations are quantized at run time per batch (uint8, range measured on the batch), so no
    calibration data is needed. Weights: int8 per output channel, symmetric, in [-127, 127].
    """
    names = quantizable_layers(model, layers)
    if not names:
        raise ConfigError("nothing to quantize: the model has no Linear/LSTM/GRU layer "
                          f"(looked for {', '.join(_check_layers(layers))})")
    qmodel = copy.deepcopy(model).eval()
    return _quantize_in_place(qmodel, names)


def _quantized_modules(qmodel: nn.Module) -> list[tuple[str, nn.Module]]:
    import torch.ao.nn.quantized.dynamic as nnqd

    return [(n, m) for n, m in qmodel.named_modules() if isinstance(m, (nnqd.Linear, nnqd.LSTM, nnqd.GRU))]


def _weights_and_biases(module: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor | None]]:
    """(quantized weights, float biases) of a dynamic quantized Linear/LSTM/GRU, by float name."""
    import torch.ao.nn.quantized.dynamic as nnqd

    if isinstance(module, nnqd.Linear):
        weight, bias = module._weight_bias()
        return {"weight": weight}, {"bias": bias}
    wb = module._weight_bias()
    return dict(wb["weight"]), dict(wb["bias"])


def quantized_state_dict(qmodel: nn.Module) -> dict[str, torch.Tensor]:
    """Plain tensors for ``safetensors.torch.save_file``: no packed weights, no pickle.

    For each int8 weight ``<layer>.<weight>``: ``.int8`` (the int8 values), ``.scale`` (float64),
    ``.zero_point`` (int64) and, when per channel, ``.axis`` (a 0-d int64). Biases and every
    other tensor of the model keep their float names (``fc.bias``, ``norm.running_mean``, ...).
    """
    out: dict[str, torch.Tensor] = {}
    quantized = _quantized_modules(qmodel)
    if not quantized:
        raise ConfigError("invalid qmodel: it has no dynamic int8 layer; allowed: a model from quantize_dynamic")
    prefixes = tuple(name + "." for name, _ in quantized)
    for name, module in quantized:
        weights, biases = _weights_and_biases(module)
        for wname, w in weights.items():
            key = f"{name}.{wname}"
            out[f"{key}.int8"] = w.int_repr().contiguous()
            if w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
                out[f"{key}.scale"] = w.q_per_channel_scales().to(torch.float64).contiguous()
                out[f"{key}.zero_point"] = w.q_per_channel_zero_points().to(torch.int64).contiguous()
                out[f"{key}.axis"] = torch.tensor(w.q_per_channel_axis(), dtype=torch.int64)
            else:
                out[f"{key}.scale"] = torch.tensor(w.q_scale(), dtype=torch.float64)
                out[f"{key}.zero_point"] = torch.tensor(w.q_zero_point(), dtype=torch.int64)
        for bname, b in biases.items():
            if b is not None:
                out[f"{name}.{bname}"] = b.detach().clone().contiguous()
    for key, value in qmodel.state_dict().items():
        if key.startswith(prefixes) or not isinstance(value, torch.Tensor):
            continue
        out[key] = value.detach().clone().contiguous()
    return out


def _rebuild(state: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    values = state[f"{key}.int8"]
    try:
        scale, zero_point = state[f"{key}.scale"], state[f"{key}.zero_point"]
    except KeyError as e:
        raise ConfigError(f"invalid state: {key}.int8 has no {e.args[0]}; allowed: a dict from quantized_state_dict") from None
    with _quiet_torch_ao():
        if f"{key}.axis" in state:
            axis = int(state[f"{key}.axis"])
            return torch._make_per_channel_quantized_tensor(values, scale.to(torch.float64), zero_point.to(torch.int64), axis)
        return torch._make_per_tensor_quantized_tensor(values, float(scale), int(zero_point))


def load_quantized(
    float_model: nn.Module, state: dict[str, torch.Tensor], *, layers: Sequence[str] = ("linear", "lstm", "gru")
) -> nn.Module:
    """The quantized model saved as ``state`` (from ``quantized_state_dict``), bit for bit.

    ``float_model`` is a freshly built model of the same architecture (left unchanged); ``layers``
    must be those given to ``quantize_dynamic``. The float tensors and the dequantized weights are
    loaded into a copy, which is quantized; then each int8 weight is replaced by the saved int8
    values and scales, so the outputs equal those of the model that was saved.
    """
    import torch.ao.nn.quantized.dynamic as nnqd

    names = quantizable_layers(float_model, layers)
    bases = {k[: -len(".int8")] for k in state if k.endswith(".int8")}
    qweights = {base: _rebuild(state, base) for base in bases}
    grouped = {f"{base}.{part}" for base in bases for part in _GROUP_KEYS}
    float_state = {k: v for k, v in state.items() if k not in grouped}
    float_state.update({base: q.dequantize() for base, q in qweights.items()})
    model = copy.deepcopy(float_model).eval()
    expected = {f"{name}.{p}" for name in names for p, _ in model.get_submodule(name).named_parameters() if p.startswith("weight")}
    if expected != bases:
        raise ConfigError(
            f"invalid state: its int8 weights {sorted(bases)[:8]} differ from the layers {list(layers)} of this model "
            f"({sorted(expected)[:8]}); allowed: the state of this architecture quantized with the same layers"
        )
    try:
        model.load_state_dict(float_state, strict=True)
    except RuntimeError as e:  # "Error(s) in loading state_dict for X:" then one line per problem
        detail = "; ".join(line.strip() for line in str(e).splitlines()[1:3] if line.strip()) or str(e)
        raise ConfigError(f"invalid state: it does not fit the model: {detail}; "
                          "allowed: the state of a model of this architecture") from None
    _quantize_in_place(model, names)
    with _quiet_torch_ao():
        for name, module in _quantized_modules(model):
            weights, biases = _weights_and_biases(module)
            if isinstance(module, nnqd.Linear):
                module.set_weight_bias(qweights[f"{name}.weight"], biases["bias"])
            else:  # LSTM / GRU, by the names of nn.LSTM's weights and biases
                module.set_weight_bias({**{k: qweights[f"{name}.{k}"] for k in weights}, **biases})
    return model


# ---------------------------------------------------------------------------------------------
# half precision


def _cast_tensors(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, (list, tuple)):
        return type(value)(_cast_tensors(v, dtype) for v in value)
    if isinstance(value, dict):
        return {k: _cast_tensors(v, dtype) for k, v in value.items()}
    return value


class HalfPrecision(nn.Module):
    """``model`` cast to float16 or bfloat16 (a copy, in ``.model``), used with float32 data.

    ``forward`` casts floating inputs to the half dtype and floating outputs back to float32;
    integer inputs (token ids) pass unchanged. The state dict holds half tensors under ``model.``;
    to load one, build the float model, wrap it, load: ``HalfPrecision(build(), dtype="bf16")
    .load_state_dict(state)``. Layers run in half precision on CPU only where torch has kernels.
    """

    def __init__(self, model: nn.Module, *, dtype: str = "fp16") -> None:
        super().__init__()
        check_choice("dtype", dtype, tuple(HALF_DTYPES))
        self.half_dtype = dtype
        self.model = copy.deepcopy(model).to(HALF_DTYPES[dtype])

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        dtype = HALF_DTYPES[self.half_dtype]
        out = self.model(*_cast_tensors(args, dtype), **_cast_tensors(kwargs, dtype))
        return _cast_tensors(out, torch.float32)


def to_half(model: nn.Module, dtype: str = "fp16") -> HalfPrecision:
    """A float16 ("fp16") or bfloat16 ("bf16") copy of ``model`` in eval mode; see HalfPrecision."""
    return HalfPrecision(model, dtype=dtype).eval()


# ---------------------------------------------------------------------------------------------
# quantization-aware training

_QAT_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


class FakeQuantWeight(nn.Module):
    """Parametrization: the weight rounded per output channel to the 7-bit grid of the ONNX static
    path, ``scale = max|w_row| / 64`` (``_QAT_QMAX``).

    ``torch.fake_quantize_per_channel_affine`` (not deprecated in torch 2.13) returns
    ``round(w / scale) * scale`` with a straight-through gradient (1 inside the int8 range, and
    with this scale every value is inside), so the optimizer updates the float weights.
    """

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        amax = weight.detach().abs().flatten(1).amax(dim=1)  # (out_channels,)
        scale = (amax / _QAT_QMAX).clamp_min(_EPS).float()
        zero = torch.zeros_like(scale, dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -_QAT_QMAX, _QAT_QMAX)


class FakeQuantInput(nn.Module):
    """Per-tensor asymmetric uint8 fake quantization with a running min/max of the inputs.

    In training mode each batch moves ``low``/``high`` towards its min/max by ``momentum`` (the
    first batch sets them); in eval mode they stay fixed. Until a training batch has been seen the
    input passes unchanged. The range always includes 0, so zero padding stays exact.
    """

    def __init__(self, *, momentum: float = 0.01) -> None:
        super().__init__()
        self.momentum = check_number("momentum", momentum, low=0.0, high=1.0, low_inclusive=False)
        self.register_buffer("low", torch.tensor(0.0))
        self.register_buffer("high", torch.tensor(0.0))
        self.register_buffer("seen", torch.tensor(False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                low, high = x.detach().min().float(), x.detach().max().float()
                if bool(self.seen):
                    self.low.lerp_(low, self.momentum)
                    self.high.lerp_(high, self.momentum)
                else:
                    self.low.copy_(low)
                    self.high.copy_(high)
                    self.seen.fill_(True)
        if not bool(self.seen):
            return x
        low, high = self.low.clamp(max=0.0), self.high.clamp(min=0.0)
        scale = ((high - low) / 255).clamp_min(_EPS)
        zero_point = (-low / scale).round().clamp(0, 255).to(torch.int32)
        return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, 255)


def _quantize_input(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Forward pre-hook: pass the layer's first input through its ``input_quant``."""
    return (module.input_quant(args[0]), *args[1:])


def _has_weight_fq(module: nn.Module) -> bool:
    return parametrize.is_parametrized(module, "weight") and any(
        isinstance(p, FakeQuantWeight) for p in module.parametrizations["weight"]
    )


def is_qat(model: nn.Module) -> bool:
    """Whether ``prepare_qat`` fake quantization is in the model (and ``finish_qat`` not yet called)."""
    return any(_has_weight_fq(m) or isinstance(getattr(m, "input_quant", None), FakeQuantInput) for m in model.modules())


def prepare_qat(model: nn.Module, *, activations: bool = True) -> nn.Module:
    """Fake-quantize the weights (and, with ``activations``, inputs) of every Linear/Conv layer, in place.

    Returns ``model``. The weight of each layer becomes a parametrization (its state dict key is
    ``<layer>.parametrizations.weight.original``, the same Parameter object as before, so an
    optimizer made earlier still updates it). With ``activations``, each layer gets a
    ``FakeQuantInput`` submodule ``input_quant`` called by a forward pre-hook.
    """
    if is_qat(model):
        raise ConfigError("invalid model: it is already prepared for quantization-aware training; "
                          "allowed: a model without fake quantization (call finish_qat first)")
    layers = [m for m in model.modules() if isinstance(m, _QAT_TYPES)]
    if not layers:
        raise ConfigError("nothing to quantize: the model has no Linear or Conv layer")
    for layer in layers:
        parametrize.register_parametrization(layer, "weight", FakeQuantWeight())
        if activations:
            layer.input_quant = FakeQuantInput()
            layer.register_forward_pre_hook(_quantize_input)
    return model


def finish_qat(model: nn.Module) -> nn.Module:
    """Keep the int8-representable weights, remove the fake quantization and the hooks (in place)."""
    for module in model.modules():
        if _has_weight_fq(module):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
        if isinstance(getattr(module, "input_quant", None), FakeQuantInput):
            for key in [k for k, hook in module._forward_pre_hooks.items() if hook is _quantize_input]:
                del module._forward_pre_hooks[key]
            del module.input_quant
    return model
