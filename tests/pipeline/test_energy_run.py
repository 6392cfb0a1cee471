"""Energy in a run: every trial, the final training and the test inference, with the method; and
energy_j as an objective of a multi-objective search."""

from __future__ import annotations

import pytest

from honing.pipeline import run
from honing.tune import load_study_result

RECIPE = {
    "name": "energy", "seed": 0,
    "data": {"source": "sklearn:iris", "val_size": 0.2, "test_size": 0.2},
    "model": {"name": "mlp", "hidden": [16]},
    "training": {"epochs": 5, "batch_size": 16, "optimizer": {"name": "adam", "lr": 0.01}},
    "tune": {"n_trials": 3, "sampler": "random", "cv": None, "warm_start": False,
             "space": {"model.hidden": {"choice": [[4], [64, 64]]}}},
    "output": {"report": False},
}


def test_a_run_reports_the_energy_of_its_parts_with_the_method(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HONING_CPU_WATTS_PER_CORE", "8")
    res = run(RECIPE, out=tmp_path / "run", progress=False).results
    energy = res["energy"]
    assert set(energy) == {"search", "final_training", "test_inference"}
    for part in energy.values():
        assert part["joules"] >= 0 and part["method"] in ("rapl", "estimated")
    trials = load_study_result(str(tmp_path / "run" / "study.journal"), "energy").trials
    per_trial = [t["user_attrs"]["energy"]["joules"] for t in trials]
    assert energy["search"]["trials"] == 3 and energy["search"]["joules"] == pytest.approx(sum(per_trial), abs=1e-3)
    if energy["final_training"]["method"] == "estimated":  # no RAPL counter here: the estimate says how
        assert "x 8 W per busy core" in energy["final_training"]["detail"]
    again = run(RECIPE, out=tmp_path / "run", progress=False).results  # resumed: the earlier readings stand
    assert again["energy"]["final_training"] == energy["final_training"]


def test_energy_j_is_an_objective(tmp_path):
    recipe = {**RECIPE, "tune": {**RECIPE["tune"], "n_trials": 4, "sampler": "random",
                                 "objectives": [{"metric": "val_accuracy"}, {"metric": "energy_j"}]}}
    res = run(recipe, out=tmp_path / "run", progress=False).results
    assert res["objectives"] == ["val_accuracy", "energy_j"]
    trials = load_study_result(str(tmp_path / "run" / "study.journal"), "energy").trials
    for t in trials:
        assert t["values"][1] == pytest.approx(t["user_attrs"]["energy"]["joules"], abs=1e-3)
