"""Loss functions by name: ``create_loss("cross_entropy", label_smoothing=0.1)``.

Every loss is a plain callable ``loss(pred, target) -> scalar tensor`` (mean over the batch).
They are not ``nn.Module``s on purpose: the call sits on the training hot path, and a
module's ``__call__`` costs more than the small wrappers below.

Focal loss: T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollar, "Focal Loss for Dense Object
Detection", ICCV 2017 (arXiv:1708.02002). ``FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from honing._core import ConfigError, Registry, check_number, check_probability

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

LOSSES: Registry[LossFn] = Registry("loss")


def _shape_mismatch(name: str, pred: torch.Tensor, target: torch.Tensor) -> None:
    raise ConfigError(
        f"{name} loss: prediction shape {tuple(pred.shape)} does not match target shape "
        f"{tuple(target.shape)}; regression targets must be float (N, num_outputs) and the model "
        f"must output (N, num_outputs). Reshape y (e.g. y.unsqueeze(1)) or fix the model's num_outputs; "
        f"shapes are never broadcast."
    )


class MSELoss:
    """Mean squared error over all elements."""

    name = "mse"

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape:
            _shape_mismatch(self.name, pred, target)
        return F.mse_loss(pred, target)


class MAELoss:
    """Mean absolute error (L1) over all elements."""

    name = "mae"

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape:
            _shape_mismatch(self.name, pred, target)
        return F.l1_loss(pred, target)


class HuberLoss:
    """Squared error below ``delta``, linear above it (robust regression)."""

    name = "huber"

    def __init__(self, *, delta: float = 1.0) -> None:
        self.delta = check_number("delta", delta, low=0.0, low_inclusive=False, where="huber loss")

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape:
            _shape_mismatch(self.name, pred, target)
        return F.huber_loss(pred, target, delta=self.delta)


def _class_weights(weight: Sequence[float] | torch.Tensor | None, where: str) -> torch.Tensor | None:
    if weight is None:
        return None
    w = torch.as_tensor(weight, dtype=torch.float32).detach().clone()
    if w.dim() != 1 or w.numel() == 0 or not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise ConfigError(
            f"invalid weight in {where}: got {weight!r}; allowed: a 1-D sequence of finite "
            f"non-negative per-class weights"
        )
    return w


def _check_class_targets(name: str, pred: torch.Tensor, target: torch.Tensor) -> None:
    """Class indices (N,) int or class probabilities (N, C) float; raises otherwise."""
    if target.dtype.is_floating_point:
        if target.shape != pred.shape:
            raise ConfigError(
                f"{name} loss: float targets must be class probabilities of the prediction's shape "
                f"{tuple(pred.shape)}, got {tuple(target.shape)}; pass int64 class indices (N,) "
                f"or soft targets (N, C)"
            )
    elif target.dim() != 1 or pred.dim() != 2 or target.shape[0] != pred.shape[0]:
        raise ConfigError(
            f"{name} loss: expected logits (N, C) and class indices (N,), got prediction "
            f"{tuple(pred.shape)} and target {tuple(target.shape)}"
        )


class CrossEntropyLoss:
    """Softmax cross-entropy on logits (N, C).

    Targets are int64 class indices (N,) or class probabilities (N, C) such as mixup/cutmix
    produce. ``weight`` gives per-class weights (the mean is weighted, as in torch);
    ``label_smoothing`` mixes the targets with the uniform distribution.
    """

    name = "cross_entropy"

    def __init__(
        self, *, label_smoothing: float = 0.0, weight: Sequence[float] | torch.Tensor | None = None
    ) -> None:
        self.label_smoothing = check_probability("label_smoothing", label_smoothing, where="cross_entropy loss")
        self.weight = _class_weights(weight, "cross_entropy loss")

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.dim() != 2 or target.dim() != 1 or target.dtype.is_floating_point:
            _check_class_targets(self.name, pred, target)
        weight = self.weight
        if weight is not None and weight.device != pred.device:
            weight = self.weight = weight.to(pred.device)
        return F.cross_entropy(pred, target, weight=weight, label_smoothing=self.label_smoothing)


def _binary_pair(name: str, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Align binary logits and 0/1 targets: (N,) or (N, 1) either way; targets become float."""
    if not target.dtype.is_floating_point:
        target = target.to(pred.dtype)
    if target.shape != pred.shape:
        if pred.numel() != target.numel() or pred.dim() > 2 or target.dim() > 2:
            raise ConfigError(
                f"{name} loss: binary logits and targets must be (N,) or (N, 1), got prediction "
                f"{tuple(pred.shape)} and target {tuple(target.shape)}"
            )
        target = target.reshape(pred.shape)
    return pred, target


class BCELoss:
    """Binary cross-entropy on logits (sigmoid inside); targets 0/1 (or soft) of shape (N,) or (N, 1)."""

    name = "bce"

    def __init__(self, *, pos_weight: float | None = None) -> None:
        pw = check_number("pos_weight", pos_weight, low=0.0, low_inclusive=False, allow_none=True, where="bce loss")
        self.pos_weight = None if pw is None else torch.tensor(pw)

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.shape != pred.shape or not target.dtype.is_floating_point:
            pred, target = _binary_pair(self.name, pred, target)
        pw = self.pos_weight
        if pw is not None and pw.device != pred.device:
            pw = self.pos_weight = pw.to(pred.device)
        return F.binary_cross_entropy_with_logits(pred, target, pos_weight=pw)


class FocalLoss:
    """Focal loss (Lin et al., 2017): down-weights easy examples by ``(1 - p_t) ** gamma``.

    Multi-class: logits (N, C) with class indices (N,) or class probabilities (N, C);
    ``alpha`` is None or a sequence of C per-class weights. Binary: logits (N,) or (N, 1)
    with 0/1 targets; ``alpha`` is None or a float in [0, 1], the weight of the positive class
    (``1 - alpha`` for the negative one). With ``gamma=0`` and no ``alpha`` it equals
    cross-entropy (multi-class) or binary cross-entropy (binary). Mean over samples.
    """

    name = "focal"

    def __init__(self, *, gamma: float = 2.0, alpha: float | Sequence[float] | None = None) -> None:
        self.gamma = check_number("gamma", gamma, low=0.0, where="focal loss")
        self.alpha_scalar: float | None = None
        self.alpha_classes: torch.Tensor | None = None
        if isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
            self.alpha_scalar = check_number("alpha", alpha, low=0.0, high=1.0, where="focal loss")
        elif alpha is not None:
            self.alpha_classes = _class_weights(alpha, "focal loss (alpha)")

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.dim() == 1 or (pred.dim() == 2 and pred.shape[1] == 1):
            return self._binary(pred, target)
        _check_class_targets(self.name, pred, target)
        if self.alpha_scalar is not None:
            raise ConfigError(
                f"focal loss: a single alpha ({self.alpha_scalar}) only applies to binary logits (N,) or "
                f"(N, 1); for {pred.shape[1]} classes pass alpha as a list of {pred.shape[1]} per-class weights"
            )
        logp = F.log_softmax(pred.float(), dim=1)  # (N, C)
        probs = target.float() if target.dtype.is_floating_point else F.one_hot(target, pred.shape[1]).float()
        per_class = -((1.0 - logp.exp()) ** self.gamma) * logp  # (N, C)
        if self.alpha_classes is not None:
            alpha = self.alpha_classes.to(pred.device)
            if alpha.numel() != pred.shape[1]:
                raise ConfigError(
                    f"focal loss: alpha has {alpha.numel()} per-class weights but the logits have "
                    f"{pred.shape[1]} classes"
                )
            per_class = per_class * alpha
        return (probs * per_class).sum(dim=1).mean()

    def _binary(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred, target = _binary_pair(self.name, pred, target)
        if self.alpha_classes is not None:
            raise ConfigError("focal loss: per-class alpha needs logits (N, C); for binary logits pass a float alpha")
        ce = F.binary_cross_entropy_with_logits(pred, target, reduction="none")
        p = torch.sigmoid(pred)
        p_t = p * target + (1.0 - p) * (1.0 - target)
        loss = ce * (1.0 - p_t) ** self.gamma
        if self.alpha_scalar is not None:
            loss = loss * (self.alpha_scalar * target + (1.0 - self.alpha_scalar) * (1.0 - target))
        return loss.mean()


LOSSES.register("mse", MSELoss, description="mean squared error (regression)", aliases=("l2",), task="regression")
LOSSES.register("mae", MAELoss, description="mean absolute error (regression)", aliases=("l1",), task="regression")
LOSSES.register("huber", HuberLoss, description="Huber loss with threshold delta (regression)", task="regression")
LOSSES.register(
    "cross_entropy", CrossEntropyLoss, description="softmax cross-entropy; hard or soft targets",
    aliases=("ce",), task="classification",
)
LOSSES.register("bce", BCELoss, description="binary cross-entropy on logits", task="classification")
LOSSES.register("focal", FocalLoss, description="focal loss (Lin et al. 2017)", task="classification")


DEFAULT_LOSS = {"classification": "cross_entropy", "regression": "mse"}


def default_loss(task: str) -> LossFn:
    """The loss a task trains with when none is named: cross_entropy or mse."""
    return create_loss(DEFAULT_LOSS[task])


def create_loss(name_or_callable: str | LossFn, **kwargs: Any) -> LossFn:
    """A loss by registry name (with its options), or any callable ``(pred, target)`` unchanged."""
    if not isinstance(name_or_callable, str):
        if not callable(name_or_callable):
            raise ConfigError(
                f"invalid loss: got {name_or_callable!r}; allowed: a callable (pred, target) -> tensor "
                f"or one of {', '.join(LOSSES.names())}"
            )
        if kwargs:
            raise ConfigError(f"loss options {sorted(kwargs)} only apply to a loss given by name, not to a callable")
        return name_or_callable
    factory = LOSSES.get(name_or_callable)
    params = inspect.signature(factory).parameters
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        allowed = ", ".join(params) or "none"
        raise ConfigError(f"invalid option(s) {unknown} for loss {name_or_callable!r}; allowed: {allowed}")
    return factory(**kwargs)


def list_losses() -> list[str]:
    return LOSSES.names()
