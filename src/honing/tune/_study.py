"""Optuna's samplers, pruners and storages by name, with defaults that suit DNN searches.

Optuna is imported inside the functions only, so ``import honing.tune`` stays light.
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import os
import re
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from honing._core import ConfigError, HoningError, Registry, check_choice, check_int
from honing.tune._space import ChoiceParam, SearchSpace

if TYPE_CHECKING:
    import optuna

__all__ = ["StorageHandle", "create_pruner", "create_sampler", "delete_study", "list_pruners", "list_samplers",
           "mask_password", "resolve_storage"]

_MULTI_OBJECTIVE = ("grid", "random", "qmc", "tpe", "gp", "auto", "nsga2")
HEARTBEAT_ENV = "HONING_HEARTBEAT_S"
HEARTBEAT_INTERVAL_S = 60  # a database study's workers beat this often; a trial silent for 2 beats is dead


def _directions(directions: str | Sequence[str]) -> list[str]:
    if isinstance(directions, str):
        directions = [directions]
    out = [check_choice("direction", d, ("maximize", "minimize")) for d in directions]
    if not out:
        raise ConfigError("invalid directions: got []; allowed: one or more of 'maximize', 'minimize'")
    return out


def _name_and_options(kind: str, name_or_spec: str | Mapping[str, Any], options: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    if isinstance(name_or_spec, Mapping):
        spec = dict(name_or_spec)
        if "name" not in spec:
            raise ConfigError(f"invalid {kind}: got {name_or_spec!r}; allowed: a name, or a mapping with 'name' and options")
        name = spec.pop("name")
        return name, {**spec, **options}
    return name_or_spec, dict(options)


def _construct(kind: str, name: str, cls: type, defaults: Mapping[str, Any], options: Mapping[str, Any]) -> Any:
    """``cls(**defaults, **options)``; options outside ``cls``'s signature are a ConfigError."""
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "args", "kwargs")]
    for key in options:
        if key not in allowed:
            raise ConfigError(f"unknown option {key!r} for {kind} {name!r}; allowed: {', '.join(allowed)}")
    kwargs = {k: v for k, v in defaults.items() if k in allowed}
    kwargs.update(options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's ExperimentalWarning for group, heartbeat, ...
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"invalid options for {kind} {name!r}: {e}") from None


def _startup_trials(n_trials: int | None, most: int = 10) -> int:
    """Random trials before a model-based sampler takes over: fewer for small budgets."""
    return most if n_trials is None else max(2, min(most, n_trials // 3))


# -- samplers ---------------------------------------------------------------------------------

def _grid(seed: int, space: SearchSpace, n_trials: int | None) -> tuple[type, dict[str, Any]]:
    space.check_finite()
    from honing.tune._grid_sampler import GridSearchSampler

    return GridSearchSampler, {"seed": seed}


def _random(seed: int, space: SearchSpace, n_trials: int | None) -> tuple[type, dict[str, Any]]:
    import optuna

    return optuna.samplers.RandomSampler, {"seed": seed}


def _qmc(seed: int, space: SearchSpace, n_trials: int | None) -> tuple[type, dict[str, Any]]:
    import optuna

    return optuna.samplers.QMCSampler, {"seed": seed, "scramble": True, "warn_independent_sampling": False}


def _tpe(seed: int, space: SearchSpace, n_trials: int | None) -> tuple[type, dict[str, Any]]:
    import optuna

    return optuna.samplers.TPESampler, {"seed": seed, "multivariate": True, "group": True,
                                        "n_startup_trials": _startup_trials(n_trials)}


def _gp(seed: int, space: SearchSpace, n_trials: int | None) -> tuple[type, dict[str, Any]]:
    import optuna

    return optuna.samplers.GPSampler, {"seed": seed, "n_startup_trials": _startup_trials(n_trials),
                                       "warn_independent_sampling": False}


def _cmaes(seed: int, space: SearchSpace, n_trials: int | None) -> tuple[type, dict[str, Any]]:
    if importlib.util.find_spec("cmaes") is None:
        raise ConfigError("sampler 'cmaes' needs the cmaes package: pip install cmaes")
    import optuna

    independent = [p.path for p in space if isinstance(p, ChoiceParam) or p.when]
    if independent:
        warnings.warn(f"sampler 'cmaes' handles unconditional numbers only: {', '.join(independent)} "
                      "will be sampled at random", UserWarning, stacklevel=4)
    return optuna.samplers.CmaEsSampler, {"seed": seed, "n_startup_trials": 1, "warn_independent_sampling": False}


def _auto(seed: int, space: SearchSpace, n_trials: int | None) -> tuple[type, dict[str, Any]]:
    from honing.tune._auto import AutoSampler

    return AutoSampler, {"seed": seed, "n_trials": n_trials}


def _nsga2(seed: int, space: SearchSpace, n_trials: int | None) -> tuple[type, dict[str, Any]]:
    import optuna

    population = 50 if n_trials is None else max(4, min(50, n_trials // 4))
    return optuna.samplers.NSGAIISampler, {"seed": seed, "population_size": population}


_SAMPLERS: Registry[Any] = Registry("sampler")
_SAMPLERS.register("grid", _grid, description="every point of the (conditional) grid once (Optuna BruteForceSampler)")
_SAMPLERS.register("random", _random, description="independent uniform / log-uniform sampling")
_SAMPLERS.register("qmc", _qmc, description="scrambled Sobol quasi-random sequence")
_SAMPLERS.register("tpe", _tpe, description="multivariate TPE over conditional groups")
_SAMPLERS.register("gp", _gp, description="Gaussian-process Bayesian optimization")
_SAMPLERS.register("cmaes", _cmaes, description="CMA-ES over numeric parameters (needs cmaes)")
_SAMPLERS.register("auto", _auto, description="the default: the recipe's values, a Latin hypercube, then a Gaussian "
                   "process (TPE past 200 trials) with the constant liar, local steps from the best trial and a "
                   "random share (honing.tune.AutoSampler)")
_SAMPLERS.register("nsga2", _nsga2, description="NSGA-II genetic search (the default with several objectives)")


def list_samplers() -> list[str]:
    return _SAMPLERS.names()


def create_sampler(
    name_or_spec: str | Mapping[str, Any] | None = None,
    *,
    seed: int,
    space: SearchSpace,
    directions: str | Sequence[str] = ("maximize",),
    n_trials: int | None = None,
    **options: Any,
) -> optuna.samplers.BaseSampler:
    """An Optuna sampler by name (or ``{name: ..., **options}``); None picks auto, or nsga2 with
    several objectives. Options go to the sampler's constructor and must be in its signature."""
    dirs = _directions(directions)
    if name_or_spec is None:
        name_or_spec = "nsga2" if len(dirs) > 1 else "auto"
    name, opts = _name_and_options("sampler", name_or_spec, options)
    entry = _SAMPLERS.entry(name)
    if len(dirs) > 1 and entry.name not in _MULTI_OBJECTIVE:
        raise ConfigError(f"invalid sampler for {len(dirs)} objectives: got {name!r}; allowed: {', '.join(_MULTI_OBJECTIVE)}")
    seed = check_int("seed", seed)  # type: ignore[assignment]
    cls, defaults = entry.factory(seed, space, n_trials)
    return _construct("sampler", entry.name, cls, defaults, opts)


# -- pruners ----------------------------------------------------------------------------------

def _warmup(max_epochs: int) -> int:
    """Optuna's ``n_warmup_steps`` (earliest prune at that step): about the first 10% of the
    epochs (at least one) are never stopped early, as the first epochs' ranking is noise."""
    return max(1, round(max_epochs / 10)) + 1


def _none(max_epochs: int, n_trials: int | None) -> tuple[type, dict[str, Any]]:
    import optuna

    return optuna.pruners.NopPruner, {}


def _median(max_epochs: int, n_trials: int | None) -> tuple[type, dict[str, Any]]:
    import optuna

    return optuna.pruners.MedianPruner, {"n_startup_trials": _startup_trials(n_trials, most=5),
                                         "n_warmup_steps": _warmup(max_epochs)}


def _percentile(max_epochs: int, n_trials: int | None) -> tuple[type, dict[str, Any]]:
    import optuna

    return optuna.pruners.PercentilePruner, {"percentile": 25.0, "n_startup_trials": _startup_trials(n_trials, most=5),
                                             "n_warmup_steps": _warmup(max_epochs)}


def _asha(max_epochs: int, n_trials: int | None) -> tuple[type, dict[str, Any]]:
    import optuna

    # first decision at ~1/9 of the epochs, then ~1/3: the ranking after one epoch is mostly noise.
    # On the LCBench surrogate (bench/README.md) min_resource 1 ended with 2.3x the regret of this
    return optuna.pruners.SuccessiveHalvingPruner, {"min_resource": _first_rung(max_epochs), "reduction_factor": 3}


def _first_rung(max_epochs: int) -> int:
    """The epoch of successive halving's first decision: about a ninth of the epochs, and never
    epoch 1 when there are 4 or more (one epoch ranks configurations badly: bench/README.md)."""
    return max(2 if max_epochs >= 4 else 1, math.ceil(max_epochs / 9))


def _hyperband(max_epochs: int, n_trials: int | None) -> tuple[type, dict[str, Any]]:
    import optuna

    return optuna.pruners.HyperbandPruner, {"min_resource": 1, "max_resource": max_epochs, "reduction_factor": 3}


def _auto_pruner(max_epochs: int, n_trials: int | None) -> tuple[type, dict[str, Any]]:
    from honing.tune._pruners import AutoPruner

    return AutoPruner, {"max_epochs": max_epochs, "n_trials": n_trials}


_PRUNERS: Registry[Any] = Registry("pruner")
_PRUNERS.register("none", _none, description="no early stopping of trials", aliases=("nop",))
_PRUNERS.register("median", _median, description="stop a trial below the median of earlier trials at the same epoch")
_PRUNERS.register("percentile", _percentile, description="stop a trial in the worst 25% at the same epoch")
_PRUNERS.register("asha", _asha, description="asynchronous successive halving (keep the best third at ~1/9 and ~1/3 of the epochs)")
_PRUNERS.register("hyperband", _hyperband, description="Hyperband: several successive-halving brackets")
_PRUNERS.register("auto", _auto_pruner, description="by the budget: none for <= 3 epochs, the median rule for < 20 "
                  "trials, else successive halving that decides at a rung only once 3 other trials reached it")


def list_pruners() -> list[str]:
    return _PRUNERS.names()


def create_pruner(
    name_or_spec: str | Mapping[str, Any] | None = None,
    *,
    max_epochs: int,
    n_trials: int | None = None,
    directions: str | Sequence[str] | None = None,
    **options: Any,
) -> optuna.pruners.BasePruner:
    """An Optuna pruner (early stopping of weak trials) by name; steps are epochs from 1.

    With several objectives Optuna cannot stop trials early: the pruner becomes ``none``
    with a warning."""
    check_int("max_epochs", max_epochs, low=1)
    name, opts = _name_and_options("pruner", "none" if name_or_spec is None else name_or_spec, options)
    entry = _PRUNERS.entry(name)
    if directions is not None and len(_directions(directions)) > 1 and entry.name != "none":
        warnings.warn(f"pruner {name!r} replaced by 'none': Optuna cannot stop trials early in a study with "
                      "several objectives", UserWarning, stacklevel=2)
        entry = _PRUNERS.entry("none")
        opts = {}
    cls, defaults = entry.factory(max_epochs, n_trials)
    return _construct("pruner", entry.name, cls, defaults, opts)


# -- storages ---------------------------------------------------------------------------------

class StorageHandle(NamedTuple):
    """An opened Optuna storage and the string that opens it again (for worker processes)."""

    storage: Any
    url: str


_STORAGE_FORMS = ("null (a journal file run_dir/study.journal)", "a path ending in .journal",
                  "sqlite:///path/to/file.db", "postgresql://user:password@host/db")


def resolve_storage(url_or_none: str | os.PathLike[str] | StorageHandle | None, run_dir: str | os.PathLike[str]) -> StorageHandle:
    """Open the study storage: a journal file by default (safe for many local processes),
    SQLite or PostgreSQL through SQLAlchemy with heartbeats so dead workers' trials are found."""
    if isinstance(url_or_none, StorageHandle):
        return url_or_none
    if url_or_none is None:
        return _journal(Path(run_dir) / "study.journal")
    if not isinstance(url_or_none, (str, os.PathLike)):
        raise ConfigError(f"invalid storage: got {url_or_none!r}; allowed: {'; '.join(_STORAGE_FORMS)}")
    url = os.fspath(url_or_none)
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        Path(url[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return StorageHandle(_rdb(url, {"connect_args": {"timeout": 60}}), url)
    if url.startswith(("postgresql://", "postgresql+psycopg2://", "postgres://")):
        if importlib.util.find_spec("psycopg2") is None:
            raise ConfigError(f"storage {url.split('://')[0]}://... needs the PostgreSQL driver psycopg2: "
                              "pip install psycopg2-binary")
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://"):]
        # name the driver: SQLAlchemy 2.1 opens a plain postgresql:// with psycopg 3
        engine_url = "postgresql+psycopg2://" + url.split("://", 1)[1]
        # one connection for the trial loop, one for the heartbeat thread (see docs/cluster.md)
        engine = {"pool_pre_ping": True, "pool_size": 2, "max_overflow": 1, "connect_args": {"connect_timeout": 10}}
        return StorageHandle(_rdb(engine_url, engine, shown=url), url)
    if url.endswith(".journal") and "://" not in url:
        return _journal(Path(url).expanduser())
    raise ConfigError(f"invalid storage: got {url!r}; allowed: {'; '.join(_STORAGE_FORMS)}")


def _journal(path: Path) -> StorageHandle:
    from optuna.storages.journal import JournalStorage

    from honing.tune._journal import SafeJournalFileBackend

    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = _FlockJournalLock(str(path) + ".flock") if _FlockJournalLock.available() else None
    return StorageHandle(JournalStorage(SafeJournalFileBackend(str(path), lock_obj=lock)), str(path))


class _FlockJournalLock:
    """The journal's write lock as an exclusive ``flock``, which the kernel drops when its holder
    dies: a process killed while appending to the journal (SIGKILL, the OOM killer) does not leave
    a lock behind. Optuna's default symlink lock stays and blocks the next run for 30 s (its grace
    period) before it is forced. Where ``fcntl`` is missing, Optuna's default is used."""

    def __init__(self, path: str) -> None:
        import threading

        self._path = path
        self._fd: int | None = None
        self._thread_lock = threading.Lock()  # flock excludes other processes; this, other threads

    @staticmethod
    def available() -> bool:
        return importlib.util.find_spec("fcntl") is not None

    def acquire(self) -> bool:
        import fcntl

        self._thread_lock.acquire()
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(fd)
                raise
        except BaseException:
            self._thread_lock.release()
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the file drops the flock
            self._thread_lock.release()


def delete_study(storage: StorageHandle, study_name: str) -> bool:
    """Delete the study ``study_name`` from ``storage``; False when there was none."""
    import optuna

    try:
        optuna.delete_study(study_name=study_name, storage=storage.storage)
    except KeyError:
        return False
    return True


def mask_password(url: str | None) -> str | None:
    """A storage URL safe to print or store: postgresql://user:secret@host/db -> postgresql://user:***@host/db."""
    if not isinstance(url, str):
        return url
    return re.sub(r"(://[^/:@]+:)[^@/]*@", r"\1***@", url)


def heartbeat_interval_s() -> int:
    """Seconds between a running trial's heartbeats in a database study (``HONING_HEARTBEAT_S``,
    default 60); a trial whose worker missed two beats is failed and retried by the others."""
    from honing._core import env_number

    return int(env_number(HEARTBEAT_ENV, HEARTBEAT_INTERVAL_S, low=1, low_inclusive=True, integer=True,
                          allowed="a whole number of seconds >= 1"))


def _rdb(url: str, engine_kwargs: dict[str, Any], shown: str | None = None) -> Any:
    import optuna

    from honing.tune._compat import cached_storage
    from honing.tune._reconnect import reconnecting

    shown = mask_password(url if shown is None else shown)
    beat = heartbeat_interval_s()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            rdb = _new_schema_tolerant(lambda: optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=beat, grace_period=2 * beat))
            return reconnecting(cached_storage(rdb))
        except ImportError as e:
            raise ConfigError(f"storage {shown.split('://')[0]}:// cannot be opened: {e}") from None
        except Exception as e:  # SQLAlchemy's OperationalError and friends: a bad URL or an unreachable server
            raise HoningError(f"cannot open storage {shown!r}: {type(e).__name__}: {e}") from None


def _new_schema_tolerant(open_storage: Any, attempts: int = 5) -> Any:
    """``open_storage()``; in an empty database, workers that start together all create Optuna's
    tables, and every one but the first fails on a duplicate name: those try again (and find the
    tables made)."""
    import sqlalchemy.exc

    for attempt in range(attempts):
        try:
            return open_storage()
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def enqueue_retry(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
    """Enqueue the trial's parameters once more, unless it is itself a retry or has none."""
    if "retry_of" in trial.user_attrs or not trial.params:
        return False
    attrs = {"retry_of": trial.number}
    if "proposed_by" in trial.user_attrs:  # the retry runs what the same proposer chose
        attrs["proposed_by"] = trial.user_attrs["proposed_by"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # enqueue_trial's user_attrs: an ExperimentalWarning
        study.enqueue_trial(dict(trial.params), user_attrs=attrs, skip_if_exists=False)
    return True
