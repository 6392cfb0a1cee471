"""The recipe's ``nas`` section: search the architecture of the recipe's model before anything
else trains.

::

    model: {name: mobilenet}
    nas:
      space: mobile            # mobile (layer-wise mobilenet blocks) | cell (cellnet's cell DAG)
      blocks: 5                # mobile: layers (each op, kernel, expansion, width, squeeze-excitation)
      widths: [8, 16, 24, 32, 48]
      strategy: evolution      # random | evolution | local | reinforce | tpe
      budget: 30               # architectures trained
      epochs: 3                # epochs per candidate (null: training.epochs)
      objectives: [val_accuracy, latency_ms]   # a Pareto front; the run keeps its knee

The chosen architecture replaces the model's ``blocks`` (or ``cell``); the search of
``tune:`` (if any), the final training and everything after use it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from honing.recipe._sections import ModelSection, Section


class NasSection(Section):
    """Architecture search over the model's blocks or cell (docs/nas.md)."""

    space: Literal["mobile", "cell"] = "mobile"
    """mobile: a layer-wise space over mobilenet blocks; cell: cellnet's cell (6 edges, an operation each)"""
    blocks: Annotated[int, Field(ge=1, le=16)] = 5
    """mobile: the number of layers (each but the first and the stride-2 ones may be left out)"""
    ops: list[str] | None = None
    """mobile: ir, dsconv, conv (default: all); cell: none, skip, conv1x1, conv3x3, avgpool3x3 (default: all)"""
    kernels: list[Annotated[int, Field(ge=1, le=11)]] = [3, 5]
    """mobile: kernel sizes (odd)"""
    expand: list[Annotated[int, Field(ge=1, le=16)]] = [2, 4, 6]
    """mobile: expansion ratios of inverted residual blocks"""
    widths: list[Annotated[int, Field(ge=1, le=4096)]] = [8, 16, 24, 32, 48]
    """mobile: output channels of a block"""
    se: list[bool] = [False, True]
    """mobile: squeeze-excitation off / on"""
    strides: list[Annotated[int, Field(ge=0, le=15)]] | None = None
    """mobile: the layers (counted from 0) that halve the image, never left out; null: the second and fourth (those there are)"""
    heads: list[Literal["avg", "flatten"]] = ["avg"]
    """mobile: the head's input, searched when both: avg (global average pooling) or flatten (the last map, as cnn's global_pool: null)"""
    hidden: list[Annotated[int, Field(ge=1, le=65_536)] | None] | None = None
    """mobile: widths of a hidden layer in the head to choose from (null in the list: a linear head); null: the model's head_hidden"""
    strategy: Literal["random", "evolution", "local", "reinforce", "tpe"] = "evolution"
    """the search strategy (honing.nas)"""
    budget: Annotated[int, Field(ge=1, le=100_000)] = 30
    """architectures trained (an architecture proposed again is not trained again)"""
    epochs: Annotated[int, Field(ge=1)] | None = 3
    """training epochs of each candidate (null: training.epochs)"""
    fraction: Annotated[float, Field(gt=0, le=1)] = 1.0
    """the share of the training rows each candidate trains on (the same seeded rows for all; validation rows: all)"""
    timeout: Annotated[float, Field(gt=0)] | None = None
    """seconds after which no new candidate starts (the search keeps what it found)"""
    objectives: list[Literal["val_accuracy", "val_loss", "val_f1_macro", "val_balanced_accuracy", "val_mse",
                             "val_mae", "val_r2", "params", "flops", "latency_ms", "latency_ratio"]] = ["val_accuracy"]
    """the first is a validation metric; add params, flops (one row), latency_ms (1 row, CPU) and/or latency_ratio (latency_ms as a multiple of nas.reference's, timed side by side) for a Pareto front"""
    reference: ModelSection | None = None
    """with latency_ratio: the network to time each candidate beside (a model section, e.g. the one in production), so a limit such as {latency_ratio: 0.5} holds on a machine whose speed drifts"""
    latency_runtime: Literal["torch", "onnxruntime"] = "torch"
    """where latency_ms and latency_ratio are measured: torch (eager PyTorch, as honing predict and serve run a model folder) or onnxruntime (the exported ONNX graph, as a served ONNX variant runs; needs honing[compress])"""
    select: Literal["best", "knee"] = "knee"
    """with several objectives: knee (the front's point nearest the ideal) or best (on the first objective)"""
    limits: dict[Literal["params", "flops", "latency_ms", "latency_ratio"], Annotated[float, Field(gt=0)]] | None = None
    """a deployment budget, e.g. {latency_ms: 0.12}: the most accurate candidate within every limit is chosen (each limit must be an objective); a proposal over a limit is rejected before it trains"""
    early_stop: bool = True
    """stop a candidate at an epoch where it is below the median of the earlier candidates there (after 5 of them)"""
    promote: Annotated[int, Field(ge=0, le=20)] | Literal["auto"] = 0
    """after the search, the best this many candidates (on the validation metric; within the limits) train again as the final model will (all the training rows, training.epochs) and the best of them then is chosen: a short proxy training can misrank them (0: the proxy's best; auto: as many as fit in what the search left of nas.timeout, at most 20, none when fewer than 2 fit; with several objectives, only with limits)"""
