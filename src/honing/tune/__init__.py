"""Hyperparameter search: search spaces, Optuna samplers/pruners/storages by name, and
``optimize`` with an exact trial budget over worker processes.

Optuna is imported lazily (inside functions), so ``import honing.tune`` stays light.
"""

from __future__ import annotations

from honing.tune._experience import EXPERIENCE_FILE, ExperienceStore, list_portfolios, portfolio
from honing.tune._loop import Pruned, Reporter
from honing.tune._optimize import EXECUTORS, Executor, list_executors, optimize
from honing.tune._ray import RayExecutor
from honing.tune._steer import change_space, study_space, suggest
from honing.tune._result import StudyResult, load_study_result, param_importances, select_from_pareto
from honing.tune._space import ChoiceParam, FloatParam, IntParam, Param, SearchSpace, SpaceError
from honing.tune._study import (
    StorageHandle,
    create_pruner,
    create_sampler,
    list_pruners,
    list_samplers,
    delete_study,
    mask_password,
    resolve_storage,
)

__all__ = [
    "suggest",
    "change_space",
    "study_space",
    "RayExecutor",
    "AutoSampler",
    "ChoiceParam",
    "EXPERIENCE_FILE",
    "ExperienceStore",
    "FloatParam",
    "IntParam",
    "Param",
    "Pruned",
    "Reporter",
    "SearchSpace",
    "SpaceError",
    "StorageHandle",
    "StudyResult",
    "create_pruner",
    "create_sampler",
    "list_portfolios",
    "list_pruners",
    "list_samplers",
    "load_study_result",
    "optimize",
    "portfolio",
    "EXECUTORS",
    "Executor",
    "list_executors",
    "param_importances",
    "delete_study",
    "mask_password",
    "resolve_storage",
    "select_from_pareto",
]


def __getattr__(name: str) -> object:
    """``AutoSampler`` subclasses Optuna's BaseSampler: imported on first use, so that
    ``import honing.tune`` does not import Optuna."""
    if name == "AutoSampler":
        from honing.tune._auto import AutoSampler

        return AutoSampler
    raise AttributeError(f"module 'honing.tune' has no attribute {name!r}")
