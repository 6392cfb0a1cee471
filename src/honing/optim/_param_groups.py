"""Parameter groups built apart from the optimizer: no-decay split and layer-wise lr decay.

- ``param_groups_weight_decay``: weight decay on weight tensors only; none on biases and other
  tensors with ``ndim <= 1``, on parameters of normalisation layers, on adaptive gains (names
  ending with ``gain``) and on names listed in ``no_decay`` (or returned by the model's
  ``no_weight_decay()``).
- ``param_groups_layer_decay``: layer ``i`` of ``L`` gets ``lr * layer_decay ** (L - 1 - i)``
  (the output layer gets ``lr``), each layer split into decay / no-decay groups. Layers come
  from ``model.layer_groups()`` (parameter-name prefixes, input to output) when the model has
  it, else from the order of its top-level children (parameters held by the model itself go
  to layer 0). Parameters no prefix matches go to the last layer.

Groups carry ``param_names`` (torch keeps them in ``state_dict``). Frozen parameters
(``requires_grad=False``) are left out; empty groups are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

from honing._core import ConfigError, check_number

NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.RMSNorm,
)


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(name == pat or name.startswith(pat + ".") or name.endswith("." + pat) for pat in patterns)


def no_decay_names(model: nn.Module, no_decay: Iterable[str] = ()) -> set[str]:
    """Names of the trainable parameters that get no weight decay."""
    _trainable(model)  # checks it is a module
    patterns = {no_decay} if isinstance(no_decay, str) else set(no_decay)
    if callable(getattr(model, "no_weight_decay", None)):
        patterns |= set(model.no_weight_decay())
    out: set[str] = set()
    for mod_name, module in model.named_modules():
        is_norm = isinstance(module, NORM_TYPES)
        for p_name, p in module.named_parameters(recurse=False):
            name = f"{mod_name}.{p_name}" if mod_name else p_name
            if not p.requires_grad:
                continue
            if p.ndim <= 1 or is_norm or name.endswith("gain") or _matches(name, patterns):
                out.add(name)
    return out


def _trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    if not isinstance(model, nn.Module):
        raise ConfigError(f"invalid model: got {type(model).__name__}; allowed: a torch.nn.Module")
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def _group(named: list[tuple[str, nn.Parameter]], **options: Any) -> dict[str, Any]:
    return {"params": [p for _, p in named], "param_names": [n for n, _ in named], **options}


def param_groups_weight_decay(
    model: nn.Module, weight_decay: float, *, no_decay: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """Two param groups: ``[decay (weight_decay), no_decay (0.0)]``, empty ones dropped.

    ``no_decay`` lists extra parameter names, module-name prefixes or trailing name components
    (``"bias"`` matches ``"fc.bias"``) to keep out of weight decay.
    """
    wd = check_number("weight_decay", weight_decay, low=0.0)
    skip = no_decay_names(model, no_decay)
    named = _trainable(model)
    decay = [(n, p) for n, p in named if n not in skip]
    rest = [(n, p) for n, p in named if n in skip]
    groups = [_group(decay, weight_decay=wd), _group(rest, weight_decay=0.0)]
    return [g for g in groups if g["params"]]


def layer_assignment(model: nn.Module) -> tuple[list[str], dict[str, int]]:
    """``(layer labels, parameter name -> layer index)`` for layer-wise decay."""
    names = [n for n, _ in _trainable(model)]
    if callable(getattr(model, "layer_groups", None)):
        layers = [list(prefixes) for prefixes in model.layer_groups()]
        if not layers:
            raise ConfigError("invalid model.layer_groups(): got an empty list; allowed: a list of prefix lists")
        assign: dict[str, int] = {}
        for name in names:
            best, best_len = len(layers) - 1, -1  # unmatched -> last layer
            for i, prefixes in enumerate(layers):
                for prefix in prefixes:
                    hit = prefix == "" or name == prefix or name.startswith(prefix + ".")
                    if hit and len(prefix) > best_len:
                        best, best_len = i, len(prefix)
            assign[name] = best
        labels = [",".join(p) for p in layers]
        return labels, assign
    children = [n for n, m in model.named_children() if any(p.requires_grad for p in m.parameters())]
    labels = children or [""]
    index = {c: i for i, c in enumerate(children)}
    assign = {n: index.get(n.split(".", 1)[0], 0) if "." in n else 0 for n in names}
    return labels, assign


def param_groups_layer_decay(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    layer_decay: float,
    *,
    no_decay: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """Per-layer groups with ``lr * layer_decay ** (L - 1 - i)``, split into decay / no-decay.

    Each group has ``lr``, ``weight_decay``, ``param_names`` and ``layer`` (its index).
    """
    lr = check_number("lr", lr, low=0.0)
    wd = check_number("weight_decay", weight_decay, low=0.0)
    decay = check_number("layer_decay", layer_decay, low=0.0, high=1.0, low_inclusive=False)
    assert lr is not None and wd is not None and decay is not None
    labels, assign = layer_assignment(model)
    skip = no_decay_names(model, no_decay)
    n_layers = len(labels)
    groups: list[dict[str, Any]] = []
    named = _trainable(model)
    for i in range(n_layers):
        layer_lr = lr * decay ** (n_layers - 1 - i)
        members = [(n, p) for n, p in named if assign[n] == i]
        kept = [m for m in members if m[0] not in skip]
        free = [m for m in members if m[0] in skip]
        for chosen, group_wd in ((kept, wd), (free, 0.0)):
            if chosen:
                groups.append(_group(chosen, lr=layer_lr, weight_decay=group_wd, layer=i))
    return groups
