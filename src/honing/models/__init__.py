"""Models by name: ``create_model("cnn", data=ds, channels=[32, 64])``.

Every model maps a batch ``(N, *input_shape)`` to ``(N, num_outputs)`` and has
``layer_groups() -> list[list[str]]``: parameter-name prefixes grouped from input to output. A
parameter ``name`` belongs to prefix ``p`` when ``name == p`` or ``name.startswith(p + ".")``;
every parameter belongs to exactly one prefix.
"""

from __future__ import annotations

from honing.models._activations import (
    ACTIVATIONS,
    AdaptiveGain,
    FixedGain,
    create_activation,
    list_activations,
)
from honing.models._cell import CELL_EDGES, CELL_OPS, Cell, CellNet
from honing.models._cnn import CNN
from honing.models._factory import MODELS, count_parameters, create_model, list_models
from honing.models._fuse import fold_batch_norm
from honing.models._init import INIT_SCHEMES, initialize, list_init_schemes
from honing.models._mlp import MLP
from honing.models._mobile import MOBILE_OPS, MobileBlock, MobileNet, SqueezeExcite
from honing.models._rnn import RNN, RecurrentLayer
from honing.models._snn import SNN
from honing.models._transformer import Transformer

__all__ = [
    "ACTIVATIONS",
    "AdaptiveGain",
    "CELL_EDGES",
    "CELL_OPS",
    "CNN",
    "Cell",
    "CellNet",
    "FixedGain",
    "INIT_SCHEMES",
    "MLP",
    "MOBILE_OPS",
    "MODELS",
    "MobileBlock",
    "MobileNet",
    "RNN",
    "RecurrentLayer",
    "SNN",
    "SqueezeExcite",
    "Transformer",
    "count_parameters",
    "create_activation",
    "create_model",
    "fold_batch_norm",
    "initialize",
    "list_activations",
    "list_init_schemes",
    "list_models",
]
