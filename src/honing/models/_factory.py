"""The model registry and ``create_model``: sizes from the data, the rest from the user."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from honing._core import ConfigError, Registry
from honing.models._activations import check_kwargs
from honing.models._cell import CellNet
from honing.models._cnn import CNN
from honing.models._common import check_shape
from honing.models._init import InitSpec, initialize, resolve_init
from honing.models._mlp import MLP
from honing.models._mobile import MobileNet
from honing.models._rnn import RNN
from honing.models._snn import SNN
from honing.models._transformer import Transformer

MODELS: Registry[nn.Module] = Registry("model")

# meta: ``inputs`` says which per-sample shapes a model takes; ``example_input_shape`` is one it
# accepts (used by the conformance tests, so a new entry is tested without new test code).
MODELS.register("mlp", MLP, description="multi-layer perceptron on flattened input",
                inputs="any shape (flattened)", example_input_shape=(2, 6))
MODELS.register("cnn", CNN, description="2-D convolutional network with global pooling or a flatten before the head",
                inputs="(C, H, W) or (H, W)", example_input_shape=(2, 9, 7))
MODELS.register("mobilenet", MobileNet, description="image network of efficient blocks (inverted residual, "
                "depthwise-separable, squeeze-excitation), one spec per block", inputs="(C, H, W) or (H, W)",
                example_input_shape=(2, 9, 7))
MODELS.register("cellnet", CellNet, description="stages of a repeated cell, a 4-node DAG whose 6 edges each choose "
                "an operation (the NAS-Bench-201 cell space)", inputs="(C, H, W) or (H, W)", example_input_shape=(2, 9, 7))
MODELS.register("rnn", RNN, description="LSTM/GRU over sequences",
                inputs="(T, F) or (L,)", example_input_shape=(7, 3))
MODELS.register("transformer", Transformer, description="transformer encoder over sequences",
                inputs="(T, F) or (L,)", example_input_shape=(7, 3))

MODELS.register("snn", SNN, description="spiking network of leaky integrate-and-fire neurons (surrogate "
                "gradient, time steps), optional spiking conv layers", inputs="any shape (flattened); (C, H, W) or "
                "(H, W) with channels", example_input_shape=(2, 6))

_SIZE_ARGS = ("input_shape", "num_outputs")


def list_models() -> list[str]:
    return MODELS.names()


def create_model(
    name: str,
    *,
    input_shape: Sequence[int] | int | None = None,
    num_outputs: int | None = None,
    data: Any = None,
    init: InitSpec = "default",
    seed: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model.

    Sizes come from ``data`` (anything with ``input_shape`` and ``num_outputs``, e.g. a honing
    Dataset); ``input_shape`` / ``num_outputs`` given explicitly override it. ``init`` is an
    init scheme name or ``{"name": ..., **params}`` (see :func:`initialize`). ``seed``, if given,
    makes the initial weights reproducible without touching the global RNG. Other keyword
    arguments go to the model; unknown ones raise ConfigError listing those allowed.
    """
    entry = MODELS.entry(name)
    if input_shape is None and data is not None:
        input_shape = getattr(data, "input_shape", None)
    if num_outputs is None and data is not None:
        num_outputs = getattr(data, "num_outputs", None)
    missing = [n for n, v in zip(_SIZE_ARGS, (input_shape, num_outputs)) if v is None]
    if missing:
        raise ConfigError(
            f"model {entry.name!r} needs {' and '.join(missing)}: pass data=<dataset> "
            f"(anything with input_shape and num_outputs) or input_shape=... and num_outputs=..."
        )
    shape = check_shape("input_shape", input_shape)
    check_kwargs(entry.factory, kwargs, what=f"model {entry.name!r}", skip=_SIZE_ARGS)
    resolve_init(init)  # fail on a bad init before building anything
    if seed is None:
        model = entry.factory(shape, num_outputs, **kwargs)
        return initialize(model, init)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = entry.factory(shape, num_outputs, **kwargs)
        return initialize(model, init)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of scalar parameters (only those with ``requires_grad`` unless ``trainable_only=False``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
