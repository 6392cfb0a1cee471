"""Unstructured pruning: zero the smallest weights, keep them at zero while fine-tuning.

Magnitude pruning (S. Han, J. Pool, J. Tran, W. J. Dally, "Learning both weights and connections
for efficient neural networks", NeurIPS 2015) removes the weights of smallest absolute value,
per layer or ranked over all chosen layers together ("global"), and retrains the rest.
``magnitude_prune`` uses ``torch.nn.utils.prune``: the layer keeps ``weight_orig`` (trained) and
``weight_mask`` (a buffer) and computes ``weight = weight_orig * weight_mask`` before every
forward, so fine-tuning cannot bring a pruned weight back. ``sparsity`` is always the cumulative
target (the fraction of zeros after the call), also when masks are already attached.
``make_permanent`` folds the masks in (plain parameters again, zeros kept).

Gradual pruning (M. Zhu, S. Gupta, "To prune, or not to prune: exploring the efficacy of pruning
for model compression", ICLR Workshop 2018, arXiv:1710.01878) raises the sparsity in ``n``
rounds along ``s_t = s_f + (s_i - s_f) (1 - t/n)^3`` (many weights early, when they are
redundant, few late) with fine-tuning in between: ``prune_schedule`` and ``iterative_prune``.
The same schedule drives structured pruning (``_structured.py``) as a fraction of channels.

ADMM pruning (T. Zhang, S. Ye, K. Zhang, J. Tang, W. Wen, M. Fardad, Y. Wang, "A systematic
DNN weight pruning framework using alternating direction method of multipliers", ECCV 2018)
trains with the constraint "at most k non-zeros per layer" so the weights move towards a
sparse solution before the hard cut: ``admm_prune`` with honing's ADMM optimizer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from honing._core import ConfigError, check_choice, check_int, check_number
from honing.compress._structured import StructuredPruning
from honing.optim import create_optimizer, param_groups_weight_decay

LAYER_TYPES: dict[str, tuple[type[nn.Module], ...]] = {
    "linear": (nn.Linear,),
    "conv": (nn.Conv1d, nn.Conv2d, nn.Conv3d),
}
SCOPES = ("layer", "global")
SCHEDULE_KINDS = ("cubic", "linear")
METHODS = ("magnitude", "structured")
_ALL_TYPES = LAYER_TYPES["linear"] + LAYER_TYPES["conv"]


def _check_sparsity(sparsity: Any, name: str = "sparsity") -> float:
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not 0.0 <= sparsity < 1.0:
        raise ConfigError(f"invalid {name}: got {sparsity!r}; allowed: a fraction in [0, 1)")
    return float(sparsity)


def _check_model(model: Any) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise ConfigError(f"invalid model: got {type(model).__name__}; allowed: a torch.nn.Module")
    return model


def _layers(model: nn.Module, layers: Sequence[str]) -> list[tuple[str, nn.Module]]:
    """The chosen Linear/Conv layers with a weight, by name; ConfigError if none."""
    if isinstance(layers, str):
        layers = (layers,)
    for kind in layers:
        check_choice("layers", kind, LAYER_TYPES)
    types = tuple(t for kind in layers for t in LAYER_TYPES[kind])
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, types) and _has_weight(m)]
    if not found:
        raise ConfigError(
            f"invalid model for pruning: it has no prunable layer of layers={list(layers)}; "
            f"allowed: a model with {', '.join(t.__name__ for t in types)} layers"
        )
    return found


def _has_weight(module: nn.Module) -> bool:
    return isinstance(getattr(module, "weight_orig", None), torch.Tensor) or isinstance(
        getattr(module, "weight", None), nn.Parameter
    )


def _weight(module: nn.Module) -> torch.Tensor:
    """The effective weight, also with a mask attached (``weight`` is only refreshed on forward)."""
    if hasattr(module, "weight_mask"):
        return module.weight_orig.detach() * module.weight_mask
    return module.weight.detach()


def _masked_zeros(module: nn.Module) -> int:
    mask = getattr(module, "weight_mask", None)
    return 0 if mask is None else int((mask == 0).sum())


def magnitude_prune(
    model: nn.Module,
    sparsity: float,
    *,
    scope: str = "layer",
    layers: Sequence[str] = ("linear", "conv"),
) -> nn.Module:
    """Zero the smallest-magnitude weights until ``sparsity`` of them are zero; masks stay attached.

    Args:
        model: changed in place and returned; only the ``weight`` of Linear/Conv layers is pruned
            (biases and norms untouched).
        sparsity: cumulative fraction of zeros after the call, in [0, 1): a layer (or, with
            ``scope="global"``, the chosen weights together) already pruned to 0.5 and pruned
            again with 0.8 ends at 0.8. Weights already masked stay masked; a layer already
            sparser than the target keeps its mask.
        scope: "layer" (every layer gets ``sparsity``) or "global" (one magnitude threshold over
            all chosen weights; layers end at different sparsities).
        layers: which layer kinds: "linear", "conv".
    """
    _check_model(model)
    sparsity = _check_sparsity(sparsity)
    check_choice("scope", scope, SCOPES)
    chosen = [m for _, m in _layers(model, layers)]
    if scope == "layer":
        for module in chosen:
            numel = _weight(module).numel()
            extra = max(0, int(round(sparsity * numel)) - _masked_zeros(module))
            torch_prune.l1_unstructured(module, "weight", amount=extra)
    else:
        numel = sum(_weight(m).numel() for m in chosen)
        extra = max(0, int(round(sparsity * numel)) - sum(_masked_zeros(m) for m in chosen))
        torch_prune.global_unstructured(
            [(m, "weight") for m in chosen], pruning_method=torch_prune.L1Unstructured, amount=extra
        )
    return model


def keep_sparsity(model: nn.Module) -> nn.Module:
    """Attach a mask ``weight != 0`` to every unmasked Linear/Conv weight that has exact zeros.

    Fine-tuning then keeps those weights at zero (e.g. after ADMM or after loading a pruned
    model). Returns ``model``, changed in place.
    """
    _check_model(model)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, _ALL_TYPES) and not hasattr(module, "weight_mask") and _has_weight(module):
                if bool((module.weight == 0).any()):
                    torch_prune.custom_from_mask(module, "weight", mask=module.weight != 0)
    return model


def clone(model: nn.Module) -> nn.Module:
    """A deep copy that also works while pruning masks are attached.

    ``torch.nn.utils.prune`` keeps ``weight`` as a computed tensor (``weight_orig * weight_mask``),
    which ``copy.deepcopy`` refuses; it is set aside for the copy and recomputed in both models.
    """
    import copy

    masked = [(m, key[: -len("_orig")]) for m in model.modules() for key in list(m._parameters)
              if key.endswith("_orig") and hasattr(m, key[: -len("_orig")] + "_mask")]
    saved = [(m, name, m.__dict__.pop(name)) for m, name in masked if name in m.__dict__]
    try:
        copied = copy.deepcopy(model)
    finally:
        for m, name, value in saved:
            setattr(m, name, value)
    for m in copied.modules():
        for key in list(m._parameters):
            name = key[: -len("_orig")]
            if key.endswith("_orig") and hasattr(m, name + "_mask"):
                setattr(m, name, getattr(m, key) * getattr(m, name + "_mask"))
    return copied


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold every pruning mask into its tensor (``prune.remove``): plain parameters, zeros kept."""
    _check_model(model)
    for module in model.modules():
        hooks = module._forward_pre_hooks.values()
        names = [h._tensor_name for h in hooks if isinstance(h, torch_prune.BasePruningMethod)]
        for name in names:
            torch_prune.remove(module, name)
    return model


def has_masks(model: nn.Module) -> bool:
    """Whether any module of ``model`` has a pruning mask attached."""
    return torch_prune.is_pruned(_check_model(model))


def sparsity_report(model: nn.Module) -> list[dict[str, Any]]:
    """One row per Linear/Conv layer: ``{"layer", "type", "shape", "parameters", "zeros", "sparsity"}``.

    Counts the effective weight (``weight_orig * weight_mask`` when masked); biases are not counted.
    """
    rows = []
    for name, module in _check_model(model).named_modules():
        if not isinstance(module, _ALL_TYPES) or not _has_weight(module):
            continue
        w = _weight(module)
        zeros = int((w == 0).sum())
        rows.append({
            "layer": name, "type": type(module).__name__, "shape": list(w.shape),
            "parameters": w.numel(), "zeros": zeros, "sparsity": zeros / w.numel() if w.numel() else 0.0,
        })
    return rows


def total_sparsity(report: Sequence[dict[str, Any]]) -> float:
    """Fraction of zeros over all weights of a ``sparsity_report`` (0.0 for an empty report)."""
    total = sum(int(r["parameters"]) for r in report)
    return sum(int(r["zeros"]) for r in report) / total if total else 0.0


def prune_schedule(target: float, steps: int, *, start: float = 0.0, kind: str = "cubic") -> list[float]:
    """Cumulative sparsity after each of ``steps`` pruning rounds, the last exactly ``target``.

    "cubic" (Zhu & Gupta 2017): ``s_t = target + (start - target) * (1 - t/steps)^3`` for
    ``t = 1..steps``: big steps first, small ones at the end. "linear": evenly spaced.
    """
    target = _check_sparsity(target, "target")
    start = _check_sparsity(start, "start")
    steps = int(check_int("steps", steps, low=1))  # type: ignore[arg-type]
    check_choice("kind", kind, SCHEDULE_KINDS)
    if start > target:
        raise ConfigError(f"invalid start: got {start}; allowed: a fraction in [0, target={target}]")
    if kind == "cubic":
        levels = [target + (start - target) * (1.0 - t / steps) ** 3 for t in range(1, steps + 1)]
    else:
        levels = [start + (target - start) * t / steps for t in range(1, steps + 1)]
    levels[-1] = target
    return levels


_METHOD_OPTIONS = {"magnitude": ("layers",), "structured": ("importance", "ignored", "round_to", "seed")}


def iterative_prune(
    model: nn.Module,
    *,
    target: float,
    steps: int,
    finetune: Callable[[nn.Module], Any],
    method: str = "magnitude",
    scope: str | None = None,
    kind: str = "cubic",
    start: float = 0.0,
    example_inputs: torch.Tensor | None = None,
    **method_options: Any,
) -> nn.Module:
    """Prune in ``steps`` rounds along ``prune_schedule``, calling ``finetune(model)`` after each.

    Args:
        model: pruned in place; the same object is returned in both methods (Torch-Pruning
            rebuilds the layers inside it; parameters are new tensors after every round, so
            ``finetune`` must build its optimizer each time it is called).
        target: final sparsity ("magnitude": fraction of zero weights) or fraction of channels
            removed from every layer's ORIGINAL width ("structured").
        finetune: trains the model after each round (masks keep pruned weights at zero).
        method: "magnitude" (masks, options: ``layers``) or "structured" (smaller layers, needs
            ``example_inputs``; options: ``importance``, ``ignored``, ``round_to``, ``seed``).
        scope: magnitude only: "global" (default) or "layer"; structured pruning always removes
            the same fraction from every layer ("layer", the default for it).
        kind, start: the schedule (see ``prune_schedule``).
    """
    _check_model(model)
    check_choice("method", method, METHODS)
    if not callable(finetune):
        raise ConfigError(f"invalid finetune: got {type(finetune).__name__}; allowed: a callable taking the model")
    allowed = _METHOD_OPTIONS[method]
    for key in method_options:
        if key not in allowed:
            raise ConfigError(f"invalid argument {key!r} for method {method!r}; allowed: {', '.join(allowed)}")
    levels = prune_schedule(target, steps, start=start, kind=kind)
    if method == "magnitude":
        scope = check_choice("scope", "global" if scope is None else scope, SCOPES)
        for level in levels:
            magnitude_prune(model, level, scope=scope, **method_options)
            finetune(model)
        return model
    check_choice("scope", "layer" if scope is None else scope, ("layer",), where="structured pruning")
    if example_inputs is None:
        raise ConfigError(
            "invalid example_inputs: got None; allowed: a tensor batch of model inputs "
            "(structured pruning traces the model)"
        )
    run = StructuredPruning(model, levels, example_inputs=example_inputs, **method_options)
    for _ in levels:
        run.step()
        finetune(model)
    return model


def admm_prune(
    model: nn.Module,
    sparsity: float,
    *,
    fit: Callable[[nn.Module, torch.optim.Optimizer], Any],
    lr: float = 1e-3,
    base: str = "adam",
    rho: float = 1e-2,
    admm_interval: int = 50,
    weight_decay: float = 0.0,
    layers: Sequence[str] = ("linear", "conv"),
    **options: Any,
) -> nn.Module:
    """Train with the ADMM optimizer under "``sparsity`` zeros per layer", cut, and keep the masks.

    ``fit(model, optimizer)`` runs the caller's training loop with an ``ADMM`` optimizer built by
    ``create_optimizer`` (only the weights of the chosen Linear/Conv layers are constrained;
    biases, norms and gains get no weight decay). Afterwards ``finalize()`` zeroes all but the
    largest ``numel - round(sparsity * numel)`` weights of each constrained layer, and masks
    (``weight != 0`` of the kept pattern) are attached so a later fine-tune keeps them at zero.
    ``options`` go to the optimizer (``rho_growth``, ``rho_max``, ``momentum``, ``betas``, ...).
    Returns ``model``, changed in place.
    """
    _check_model(model)
    sparsity = _check_sparsity(sparsity)
    if not callable(fit):
        raise ConfigError(f"invalid fit: got {type(fit).__name__}; allowed: a callable fit(model, optimizer)")
    if has_masks(model):
        raise ConfigError(
            "invalid model for admm_prune: it already has pruning masks; allowed: plain parameters: "
            "call make_permanent(model) first"
        )
    constrained = {f"{n}.weight" if n else "weight" for n, _ in _layers(model, layers)}
    weight_decay = float(check_number("weight_decay", weight_decay, low=0.0))  # type: ignore[arg-type]
    groups = []
    for group in param_groups_weight_decay(model, weight_decay):
        named = list(zip(group["param_names"], group["params"]))
        for flag in (True, False):
            part = [(n, p) for n, p in named if (n in constrained) == flag]
            if part:
                groups.append({
                    "params": [p for _, p in part], "param_names": [n for n, _ in part],
                    "weight_decay": group["weight_decay"], "constrain": flag,
                })
    optimizer = create_optimizer(
        groups, "admm", lr=lr, sparsity=sparsity, rho=rho, base=base, admm_interval=admm_interval, **options
    )
    fit(model, optimizer)
    masks = optimizer.finalize()
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        module = modules[name.rpartition(".")[0]]
        torch_prune.custom_from_mask(module, "weight", mask=mask.to(module.weight.device))
    return model
