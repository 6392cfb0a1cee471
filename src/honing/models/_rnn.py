"""Recurrent network (LSTM or GRU) over (T, F) sequences, pooled to one vector per sequence.

LSTM: Hochreiter and Schmidhuber, "Long short-term memory", Neural Computation 9(8), 1997.
GRU: Cho et al., "Learning phrase representations using RNN encoder-decoder", EMNLP 2014.

Adaptive gain on a recurrent layer multiplies every gate pre-activation by a learnable gain per
gate unit: ``sigma(c * (W x + U h + b))``. It is computed exactly by scaling the rows of
``W``, ``U`` and ``b`` by ``c`` before calling the fused cell (for the GRU candidate,
``c * (W x + b + r * (U h + b'))`` also scales row-wise). The LSTM's output ``tanh(c_t)`` has no gain.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call

from honing._core import check_choice, check_int
from honing.models._activations import ActivationSpec, GainSpec
from honing.models._common import Head, check_activation, check_dropout, check_sizes, wrong_rank

_GATES = {"lstm": 4, "gru": 3}


class RecurrentLayer(nn.Module):
    """One (bi)directional LSTM/GRU layer, with an optional adaptive gain per gate unit.

    An adaptive gain is the parameter ``gain`` of shape (directions, gates * hidden_size).
    """

    def __init__(self, input_size: int, hidden_size: int, *, cell: str, bidirectional: bool, gain: GainSpec) -> None:
        super().__init__()
        rnn_cls = nn.LSTM if cell == "lstm" else nn.GRU
        self.cell = rnn_cls(input_size, hidden_size, batch_first=True, bidirectional=bidirectional)
        self.directions = 2 if bidirectional else 1
        self.fixed_gain = float(gain) if isinstance(gain, (int, float)) else None
        if gain == "adaptive":
            self.gain: nn.Parameter | None = nn.Parameter(torch.ones(self.directions, _GATES[cell] * hidden_size))
        else:
            self.gain = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gain is None and self.fixed_gain is None:
            out, _ = self.cell(x)  # (N, T, directions * H)
            return out
        scaled = {}
        for d, suffix in enumerate(("", "_reverse")[: self.directions]):
            g = self.gain[d] if self.gain is not None else torch.full((1,), self.fixed_gain, dtype=x.dtype, device=x.device)
            for name in ("weight_ih_l0", "weight_hh_l0"):
                scaled[name + suffix] = getattr(self.cell, name + suffix) * g[:, None]  # row i times g_i
            for name in ("bias_ih_l0", "bias_hh_l0"):
                scaled[name + suffix] = getattr(self.cell, name + suffix) * g
        out, _ = functional_call(self.cell, scaled, (x,))  # (N, T, directions * H)
        return out


class RNN(nn.Module):
    """Stacked LSTM/GRU layers over (T, F) input; (L,) input is L steps of 1 feature.

    Args:
        cell: "lstm" or "gru". layers: number of stacked layers. hidden_size: units per direction.
        bidirectional: also read the sequence backwards (outputs are concatenated).
        dropout: between stacked layers and before the head.
        pool: "last" (forward direction's last step, backward direction's first step) or "mean"
            over time.
        head_hidden, activation: optional hidden layer of the head and its activation.
        gain: None, "adaptive" (a learnable gain per gate unit of every layer, and per neuron of
            the head's hidden layer) or a fixed number for all of them.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        *,
        cell: str = "lstm",
        layers: int = 1,
        hidden_size: int = 64,
        bidirectional: bool = False,
        dropout: float = 0.0,
        pool: str = "last",
        head_hidden: int | None = None,
        activation: ActivationSpec = "relu",
        gain: GainSpec = None,
    ) -> None:
        super().__init__()
        self.input_shape, self.num_outputs = check_sizes(input_shape, num_outputs)
        if len(self.input_shape) not in (1, 2):
            raise wrong_rank(
                "rnn", self.input_shape, "(T, F) sequences or (L,) signals",
                "For images use 'cnn'; for flat features use 'mlp'.",
            )
        self._add_feature = len(self.input_shape) == 1
        features = 1 if self._add_feature else self.input_shape[1]
        check_choice("cell", cell, tuple(_GATES))
        layers = int(check_int("layers", layers, low=1))  # type: ignore[arg-type]
        hidden_size = int(check_int("hidden_size", hidden_size, low=1))  # type: ignore[arg-type]
        dropout = check_dropout(dropout)
        self.pool = check_choice("pool", pool, ("last", "mean"))
        gain = check_activation(activation, gain)
        check_int("head_hidden", head_hidden, low=1, allow_none=True)
        self.hidden_size = hidden_size
        self.bidirectional = bool(bidirectional)
        out_size = hidden_size * (2 if self.bidirectional else 1)
        self.layers = nn.ModuleList(
            RecurrentLayer(
                features if i == 0 else out_size, hidden_size, cell=cell,
                bidirectional=self.bidirectional, gain=gain,
            )
            for i in range(layers)
        )
        self.drop = nn.Dropout(dropout)
        self.head = Head(out_size, self.num_outputs, hidden=head_hidden, activation=activation, gain=gain, dropout=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._add_feature:
            x = x.unsqueeze(-1)  # (N, L) -> (N, L, 1)
        for i, layer in enumerate(self.layers):
            if i > 0:
                x = self.drop(x)
            x = layer(x)  # (N, T, D * H)
        if self.pool == "mean":
            h = x.mean(dim=1)  # (N, D * H)
        elif self.bidirectional:
            H = self.hidden_size
            h = torch.cat([x[:, -1, :H], x[:, 0, H:]], dim=1)  # each direction's final state: (N, 2H)
        else:
            h = x[:, -1]  # (N, H)
        return self.head(self.drop(h))  # (N, num_outputs)

    def layer_groups(self) -> list[list[str]]:
        return [[f"layers.{i}"] for i in range(len(self.layers))] + [["head"]]
