"""Structured pruning: remove whole neurons and channels and rebuild smaller layers.

Unstructured pruning (``_prune.py``) zeroes single weights and leaves the layer shapes, so it
saves nothing without sparse kernels. Removing whole output channels of a layer instead makes
every tensor that touches them smaller: the rows of the layer, its bias, its BatchNorm entries,
its adaptive gains and the matching input columns of the next layer (Li et al., "Pruning filters
for efficient ConvNets", ICLR 2017, rank filters by their L1 norm). Which tensors must shrink
together (a residual ``x + f(x)`` ties the widths on both sides, a depthwise convolution ties its
input and output, a flatten ties a channel to ``H * W`` head columns) is found by Torch-Pruning's
dependency graph (G. Fang, X. Ma, M. Song, M. Bi Mi, X. Wang, "DepGraph: Towards any structural
pruning", CVPR 2023), an optional dependency imported on first use.

``structured_prune`` keeps ``int(width * (1 - amount))`` channels of every prunable layer,
ranked per layer by the L1 (or L2) norm of the whole coupled group. The output layer keeps all
its outputs. It changes the model in place: the module objects stay, their parameters are new
tensors, so an optimizer must be built after pruning. Supported: networks of Linear, Conv,
BatchNorm, LayerNorm and honing's adaptive gains (honing ``mlp`` and ``cnn``); recurrent and
attention layers raise ConfigError.

``rebuild_like`` loads such a model back: given a freshly built model of the original
architecture and the pruned model's state dict, it replaces each layer by one of the saved
shapes and loads the state strictly.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from honing._core import ConfigError, check_choice, check_int, check_number
from honing.models import AdaptiveGain

LINEAR_CONV = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm)
# recurrent cells and attention (any class named *Attention*: heads reshape the channels) are
# traced wrongly by Torch-Pruning without per-model settings; embeddings index their rows
_UNSUPPORTED = (nn.RNNBase, nn.MultiheadAttention, nn.Embedding, nn.EmbeddingBag)
IMPORTANCES = ("l1", "l2", "random")


def require_torch_pruning() -> Any:
    """Import ``torch_pruning`` or raise a ConfigError that says what to install."""
    try:
        import torch_pruning
    except ImportError:
        raise ConfigError(
            'structured pruning needs the torch-pruning package: pip install "honing[compress]"'
        ) from None
    return torch_pruning


def _check_supported(model: nn.Module) -> None:
    """Refuse models with layers whose pruning Torch-Pruning gets wrong or cannot do."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"invalid model: got {type(model).__name__}; allowed: a torch.nn.Module")
    if torch_prune.is_pruned(model):
        raise ConfigError(
            "invalid model for structured pruning: got a model with pruning masks (weight_orig / weight_mask); "
            "allowed: plain parameters: call make_permanent(model) first"
        )
    known = LINEAR_CONV + _NORMS + (AdaptiveGain,)
    modules = list(model.named_modules())
    bad = [(n, m) for n, m in modules if isinstance(m, _UNSUPPORTED) or "attention" in type(m).__name__.lower()] or [
        (n, m) for n, m in modules if not isinstance(m, known) and any(True for _ in m.parameters(recurse=False))
    ]
    if bad:
        name, module = bad[0]
        raise ConfigError(
            "structured pruning supports Linear/Conv/BatchNorm networks (honing mlp, cnn); "
            f"got a model with {type(module).__name__} ({name or 'the model itself'})"
        )


def _probe(
    model: nn.Module, example_inputs: torch.Tensor
) -> tuple[list[nn.Module], torch.Tensor, dict[nn.Module, tuple]]:
    """Run the model once (eval mode, no grad): Linear/Conv layers in call order, the output, their output shapes."""
    order: list[nn.Module] = []
    shapes: dict[nn.Module, tuple] = {}

    def record(module: nn.Module, _inputs: Any, output: Any) -> None:
        order.append(module)
        if isinstance(output, torch.Tensor):
            shapes[module] = tuple(output.shape)

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, LINEAR_CONV)]
    training = model.training
    try:
        model.eval()
        with torch.no_grad():
            out = model(example_inputs)
    except Exception as err:
        raise ConfigError(f"invalid example_inputs: the model fails on them ({type(err).__name__}: {err})") from err
    finally:
        model.train(training)
        for h in hooks:
            h.remove()
    if not isinstance(out, torch.Tensor):
        raise ConfigError(
            f"invalid model for structured pruning: its output is a {type(out).__name__}; allowed: one tensor"
        )
    return order, out, shapes


def _auto_ignored(order: list[nn.Module], out: torch.Tensor, shapes: dict[nn.Module, tuple]) -> list[nn.Module]:
    """Layers whose widths are fixed: the output layer, and grouped convs that read the model input."""
    ignored: list[nn.Module] = []
    matching = [m for m in order if shapes.get(m) == tuple(out.shape)]
    if matching:
        ignored.append(matching[-1])
    elif order:
        ignored.append(order[-1])
    for m in order:  # a depthwise conv on the input would drag the input channels along
        if isinstance(m, nn.Linear) or m.groups == 1:
            break
        ignored.append(m)
    return ignored


def check_amount(amount: Any) -> float:
    """A fraction of channels to remove, in (0, 1)."""
    out = check_number("amount", amount, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
    return float(out)  # type: ignore[arg-type]


def _importance(tp: Any, name: str) -> Any:
    check_choice("importance", name, IMPORTANCES)
    if name == "random":
        return tp.importance.RandomImportance()
    return tp.importance.MagnitudeImportance(p=1 if name == "l1" else 2)


def _check_widths(model: nn.Module, ignored: Sequence[nn.Module], amount: float) -> None:
    skip = {id(m) for layer in ignored for m in layer.modules()}
    for name, module in model.named_modules():
        if not isinstance(module, LINEAR_CONV) or id(module) in skip:
            continue
        width = module.out_features if isinstance(module, nn.Linear) else module.out_channels
        if width >= 2 and int(width * (1 - amount)) < 1:
            raise ConfigError(
                f"invalid amount: got {amount}; it would remove every channel of layer {name!r} "
                f"(width {width}); allowed: a fraction that keeps at least one, below {1 - 1 / width:.4g}"
            )


class StructuredPruning:
    """One Torch-Pruning pruner over ``model`` that removes channels in steps.

    ``levels[i]`` is the cumulative fraction of the ORIGINAL width of every prunable layer removed
    after step ``i``; ``step()`` performs the next one in place. ``structured_prune`` is one step;
    ``iterative_prune`` fine-tunes between the steps.
    """

    def __init__(
        self,
        model: nn.Module,
        levels: Sequence[float],
        *,
        example_inputs: torch.Tensor,
        importance: str = "l1",
        ignored: Sequence[nn.Module] | None = None,
        round_to: int | None = None,
        seed: int = 0,
    ) -> None:
        tp = require_torch_pruning()
        _check_supported(model)
        levels = [check_amount(a) for a in levels]
        if not levels or any(b < a for a, b in zip(levels, levels[1:])):
            raise ConfigError(f"invalid levels: got {levels}; allowed: a non-empty, non-decreasing list of fractions")
        imp = _importance(tp, importance)
        check_int("round_to", round_to, low=1, allow_none=True)
        check_int("seed", seed)
        if not isinstance(example_inputs, torch.Tensor):
            raise ConfigError(
                f"invalid example_inputs: got {type(example_inputs).__name__}; allowed: a tensor batch of model inputs"
            )
        extra = list(ignored or [])
        for m in extra:
            if not isinstance(m, nn.Module):
                raise ConfigError(f"invalid ignored: got {type(m).__name__}; allowed: modules of the model")
        order, out, shapes = _probe(model, example_inputs)
        if not order:
            raise ConfigError("invalid model for structured pruning: it has no Linear or Conv layer")
        all_ignored = _auto_ignored(order, out, shapes) + extra
        _check_widths(model, all_ignored, max(levels))
        # honing's adaptive gains are per-channel vectors Torch-Pruning must shrink with the channel
        gains = [(m.gain, 0) for m in model.modules() if isinstance(m, AdaptiveGain)]
        self.model = model
        self.example_inputs = example_inputs
        self.output_shape = tuple(out.shape)
        self.levels = levels
        self.seed = seed
        self.steps_done = 0

        def schedule(ratio: float, _steps: int) -> list[float]:  # Torch-Pruning's cumulative ratios, step 0 first
            return [0.0, *(ratio * level / levels[-1] for level in levels)]

        training = model.training
        try:
            with torch.enable_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Torch-Pruning warns about every unwrapped parameter
                self._pruner = tp.pruner.BasePruner(
                    model, example_inputs, importance=imp, pruning_ratio=levels[-1],
                    iterative_steps=len(levels),
                    iterative_pruning_ratio_scheduler=schedule,
                    ignored_layers=all_ignored, round_to=round_to, unwrapped_parameters=gains or None,
                )
        except ConfigError:
            raise
        except Exception as err:
            raise ConfigError(
                f"structured pruning supports Linear/Conv/BatchNorm networks (honing mlp, cnn); "
                f"Torch-Pruning cannot trace this model ({type(err).__name__}: {err})"
            ) from err
        finally:
            model.train(training)

    def step(self) -> nn.Module:
        """Remove channels down to the next level; returns the (same, now smaller) model."""
        if self.steps_done >= len(self.levels):
            raise ConfigError(f"invalid step: all {len(self.levels)} pruning steps are done")
        training = self.model.training
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed + self.steps_done)  # only "random" importance draws
                self._pruner.step()
        except Exception as err:
            raise ConfigError(
                "structured pruning supports Linear/Conv/BatchNorm networks (honing mlp, cnn); Torch-Pruning "
                f"failed on this model ({type(err).__name__}: {err}) and may have left it partly pruned"
            ) from err
        finally:
            self.model.train(training)
        self.steps_done += 1
        order, out, _ = _probe(self.model, self.example_inputs)
        if tuple(out.shape) != self.output_shape:
            raise ConfigError(
                f"structured pruning changed the output shape from {self.output_shape} to {tuple(out.shape)}; "
                "pass the output layer in ignored"
            )
        return self.model


def structured_prune(
    model: nn.Module,
    amount: float,
    *,
    example_inputs: torch.Tensor,
    importance: str = "l1",
    ignored: Sequence[nn.Module] | None = None,
    round_to: int | None = None,
    seed: int = 0,
) -> nn.Module:
    """Remove the fraction ``amount`` of the channels/neurons of every prunable layer, in place.

    Args:
        model: a network of Linear/Conv/BatchNorm layers (honing ``mlp``, ``cnn``); changed in
            place (same object returned, with new, smaller parameters: build the optimizer after).
        amount: fraction of each layer's width removed, 0 < amount < 1; a layer keeps
            ``int(width * (1 - amount))`` channels.
        example_inputs: a small batch the model accepts (traced once to find the coupled layers).
        importance: "l1" or "l2" norm of each channel's weights over its coupled group, or
            "random" (a baseline; seeded by ``seed``).
        ignored: modules whose outputs keep their width, besides the output layer (found
            automatically as the last Linear/Conv layer whose output has the model output's shape).
        round_to: keep a multiple of this many channels per layer (e.g. 8 for fast kernels).
    """
    check_amount(amount)
    run = StructuredPruning(
        model, [amount], example_inputs=example_inputs, importance=importance, ignored=ignored,
        round_to=round_to, seed=seed,
    )
    return run.step()


def layer_widths(model: nn.Module) -> dict[str, tuple[int, int]]:
    """``{layer name: (in, out)}`` features or channels of every Linear/Conv layer."""
    out: dict[str, tuple[int, int]] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            out[name] = (module.in_features, module.out_features)
        elif isinstance(module, LINEAR_CONV):
            out[name] = (module.in_channels, module.out_channels)
    return out


def width_changes(before: Mapping[str, tuple[int, int]], model: nn.Module) -> list[dict[str, Any]]:
    """Rows ``{"layer", "in_before", "in_after", "out_before", "out_after"}`` of the layers whose width changed.

    ``before`` is ``layer_widths(model)`` taken before structured pruning.
    """
    rows = []
    for name, (in_after, out_after) in layer_widths(model).items():
        if name not in before:
            continue
        in_before, out_before = before[name]
        if (in_before, out_before) != (in_after, out_after):
            rows.append({
                "layer": name, "in_before": in_before, "in_after": in_after,
                "out_before": out_before, "out_after": out_after,
            })
    return rows


# -- loading a structurally pruned model back ---------------------------------------------------
def _resized(module: nn.Module, name: str, state: Mapping[str, torch.Tensor]) -> nn.Module | None:
    """A module like ``module`` with the shapes saved in ``state`` (None: unchanged or not a layer we rebuild)."""
    key = f"{name}.weight" if name else "weight"
    if isinstance(module, nn.Linear):
        w = state.get(key)
        if w is None or tuple(w.shape) == tuple(module.weight.shape):
            return None
        return nn.Linear(w.shape[1], w.shape[0], bias=module.bias is not None,
                         device=module.weight.device, dtype=module.weight.dtype)
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        w = state.get(key)
        if w is None or tuple(w.shape) == tuple(module.weight.shape):
            return None
        out_ch, in_per_group = int(w.shape[0]), int(w.shape[1])
        depthwise = module.groups > 1 and module.groups == module.in_channels == module.out_channels
        groups = out_ch if depthwise else module.groups
        if out_ch % groups:
            raise ConfigError(
                f"invalid state for layer {name!r}: got {out_ch} output channels with {groups} groups; "
                "allowed: a multiple of the groups"
            )
        return type(module)(
            in_per_group * groups, out_ch, module.kernel_size, stride=module.stride, padding=module.padding,
            dilation=module.dilation, groups=groups, bias=module.bias is not None, padding_mode=module.padding_mode,
            device=module.weight.device, dtype=module.weight.dtype,
        )
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
        ref = state.get(key, state.get(f"{name}.running_mean" if name else "running_mean"))
        if ref is None or ref.shape[0] == module.num_features:
            return None
        return type(module)(int(ref.shape[0]), eps=module.eps, momentum=module.momentum, affine=module.affine,
                            track_running_stats=module.track_running_stats)
    if isinstance(module, nn.LayerNorm):
        w = state.get(key)
        if w is None or tuple(w.shape) == tuple(module.normalized_shape):
            return None
        return nn.LayerNorm(tuple(w.shape), eps=module.eps, elementwise_affine=module.elementwise_affine,
                            bias=module.bias is not None)
    return None


def rebuild_like(template: nn.Module, state: Mapping[str, torch.Tensor]) -> nn.Module:
    """Give ``template`` the layer shapes saved in ``state`` and load it strictly; returns ``template``.

    ``template`` is a freshly built model of the ORIGINAL architecture (same config); ``state``
    the ``state_dict()`` of that model after ``structured_prune``. Linear, Conv (a depthwise
    convolution stays depthwise: groups = channels), BatchNorm and LayerNorm layers are replaced
    by layers of the saved shapes, honing's adaptive gains get vectors of the saved length.
    Anything else whose shape differs raises ConfigError.
    """
    if not isinstance(template, nn.Module):
        raise ConfigError(f"invalid template: got {type(template).__name__}; allowed: a torch.nn.Module")
    replacements = []
    for name, module in template.named_modules():
        new = _resized(module, name, state)
        if new is not None:
            replacements.append((name, new))
        elif isinstance(module, AdaptiveGain):
            key = f"{name}.gain" if name else "gain"
            if key in state and tuple(state[key].shape) != tuple(module.gain.shape):
                module.gain = nn.Parameter(torch.empty_like(state[key], dtype=module.gain.dtype))
    for name, new in replacements:
        if not name:
            raise ConfigError(f"invalid template: the model itself is a {type(template).__name__}; rebuild it directly")
        parent_name, _, child = name.rpartition(".")
        setattr(template.get_submodule(parent_name), child, new)
    own = template.state_dict()
    wrong = [
        f"{k}: {tuple(v.shape)} in the model, {tuple(state[k].shape)} saved"
        for k, v in own.items() if k in state and tuple(v.shape) != tuple(state[k].shape)
    ]
    if wrong:
        raise ConfigError(
            f"invalid state for rebuild_like: shapes that only Linear/Conv/BatchNorm/LayerNorm/gain layers "
            f"can change differ: {'; '.join(wrong[:5])}"
        )
    try:
        template.load_state_dict(dict(state), strict=True)
    except RuntimeError as err:
        raise ConfigError(f"invalid state for rebuild_like: it does not match the model ({err})") from err
    return template
