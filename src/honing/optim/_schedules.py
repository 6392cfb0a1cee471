"""Learning-rate schedules by name: the ``SCHEDULES`` registry and ``create_schedule``.

Every schedule is a pure multiplier ``factor(step)`` of the per-group base lrs (see
``_schedule.py``) composed with a linear warm-up. Positions given in epochs (``step_size``,
``milestones``) are converted with ``steps_per_epoch``. Schedules with absolute lrs
(``cosine``'s ``min_lr``, ``cyclic``'s ``base_lr``/``max_lr``, ``onecycle``'s ``max_lr``) apply
them to the group with the largest base lr (the output layer) and scale the other groups by
the same factor, so per-group ratios are kept.

``cosine`` and ``onecycle`` run over the steps after warm-up; ``step``, ``multistep``,
``exponential`` and ``cyclic`` count from step 0, the warm-up multiplying their first steps.

References: I. Loshchilov and F. Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts",
ICLR 2017 (cosine); L. N. Smith, "Cyclical Learning Rates for Training Neural Networks", WACV
2017; L. N. Smith and N. Topin, "Super-Convergence", 2018 (one-cycle); P. Goyal et al.,
"Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour", 2017 (linear warm-up).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from honing._core import ConfigError, Registry, check_choice, check_int, check_number
from honing.optim._schedule import ReduceOnPlateau, Schedule, ScheduleTiming


def _ref_lr(optimizer: torch.optim.Optimizer, where: str) -> float:
    ref = max(float(g.get("initial_lr", g["lr"])) for g in optimizer.param_groups)
    if ref <= 0:
        raise ConfigError(f"invalid optimizer lr for {where}: got {ref}; allowed: a number > 0")
    return ref


def _constant(optimizer: torch.optim.Optimizer, timing: ScheduleTiming) -> Schedule:
    """Constant lr (after the warm-up)."""
    return Schedule(optimizer, "constant", lambda s: 1.0, timing)


def _step(optimizer: torch.optim.Optimizer, timing: ScheduleTiming, *, step_size: float = 1, gamma: float = 0.1) -> Schedule:
    """Multiply by ``gamma`` every ``step_size`` epochs (may be fractional)."""
    check_number("step_size", step_size, low=0.0, low_inclusive=False, where="schedule 'step'")
    gamma = check_number("gamma", gamma, low=0.0, low_inclusive=False, where="schedule 'step'")
    every = max(1, timing.epochs_to_steps("step_size", step_size))
    return Schedule(optimizer, "step", lambda s: gamma ** (s // every), timing)


def _multistep(
    optimizer: torch.optim.Optimizer, timing: ScheduleTiming, *, milestones: Sequence[float] = (), gamma: float = 0.1
) -> Schedule:
    """Multiply by ``gamma`` at each of ``milestones`` (epochs, increasing)."""
    where = "schedule 'multistep'"
    if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Sequence) or not milestones:
        raise ConfigError(f"invalid milestones in {where}: got {milestones!r}; allowed: a non-empty list of epochs")
    steps = [timing.epochs_to_steps("milestones", m) for m in milestones]
    if steps != sorted(steps):
        raise ConfigError(f"invalid milestones in {where}: got {list(milestones)!r}; allowed: increasing epochs")
    gamma = check_number("gamma", gamma, low=0.0, low_inclusive=False, where=where)
    return Schedule(optimizer, "multistep", lambda s: gamma ** sum(s >= m for m in steps), timing)


def _exponential(optimizer: torch.optim.Optimizer, timing: ScheduleTiming, *, gamma: float = 0.95) -> Schedule:
    """Multiply by ``gamma`` at every epoch boundary."""
    gamma = check_number("gamma", gamma, low=0.0, low_inclusive=False, where="schedule 'exponential'")
    spe = timing.steps_per_epoch
    return Schedule(optimizer, "exponential", lambda s: gamma ** (s // spe), timing)


def _cosine(
    optimizer: torch.optim.Optimizer,
    timing: ScheduleTiming,
    *,
    min_lr: float | None = None,
    eta_min: float | None = None,
) -> Schedule:
    """Cosine from the lr down to ``min_lr`` (alias ``eta_min``, default 0) over the steps after warm-up."""
    where = "schedule 'cosine'"
    if min_lr is not None and eta_min is not None:
        raise ConfigError(f"invalid min_lr in {where}: got min_lr={min_lr} and eta_min={eta_min}; allowed: one of them")
    ref = _ref_lr(optimizer, where)
    floor = check_number("min_lr", min_lr if min_lr is not None else (eta_min or 0.0), low=0.0, high=ref, where=where)
    start, length = timing.warmup_steps, timing.total_steps - timing.warmup_steps
    if length <= 0:
        raise ConfigError(
            f"invalid warmup_steps in {where}: got {timing.warmup_steps}; allowed: fewer than the "
            f"{timing.total_steps} steps of the run"
        )

    def factor(s: int) -> float:
        progress = min(max((s - start) / length, 0.0), 1.0)
        return (floor + (ref - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))) / ref

    return Schedule(optimizer, "cosine", factor, timing)


def _cyclic(
    optimizer: torch.optim.Optimizer,
    timing: ScheduleTiming,
    *,
    base_lr: float | None = None,
    max_lr: float | None = None,
    step_size_up: int | None = None,
    step_size_down: int | None = None,
    step_size_up_epochs: float | None = None,
    mode: str = "triangular",
    gamma: float = 1.0,
) -> Schedule:
    """Cycles between ``base_lr`` (default ``max_lr / 10``) and ``max_lr`` (default: the lr).

    Half-cycle ``step_size_up`` steps (or ``step_size_up_epochs``; default 2 epochs),
    ``step_size_down`` (default: the same); ``mode`` triangular / triangular2 (amplitude halves
    each cycle) / exp_range (amplitude times ``gamma ** step``).
    """
    where = "schedule 'cyclic'"
    ref = _ref_lr(optimizer, where)
    high = check_number("max_lr", ref if max_lr is None else max_lr, low=0.0, low_inclusive=False, where=where)
    low = check_number("base_lr", high / 10 if base_lr is None else base_lr, low=0.0, high=high, where=where)
    check_choice("mode", mode, ["triangular", "triangular2", "exp_range"], where=where)
    gamma = check_number("gamma", gamma, low=0.0, high=1.0, low_inclusive=False, where=where)
    if step_size_up is not None and step_size_up_epochs is not None:
        raise ConfigError(f"invalid step_size_up in {where}: got step_size_up and step_size_up_epochs; allowed: one")
    if step_size_up_epochs is not None:
        up = max(1, timing.epochs_to_steps("step_size_up_epochs", step_size_up_epochs))
    else:
        up = check_int("step_size_up", 2 * timing.steps_per_epoch if step_size_up is None else step_size_up, low=1, where=where)
    down = check_int("step_size_down", up if step_size_down is None else step_size_down, low=1, where=where)
    cycle_len = up + down
    up_ratio = up / cycle_len

    def factor(s: int) -> float:
        cycle = math.floor(1 + s / cycle_len)
        x = 1.0 + s / cycle_len - cycle  # position in the cycle, [0, 1)
        height = x / up_ratio if x <= up_ratio else (x - 1) / (up_ratio - 1)
        if mode == "triangular":
            scale = 1.0
        elif mode == "triangular2":
            scale = 1 / 2.0 ** (cycle - 1)
        else:
            scale = gamma**s
        return (low + (high - low) * height * scale) / ref

    return Schedule(optimizer, "cyclic", factor, timing)


def _onecycle(
    optimizer: torch.optim.Optimizer,
    timing: ScheduleTiming,
    *,
    max_lr: float | None = None,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    anneal_strategy: str = "cos",
    three_phase: bool = False,
) -> Schedule:
    """One cycle (Smith): from ``max_lr / div_factor`` up to ``max_lr`` (default: the lr) over
    ``pct_start`` of the steps after warm-up, then down to ``max_lr / div_factor / final_div_factor``.
    The momentum is not cycled.
    """
    where = "schedule 'onecycle'"
    ref = _ref_lr(optimizer, where)
    peak = check_number("max_lr", ref if max_lr is None else max_lr, low=0.0, low_inclusive=False, where=where)
    pct = check_number("pct_start", pct_start, low=0.0, high=1.0 if not three_phase else 0.5,
                       low_inclusive=False, high_inclusive=False, where=where)
    div = check_number("div_factor", div_factor, low=1.0, where=where)
    final_div = check_number("final_div_factor", final_div_factor, low=1.0, where=where)
    check_choice("anneal_strategy", anneal_strategy, ["cos", "linear"], where=where)
    start, length = timing.warmup_steps, timing.total_steps - timing.warmup_steps
    if length <= 1:
        raise ConfigError(
            f"invalid warmup_steps in {where}: got {timing.warmup_steps}; allowed: fewer than the "
            f"{timing.total_steps - 1} steps of the run"
        )
    initial, final = peak / div, peak / div / final_div
    last = length - 1
    if three_phase:
        phases = [(pct * last, initial, peak), (2 * pct * last, peak, initial), (last, initial, final)]
    else:
        phases = [(pct * last, initial, peak), (last, peak, final)]

    def anneal(a: float, b: float, t: float) -> float:
        if anneal_strategy == "cos":
            return b + (a - b) / 2.0 * (1.0 + math.cos(math.pi * t))
        return a + (b - a) * t

    def factor(s: int) -> float:
        pos = min(max(s - start, 0), last)
        begin = 0.0
        for end, a, b in phases:
            if pos <= end:
                t = (pos - begin) / (end - begin) if end > begin else 1.0
                return anneal(a, b, t) / ref
            begin = end
        return final / ref  # pragma: no cover

    return Schedule(optimizer, "onecycle", factor, timing)


def _plateau(optimizer: torch.optim.Optimizer, timing: ScheduleTiming, **kwargs: Any) -> Schedule:
    return ReduceOnPlateau(optimizer, timing, **kwargs)


def _build_registry() -> Registry[Schedule]:
    reg: Registry[Schedule] = Registry("schedule")
    reg.register("constant", _constant, description="constant lr (after warm-up)")
    reg.register("step", _step, description="multiply by gamma every step_size epochs")
    reg.register("multistep", _multistep, description="multiply by gamma at each milestone epoch")
    reg.register("exponential", _exponential, description="multiply by gamma every epoch")
    reg.register("cosine", _cosine, description="cosine decay to min_lr over the run after warm-up", aliases=("cosine_annealing",))
    reg.register("cyclic", _cyclic, description="triangular / triangular2 / exp_range cycles between base_lr and max_lr")
    reg.register("onecycle", _onecycle, description="one cycle: up to max_lr, then down far below the start")
    reg.register(
        "plateau", _plateau, description="reduce by factor when the monitored metric stops improving",
        aliases=("reduce_on_plateau",), params=tuple(_kwarg_names(ReduceOnPlateau.__init__)),
    )
    return reg


def _kwarg_names(fn: Callable[..., Any]) -> list[str]:
    return [n for n, p in inspect.signature(fn).parameters.items() if p.kind is p.KEYWORD_ONLY]


SCHEDULES = _build_registry()


def list_schedules() -> list[str]:
    """Names ``create_schedule`` accepts."""
    return SCHEDULES.names()


def create_schedule(
    optimizer: torch.optim.Optimizer,
    name: str,
    *,
    epochs: int,
    steps_per_epoch: int,
    warmup_steps: int = 0,
    warmup_epochs: float | None = None,
    warmup_start_factor: float = 0.0,
    **kwargs: Any,
) -> Schedule:
    """Build schedule ``name`` (see ``list_schedules()``) for a run of ``epochs * steps_per_epoch`` steps.

    ``warmup_steps`` (or ``warmup_epochs``) adds a linear warm-up from ``warmup_start_factor``
    times the schedule's lr to the schedule's lr. Other keyword arguments go to the schedule.
    """
    entry = SCHEDULES.entry(name)
    where = f"schedule {entry.name!r}"
    epochs = check_int("epochs", epochs, low=1, where=where)
    spe = check_int("steps_per_epoch", steps_per_epoch, low=1, where=where)
    warmup_steps = check_int("warmup_steps", warmup_steps, low=0, where=where)
    start = check_number("warmup_start_factor", warmup_start_factor, low=0.0, high=1.0, where=where)
    if warmup_epochs is not None:
        if warmup_steps:
            raise ConfigError(
                f"invalid warmup_epochs in {where}: got warmup_epochs={warmup_epochs} and "
                f"warmup_steps={warmup_steps}; allowed: one of them"
            )
        warmup_steps = int(round(check_number("warmup_epochs", warmup_epochs, low=0.0, where=where) * spe))
    assert epochs is not None and spe is not None and warmup_steps is not None and start is not None
    if warmup_steps > epochs * spe:
        raise ConfigError(f"invalid warmup_steps in {where}: got {warmup_steps}; allowed: at most {epochs * spe}")
    allowed = entry.meta.get("params") or _kwarg_names(entry.factory)
    for key in kwargs:
        if key not in allowed:
            raise ConfigError(
                f"invalid argument {key!r} for {where}: got {key}={kwargs[key]!r}; allowed: "
                f"{', '.join(['epochs', 'steps_per_epoch', 'warmup_steps', 'warmup_epochs', 'warmup_start_factor', *allowed])}"
            )
    timing = ScheduleTiming(epochs, spe, warmup_steps, start)
    return entry.factory(optimizer, timing, **kwargs)
