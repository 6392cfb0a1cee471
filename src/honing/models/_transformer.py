"""Transformer encoder over (T, F) sequences: project to ``width``, add positions, encode, pool.

Vaswani et al., "Attention is all you need", NeurIPS 2017. Blocks are pre-norm
(Xiong et al., "On layer normalization in the transformer architecture", ICML 2020):
``x + attn(ln(x))`` then ``x + ff(ln(x))``, with a final LayerNorm before pooling.
The ``cls`` pooling reads a learned token prepended to the sequence (Devlin et al., BERT, 2019).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from honing._core import ConfigError, check_choice, check_int
from honing.models._activations import ActivationSpec, GainSpec, create_activation
from honing.models._common import Head, check_activation, check_dropout, check_sizes, wrong_rank


def sinusoidal_positions(length: int, width: int) -> torch.Tensor:
    """The fixed sine/cosine table of Vaswani et al.: (length, width)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]  # (T, 1)
    freq = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))  # (ceil(W/2),)
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: width // 2])
    return table


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, T, W = x.shape
        q, k, v = self.qkv(x).split(W, dim=2)  # 3 x (N, T, W)
        q, k, v = (t.view(N, T, self.heads, W // self.heads).transpose(1, 2) for t in (q, k, v))  # (N, heads, T, W/heads)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(N, T, W)  # (N, T, W)
        return self.proj(y)


class EncoderBlock(nn.Module):
    def __init__(self, width: int, heads: int, ff_width: int, *, dropout: float, activation: ActivationSpec, gain: GainSpec) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads, dropout)
        self.norm2 = nn.LayerNorm(width)
        self.ff_in = nn.Linear(width, ff_width)
        self.act = create_activation(activation, ff_width, gain)
        self.ff_out = nn.Linear(ff_width, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x)))  # (N, T, W)
        h = self.act(self.ff_in(self.norm2(x)))  # (N, T, ff_width)
        return x + self.drop(self.ff_out(self.drop(h)))  # (N, T, W)


class Transformer(nn.Module):
    """Transformer encoder classifier/regressor; (L,) input is L tokens of 1 feature.

    Args:
        layers: encoder blocks. heads: attention heads (must divide width). width: d_model.
        ff_width: hidden width of the feed-forward part (None: 4 * width).
        positional: "sinusoidal", "learned" (at most T positions, T from input_shape) or None.
        pool: "mean" over tokens or "cls" (a learned token prepended to the sequence).
        activation / gain: of the feed-forward hidden layer (and of the head's hidden layer).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        *,
        layers: int = 2,
        heads: int = 4,
        width: int = 64,
        ff_width: int | None = None,
        dropout: float = 0.1,
        positional: str | None = "sinusoidal",
        pool: str = "mean",
        activation: ActivationSpec = "gelu",
        head_hidden: int | None = None,
        gain: GainSpec = None,
    ) -> None:
        super().__init__()
        self.input_shape, self.num_outputs = check_sizes(input_shape, num_outputs)
        if len(self.input_shape) not in (1, 2):
            raise wrong_rank(
                "transformer", self.input_shape, "(T, F) sequences or (L,) signals",
                "For images use 'cnn'; for flat features use 'mlp'.",
            )
        self._add_feature = len(self.input_shape) == 1
        self.max_len = self.input_shape[0]
        features = 1 if self._add_feature else self.input_shape[1]
        layers = int(check_int("layers", layers, low=1))  # type: ignore[arg-type]
        width = int(check_int("width", width, low=1))  # type: ignore[arg-type]
        heads = int(check_int("heads", heads, low=1))  # type: ignore[arg-type]
        if width % heads != 0:
            divisors = [d for d in range(1, width + 1) if width % d == 0]
            raise ConfigError(
                f"invalid heads: got {heads} with width={width}; heads must divide width, "
                f"allowed: {', '.join(map(str, divisors))} (or change width)"
            )
        ff_width = int(check_int("ff_width", ff_width if ff_width is not None else 4 * width, low=1))  # type: ignore[arg-type]
        dropout = check_dropout(dropout)
        self.positional = check_choice("positional", positional, ("sinusoidal", "learned", None))
        self.pool = check_choice("pool", pool, ("mean", "cls"))
        gain = check_activation(activation, gain)
        check_int("head_hidden", head_hidden, low=1, allow_none=True)
        self.width = width

        self.embed = nn.Linear(features, width)
        tokens = self.max_len + (1 if self.pool == "cls" else 0)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width)) if self.pool == "cls" else None
        if self.positional == "learned":
            self.pos_embed: nn.Parameter | None = nn.Parameter(torch.randn(1, tokens, width) * 0.02)
        else:
            self.pos_embed = None
        if self.positional == "sinusoidal":
            self.register_buffer("pos_table", sinusoidal_positions(tokens, width), persistent=False)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            EncoderBlock(width, heads, ff_width, dropout=dropout, activation=activation, gain=gain) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(width)
        self.head = Head(width, self.num_outputs, hidden=head_hidden, activation=activation, gain=gain, dropout=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._add_feature:
            x = x.unsqueeze(-1)  # (N, L) -> (N, L, 1)
        x = self.embed(x)  # (N, T, W)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (N, 1 + T, W)
        T = x.shape[1]
        if self.pos_embed is not None:
            if T > self.pos_embed.shape[1]:
                raise ConfigError(
                    f"sequence of {x.shape[1] - (self.cls_token is not None)} steps is longer than the "
                    f"{self.max_len} learned positions; use positional='sinusoidal' for longer inputs"
                )
            x = x + self.pos_embed[:, :T]
        elif self.positional == "sinusoidal":
            table = self.pos_table if T <= self.pos_table.shape[0] else sinusoidal_positions(T, self.width).to(x)
            x = x + table[:T]  # (N, T, W)
        x = self.drop(x)
        for block in self.blocks:
            x = block(x)  # (N, T, W)
        x = self.norm(x)
        h = x[:, 0] if self.cls_token is not None else x.mean(dim=1)  # (N, W)
        return self.head(h)  # (N, num_outputs)

    def layer_groups(self) -> list[list[str]]:
        first = ["embed"] + (["cls_token"] if self.cls_token is not None else []) + (
            ["pos_embed"] if self.pos_embed is not None else []
        )
        return [first] + [[f"blocks.{i}"] for i in range(len(self.blocks))] + [["norm", "head"]]
