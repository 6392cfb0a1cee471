"""Every private Optuna API honing uses, in one place (tests/tune/test_compat.py tests each use),
so that an Optuna upgrade that moves one breaks this file and its tests, nothing else.

- ``study._storage`` and ``trial._trial_id``: the storage calls by trial id (a user attribute
  on a finished or waiting trial, a state change), which Optuna's public API offers only for
  the trial being run;
- ``optuna.storages._cached_storage._CachedStorage``: the cache Optuna puts in front of an RDB
  storage, put there by honing because its reconnecting wrapper hides the RDB storage;
- ``optuna.storages._heartbeat``: whether the storage records heartbeats, and the heartbeat
  thread around a running trial (what ``study.optimize`` does internally); a heartbeat
  storage's ``_get_stale_trial_ids`` and ``study._study_id`` (the trials whose worker went
  silent, so honing fails them with a reason while they are still RUNNING);
- a TPE sampler's random state (``_rng``, ``_random_sampler._rng``), seeded per trial by
  ``AutoSampler``; ``BaseDistribution._contains`` (is an internal value in the distribution).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any


def storage_of(study: Any) -> Any:
    """The study's storage object."""
    return study._storage


def trial_id(trial: Any) -> int:
    """The storage's id of a trial (a FrozenTrial or a live Trial)."""
    return trial._trial_id


def set_user_attr(study: Any, trial: Any, key: str, value: Any) -> None:
    """A user attribute on any trial of ``study`` (not only the one being run)."""
    storage_of(study).set_trial_user_attr(trial_id(trial), key, value)


def set_state(study: Any, trial: Any, state: Any, values: Any = None) -> None:
    """Change a trial's state (e.g. WAITING -> FAIL) in the storage."""
    storage_of(study).set_trial_state_values(trial_id(trial), state, values)


def frozen(study: Any, trial: Any) -> Any:
    """The stored FrozenTrial of a live trial."""
    return storage_of(study).get_trial(trial_id(trial))


def cached_storage(rdb: Any) -> Any:
    """Optuna's caching wrapper around an RDB storage (what ``create_study`` adds to a bare
    RDBStorage; honing wraps the storage once more, so it adds it itself)."""
    from optuna.storages._cached_storage import _CachedStorage

    return _CachedStorage(rdb)


def heartbeat_enabled(study: Any) -> bool:
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return bool(is_heartbeat_enabled(storage_of(study)))


def stale_trial_ids(study: Any) -> list[int]:
    """The RUNNING trials of ``study`` whose heartbeat is older than the storage's grace period
    (what ``optuna.storages.fail_stale_trials`` looks up before failing them)."""
    return list(storage_of(study)._get_stale_trial_ids(study._study_id))


def heartbeat(study: Any, trial: Any) -> AbstractContextManager[Any]:
    """The heartbeat thread of a running trial (a no-op context without heartbeats)."""
    from optuna.storages._heartbeat import get_heartbeat_thread

    return get_heartbeat_thread(trial_id(trial), storage_of(study))


def seed_sampler(sampler: Any, seed: Any) -> None:
    """Reseed a TPESampler's draws (its own and its fallback random sampler's) with ``seed``
    (an int or a list of ints); public ``reseed_rng`` only draws a fresh seed from the OS."""
    import numpy as np

    first, second = np.random.SeedSequence(seed).generate_state(2)
    sampler._rng.rng.seed(int(first))
    sampler._random_sampler._rng.rng.seed(int(second))


def distribution_contains(dist: Any, internal: float) -> bool:
    """Whether an internal representation is a value of ``dist`` (in range, on its step)."""
    return bool(dist._contains(internal))
