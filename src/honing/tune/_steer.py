"""Steering a study by hand.

* ``suggest`` queues a configuration an expert wants tried; the next trial any worker claims
  runs it (Optuna runs queued trials first), marked ``proposed_by: user``. Values the suggestion
  leaves out are the sampler's to choose.
* ``change_space`` narrows or widens a number's range for the rest of the study. The change is
  stored in the study (``honing:space_changes``), so every worker, on any machine, samples the
  new range from its next trial on; a re-run of the recipe keeps it. A choice's options cannot
  change: an Optuna study holds one set of options per parameter.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from honing._core import ConfigError
from honing.tune._params import ChoiceParam, FloatParam, IntParam
from honing.tune._space import SearchSpace

__all__ = ["change_space", "current_space", "study_space", "suggest"]

PROPOSED_BY = "proposed_by"
CHANGES_ATTR = "honing:space_changes"  # study attribute: [{path, low, high, from_trial}], in order


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
    space = current_space(SearchSpace.from_spec(spec), study.user_attrs)
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


def current_space(space: SearchSpace, attrs: Mapping[str, Any]) -> SearchSpace:
    """``space`` with the study's range changes (its user attributes ``attrs``) applied in order."""
    changes = attrs.get(CHANGES_ATTR) or []
    if not changes:
        return space
    spec = space.to_spec()
    for change in changes:
        entry = spec.get(change["path"])
        if entry is None:
            continue
        kind = "float" if "float" in entry else "int"
        entry = {**entry, kind: [change["low"], change["high"]]}
        if "prior" in entry and not change["low"] <= entry["prior"] <= change["high"]:
            entry.pop("prior")  # a prior outside the new range no longer applies
        spec[change["path"]] = entry
    return SearchSpace.from_spec(spec)


def change_space(storage: Any, study_name: str, path: str, low: float, high: float) -> dict[str, Any]:
    """Give the number ``path`` the range ``[low, high]`` from the study's next trial on (its
    scale and step kept); returns ``{"path", "before": [low, high], "after": [low, high],
    "from_trial": n}``. Trials already run keep their values; the sampler learns from them all."""
    from optuna.trial import TrialState

    from honing.tune._result import SPACE_ATTR, open_study

    study, _ = open_study(storage, study_name)
    spec = study.user_attrs.get(SPACE_ATTR)
    if not spec:
        raise ConfigError(f"study {study_name!r} holds no search space (it was not run by honing)")
    space = current_space(SearchSpace.from_spec(spec), study.user_attrs)
    params = {p.path: p for p in space.params}
    p = params.get(path)
    if p is None:
        raise ConfigError(f"unknown parameter {path!r}; allowed: {', '.join(params)}")
    if isinstance(p, ChoiceParam):
        raise ConfigError(f"invalid {path}: a choice's options cannot change within a study (Optuna keeps one set "
                          "per parameter); allowed: a new range for a float or int parameter, or honing suggest "
                          "to try a value")
    if isinstance(p, IntParam):
        if any(isinstance(v, bool) or not isinstance(v, int) for v in (low, high)):
            raise ConfigError(f"invalid range for {path}: got {low!r}..{high!r}; allowed: integers (an int parameter)")
    trials = study.get_trials(deepcopy=False)
    change = {"path": path, "low": low, "high": high,
              "from_trial": sum(t.state != TrialState.WAITING for t in trials)}
    changes = [*(study.user_attrs.get(CHANGES_ATTR) or []), change]
    try:
        current_space(SearchSpace.from_spec(spec), {CHANGES_ATTR: changes})  # the new range checked whole
    except ConfigError as err:
        raise ConfigError(f"invalid range for {path}: {err}") from None
    study.set_user_attr(CHANGES_ATTR, changes)
    return {"path": path, "before": [p.low, p.high], "after": [low, high], "from_trial": change["from_trial"]}


def study_space(storage: Any, study_name: str) -> SearchSpace:
    """The study's search space as its next trial samples it (range changes applied)."""
    from honing.tune._result import SPACE_ATTR, open_study

    study, _ = open_study(storage, study_name)
    spec = study.user_attrs.get(SPACE_ATTR)
    if not spec:
        raise ConfigError(f"study {study_name!r} holds no search space (it was not run by honing)")
    return current_space(SearchSpace.from_spec(spec), study.user_attrs)
