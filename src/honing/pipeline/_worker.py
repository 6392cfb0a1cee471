"""``honing worker``: more trial workers for a study that ``honing run`` leads, on this machine
or another one.

The leader (``honing run RECIPE --storage URL``) stores in the study the recipe each trial runs
(after its architecture search and its cross-validation rule) and the trial budget. A worker
reads both from the study, loads the data on its own machine, and claims trials until the
budget is spent: in a PostgreSQL study the budget is claimed under an advisory lock in the
database, so it holds across machines; a dead worker's trial is found by its missed heartbeats
and retried once. The leader waits for the workers' last trials, then picks the final model.

Trials that keep files (``final: best_trial`` weights, the ``ensemble`` section's predictions)
write them to the worker's run folder: the leader's own folder when this machine sees it (the
same machine, or a shared disk), else ``runs/<name>`` here, and the leader is told which trial's
files are elsewhere.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from honing._core import ConfigError, HoningError, load_plugins
from honing.pipeline._build import as_recipe, load_data
from honing.pipeline._objective import RecipeObjective
from honing.pipeline._stage_search import (
    BUDGET_ATTR,
    FOLDER_ATTR,
    RECIPE_ATTR,
    STARTS_ATTR,
    _BUDGET_FIELDS,
    named_data_errors,
)
from honing.tune._loop import COMMAND_ENV

_POLL_S = 1.0


@dataclass(frozen=True)
class WorkerResult:
    study_name: str
    storage: str  # the URL, password masked
    out_dir: Path
    n_trials: int
    counts: dict[str, int]  # the whole study's trials by state when this worker stopped
    ran: dict[str, int]  # the trials this command's processes ran, by state


def work(
    recipe: Any = None,
    *,
    storage: str,
    study: str | None = None,
    out: str | Path | None = None,
    workers: int = 1,
    threads: int | None = None,
    wait: float = 60.0,
    progress: bool = True,
) -> WorkerResult:
    """Join the study ``study`` (or the recipe's name) in ``storage`` and run its trials until its
    budget is spent. ``recipe``: optional; when given it must be the recipe the leader runs (the
    budget fields may differ). ``wait``: seconds to wait for the leader to create the study."""
    from honing.recipe import parse_recipe
    from honing.tune import create_pruner, create_sampler, mask_password, optimize, resolve_storage

    load_plugins()
    if not storage:
        raise ConfigError("honing worker needs --storage: the URL of the study that `honing run RECIPE --storage URL` "
                          "leads (postgresql://..., or sqlite:///... or a .journal file on a disk both machines share)")
    given = as_recipe(recipe) if recipe is not None else None
    name = study or (given.name if given is not None else None)
    if not name:
        raise ConfigError("honing worker needs --study NAME (the leader's recipe name) or the recipe")
    handle = resolve_storage(storage, Path(out) if out is not None else Path.cwd())
    shown = mask_password(handle.url) or handle.url
    attrs = _wait_for_study(handle, name, wait, shown)
    base, n_trials = attrs[RECIPE_ATTR], int(attrs[BUDGET_ATTR])
    if given is not None:
        _check_same_recipe(given.to_dict(), base, name)
    rec = parse_recipe(base)
    out_dir = _folder(attrs.get(FOLDER_ATTR), out, name, handle.url)
    data = named_data_errors(lambda: load_data(rec), None)
    directions = rec.directions(data.task)
    tune = rec.tune
    sampler = create_sampler(tune.sampler, seed=rec.seed, space=rec.space, directions=directions, n_trials=n_trials)
    pruner = create_pruner(tune.pruner, max_epochs=rec.training.epochs, n_trials=n_trials, directions=directions)
    objective = RecipeObjective(rec, str(out_dir), threads=threads or 1, save_weights=tune.final == "best_trial",
                                keep_predictions=rec.ensemble is not None, data=data if workers <= 1 else None,
                                label_issues=data.info.get("label_issues") if workers > 1 else None)
    command = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    os.environ[COMMAND_ENV] = command  # inherited by local worker processes: the trials this command ran
    if progress:
        print(f"honing worker: study {name!r} in {shown}, budget {n_trials} trials; trial files in {out_dir}",
              flush=True)
    try:
        result = optimize(objective, study_name=name, storage=handle, space=rec.space, directions=directions,
                          sampler=sampler, pruner=pruner, n_trials=n_trials, timeout=tune.timeout, workers=workers,
                          seed=rec.seed, base=base, progress=progress, run_dir=out_dir, join=True,
                          warm_start=attrs.get(STARTS_ATTR) or [])
    finally:
        os.environ.pop(COMMAND_ENV, None)
    mine = [t for t in result.trials if t["user_attrs"].get("command") == command]
    ran = {s: sum(t["state"] == s for t in mine) for s in ("complete", "pruned", "fail")}
    return WorkerResult(name, shown, out_dir, n_trials, dict(result.counts), ran)


def _wait_for_study(handle: Any, name: str, wait: float, shown: str) -> dict[str, Any]:
    """The study's attributes, once the leader has created it and stored its recipe."""
    import optuna

    deadline = time.monotonic() + max(0.0, float(wait))
    while True:
        try:
            study = optuna.load_study(study_name=name, storage=handle.storage)
        except KeyError:
            study = None
        attrs = study.user_attrs if study is not None else {}
        if RECIPE_ATTR in attrs and BUDGET_ATTR in attrs:
            return attrs
        if time.monotonic() >= deadline:
            if study is None:
                raise HoningError(f"no study {name!r} in {shown} after waiting {wait:g} s: start the leader first "
                                  f"(`honing run RECIPE --storage URL`), or wait longer (--wait)")
            raise ConfigError(f"study {name!r} in {shown} was not started by `honing run` (it holds no recipe); "
                              "allowed: a study that `honing run RECIPE --storage URL` leads")
        time.sleep(_POLL_S)


def _check_same_recipe(given: dict[str, Any], stored: dict[str, Any], name: str) -> None:
    """A worker's own recipe must be the leader's (the budget fields, the search's validation
    rule and the sections after the search may differ)."""
    # an architecture search chose the leader's model section
    skip = ("compress", "ensemble", "nas", "output", *(("model",) if given.get("nas") else ()))

    def strip(r: dict[str, Any]) -> dict[str, Any]:
        tune = {k: v for k, v in (r.get("tune") or {}).items() if k not in (*_BUDGET_FIELDS, "cv")}
        return {**{k: v for k, v in r.items() if k not in skip}, "tune": tune}

    a, b = strip(given), strip(stored)
    if a != b:
        changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        raise ConfigError(f"the recipe differs from the one study {name!r} runs (sections changed: "
                          f"{', '.join(changed)}); allowed: the leader's recipe, or no recipe (--study {name} "
                          "reads it from the study)")


def _folder(leader: Any, out: str | Path | None, name: str, url: str) -> Path:
    """Where this worker's trials write their files. A journal or SQLite study holds its budget
    lock in the leader's run folder, so a worker must share that folder."""
    from honing.tune._claim import lock_kind

    if out is not None:
        folder = Path(out)
    elif isinstance(leader, str) and Path(leader).is_dir():
        folder = Path(leader)
    else:
        folder = Path("runs") / name
    if lock_kind(url) == "file":
        if not (isinstance(leader, str) and folder.resolve() == Path(leader).resolve()):
            raise ConfigError(f"a study in {url} holds its trial budget with a lock file in the leader's run folder "
                              f"({leader}); allowed: run the worker where that folder is (--out {leader}), or a "
                              "PostgreSQL storage for workers on several machines")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
