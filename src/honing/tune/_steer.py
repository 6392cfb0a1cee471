"""Steering a study by hand: ``suggest`` queues a configuration an expert wants tried; the next
trial any worker claims runs it (Optuna runs queued trials first), marked ``proposed_by: user``.
Values the suggestion leaves out are the sampler's to choose."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from honing._core import ConfigError
from honing.tune._params import ChoiceParam, FloatParam, IntParam
from honing.tune._space import SearchSpace

__all__ = ["suggest"]

PROPOSED_BY = "proposed_by"


def suggest(storage: Any, study_name: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Queue ``values`` (``{path: value}``, each a parameter of the study's space and one of its
    values) in the study; returns ``{"queued": n, "budget_left": m}``: the queued trials waiting
    now, and the trials the budget still allows (None when the study does not say)."""
    from optuna.trial import TrialState

    from honing.tune._result import BUDGET_ATTR, SPACE_ATTR, open_study

    study, _ = open_study(storage, study_name)
    spec = study.user_attrs.get(SPACE_ATTR)
    if not spec:
        raise ConfigError(f"study {study_name!r} holds no search space (it was not run by honing)")
    space = SearchSpace.from_spec(spec)
    if not values:
        raise ConfigError(f"nothing to suggest; allowed: one or more PATH=VALUE of {', '.join(space.paths())}")
    checked = {path: _check(space, path, value) for path, value in values.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # enqueue_trial's user_attrs: an ExperimentalWarning
        study.enqueue_trial(space.encode(checked), user_attrs={PROPOSED_BY: "user"}, skip_if_exists=False)
    trials = study.get_trials(deepcopy=False)
    budget = study.user_attrs.get(BUDGET_ATTR)
    used = sum(t.state != TrialState.WAITING for t in trials)
    return {"queued": sum(t.state == TrialState.WAITING for t in trials),
            "budget_left": None if budget is None else max(0, int(budget) - used)}


def _check(space: SearchSpace, path: str, value: Any) -> Any:
    """``value`` when it is one of the parameter's values; else a ConfigError saying what is."""
    params = {p.path: p for p in space.params}
    p = params.get(path)
    if p is None:
        raise ConfigError(f"unknown parameter {path!r}; allowed: {', '.join(params)}")
    if isinstance(p, ChoiceParam):
        if not any(p.encode(value) == p.encode(c) for c in p.choices):
            raise ConfigError(f"invalid {path}: got {value!r}; allowed: one of {list(p.choices)!r}")
        return value
    if isinstance(p, IntParam):
        ok = isinstance(value, int) and not isinstance(value, bool) and p.low <= value <= p.high
        if not ok:
            raise ConfigError(f"invalid {path}: got {value!r}; allowed: an integer from {p.low} to {p.high}")
        return value
    if isinstance(p, FloatParam):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and p.low <= float(value) <= p.high
        if not ok:
            raise ConfigError(f"invalid {path}: got {value!r}; allowed: a number from {p.low:g} to {p.high:g}")
        return float(value)
    return value
