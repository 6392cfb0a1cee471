"""Convolutional network for (C, H, W) images, with global average pooling before the head.

Depthwise-separable convolutions (Howard et al., "MobileNets", 2017; Chollet, "Xception",
CVPR 2017) replace a k x k convolution by a per-channel k x k convolution followed by a 1 x 1
convolution, with about ``1/out + 1/k^2`` of the weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from honing._core import check_choice, check_int
from honing.models._activations import ActivationSpec, GainSpec, create_activation
from honing.models._common import Head, check_activation, check_bn, check_dropout, check_sizes, check_widths, wrong_rank


class ConvBlock(nn.Module):
    """Conv (plain or depthwise-separable, 'same' padding) -> [BN] -> activation -> [pool] -> dropout."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int,
        depthwise_separable: bool,
        batch_norm: bool,
        bn_momentum: float,
        bn_eps: float,
        activation: ActivationSpec,
        gain: GainSpec,
        pool: str | None,
        dropout: float,
    ) -> None:
        super().__init__()
        pad = kernel_size // 2
        bias = not batch_norm
        if depthwise_separable:
            self.depthwise = nn.Conv2d(in_channels, in_channels, kernel_size, padding=pad, groups=in_channels, bias=False)
            self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=bias)  # pointwise
        else:
            self.depthwise = None
            self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=pad, bias=bias)
        self.norm = nn.BatchNorm2d(out_channels, momentum=bn_momentum, eps=bn_eps) if batch_norm else None
        self.act = create_activation(activation, out_channels, gain, dim=1)
        # ceil_mode keeps a 1-pixel map at 1 pixel, so inputs of any size >= 1 x 1 work
        if pool == "max":
            self.pool: nn.Module | None = nn.MaxPool2d(2, ceil_mode=True)
        elif pool == "avg":
            self.pool = nn.AvgPool2d(2, ceil_mode=True)
        else:
            self.pool = None
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.depthwise is not None:
            x = self.depthwise(x)  # (N, C_in, H, W)
        x = self.conv(x)  # (N, C_out, H, W)
        if self.norm is not None:
            x = self.norm(x)
        x = self.act(x)
        if self.pool is not None:
            x = self.pool(x)  # (N, C_out, ceil(H/2), ceil(W/2))
        return self.drop(x)


class CNN(nn.Module):
    """Stack of conv blocks, global pooling (or a flatten), then a (optionally hidden) linear head.

    Input (C, H, W), or (H, W) which gets a channel axis. With global pooling any H, W work at
    run time; with ``global_pool=None`` the head sees every position of the last feature map
    (flattened), so inputs must have the H, W the model was built for.

    Args:
        channels: output channels of each conv block. kernel_size: odd sizes keep H, W.
        pool: "max", "avg" or None, a 2 x 2 pooling after each block.
        depthwise_separable: depthwise k x k + pointwise 1 x 1 convolutions.
        head_hidden: width of a hidden layer in the head (None: linear head).
        global_pool: "avg" or "max" over the last feature map, or None to flatten it (more
            parameters in the head, and the positions of features kept: better on small images).
        gain: None, "adaptive" (a learnable gain per channel) or a number.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        *,
        channels: Sequence[int] = (32, 64),
        kernel_size: int = 3,
        pool: str | None = "max",
        batch_norm: bool = False,
        bn_momentum: float = 0.1,
        bn_eps: float = 1e-5,
        dropout: float = 0.0,
        depthwise_separable: bool = False,
        activation: ActivationSpec = "relu",
        head_hidden: int | None = None,
        gain: GainSpec = None,
        global_pool: str | None = "avg",
    ) -> None:
        super().__init__()
        self.input_shape, self.num_outputs = check_sizes(input_shape, num_outputs)
        if len(self.input_shape) not in (2, 3):
            raise wrong_rank(
                "cnn", self.input_shape, "(C, H, W) or (H, W)",
                "For flat features use 'mlp'; for sequences or 1-D signals use 'rnn' or 'transformer'.",
            )
        self._add_channel = len(self.input_shape) == 2
        widths = check_widths("channels", channels, allow_empty=False)
        kernel_size = int(check_int("kernel_size", kernel_size, low=1))  # type: ignore[arg-type]
        check_choice("pool", pool, ("max", "avg", None))
        dropout = check_dropout(dropout)
        bn_momentum, bn_eps = check_bn(bn_momentum, bn_eps)
        gain = check_activation(activation, gain)
        check_int("head_hidden", head_hidden, low=1, allow_none=True)
        check_choice("global_pool", global_pool, ("avg", "max", None))
        self.global_pool = global_pool
        in_channels = 1 if self._add_channel else self.input_shape[0]
        blocks = []
        for width in widths:
            blocks.append(ConvBlock(
                in_channels, width, kernel_size=kernel_size, depthwise_separable=bool(depthwise_separable),
                batch_norm=bool(batch_norm), bn_momentum=bn_momentum, bn_eps=bn_eps,
                activation=activation, gain=gain, pool=pool, dropout=dropout,
            ))
            in_channels = width
        self.blocks = nn.ModuleList(blocks)
        if global_pool is None:  # the head takes the whole last feature map: find its size
            with torch.no_grad():
                probe = torch.zeros(1, 1 if self._add_channel else self.input_shape[0], *self.input_shape[-2:])
                for block in self.blocks:
                    probe = block.eval()(probe)
                self.blocks.train()
            in_channels = probe.numel()
        self.head = Head(in_channels, self.num_outputs, hidden=head_hidden, activation=activation, gain=gain, dropout=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._add_channel:
            x = x.unsqueeze(1)  # (N, H, W) -> (N, 1, H, W)
        for block in self.blocks:
            x = block(x)  # (N, C_i, H_i, W_i)
        if self.global_pool == "avg":
            x = x.mean(dim=(2, 3))  # (N, C_last)
        elif self.global_pool == "max":
            x = x.amax(dim=(2, 3))  # (N, C_last)
        else:
            x = x.flatten(1)  # (N, C_last * H_last * W_last)
        return self.head(x)  # (N, num_outputs)

    def layer_groups(self) -> list[list[str]]:
        return [[f"blocks.{i}"] for i in range(len(self.blocks))] + [["head"]]
