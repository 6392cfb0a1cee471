"""Optimizers by name: the ``OPTIMIZERS`` registry, ``OptimInfo`` metadata and ``create_optimizer``."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from honing._core import ConfigError, Registry, check_number
from honing.optim._admm import ADMM
from honing.optim._bpag import BPAG
from honing.optim._param_groups import no_decay_names, param_groups_layer_decay, param_groups_weight_decay
from honing.optim._proximal import ProximalGradient


@dataclass(frozen=True)
class OptimInfo:
    """What ``create_optimizer`` needs to know about an optimizer besides its class.

    Attributes:
        name: registry name.
        cls: the ``torch.optim.Optimizer`` subclass.
        description: one line.
        default_lr: lr used when ``create_optimizer`` gets none.
        needs_closure: ``step`` must be given a closure that re-evaluates the loss (LBFGS).
        single_group: supports one param group only (no weight-decay split, no layer decay).
        defaults: keyword arguments added before the user's (``momentum=0.9`` for ``momentum``).
        no_decay_flag: param-group key set to False on the no-decay group (biases, norms, gains)
            when built from a model (``penalize`` for proximal, ``constrain`` for ADMM).
        has_weight_decay: accepts ``weight_decay``.
    """

    name: str
    cls: type[torch.optim.Optimizer]
    description: str
    default_lr: float
    needs_closure: bool = False
    single_group: bool = False
    defaults: dict[str, Any] = field(default_factory=dict)
    no_decay_flag: str | None = None
    has_weight_decay: bool = True


def _build_registry() -> Registry[torch.optim.Optimizer]:
    reg: Registry[torch.optim.Optimizer] = Registry("optimizer")
    infos = [
        OptimInfo("sgd", torch.optim.SGD, "plain stochastic gradient descent", 1e-2),
        OptimInfo("momentum", torch.optim.SGD, "SGD with heavy-ball momentum (0.9)", 1e-2, defaults={"momentum": 0.9}),
        OptimInfo(
            "nesterov", torch.optim.SGD, "SGD with Nesterov momentum (0.9)", 1e-2,
            defaults={"momentum": 0.9, "nesterov": True},
        ),
        OptimInfo("adam", torch.optim.Adam, "Adam (coupled L2 weight decay)", 1e-3),
        OptimInfo("adamw", torch.optim.AdamW, "AdamW (decoupled weight decay)", 1e-3),
        OptimInfo("adagrad", torch.optim.Adagrad, "Adagrad", 1e-2),
        OptimInfo("adadelta", torch.optim.Adadelta, "Adadelta", 1.0),
        OptimInfo("rmsprop", torch.optim.RMSprop, "RMSprop", 1e-2),
        OptimInfo(
            "lbfgs", torch.optim.LBFGS, "L-BFGS (full batch, needs a closure)", 1.0,
            needs_closure=True, single_group=True, has_weight_decay=False,
            defaults={"line_search_fn": "strong_wolfe"},
        ),
        OptimInfo(
            "proximal", ProximalGradient, "proximal gradient with L1 / group-lasso penalty", 1e-2,
            no_decay_flag="penalize",
        ),
        OptimInfo(
            "admm", ADMM, "ADMM training with at most k non-zeros per layer", 1e-3, no_decay_flag="constrain",
        ),
        OptimInfo("bpag", BPAG, "momentum GD on weights and adaptive gains (own gain_lr)", 0.1),
    ]
    for info in infos:
        reg.register(
            info.name, info.cls, description=info.description, info=info,
            needs_closure=info.needs_closure, default_lr=info.default_lr,
        )
    return reg


OPTIMIZERS = _build_registry()


def list_optimizers() -> list[str]:
    """Names ``create_optimizer`` accepts."""
    return OPTIMIZERS.names()


def get_optimizer_info(name: str) -> OptimInfo:
    """The ``OptimInfo`` of a registered optimizer (raises ``UnknownNameError`` with close matches)."""
    return OPTIMIZERS.entry(name).meta["info"]


def _allowed_kwargs(cls: type) -> list[str]:
    sig = inspect.signature(cls.__init__)
    return [
        n for n, p in sig.parameters.items()
        if n not in ("self", "params") and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def create_optimizer(
    model_or_params: nn.Module | Iterable[Any],
    name: str,
    *,
    lr: float | None = None,
    weight_decay: float = 0.0,
    layer_decay: float | None = None,
    no_decay: Iterable[str] = (),
    **kwargs: Any,
) -> torch.optim.Optimizer:
    """Build optimizer ``name`` (see ``list_optimizers()``).

    Given an ``nn.Module``, param groups come from ``param_groups_weight_decay`` (no weight
    decay on biases, norm parameters and gains) or, with ``layer_decay``, from
    ``param_groups_layer_decay``. Given parameters or param groups, they are used as they are
    and ``weight_decay`` is the default of every group. ``lr=None`` takes the optimizer's
    default (``get_optimizer_info(name).default_lr``). Other keyword arguments go to the
    optimizer class.
    """
    info = get_optimizer_info(name)
    where = f"optimizer {info.name!r}"
    lr = check_number("lr", info.default_lr if lr is None else lr, low=0.0, where=where)
    weight_decay = check_number("weight_decay", weight_decay, low=0.0, where=where)
    check_number("layer_decay", layer_decay, low=0.0, high=1.0, low_inclusive=False, allow_none=True, where=where)
    allowed = _allowed_kwargs(info.cls)
    for key in kwargs:
        if key not in allowed:
            own = ["lr", "weight_decay", "layer_decay", "no_decay"]
            names = own + [a for a in allowed if a not in own]
            raise ConfigError(
                f"invalid argument {key!r} for {where}: got {key}={kwargs[key]!r}; allowed: {', '.join(names)}"
            )
    options = {**info.defaults, **kwargs}
    if not info.has_weight_decay and weight_decay > 0:
        raise ConfigError(f"invalid weight_decay for {where}: got {weight_decay}; allowed: 0 (not supported)")
    if info.has_weight_decay:
        options["weight_decay"] = weight_decay

    params: Any
    if isinstance(model_or_params, nn.Module):
        model = model_or_params
        if info.single_group:
            if layer_decay is not None:
                raise ConfigError(f"invalid layer_decay for {where}: got {layer_decay}; allowed: None (one param group only)")
            params = [p for p in model.parameters() if p.requires_grad]
        else:
            if layer_decay is not None:
                params = param_groups_layer_decay(model, lr, weight_decay, layer_decay, no_decay=no_decay)
            else:
                params = param_groups_weight_decay(model, weight_decay, no_decay=no_decay)
            if info.no_decay_flag is not None:
                skip = no_decay_names(model, no_decay)
                for group in params:
                    if all(n in skip for n in group["param_names"]):
                        group[info.no_decay_flag] = False
    else:
        if layer_decay is not None:
            raise ConfigError(
                f"invalid layer_decay for {where}: got {layer_decay}; allowed: None when given parameters "
                "(layer decay needs an nn.Module)"
            )
        params = list(model_or_params)
    if not params:
        raise ConfigError(f"invalid model_or_params for {where}: got no trainable parameters; allowed: at least one")
    try:
        return info.cls(params, lr=lr, **options)
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:
        raise ConfigError(f"invalid arguments for {where}: {err}") from err
