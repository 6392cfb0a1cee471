"""`honing suggest`: an expert's configuration runs as the study's next trial, marked as theirs."""

from __future__ import annotations

import yaml

from honing.cli import main
from honing.tune import load_study_result

RECIPE = {
    "name": "steer", "seed": 0,
    "data": {"source": "sklearn:iris", "val_size": 0.2, "test_size": 0.2},
    "model": {"name": "mlp", "hidden": [8]},
    "training": {"epochs": 3, "batch_size": 16, "optimizer": {"name": "adam", "lr": 0.01}},
    "tune": {"n_trials": 2, "sampler": "random", "cv": None, "warm_start": False,
             "space": {"training.optimizer.lr": {"float": [1.0e-3, 1.0e-1], "log": True},
                       "model.hidden": {"choice": [[8], [32, 16]]}}},
    "output": {"report": False},
}


def test_a_suggestion_is_the_next_trial_and_says_who_proposed_it(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    out = tmp_path / "out"
    assert main(["run", str(recipe), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["suggest", str(out), "training.optimizer.lr=0.0042", "model.hidden=[32, 16]"]) == 0
    said = capsys.readouterr().out
    assert "queued for study 'steer'" in said and "budget is spent" in said
    assert main(["run", str(recipe), "--out", str(out), "--quiet", "--n-trials", "3"]) == 0
    trial = load_study_result(str(out / "study.journal"), "steer").trial(2)
    assert trial["params"] == {"training.optimizer.lr": 0.0042, "model.hidden": [32, 16]}
    assert trial["user_attrs"]["proposed_by"] == "user" and trial["state"] == "complete"
    # a partial suggestion: the sampler picks the rest
    assert main(["suggest", str(out), "model.hidden=[8]"]) == 0
    assert main(["run", str(recipe), "--out", str(out), "--quiet", "--n-trials", "4"]) == 0
    trial = load_study_result(str(out / "study.journal"), "steer").trial(3)
    assert trial["params"]["model.hidden"] == [8] and 1e-3 <= trial["params"]["training.optimizer.lr"] <= 0.1


def test_bad_suggestions_are_errors_that_say_what_is_allowed(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    out = tmp_path / "out"
    assert main(["run", str(recipe), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    cases = {"training.optimizer.momentum=0.9": "unknown parameter 'training.optimizer.momentum'; allowed: ",
             "training.optimizer.lr=2": "a number from 0.001 to 0.1",
             "model.hidden=[7]": "allowed: one of [[8], [32, 16]]",
             "lr": "allowed: PATH=VALUE"}
    for arg, message in cases.items():
        assert main(["suggest", str(out), arg]) == 2
        assert message in capsys.readouterr().err
    assert main(["suggest", str(tmp_path), "training.optimizer.lr=0.01"]) == 2  # not a run folder
    assert "holds no study" in capsys.readouterr().err


def test_a_narrowed_range_holds_for_the_next_trials_and_each_trial_says_who_proposed_it(tmp_path, capsys):
    recipe_path = tmp_path / "r.yaml"
    auto = {**RECIPE, "tune": {**RECIPE["tune"], "sampler": "auto", "n_trials": 3},
            "output": {"report": True}}
    recipe_path.write_text(yaml.safe_dump(auto))
    out = tmp_path / "out"
    assert main(["run", str(recipe_path), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["space", str(out), "training.optimizer.lr=2e-3..4e-3"]) == 0
    said = capsys.readouterr().out
    assert "training.optimizer.lr from 0.001..0.1 to 0.002..0.004, from trial 3 on" in said
    assert "{'float': [0.002, 0.004], 'log': True}" in said  # the space as the next trial samples it
    assert main(["suggest", str(out), "training.optimizer.lr=0.003"]) == 0
    assert main(["run", str(recipe_path), "--out", str(out), "--quiet", "--n-trials", "9"]) == 0
    trials = load_study_result(str(out / "study.journal"), "steer").trials
    assert len(trials) == 9
    assert all(2e-3 <= t["params"]["training.optimizer.lr"] <= 4e-3 for t in trials[3:])
    who = [t["user_attrs"]["proposed_by"] for t in trials]
    assert who[0] == "recipe" and who[3] == "user" and all(w.startswith("sampler: ") for w in who[1:3] + who[4:])
    assert "proposed by" in (out / "report.html").read_text()


def test_bad_ranges_are_errors_that_say_what_is_allowed(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({**RECIPE, "tune": {**RECIPE["tune"], "space": {
        **RECIPE["tune"]["space"], "training.epochs": {"int": [2, 4]}}}}))
    out = tmp_path / "out"
    assert main(["run", str(recipe), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    cases = {"model.hidden=1..2": "a choice's options cannot change",
             "training.epochs=2.5..3": "allowed: integers",
             "training.optimizer.lr=0.1..0.01": "low 0.1 is greater than high 0.01",
             "training.optimizer.lr=-1..0.01": "log scale needs low > 0",
             "training.momentum=0..1": "unknown parameter 'training.momentum'",
             "training.optimizer.lr=0.01": "allowed: PATH=LOW..HIGH"}
    for arg, message in cases.items():
        assert main(["space", str(out), arg]) == 2, arg
        assert message in capsys.readouterr().err, arg
    assert main(["space", str(out)]) == 0  # no change: the ranges as they are
    assert "training.epochs: {'int': [2, 4]}" in capsys.readouterr().out
