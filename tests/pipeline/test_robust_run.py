"""Robustness in a run: adversarial training from the recipe, the robust stage on the test rows
in pixel units (images) with corruptions, resuming, the robustness objective, recipe errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import load_digits

from honing.pipeline import run, train_once
from honing.recipe import RecipeError, parse_recipe
from honing.tune import load_study_result


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """The digits as 8x8 byte images (N, 1, 8, 8): an image data set in pixel units."""
    d = load_digits()
    x = np.clip(d.images * 16, 0, 255).astype(np.uint8)[:, None]
    path = tmp_path_factory.mktemp("images") / "digits.npz"
    np.savez(path, x=x, y=d.target)
    return f"npz:{path}"


def _recipe(source, **extra):
    return {"name": "robust", "seed": 0, "data": {"source": source, "val_size": 0.15, "test_size": 0.15},
            "model": {"name": "mlp", "hidden": [64]},
            "training": {"epochs": 6, "batch_size": 64, "optimizer": {"name": "adam", "lr": 0.01}},
            "robust": {"epsilons": [0.05, 0.2], "steps": 10, "queries": 150, "rows": 200},
            "output": {"report": True}, **extra}


def test_the_robust_stage_attacks_the_final_model_in_pixel_units(images, tmp_path, capsys):
    out = train_once(_recipe(images), out=tmp_path / "plain", progress=False)
    r = out.results["robustness"]
    assert r["rows"] == 200 and "pixel" in r["units"] and r["epsilons"] == [0.05, 0.2]
    assert set(r["accuracy"]) == {"fgsm", "pgd", "apgd", "square"}
    assert r["clean_accuracy"] > r["robust_accuracy"]["0.05"] > r["robust_accuracy"]["0.2"]
    assert all(c["passed"] for c in r["checks"]), r["checks"]
    assert set(r["corruptions"]) == {"gaussian_noise", "gaussian_blur", "contrast", "mean"}  # images: all three
    assert out.results["energy"]["robustness"]["joules"] >= 0
    html = (tmp_path / "plain" / "report.html").read_text()
    assert "Adversarial robustness" in html and "Image corruptions" in html
    again = train_once(_recipe(images), out=tmp_path / "plain", progress=False)  # resumed, not attacked again
    assert again.results["robustness"] == r
    stage = [s for s in again.results["stages"] if s["stage"] == "robust"][0]
    assert stage["outcome"] == "resumed"
    # honing robust on the model folder: the same rows re-created, the same figures
    from honing.cli import main

    assert main(["robust", str(tmp_path / "plain" / "model"), "--data", images, "--rows", "200", "--epsilons",
                 "0.05", "0.2", "--steps", "10", "--queries", "150", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert cli["clean_accuracy"] == r["clean_accuracy"] and cli["accuracy"]["pgd"] == r["accuracy"]["pgd"]
    assert "held out" in cli["scored"]


def test_adversarial_training_in_the_recipe_raises_robust_accuracy(images, tmp_path):
    plain = train_once(_recipe(images), out=tmp_path / "plain", progress=False).results["robustness"]
    recipe = _recipe(images)
    recipe["training"] = {**recipe["training"], "adversarial": {"method": "pgd", "epsilon": 0.2, "steps": 5}}
    adv = train_once(recipe, out=tmp_path / "adv", progress=False).results["robustness"]
    assert adv["robust_accuracy"]["0.2"] > plain["robust_accuracy"]["0.2"] + 0.15
    saved = json.loads((tmp_path / "adv" / "results.json").read_text())
    assert saved["recipe"]["training"]["adversarial"]["method"] == "pgd"


def test_robustness_is_an_objective_and_the_epsilon_is_searchable(images, tmp_path):
    recipe = _recipe(images, tune={"n_trials": 3, "sampler": "random", "cv": None, "warm_start": False,
                                   "objectives": [{"metric": "val_accuracy"}, {"metric": "robustness"}],
                                   "space": {"training.adversarial.epsilon": {"float": [0.0, 0.2]}}})
    recipe["training"] = {**recipe["training"], "epochs": 3, "adversarial": {"method": "fgsm", "epsilon": 0.1}}
    recipe["robust"] = {**recipe["robust"], "attacks": ["pgd"], "epsilons": [0.2]}
    res = run(recipe, out=tmp_path / "run", progress=False).results
    assert res["objectives"] == ["val_accuracy", "robustness"]
    trials = load_study_result(str(tmp_path / "run" / "study.journal"), "robust").trials
    assert len(trials) == 3 and all(0 <= t["values"][1] <= t["values"][0] + 0.05 for t in trials)
    assert len({round(t["params"]["training.adversarial.epsilon"], 6) for t in trials}) == 3


def test_a_regression_run_skips_the_attacks_with_a_note(tmp_path, capsys):
    recipe = {**_recipe("sklearn:diabetes"), "output": {"report": False}}
    res = train_once(recipe, out=tmp_path / "r", progress=False).results
    assert "regression" in res["robustness"]["skipped"]
    assert "robust: skipped" in capsys.readouterr().err
    from honing.cli import main

    assert main(["robust", str(tmp_path / "r" / "model"), "--data", "sklearn:diabetes"]) == 2
    assert "allowed: a classifier" in capsys.readouterr().err


@pytest.mark.parametrize("change, where, says", [
    ({"tune": {"n_trials": 2, "objectives": [{"metric": "val_accuracy"}, {"metric": "robustness"}], "pruner": "none",
               "space": {"model.dropout": {"float": [0.0, 0.5]}}}, "robust": None},
     "tune.objectives.1.metric", "without a robust section"),
    ({"robust": {"norm": "l2", "attacks": ["pgd", "square"]}}, "robust.attacks.1", "L-inf attack"),
    ({"data": {"source": "sklearn:diabetes", "task": "regression"}}, "robust", "regression"),
    ({"robust": {"epsilons": [-0.1]}}, "robust.epsilons.0", "greater than or equal to 0"),
    ({"training": {"adversarial": {"method": "mart"}}}, "training.adversarial.method", "allowed: 'pgd', 'trades', 'fgsm'"),
    ({"training": {"adversarial": {}, "distributed": {"processes": 2}}}, "training.adversarial", "one of them"),
    ({"training": {"adversarial": {}, "precision": "16", "device": "cuda"}}, "training.adversarial", "bf16"),
])
def test_recipe_errors_name_the_field(change, where, says):
    recipe = {**_recipe("sklearn:digits"), **change}
    with pytest.raises(RecipeError) as err:
        parse_recipe(recipe)
    assert where in str(err.value) and says in str(err.value), str(err.value)


def test_adding_a_robust_section_or_audited_groups_keeps_the_study(tmp_path):
    from honing import ConfigError
    from honing.pipeline._stage_search import check_same_study

    base = parse_recipe({**_recipe("sklearn:digits"), "robust": None}).to_dict()
    check_same_study(tmp_path, base)
    check_same_study(tmp_path, {**base, "robust": {"epsilons": [0.1]}})  # the final model is attacked: same study
    check_same_study(tmp_path, {**base, "evaluate": {**base["evaluate"], "groups": ["pixel_0_0"]}})
    with pytest.raises(ConfigError, match="sections changed: evaluate"):  # the inputs change: another study
        check_same_study(tmp_path, {**base, "evaluate": {**base["evaluate"], "groups": ["pixel_0_0"],
                                                         "group_inputs": False}})


def test_a_spiking_model_reports_its_spikes_and_operations(tmp_path):
    recipe = {"name": "snn", "seed": 0, "data": {"source": "sklearn:digits"},
              "model": {"name": "snn", "hidden": [32], "steps": 4},
              "training": {"epochs": 4, "batch_size": 64, "optimizer": {"name": "adam", "lr": 0.003}},
              "evaluate": {"baselines": False}}
    res = train_once(recipe, out=tmp_path / "snn", progress=False).results
    s = res["spikes"]
    assert s["time_steps"] == 4 and 0 < s["spike_rate"]["layers.0"] < 1 and s["synaptic_ops"] > 0
    assert s["ann_macs"] == 64 * 32 + 32 * 10 and res["test_metrics"]["accuracy"] > 0.5
    assert "Spiking network" in (tmp_path / "snn" / "report.html").read_text()
