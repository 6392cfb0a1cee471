"""The shipped example recipes run through the CLI and do what their comments promise.

`digits-mlp.yaml` (the `make demo` job) runs whole: its promise is a test accuracy of at least
0.97. The other small examples run with a reduced trial budget; `fashion-mnist-cnn.yaml` is
measured in bench/ (bench/run_memory.py), not here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from honing.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(recipe: str, out: Path, *extra: str) -> dict:
    code = main(["run", str(EXAMPLES / recipe), "--out", str(out), "--quiet", "--threads", "1", *extra])
    assert code == 0
    return json.loads((out / "results.json").read_text())


def test_digits_demo_reaches_its_promised_test_accuracy(tmp_path: Path) -> None:
    results = _run("digits-mlp.yaml", tmp_path / "digits")
    assert sum(results["trials"].values()) == results["recipe"]["tune"]["n_trials"] == 24
    assert results["trials"]["complete"] >= 1 and results["trials"]["fail"] == 0
    assert results["test_metrics"]["accuracy"] >= 0.97
    assert results["final_model"].startswith("retrained on train+validation")


def test_wine_cross_validation_reports_fold_averaged_curves(tmp_path: Path) -> None:
    results = _run("wine-cv.yaml", tmp_path / "wine", "--n-trials", "3")
    assert results["recipe"]["tune"]["cv"] == 5
    assert sum(results["trials"].values()) == 3
    assert results["test_metrics"]["accuracy"] >= 0.8  # 36 test rows, 3 classes; chance is 0.40
    from honing.tune import load_study_result

    study = load_study_result(results["study"]["storage"], results["study"]["name"])
    for trial in study.trials:
        if trial["state"] in ("complete", "pruned"):
            # one reported value per epoch: the mean over the 5 folds, not 5 separate curves
            assert len(trial["intermediate"]) == len(trial["user_attrs"]["curve"])


def test_diabetes_regression_reports_regression_metrics(tmp_path: Path) -> None:
    results = _run("diabetes-regression.yaml", tmp_path / "diabetes", "--n-trials", "3")
    assert results["task"] == "regression" and results["direction"] == "minimize"
    assert set(results["test_metrics"]) >= {"mse", "mae", "r2"}
    # this split's test rows are hard: scikit-learn's Ridge on the same split scores r2 0.185
    assert results["test_metrics"]["r2"] > 0.05  # better than the mean predictor (r2 <= 0 on these rows)
    assert "residual" in (tmp_path / "diabetes" / "report.html").read_text().lower()


def test_breast_cancer_multiobjective_keeps_a_pareto_front(tmp_path: Path) -> None:
    results = _run("breast-cancer-multiobjective.yaml", tmp_path / "bc", "--n-trials", "6")
    assert results["direction"] == ["maximize", "minimize"]
    assert results["objectives"] == ["val_accuracy", "params"]
    front = results["pareto"]
    assert front and results["best_trial"] in [t["number"] for t in front]
    # no point of the front is dominated by another
    for a in front:
        for b in front:
            assert not (b["values"][0] >= a["values"][0] and b["values"][1] <= a["values"][1]
                        and b["values"] != a["values"])
    assert results["test_metrics"]["accuracy"] >= 0.85


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_example_validates(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(path)]) == 0
    assert "valid" in capsys.readouterr().out


def test_digits_ensemble_combines_trials_into_a_model_folder(tmp_path: Path) -> None:
    results = _run("digits-ensemble.yaml", tmp_path / "ens", "--n-trials", "6")
    ens = results["ensemble"]
    assert ens["method"] == "greedy" and len(ens["members"]) >= 1
    assert abs(sum(m["weight"] for m in ens["members"]) - 1) < 1e-6
    assert ens["selection_loss"]["ensemble"] <= ens["selection_loss"]["best_single"] + 1e-9
    assert ens["test"]["ensemble"]["metrics"]["accuracy"] >= 0.9
    from honing.artifacts import load_model

    again = load_model(tmp_path / "ens" / "ensemble").evaluate("sklearn:digits")
    assert again["accuracy"] == pytest.approx(ens["test"]["ensemble"]["metrics"]["accuracy"], abs=1e-6)
