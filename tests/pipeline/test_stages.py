"""The run as a list of stages: the lists, the records in results.json, resuming finished
stages, and the registry's errors."""

from __future__ import annotations

import pytest
import torch
from _run_helpers import tiny
from safetensors.torch import load_file

from honing._core import ConfigError, UnknownNameError
from honing.pipeline import list_stages, register_stage, run, train_once
from honing.pipeline._stages import STAGE_LISTS, STAGES


def _outcomes(results: dict) -> dict[str, str]:
    return {r["stage"]: r["outcome"] for r in results["stages"]}


def test_run_and_train_are_two_stage_lists() -> None:
    run_list, train_list = list_stages("run"), list_stages("train")
    assert run_list[:5] == ["data", "nas", "search", "select", "final_fit"] and "fit" not in run_list
    assert train_list[:3] == ["data", "nas", "fit"] and "search" not in train_list
    after = ["baselines", "transfer", "save", "reference", "compress", "results", "card", "report"]
    assert run_list[5:] == ["test", "spikes", "fairness", "robust", "ensemble", *after]
    assert train_list[3:] == ["test", "spikes", "fairness", "robust", *after]
    assert set(run_list) | set(train_list) <= set(list_stages())


def test_a_rerun_resumes_the_final_fit_test_and_compression(tmp_path) -> None:
    recipe = tiny({"tune.n_trials": 2, "compress": [{"quantize": {"mode": "dynamic"}}]})
    first = run(recipe, out=tmp_path, progress=False).results
    assert [r["stage"] for r in first["stages"]] == list_stages("run")
    assert set(_outcomes(first).values()) == {"done"} and all(r["seconds"] >= 0 for r in first["stages"])
    weights = load_file(str(tmp_path / "model" / "model.safetensors"))

    again = run(recipe, out=tmp_path, progress=False).results
    outcomes = _outcomes(again)
    for stage in ("final_fit", "test", "baselines", "compress"):
        assert outcomes[stage] == "resumed", (stage, outcomes)
    assert again["test_metrics"] == first["test_metrics"] and again["compress"]["stages"][1]["metrics"] == \
        first["compress"]["stages"][1]["metrics"]
    assert again["baselines"] == first["baselines"] and again["best_trial"] == first["best_trial"]
    resaved = load_file(str(tmp_path / "model" / "model.safetensors"))
    assert all(torch.equal(weights[k], resaved[k]) for k in weights)  # the same final model, loaded not retrained

    # other compression steps: the final model is kept, the compression runs again
    other = run({**recipe, "compress": [{"quantize": {"mode": "bf16"}}]}, out=tmp_path, progress=False).results
    assert _outcomes(other)["final_fit"] == "resumed" and _outcomes(other)["compress"] == "done"
    assert other["compress"]["stages"][1]["stage"] == "quantize bf16"

    # a larger budget that chooses another trial trains a new final model
    more = run(recipe, out=tmp_path, n_trials=4, progress=False).results
    assert sum(more["trials"].values()) == 4
    assert _outcomes(more)["final_fit"] == ("resumed" if more["best_trial"] == first["best_trial"] and
                                            more["best_params"] == first["best_params"] else "done")


def test_train_records_its_stages(tmp_path) -> None:
    results = train_once(tiny({"tune": None}), out=tmp_path, progress=False).results
    assert [r["stage"] for r in results["stages"]] == list_stages("train")
    assert _outcomes(results)["transfer"] == "done" and results["timings"]["final_training"] > 0


def test_stage_registry_errors() -> None:
    class Nothing:
        name = "test"  # taken

        def run(self, ctx):
            return None

    with pytest.raises(ConfigError, match="already registered"):
        register_stage(Nothing())
    Nothing.name = "nothing-here"
    with pytest.raises(ConfigError, match="no stage 'tset' in the 'run' list"):
        register_stage(Nothing(), lists=("run",), after="tset")
    with pytest.raises(ConfigError, match="allowed: an object with a name and run"):
        register_stage(object())  # type: ignore[arg-type]
    with pytest.raises(UnknownNameError, match="Did you mean 'final_fit'"):
        STAGES.create("final-fit")
    with pytest.raises(ConfigError, match="invalid stage list"):
        list_stages("serve")
    assert "nothing-here" not in STAGE_LISTS["run"] and "nothing-here" not in STAGES  # nothing half-registered


def test_a_failing_stage_is_recorded_and_the_error_raised(tmp_path, monkeypatch) -> None:
    """The records say which stage failed; what finished before it stays (the study, the final weights)."""
    from honing.pipeline import _stage_output

    def boom(self, ctx):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(_stage_output.SaveStage, "run", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        run(tiny({"tune.n_trials": 2}), out=tmp_path, progress=False)
    assert (tmp_path / "stages" / "final_fit.safetensors").is_file() and not (tmp_path / "results.json").exists()
    monkeypatch.undo()
    results = run(tiny({"tune.n_trials": 2}), out=tmp_path, progress=False).results
    assert _outcomes(results)["final_fit"] == "resumed" and _outcomes(results)["save"] == "done"


def test_the_final_model_trains_for_the_smoothed_best_epoch_not_one_lucky_one() -> None:
    from honing.pipeline._stage_model import retrain_epochs

    # the digits demo's chosen trial once: a spike at epoch 4 on 270 validation rows, then a plateau
    curve = [0.778, 0.933, 0.93, 0.981, 0.956, 0.956, 0.963, 0.963, 0.963, 0.959, 0.967, 0.967, 0.963, 0.959,
             0.959, 0.97, 0.967, 0.967, 0.967, 0.967]
    assert curve.index(max(curve)) + 1 == 4 and retrain_epochs(curve, "max", default=4) == 17
    assert retrain_epochs([0.9, 0.5, 0.4, 0.45, 0.6], "min", default=3) == 3  # losses: the lowest average
    assert retrain_epochs([0.5, 0.7], "max", default=2) == 2  # too short to smooth: the best epoch
    assert retrain_epochs([0.5, 0.6, 0.6, 0.5], "max", default=2) == 2  # ties: the earliest
