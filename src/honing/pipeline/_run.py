"""The working process: a recipe in, stages in order, artifacts out.

``run`` is the stage list ``"run"`` (data -> search -> select -> final_fit -> test -> baselines
-> transfer -> save -> compress -> results -> report); ``train_once`` is the list ``"train"``
(the same with one ``fit`` in place of the search). ``list_stages("run")`` shows the list as it
is, plugins' stages included. Re-running on the same output folder resumes: the study
continues, and the final fit, the test, the baselines and compression are not redone when what
made them has not changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from honing._core import load_plugins
from honing.pipeline._build import as_recipe
from honing.pipeline._card import CardStage
from honing.pipeline._context import RunContext, RunOptions
from honing.pipeline._ensemble import EnsembleStage
from honing.pipeline._nas import NasStage
from honing.pipeline._stage_model import FinalFitStage, FitStage, TestStage
from honing.pipeline._stage_output import (
    BaselinesStage,
    CompressStage,
    ReferenceStage,
    ReportStage,
    ResultsStage,
    SaveStage,
    TransferStage,
    write_results,
)
from honing.pipeline._stage_search import DataStage, SearchStage, SelectStage, output_dir
from honing.pipeline._fairness import FairnessStage
from honing.pipeline._robust import RobustStage
from honing.pipeline._spikes import SpikesStage
from honing.pipeline._stages import register_stage, run_stages


@dataclass(frozen=True)
class RunResult:
    out_dir: Path
    results: dict[str, Any]

    @property
    def test_metrics(self) -> dict[str, float]:
        return self.results["test_metrics"]


def _overrides(recipe: Any, *, n_trials: int | None, timeout: float | None, seed: int | None,
               nproc: int | None = None) -> Any:
    changes: dict[str, Any] = {}
    if seed is not None:
        changes["seed"] = seed
    if nproc is not None:
        changes["training.distributed.processes"] = nproc
    if recipe.tune is not None:
        if n_trials is not None:
            changes["tune.n_trials"] = n_trials
        if timeout is not None:
            changes["tune.timeout"] = timeout
    return recipe.with_params(changes) if changes else recipe


def run(
    recipe: Any,
    *,
    out: str | Path | None = None,
    workers: int = 1,
    storage: str | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    seed: int | None = None,
    threads: int | None = None,
    progress: bool = True,
    nproc: int | None = None,
    executor: str | None = None,
    address: str | None = None,
    trial_cpus: float = 1.0,
    trial_gpus: float = 0.0,
) -> RunResult:
    """Search, train the final model, test it once and write the output folder (a recipe
    without a tune section trains once: ``train_once``). ``nproc``: data-parallel processes for
    the final model (``training.distributed.processes``). ``executor``: where trials run
    (``processes``, ``ray``: ``workers`` Ray tasks of ``trial_cpus`` CPUs and ``trial_gpus`` GPUs
    each, on the cluster at ``address`` or a local Ray)."""
    load_plugins()  # before the recipe is read: plugins add recipe sections
    rec = _overrides(as_recipe(recipe), n_trials=n_trials, timeout=timeout, seed=seed, nproc=nproc)
    if rec.tune is None:
        return train_once(rec, out=out, threads=threads, progress=progress)
    options = RunOptions(workers=workers, storage=storage, threads=threads, progress=progress, source=recipe,
                         executor=executor, address=address, trial_cpus=trial_cpus, trial_gpus=trial_gpus)
    return _run_list(rec, "run", out, options)


def train_once(recipe: Any, *, out: str | Path | None = None, threads: int | None = None,
               progress: bool = True, seed: int | None = None, nproc: int | None = None) -> RunResult:
    """One configuration, no search: train with validation (early stopping, best epoch), test once.
    ``nproc``: data-parallel processes (``training.distributed.processes``)."""
    load_plugins()
    rec = _overrides(as_recipe(recipe), n_trials=None, timeout=None, seed=seed, nproc=nproc)
    options = RunOptions(threads=threads, progress=progress, source=recipe)
    return _run_list(rec, "train", out, options)


def _run_list(rec: Any, kind: str, out: str | Path | None, options: RunOptions) -> RunResult:
    ctx = RunContext(recipe=rec, out_dir=output_dir(rec, out), options=options, kind=kind)
    run_stages(ctx, kind)
    results = ctx.results.get("_written")
    if results is None:  # a plugin list without the results stage: nothing to hand back
        return RunResult(ctx.out_dir, {})
    results["stages"] = list(ctx.records)  # the records of the stages after results.json was first written
    write_results(ctx.out_dir, results)
    return RunResult(ctx.out_dir, results)


# --- the built-in stage lists ------------------------------------------------------------------

def _register_builtin() -> None:
    both = ("run", "train")
    register_stage(DataStage(), lists=both)
    register_stage(SearchStage(), lists=("run",))
    register_stage(SelectStage(), lists=("run",))
    register_stage(FinalFitStage(), lists=("run",))
    register_stage(FitStage(), lists=("train",))
    for stage in (TestStage(), BaselinesStage(), TransferStage(), SaveStage(), ReferenceStage(), CompressStage(),
                  ResultsStage(), CardStage(), ReportStage()):
        register_stage(stage, lists=both)
    register_stage(EnsembleStage(), lists=("run",), after="test")
    register_stage(NasStage(), lists=both, after="data")
    register_stage(RobustStage(), lists=both, after="test")
    register_stage(FairnessStage(), lists=both, after="test")
    register_stage(SpikesStage(), lists=both, after="test")


_register_builtin()
