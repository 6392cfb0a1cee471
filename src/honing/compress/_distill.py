"""Knowledge distillation: train a small student to imitate a large, already trained teacher.

Classification (G. Hinton, O. Vinyals, J. Dean, "Distilling the Knowledge in a Neural Network",
NIPS 2014 Deep Learning Workshop, arXiv:1503.02531): the student fits the teacher's softened
class probabilities as well as the labels,

    loss = alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * hard_loss(s, y)

with ``s``, ``t`` the student's and the teacher's logits and ``T`` the temperature. The ``T^2``
keeps the soft term's gradient, ``(softmax(s/T) - softmax(t/T)) * T / N``, on the scale of the
hard term's as ``T`` changes. Binary logits ``(N,)`` or ``(N, 1)`` are read as the two classes
``[0, z]`` (sigmoid probabilities). Regression: the soft term is ``MSE(s, t)`` (no temperature).

Hints (A. Romero, N. Ballas, S. E. Kahou, A. Chassang, C. Gatta, Y. Bengio, "FitNets: Hints for
Thin Deep Nets", ICLR 2015): with ``feature_weight > 0`` the loss adds
``feature_weight * MSE(proj(f_s), f_t)``, where ``f_s``, ``f_t`` are intermediate features
(by default the inputs of the output layers) and ``proj`` a learned linear map from the
student's feature size to the teacher's. Unlike the paper's separate hint stage, it is trained
together with the output loss.

:class:`Distiller` is the module a :class:`honing.train.Trainer` trains: its forward returns
the student's outputs and, while training, also runs the frozen teacher on the same (augmented)
batch; ``trainer.loss_fn = distiller.loss(trainer.loss_fn)`` turns those into the loss above.
In evaluation the loss is the plain hard loss, so validation metrics and early stopping mean
what they mean for a model trained alone. :func:`distill` does all of it in one call.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from honing._core import ConfigError, check_choice, check_number
from honing.optim import create_optimizer
from honing.train import TrainConfig, Trainer, create_loss

if TYPE_CHECKING:
    from honing.data import Split

__all__ = ["DistillationLoss", "Distiller", "distill", "distillation_loss"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

TASKS = ("classification", "regression")
_HARD_LOSS = {"classification": "cross_entropy", "regression": "mse"}


def _check_temperature(value: Any) -> float:
    out = check_number("temperature", value, low=0.0, low_inclusive=False)
    assert out is not None
    return out


def _check_alpha(value: Any) -> float:
    out = check_number("alpha", value, low=0.0, high=1.0)
    assert out is not None
    return out


def _resolve_hard_loss(hard_loss: str | LossFn | None, task: str) -> LossFn:
    return create_loss(_HARD_LOSS[task] if hard_loss is None else hard_loss)


def _class_logits(z: torch.Tensor) -> torch.Tensor:
    """Logits as (N, C): binary logits (N,) or (N, 1) become the two classes [0, z]."""
    if z.dim() == 1 or (z.dim() == 2 and z.shape[1] == 1):
        z = z.reshape(-1)  # (N,)
        return torch.stack([torch.zeros_like(z), z], dim=1)  # (N, 2)
    if z.dim() != 2:
        raise ConfigError(
            f"invalid logits for distillation: got shape {tuple(z.shape)}; allowed: (N, C) class logits "
            f"or (N,) / (N, 1) binary logits"
        )
    return z


def _soft_loss(student: torch.Tensor, teacher: torch.Tensor, *, temperature: float, task: str) -> torch.Tensor:
    """``T^2 * KL(softmax(t/T) || softmax(s/T))`` per sample (classification), or ``MSE(s, t)``."""
    s, t = student.float(), teacher.detach().float()
    if task == "regression":
        return F.mse_loss(s, t)
    log_ps = F.log_softmax(_class_logits(s) / temperature, dim=1)  # (N, C)
    log_pt = F.log_softmax(_class_logits(t) / temperature, dim=1)  # (N, C)
    kl = F.kl_div(log_ps, log_pt, reduction="batchmean", log_target=True)
    return kl * (temperature * temperature)


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    target: torch.Tensor,
    *,
    temperature: float,
    alpha: float,
    hard_loss: str | LossFn | None = None,
    task: str = "classification",
) -> torch.Tensor:
    """``alpha * soft + (1 - alpha) * hard_loss(student_logits, target)`` (see the module docstring).

    ``hard_loss``: a loss name or a callable ``(pred, target)``; None is cross-entropy
    (classification) or MSE (regression). The teacher's logits are treated as constants.
    ``alpha=0`` gives exactly the hard loss and ``alpha=1`` the soft term alone.
    """
    temperature, alpha = _check_temperature(temperature), _check_alpha(alpha)
    check_choice("task", task, TASKS)
    if student_logits.shape != teacher_logits.shape:
        raise ConfigError(
            f"invalid teacher outputs: got shape {tuple(teacher_logits.shape)} for student outputs of shape "
            f"{tuple(student_logits.shape)}; allowed: the same shape (the same task and number of outputs)"
        )
    hard = _resolve_hard_loss(hard_loss, task)
    if alpha == 0.0:
        return hard(student_logits, target)
    soft = _soft_loss(student_logits, teacher_logits, temperature=temperature, task=task)
    if alpha == 1.0:
        return soft
    return alpha * soft + (1.0 - alpha) * hard(student_logits, target)


# --- intermediate features ---------------------------------------------------------------------


@dataclass(frozen=True)
class _FeatureSite:
    """Where a model's features are read: a module's input (the output layer) or its output."""

    module: nn.Module
    name: str
    use_input: bool


def _feature_site(model: nn.Module, name: str | None, who: str) -> _FeatureSite:
    if name is None:
        head = getattr(model, "head", None)
        if not isinstance(head, nn.Module):
            raise ConfigError(
                f"invalid {who}_features: got None but the {who} has no `head` output layer to read features "
                f"from; allowed: the name of a submodule from named_modules(), e.g. {_example_names(model)}"
            )
        out = getattr(head, "out", None)  # a honing Head: hidden layer, dropout, then `out`
        if isinstance(out, nn.Module):
            return _FeatureSite(out, "head.out", use_input=True)
        return _FeatureSite(head, "head", use_input=True)
    modules = dict(model.named_modules())
    if not isinstance(name, str) or name not in modules or name == "":
        close = difflib.get_close_matches(str(name), [n for n in modules if n], n=5)
        hint = ", ".join(map(repr, close)) if close else _example_names(model)
        raise ConfigError(f"invalid {who}_features: got {name!r}; allowed: a submodule name of the {who}, e.g. {hint}")
    return _FeatureSite(modules[name], name, use_input=False)


def _example_names(model: nn.Module) -> str:
    names = [n for n, _ in model.named_modules() if n]
    return ", ".join(map(repr, names[:5])) or "(the model has no submodules)"


@contextlib.contextmanager
def _capture(site: _FeatureSite | None, who: str) -> Iterator[list[torch.Tensor]]:
    """Collect the features at ``site`` during the forward passes inside the block (the last one wins)."""
    found: list[torch.Tensor] = []
    if site is None:
        yield found
        return

    def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        value = args[0] if site.use_input else output
        if isinstance(value, (tuple, list)) and value:
            value = value[0]
        if not isinstance(value, torch.Tensor):
            raise ConfigError(
                f"invalid {who}_features: got {type(value).__name__} at {site.name!r}; allowed: a submodule "
                f"whose output is a tensor (or a tuple starting with one)"
            )
        found[:] = [value]

    handle = site.module.register_forward_hook(hook)
    try:
        yield found
    finally:
        handle.remove()
    if not found:
        raise ConfigError(f"invalid {who}_features: {site.name!r} was not called in the {who}'s forward pass")


def _device_of(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return torch.device("cpu") if param is None else param.device


@dataclass
class _Kept:
    """What a training forward keeps for the loss: the teacher's outputs and both features."""

    teacher: torch.Tensor
    student_features: torch.Tensor | None
    teacher_features: torch.Tensor | None


class Distiller(nn.Module):
    """The student plus a frozen teacher, trained by a honing Trainer (see the module docstring).

    Args:
        student: the model to train (what ``.student`` gives back).
        teacher: a trained model with the same outputs; it is frozen (``requires_grad=False``)
            and stays in eval mode, also when the Distiller is put in training mode.
        temperature, alpha: of :func:`distillation_loss`.
        feature_weight: weight of the FitNets hint loss (0 turns it off).
        student_features, teacher_features: names from ``named_modules()`` whose outputs are the
            features; None reads the input of the model's output layer (``head``, or
            ``head.out`` of a honing ``Head``). Only used when ``feature_weight > 0``.
        example_inputs: a few input rows; required when ``feature_weight > 0`` (a forward pass
            on them sizes the projection, so it exists before an optimizer is built), optional
            otherwise (then it checks that the two output shapes match).
        task: "classification" or "regression".
        seed: seeds the projection's initial weights (None: the global generator).
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        *,
        temperature: float = 2.0,
        alpha: float = 0.9,
        feature_weight: float = 0.0,
        student_features: str | None = None,
        teacher_features: str | None = None,
        example_inputs: torch.Tensor | None = None,
        task: str = "classification",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        for who, model in (("student", student), ("teacher", teacher)):
            if not isinstance(model, nn.Module):
                raise ConfigError(f"invalid {who}: got {type(model).__name__}; allowed: a torch.nn.Module")
        if student is teacher or {id(p) for p in student.parameters()} & {id(p) for p in teacher.parameters()}:
            raise ConfigError(
                "invalid teacher: got a model that shares parameters with the student; allowed: a separate "
                "model (the teacher is frozen, which would freeze the shared parameters of the student)"
            )
        self.temperature = _check_temperature(temperature)
        self.alpha = _check_alpha(alpha)
        fw = check_number("feature_weight", feature_weight, low=0.0)
        assert fw is not None
        self.feature_weight = fw
        self.task = check_choice("task", task, TASKS)
        if example_inputs is not None and not isinstance(example_inputs, torch.Tensor):
            raise ConfigError(f"invalid example_inputs: got {type(example_inputs).__name__}; allowed: a torch.Tensor of input rows")
        self.student = student
        self.teacher = teacher.eval().requires_grad_(False)
        self._sites: tuple[_FeatureSite, _FeatureSite] | None = None
        self.projection: nn.Linear | None = None
        self._kept: _Kept | None = None
        if self.feature_weight > 0:
            if example_inputs is None:
                raise ConfigError(
                    f"invalid example_inputs: got None with feature_weight={feature_weight}; allowed: a tensor of a "
                    f"few input rows (a forward pass on them sizes the feature projection)"
                )
            self._sites = (_feature_site(student, student_features, "student"),
                           _feature_site(teacher, teacher_features, "teacher"))
        if example_inputs is not None:
            self._probe(example_inputs, seed)

    def _probe(self, example_inputs: torch.Tensor, seed: int | None) -> None:
        """Check the output shapes on a few rows and, with hints, build the projection."""
        x = example_inputs[:2]
        s_site, t_site = self._sites if self._sites is not None else (None, None)
        was = self.student.training
        self.student.eval()
        try:
            with torch.no_grad(), _capture(s_site, "student") as fs, _capture(t_site, "teacher") as ft:
                s_out = self.student(x.to(_device_of(self.student)))
                t_out = self.teacher(x.to(_device_of(self.teacher)))
        finally:
            self.student.train(was)
        if s_out.shape != t_out.shape:
            raise ConfigError(
                f"invalid teacher: its outputs have shape {tuple(t_out.shape)} but the student's have "
                f"{tuple(s_out.shape)} on the same {len(x)} rows; allowed: models with the same outputs"
            )
        if self._sites is None:
            return
        s_dim, t_dim = fs[0].flatten(1).shape[1], ft[0].flatten(1).shape[1]
        rng = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
        with rng:
            if seed is not None:
                torch.manual_seed(seed)
            self.projection = nn.Linear(s_dim, t_dim).to(_device_of(self.student))

    def train(self, mode: bool = True) -> Distiller:
        """Set the student (and projection) to ``mode``; the teacher always stays in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The student's outputs; in training (with grad) also keeps the teacher's for the loss."""
        self._kept = None  # an evaluation forward must never leave an earlier batch's outputs behind
        if not (self.training and torch.is_grad_enabled()):
            return self.student(x)
        s_site, t_site = self._sites if self._sites is not None else (None, None)
        with _capture(s_site, "student") as fs:
            out = self.student(x)  # (N, num_outputs)
        with torch.no_grad(), _capture(t_site, "teacher") as ft:
            teacher_out = self.teacher(x)  # (N, num_outputs)
        self._kept = _Kept(teacher_out, fs[0] if fs else None, ft[0] if ft else None)
        return out

    def loss(self, hard_loss: str | LossFn | None = None) -> DistillationLoss:
        """The loss for ``trainer.loss_fn``: distillation while training, ``hard_loss`` in evaluation.

        ``hard_loss``: the loss on labels (pass the Trainer's own ``trainer.loss_fn``), a loss
        name, or None for the task's default.
        """
        return DistillationLoss(self, _resolve_hard_loss(hard_loss, self.task))

    def _take_kept(self, rows: int) -> _Kept:
        """The outputs kept by the last training forward, removed so they are used once only."""
        kept, self._kept = self._kept, None
        if kept is None:
            raise ConfigError(
                "invalid call of the distillation loss: got no teacher outputs (each training loss needs its own "
                "distiller(x) call just before it); allowed: one loss per training forward of the Distiller"
            )
        if kept.teacher.shape[0] != rows:
            raise ConfigError(
                f"invalid prediction for the distillation loss: got {rows} rows but the teacher's outputs from the "
                f"last forward have {kept.teacher.shape[0]}; allowed: the outputs of that same forward"
            )
        return kept

    def feature_loss(self, kept: _Kept) -> torch.Tensor:
        """``MSE(proj(f_s), f_t)`` with features flattened to (N, D)."""
        assert self.projection is not None and kept.student_features is not None and kept.teacher_features is not None
        fs = kept.student_features.flatten(1).float()  # (N, D_s)
        ft = kept.teacher_features.detach().flatten(1).float()  # (N, D_t)
        return F.mse_loss(self.projection(fs), ft)  # projection: (N, D_s) -> (N, D_t)

    def student_state_dict(self) -> dict[str, Any]:
        """The student's weights alone (what to save; the Distiller's own holds the teacher too)."""
        return self.student.state_dict()


class DistillationLoss:
    """``Distiller.loss``'s callable ``(pred, target)``: the distillation loss (plus the hint loss)
    while the Distiller trains with grad enabled, ``hard_loss`` otherwise."""

    def __init__(self, distiller: Distiller, hard_loss: LossFn) -> None:
        self.distiller, self.hard_loss = distiller, hard_loss

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        d = self.distiller
        if not (d.training and torch.is_grad_enabled()):
            return self.hard_loss(pred, target)
        kept = d._take_kept(pred.shape[0] if pred.dim() else 0)
        loss = distillation_loss(pred, kept.teacher, target, temperature=d.temperature, alpha=d.alpha,
                                 hard_loss=self.hard_loss, task=d.task)
        if d.feature_weight > 0:
            loss = loss + d.feature_weight * d.feature_loss(kept)
        return loss


def distill(
    teacher: nn.Module,
    student: nn.Module,
    train: Split | tuple[torch.Tensor, torch.Tensor],
    val: Split | tuple[torch.Tensor, torch.Tensor] | None = None,
    *,
    temperature: float = 2.0,
    alpha: float = 0.9,
    feature_weight: float = 0.0,
    student_features: str | None = None,
    teacher_features: str | None = None,
    epochs: int = 10,
    lr: float = 1e-3,
    optimizer: str = "adamw",
    weight_decay: float = 0.0,
    batch_size: int | None = 128,
    seed: int = 0,
    task: str = "classification",
    callbacks: Sequence[Any] = (),
    progress: bool | None = False,
) -> nn.Module:
    """Train ``student`` to imitate ``teacher`` on ``train``; returns the student in eval mode.

    Builds a :class:`Distiller`, ``create_optimizer(distiller, optimizer, lr=...)`` (the
    student and the projection; the teacher is frozen) and a Trainer whose ``loss_fn`` is
    ``distiller.loss(...)``; validation on ``val`` uses the plain hard loss and the task's metrics.
    """
    x = train[0] if isinstance(train, (tuple, list)) else getattr(train, "x", None)
    if not isinstance(x, torch.Tensor) or x.dim() == 0 or len(x) == 0:
        raise ConfigError(f"invalid train: got {type(train).__name__}; allowed: a honing.data.Split or an (x, y) pair of tensors")
    distiller = Distiller(
        student, teacher, temperature=temperature, alpha=alpha, feature_weight=feature_weight,
        student_features=student_features, teacher_features=teacher_features, example_inputs=x[:2],
        task=task, seed=seed,
    )
    opt = create_optimizer(distiller, optimizer, lr=lr, weight_decay=weight_decay)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, progress=progress)
    trainer = Trainer(distiller, opt, task=task, callbacks=callbacks, config=config)
    trainer.loss_fn = distiller.loss(trainer.loss_fn)
    trainer.fit(train, val)
    return distiller.student.eval()
