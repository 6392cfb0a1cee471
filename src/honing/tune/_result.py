"""What a study produced, as plain data: StudyResult, Pareto selection, parameter importances."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from honing._core import ConfigError, HoningError, check_choice, check_int
from honing.tune._space import SearchSpace, SpaceError
from honing.tune._study import StorageHandle, resolve_storage

if TYPE_CHECKING:
    import optuna

SPACE_ATTR = "honing.space"  # study user attribute: the space's spec, to decode stored params
BUDGET_ATTR = "honing:n_trials"  # study user attribute: the trial budget of the run that leads it
STATES = ("complete", "pruned", "fail", "running", "waiting")


@dataclass(frozen=True)
class StudyResult:
    """A study as plain data. ``best_*`` are for one objective (None / {} without a complete
    trial, and with several objectives, where ``pareto`` lists the front instead)."""

    study_name: str
    storage_url: str
    directions: list[str]
    best_params: dict[str, Any]
    best_value: float | None
    best_trial: int | None
    pareto: list[dict[str, Any]]
    counts: dict[str, int]
    trials: list[dict[str, Any]] = field(repr=False)
    elapsed_s: float

    def trial(self, number: int) -> dict[str, Any]:
        for t in self.trials:
            if t["number"] == number:
                return t
        raise KeyError(f"no trial {number} in study {self.study_name!r}")


def _space_of(study: optuna.Study) -> SearchSpace | None:
    spec = study.user_attrs.get(SPACE_ATTR)
    if not spec:
        return None
    try:
        return SearchSpace.from_spec(spec)
    except SpaceError:
        return None


def trial_dict(t: optuna.trial.FrozenTrial, space: SearchSpace | None) -> dict[str, Any]:
    duration = None
    if t.datetime_start is not None and t.datetime_complete is not None:
        duration = (t.datetime_complete - t.datetime_start).total_seconds()
    return {
        "number": t.number,
        "state": t.state.name.lower(),
        "params": space.decode(t.params) if space is not None else dict(t.params),
        "values": None if t.values is None else [float(v) for v in t.values],
        "intermediate": {int(k): float(v) for k, v in sorted(t.intermediate_values.items())},
        "user_attrs": dict(t.user_attrs),
        "datetime_start": None if t.datetime_start is None else t.datetime_start.isoformat(),
        "duration_s": duration,
    }


def open_study(storage: StorageHandle | str | os.PathLike[str] | Any, study_name: str) -> tuple[optuna.Study, str]:
    import optuna

    if isinstance(storage, (StorageHandle, str, os.PathLike)):
        handle = resolve_storage(storage, os.getcwd())
    elif storage is None:
        raise ConfigError("invalid storage: got None; allowed: a storage URL, a .journal path or resolve_storage(...)")
    else:
        handle = StorageHandle(storage, repr(storage))
    try:
        study = optuna.load_study(study_name=study_name, storage=handle.storage)
    except KeyError:
        raise HoningError(f"no study {study_name!r} in storage {handle.url}") from None
    return study, handle.url


def result_from_study(study: optuna.Study, storage_url: str, *, elapsed_s: float | None = None) -> StudyResult:
    from optuna.trial import TrialState

    space = _space_of(study)
    frozen = study.get_trials(deepcopy=False)
    trials = [trial_dict(t, space) for t in frozen]
    counts = {s: 0 for s in STATES}
    for t in trials:
        counts[t["state"]] += 1
    directions = [d.name.lower() for d in study.directions]
    best_params: dict[str, Any] = {}
    best_value = best_trial = None
    pareto: list[dict[str, Any]] = []
    complete = [t for t in frozen if t.state == TrialState.COMPLETE]
    if complete and len(directions) == 1:
        best = study.best_trial
        best_params = trial_dict(best, space)["params"]
        best_value, best_trial = float(best.value), best.number  # type: ignore[arg-type]
    elif complete:
        front = {t.number for t in study.best_trials}
        pareto = [t for t in trials if t["number"] in front]
    if elapsed_s is None:
        starts = [t.datetime_start for t in frozen if t.datetime_start is not None]
        ends = [t.datetime_complete for t in frozen if t.datetime_complete is not None]
        elapsed_s = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0
    return StudyResult(study_name=study.study_name, storage_url=storage_url, directions=directions,
                       best_params=best_params, best_value=best_value, best_trial=best_trial, pareto=pareto,
                       counts=counts, trials=trials, elapsed_s=float(elapsed_s))


def load_study_result(storage: StorageHandle | str | os.PathLike[str] | Any, study_name: str) -> StudyResult:
    """A StudyResult read from storage (a URL, a .journal path, or resolve_storage's handle)."""
    study, url = open_study(storage, study_name)
    return result_from_study(study, url)


def param_importances(result_or_storage: StudyResult | StorageHandle | str | Any, study_name: str | None = None,
                      *, metric_index: int = 0) -> dict[str, float]:
    """How much each parameter mattered (Optuna's default importance evaluator), summing to 1;
    ``{}`` with fewer than 2 complete trials or fewer than 2 parameters varying."""
    import optuna
    from optuna.trial import TrialState

    if isinstance(result_or_storage, StudyResult):
        study, _ = open_study(result_or_storage.storage_url, study_name or result_or_storage.study_name)
    else:
        if study_name is None:
            raise ConfigError("param_importances: study_name is required when given a storage")
        study, _ = open_study(result_or_storage, study_name)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    names = {k for t in complete for k in t.params}
    if len(complete) < 2 or len(names) < 2:
        return {}
    check_int("metric_index", metric_index, low=0, high=len(study.directions) - 1)
    target = None if len(study.directions) == 1 else (lambda t: t.values[metric_index])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = optuna.importance.get_param_importances(study, target=target)
        except (RuntimeError, ValueError):
            return {}
    return {k: float(v) for k, v in out.items()}


def select_from_pareto(trials: Sequence[Mapping[str, Any]], directions: Sequence[str], rule: str = "best",
                       metric_index: int = 0) -> dict[str, Any]:
    """Pick one trial of a Pareto front. ``best``: the best on objective ``metric_index``;
    ``knee``: the closest (Euclidean) to the ideal point once each objective is scaled to [0, 1]
    (0 = best seen on the front, 1 = worst)."""
    check_choice("rule", rule, ("best", "knee"))
    dirs = [check_choice("direction", d, ("maximize", "minimize")) for d in directions]
    check_int("metric_index", metric_index, low=0, high=len(dirs) - 1)
    points = [t for t in trials if t.get("values") is not None and len(t["values"]) == len(dirs)]
    if not points:
        raise ConfigError(f"cannot select from the Pareto front: no trial with {len(dirs)} values")
    sign = [1.0 if d == "minimize" else -1.0 for d in dirs]  # lower is better after the sign
    if rule == "best":
        return dict(min(points, key=lambda t: (sign[metric_index] * t["values"][metric_index], t.get("number", 0))))
    costs = [[s * float(v) for s, v in zip(sign, t["values"])] for t in points]
    lows = [min(c[i] for c in costs) for i in range(len(dirs))]
    highs = [max(c[i] for c in costs) for i in range(len(dirs))]
    spans = [(h - lo) or 1.0 for lo, h in zip(lows, highs)]

    def distance(c: list[float]) -> float:
        return math.sqrt(sum(((v - lo) / s) ** 2 for v, lo, s in zip(c, lows, spans)))

    best = min(range(len(points)), key=lambda i: (distance(costs[i]), points[i].get("number", 0)))
    return dict(points[best])
