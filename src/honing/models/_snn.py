"""A spiking neural network of leaky integrate-and-fire neurons, trained by backpropagation
through time with a surrogate gradient (snntorch's ``Leaky`` neurons, the ``snn`` extra).

Each of ``steps`` time steps feeds the encoded input through the layers: a layer's synaptic
current ``I = W s`` (``s``: the previous layer's spikes) charges its neurons' membranes
``u[t] = beta * u[t-1] + I[t] - theta * s_out[t-1]`` (reset by subtraction), and a neuron
spikes when ``u`` crosses its threshold ``theta``. The spike is a step function; its gradient is
replaced by a surrogate: ``atan`` (``alpha / 2 / (1 + (pi / 2 * alpha * u)^2)``, Fang et al.
2021; ``alpha`` = ``slope``, 2 by default) or ``fast_sigmoid`` (``1 / (slope * |u| + 1)^2``,
Zenke and Ganguli 2018; ``slope`` 25 by default), with ``u`` the membrane minus the threshold.
The readout layer does not spike: the output is its current averaged over the time steps.

Membranes start at zero for every forward call, so each batch starts from a rest state (no
state crosses batches). Input encodings over the ``steps`` steps:

* ``direct``: the input itself is the first layer's current at every step (deterministic);
* ``rate``: at each step a spike with probability ``sigmoid(x)`` per input (Bernoulli, drawn
  anew on every call, in training and evaluation alike);
* ``latency``: one spike per input, earlier for larger ``sigmoid(x)`` (deterministic).

``spike_stats(x)`` runs a batch and reports each spiking layer's spike rate and the synaptic
operations per sample (an accumulate per spike per outgoing synapse, plus the first layer's
multiply-accumulates under ``direct`` input) against the multiply-accumulates of the same
network run once without time steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from honing._core import ConfigError, check_choice, check_int, check_number
from honing.models._activations import (
    ActivationSpec,
    AdaptiveGain,
    FixedGain,
    GainSpec,
    check_gain,
    create_activation,
)
from honing.models._common import check_dropout, check_sizes, check_widths, wrong_rank

ENCODINGS = ("direct", "rate", "latency")
SURROGATES = ("atan", "fast_sigmoid")
_DEFAULT_SLOPE = {"atan": 2.0, "fast_sigmoid": 25.0}


def _snntorch() -> Any:
    try:
        import snntorch
        from snntorch import surrogate
    except ImportError:  # pragma: no cover - the extra is in the test lock
        raise ConfigError("the snn model needs snntorch: pip install 'honing[snn]'") from None
    return snntorch, surrogate


def surrogate_gradient(name: str, slope: float) -> Any:
    """snntorch's spike function with the named surrogate gradient."""
    _, surrogate = _snntorch()
    return surrogate.atan(alpha=slope) if name == "atan" else surrogate.fast_sigmoid(slope=slope)


class SpikingLayer(nn.Module):
    """A synapse (linear or 3x3-style convolution) -> [activation] -> LIF neurons -> [pool] -> dropout."""

    def __init__(self, synapse: nn.Module, *, width: int, beta: float, threshold: float, learn_beta: bool,
                 learn_threshold: bool, spike_grad: Any, activation: ActivationSpec | None, gain: GainSpec,
                 pool: bool, dropout: float, conv: bool) -> None:
        super().__init__()
        snntorch, _ = _snntorch()
        self.synapse = synapse
        if activation is not None:
            self.act: nn.Module | None = create_activation(activation, width, gain, dim=1)
        elif gain == "adaptive":  # a learnable gain per neuron on its current
            self.act = AdaptiveGain(nn.Identity(), width, dim=1)
        else:
            self.act = None if gain is None else FixedGain(nn.Identity(), float(gain))
        self.neurons = snntorch.Leaky(beta=beta, threshold=threshold, learn_beta=learn_beta,
                                      learn_threshold=learn_threshold, spike_grad=spike_grad,
                                      reset_mechanism="subtract")
        self.pool = nn.MaxPool2d(2, ceil_mode=True) if pool else None
        self.drop = nn.Dropout(dropout)
        self.conv = conv

    def forward(self, x: torch.Tensor, mem: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(the spikes passed on, the membranes, the neurons' own spikes before pooling)."""
        current = self.synapse(x)  # (N, width) or (N, C, H, W)
        if self.act is not None:
            current = self.act(current)
        if mem is None:
            mem = torch.zeros_like(current)
        spikes, mem = self.neurons(current, mem)
        out = self.pool(spikes) if self.pool is not None else spikes  # (N, C, H/2, W/2) after pooling
        return self.drop(out), mem, spikes


class SNN(nn.Module):
    """Spiking network: optional spiking conv layers (``channels``; images), then spiking fully
    connected layers (``hidden``), then a non-spiking readout averaged over ``steps`` time steps.

    Args:
        hidden: widths of the spiking fully connected layers. channels: spiking 3x3 conv layers
            (each followed by 2x2 max pooling) before them; [] for none.
        steps: time steps T. encoding: direct, rate or latency (module docstring).
        beta: membrane decay per step in (0, 1); learn_beta: learn it (per layer).
        threshold: firing threshold; learn_threshold: learn it (per layer).
        surrogate: atan (default) or fast_sigmoid; slope: its sharpness (None: 2 for atan,
            25 for fast_sigmoid).
        activation: an optional function of the synaptic current before the neurons (None: the
            current as it is); gain: a gain on that current (a number, or "adaptive": learned
            per neuron, starting at 1). dropout: on each layer's spikes.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        *,
        hidden: Sequence[int] = (128,),
        channels: Sequence[int] = (),
        steps: int = 8,
        encoding: str = "direct",
        beta: float = 0.9,
        threshold: float = 1.0,
        learn_beta: bool = False,
        learn_threshold: bool = False,
        surrogate: str = "atan",
        slope: float | None = None,
        activation: ActivationSpec | None = None,
        gain: GainSpec = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.input_shape, self.num_outputs = check_sizes(input_shape, num_outputs)
        widths = check_widths("hidden", hidden)
        chans = check_widths("channels", channels)
        self.steps = check_int("steps", steps, low=1, high=1000)
        self.encoding = check_choice("encoding", encoding, ENCODINGS)
        beta = check_number("beta", beta, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
        threshold = check_number("threshold", threshold, low=0.0, low_inclusive=False)
        surrogate = check_choice("surrogate", surrogate, SURROGATES)
        slope = _DEFAULT_SLOPE[surrogate] if slope is None else check_number("slope", slope, low=0.0,
                                                                              low_inclusive=False)
        gain = check_gain(gain)
        if activation is not None:
            create_activation(activation)
        dropout = check_dropout(dropout)
        spike = surrogate_gradient(surrogate, float(slope))
        common = dict(beta=beta, threshold=threshold, learn_beta=bool(learn_beta),
                      learn_threshold=bool(learn_threshold), spike_grad=spike, activation=activation, gain=gain,
                      dropout=dropout)
        layers: list[SpikingLayer] = []
        shape = self.input_shape
        if chans:
            if len(shape) == 2:
                shape = (1, *shape)
            if len(shape) != 3:
                raise wrong_rank("snn", self.input_shape, "(C, H, W) or (H, W) with channels",
                                 "Use channels: [] for other inputs.")
            c, h, w = shape
            for out in chans:
                layers.append(SpikingLayer(nn.Conv2d(c, out, 3, padding=1), width=out, pool=True, conv=True, **common))
                c, h, w = out, math.ceil(h / 2), math.ceil(w / 2)
            features = c * h * w
        else:
            features = math.prod(shape)
        self._conv_shape = shape
        for width in widths:
            layers.append(SpikingLayer(nn.Linear(features, width), width=width, pool=False, conv=False, **common))
            features = width
        self.layers = nn.ModuleList(layers)
        self.head = nn.Linear(features, self.num_outputs)

    # --- forward --------------------------------------------------------------------------------

    def _encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The input at each time step: ``steps`` tensors shaped like ``x``."""
        if self.encoding == "direct":
            return [x] * self.steps
        p = torch.sigmoid(x)
        if self.encoding == "rate":
            return [torch.bernoulli(p) for _ in range(self.steps)]
        fire = torch.round((1.0 - p) * (self.steps - 1))  # the step of each input's one spike
        return [(fire == t).to(x.dtype) for t in range(self.steps)]

    def _run(self, x: torch.Tensor, record: list[list[torch.Tensor]] | None = None) -> torch.Tensor:
        if self._conv_shape != self.input_shape:
            x = x.reshape(x.shape[0], *self._conv_shape)
        if not any(layer.conv for layer in self.layers):
            x = x.flatten(1)  # (N, features)
        mems: list[torch.Tensor | None] = [None] * len(self.layers)
        total = None
        for x_t in self._encode(x):
            h = x_t
            for i, layer in enumerate(self.layers):
                if not layer.conv and h.dim() > 2:
                    h = h.flatten(1)
                h, mems[i], spikes = layer(h, mems[i])
                if record is not None:  # (N,) this step: the neurons' spikes, the spikes passed on
                    record[0][i] = record[0][i] + spikes.detach().flatten(1).sum(1)
                    record[1][i] = record[1][i] + h.detach().flatten(1).sum(1)
            out = self.head(h.flatten(1))  # (N, num_outputs)
            total = out if total is None else total + out
        assert total is not None
        return total / self.steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x)

    def layer_groups(self) -> list[list[str]]:
        return [[f"layers.{i}"] for i in range(len(self.layers))] + [["head"]]

    # --- spikes and operations -----------------------------------------------------------------

    @torch.no_grad()
    def spike_stats(self, x: torch.Tensor) -> dict[str, Any]:
        """Spike rate per spiking layer (spikes per neuron per step) and operations per sample:
        the synaptic operations of this network (an accumulate per spike passed on per outgoing
        synapse; multiply-accumulates for the first layer's direct input) against the
        multiply-accumulates of the same layers run once as a plain network."""
        was = self.training
        self.eval()
        try:
            zeros = [torch.zeros(x.shape[0], device=x.device) for _ in self.layers]
            record = [list(zeros), list(zeros)]
            self._run(x, record)
        finally:
            self.train(was)
        n = max(1, x.shape[0])
        macs = self._macs()
        if self.encoding == "direct":
            synops = float(macs[0]) * self.steps
        else:  # input spikes, each to the first synapse's fan-out
            spikes_in = sum(float(s.sum()) for s in self._encode(x)) / n
            synops = spikes_in * macs[0] / math.prod(self._conv_shape)
        rates = {}
        for i, shape in enumerate(self._shapes()):
            rates[f"layers.{i}"] = float(record[0][i].sum()) / n / (math.prod(shape) * self.steps)
            synops += float(record[1][i].sum()) / n * self._fanout(i)
        total = float(sum(macs))
        return {"time_steps": self.steps, "encoding": self.encoding, "spike_rate": rates,
                "synaptic_ops": synops, "ann_macs": total, "ops_ratio": synops / total if total else None}

    def _shapes(self) -> list[tuple[int, ...]]:
        """Each spiking layer's output shape per sample, before pooling."""
        out, shape = [], self._conv_shape
        for layer in self.layers:
            if layer.conv:
                c, h, w = layer.synapse.out_channels, shape[-2], shape[-1]
                out.append((c, h, w))
                shape = (c, math.ceil(h / 2), math.ceil(w / 2))
            else:
                out.append((layer.synapse.out_features,))
                shape = (layer.synapse.out_features,)
        return out

    def _macs(self) -> list[int]:
        """Multiply-accumulates of each synapse (the layers', then the head's) in one pass."""
        out = []
        for layer, shape in zip(self.layers, self._shapes()):
            syn = layer.synapse
            if layer.conv:
                out.append(syn.in_channels * syn.out_channels * 9 * shape[1] * shape[2])
            else:
                out.append(syn.in_features * syn.out_features)
        out.append(self.head.in_features * self.head.out_features)
        return out

    def _fanout(self, i: int) -> float:
        """Accumulates one spike passed on by layer ``i`` triggers in the next synapse."""
        nxt = self.layers[i + 1].synapse if i + 1 < len(self.layers) else self.head
        if isinstance(nxt, nn.Conv2d):
            return float(nxt.out_channels * 9)  # a 3x3 kernel per output channel (borders aside)
        return float(nxt.out_features)
