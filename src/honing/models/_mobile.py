"""``mobilenet``: a small image network of efficient blocks, one block spec per layer, so an
architecture search can choose each layer's operation, kernel, width, expansion, stride and
squeeze-excitation.

Blocks (each conv followed by batch norm):

- ``ir``: inverted residual with a linear bottleneck (Sandler et al., "MobileNetV2", CVPR
  2018): 1x1 expansion by ``expand`` -> activation -> k x k depthwise (``stride``) ->
  activation -> [squeeze-excitation] -> 1x1 projection, no activation after it.
- ``dsconv``: depthwise-separable (Howard et al., "MobileNets", 2017): k x k depthwise ->
  activation -> [squeeze-excitation] -> 1x1 pointwise -> activation.
- ``conv``: a plain k x k convolution -> activation.

Squeeze-excitation (Hu et al., CVPR 2018; the placement of MobileNetV3, Howard et al., ICCV
2019): the channels' global averages -> 1x1 conv to a quarter of the channels -> ReLU -> 1x1
conv -> sigmoid, scaling each channel. A block whose stride is 1 and whose input and output
channels match adds its input back (``skip``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from honing._core import ConfigError, check_choice, check_int
from honing.models._activations import ActivationSpec, GainSpec, create_activation
from honing.models._common import Head, check_activation, check_dropout, check_sizes, wrong_rank

MOBILE_OPS = OPS = ("ir", "dsconv", "conv")
BLOCK_KEYS = ("op", "out", "kernel", "expand", "stride", "se", "skip")
# a small default for 28 x 28 images: 28 -> 14 -> 7
DEFAULT_BLOCKS: tuple[dict[str, Any], ...] = (
    {"op": "dsconv", "out": 16, "kernel": 3},
    {"op": "ir", "out": 24, "kernel": 3, "expand": 4, "stride": 2},
    {"op": "ir", "out": 24, "kernel": 3, "expand": 4},
    {"op": "ir", "out": 40, "kernel": 5, "expand": 4, "stride": 2, "se": True},
    {"op": "ir", "out": 40, "kernel": 5, "expand": 4, "se": True},
)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, *, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(8, channels // reduction)
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.expand = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)  # (N, C, 1, 1)
        s = torch.sigmoid(self.expand(torch.relu(self.reduce(s))))
        return x * s


def _conv_bn(cin: int, cout: int, k: int, *, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]


class MobileBlock(nn.Module):
    """One block of ``OPS`` (see the module docstring); ``x + block(x)`` when ``residual``."""

    def __init__(self, cin: int, *, op: str, out: int, kernel: int = 3, expand: int = 1, stride: int = 1,
                 se: bool = False, skip: bool = True, activation: ActivationSpec = "relu", gain: GainSpec = None) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        act = lambda c: create_activation(activation, c, gain, dim=1)  # noqa: E731
        if op == "ir":
            mid = cin * expand
            if expand != 1:
                layers += [*_conv_bn(cin, mid, 1), act(mid)]
            layers += [*_conv_bn(mid, mid, kernel, stride=stride, groups=mid), act(mid)]
            if se:
                layers.append(SqueezeExcite(mid))
            layers += _conv_bn(mid, out, 1)  # linear bottleneck: no activation
        elif op == "dsconv":
            layers += [*_conv_bn(cin, cin, kernel, stride=stride, groups=cin), act(cin)]
            if se:
                layers.append(SqueezeExcite(cin))
            layers += [*_conv_bn(cin, out, 1), act(out)]
        else:
            layers += [*_conv_bn(cin, out, kernel, stride=stride), act(out)]
            if se:
                layers.append(SqueezeExcite(out))
        self.body = nn.Sequential(*layers)
        self.residual = bool(skip) and stride == 1 and cin == out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)  # (N, out, H / stride, W / stride)
        return x + y if self.residual else y


def check_block(i: int, spec: Any) -> dict[str, Any]:
    """A block spec with its defaults, or a ConfigError naming ``blocks[i]``."""
    where = f"blocks[{i}]"
    if not isinstance(spec, Mapping):
        raise ConfigError(f"invalid {where}: got {spec!r}; allowed: a mapping with keys {', '.join(BLOCK_KEYS)}")
    unknown = sorted(set(spec) - set(BLOCK_KEYS))
    if unknown:
        raise ConfigError(f"invalid {where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(BLOCK_KEYS)}")
    out = {"op": "ir", "kernel": 3, "expand": 1 if spec.get("op", "ir") != "ir" else 4, "stride": 1, "se": False,
           "skip": True, **spec}
    check_choice(f"{where}.op", out["op"], OPS)
    if "out" not in spec:
        raise ConfigError(f"invalid {where}: missing out (the block's output channels)")
    check_int(f"{where}.out", out["out"], low=1)
    check_int(f"{where}.kernel", out["kernel"], low=1)
    if out["kernel"] % 2 == 0:
        raise ConfigError(f"invalid {where}.kernel: got {out['kernel']}; allowed: an odd size (3, 5, 7)")
    check_int(f"{where}.expand", out["expand"], low=1, high=16)
    check_choice(f"{where}.stride", out["stride"], (1, 2))
    for key in ("se", "skip"):
        if not isinstance(out[key], bool):
            raise ConfigError(f"invalid {where}.{key}: got {out[key]!r}; allowed: true or false")
    return out


class MobileNet(nn.Module):
    """Stem (3x3 conv) -> ``blocks`` -> 1x1 conv to ``last`` channels -> global average pool ->
    dropout -> linear head. Input (C, H, W), or (H, W) which gets a channel axis; any size.

    Args:
        blocks: one mapping per block: ``op`` (ir, dsconv, conv), ``out`` channels, ``kernel``
            (odd), ``expand`` (ir), ``stride`` (1 or 2), ``se`` (squeeze-excitation), ``skip``
            (the residual where shapes allow). Default: five blocks for 28 x 28 images.
        stem: channels of the stem convolution; stem_stride: 1 (small images keep their pixels) or 2
            (every later layer works on a quarter of the positions: faster).
        last: channels of the final 1x1 convolution (None: none).
        width: a multiplier of every block's channels (and the stem's, and last's).
        activation: relu (default), relu6, hardswish, silu, ...; gain: None, "adaptive" or a number.
        global_pool: "avg" (any input size) or None (the last feature map flattened into the head,
            which keeps where features are: better on small images; inputs of the built size).
        head_hidden: width of a hidden layer in the head (None: linear).
    """

    def __init__(self, input_shape: Sequence[int], num_outputs: int, *,
                 blocks: Sequence[Mapping[str, Any]] = DEFAULT_BLOCKS, stem: int = 16, stem_stride: int = 1,
                 last: int | None = 128,
                 width: float = 1.0, activation: ActivationSpec = "relu", gain: GainSpec = None,
                 dropout: float = 0.1, global_pool: str | None = "avg", head_hidden: int | None = None) -> None:
        super().__init__()
        self.input_shape, self.num_outputs = check_sizes(input_shape, num_outputs)
        if len(self.input_shape) not in (2, 3):
            raise wrong_rank("mobilenet", self.input_shape, "(C, H, W) or (H, W)",
                             "For flat features use 'mlp'; for sequences use 'rnn' or 'transformer'.")
        if not isinstance(blocks, Sequence) or isinstance(blocks, (str, bytes)) or not blocks:
            raise ConfigError(f"invalid blocks: got {blocks!r}; allowed: a non-empty list of block mappings")
        specs = [check_block(i, b) for i, b in enumerate(blocks)]
        if not (isinstance(width, (int, float)) and 0 < width <= 8):
            raise ConfigError(f"invalid width: got {width!r}; allowed: a number in (0, 8]")
        check_int("stem", stem, low=1)
        check_choice("stem_stride", stem_stride, (1, 2))
        check_int("last", last, low=1, allow_none=True)
        dropout = check_dropout(dropout)
        gain = check_activation(activation, gain)
        check_choice("global_pool", global_pool, ("avg", None))
        check_int("head_hidden", head_hidden, low=1, allow_none=True)
        self.global_pool = global_pool
        scale = lambda c: max(1, int(round(c * width)))  # noqa: E731
        self._add_channel = len(self.input_shape) == 2
        cin = 1 if self._add_channel else self.input_shape[0]
        self.stem = nn.Sequential(*_conv_bn(cin, scale(stem), 3, stride=stem_stride), create_activation(activation, scale(stem), gain, dim=1))
        cin = scale(stem)
        layers = []
        for spec in specs:
            layers.append(MobileBlock(cin, **{**spec, "out": scale(spec["out"])}, activation=activation, gain=gain))
            cin = scale(spec["out"])
        self.blocks = nn.ModuleList(layers)
        if last is not None:
            self.last: nn.Module | None = nn.Sequential(*_conv_bn(cin, scale(last), 1),
                                                        create_activation(activation, scale(last), gain, dim=1))
            cin = scale(last)
        else:
            self.last = None
        if global_pool is None:  # the head takes the whole last feature map: find its size
            with torch.no_grad():
                probe = torch.zeros(1, 1 if self._add_channel else self.input_shape[0], *self.input_shape[-2:])
                was = self.training
                self.eval()
                probe = self._features(probe)
                self.train(was)
            cin = probe.numel()
        self.head = Head(cin, self.num_outputs, hidden=head_hidden, activation=activation, gain=gain, dropout=dropout)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (N, stem, H / stem_stride, W / stem_stride)
        for block in self.blocks:
            x = block(x)  # (N, C_i, H_i, W_i)
        return x if self.last is None else self.last(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._add_channel:
            x = x.unsqueeze(1)  # (N, H, W) -> (N, 1, H, W)
        x = self._features(x)
        x = x.mean(dim=(2, 3)) if self.global_pool == "avg" else x.flatten(1)  # (N, C) or (N, C * H' * W')
        return self.head(x)  # (N, num_outputs)

    def layer_groups(self) -> list[list[str]]:
        return [["stem"]] + [[f"blocks.{i}"] for i in range(len(self.blocks))] + [["last", "head"]]
