"""The main job on a user's own CSV: the target, the units, the columns, the rows scored."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import honing
from honing._core import DataError
from honing.pipeline import run, train_once

from _run_helpers import results_of, tiny  # noqa: E402


def _prices(path: Path, n: int = 240, seed: int = 0) -> Path:
    """House-price-like rows: the target in the thousands, a categorical column, the target first."""
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["price", "rooms", "area", "town"])
        for _ in range(n):
            rooms, area, town = int(rng.integers(1, 6)), float(rng.uniform(30, 200)), ["a", "b", "c"][int(rng.integers(3))]
            price = 20_000 + 9_000 * rooms + 450 * area + {"a": 0, "b": 15_000, "c": -8_000}[town] + rng.normal(0, 2000)
            w.writerow([f"{price:.2f}", rooms, f"{area:.1f}", town])
    return path


def _recipe(source: str, **data: object) -> dict:
    r = tiny({"data.source": source, "data.task": "regression", "tune": None, "training.epochs": 60,
              "training.early_stopping": None, "training.optimizer": {"name": "adam", "lr": 0.01},
              "model.hidden": [32], "model.dropout": 0.0})
    r["data"].update(data)
    return r


@pytest.fixture(scope="module")
def price_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("prices")
    csv_file = _prices(folder / "prices.csv")
    out = folder / "run"
    train_once(_recipe(f"csv:{csv_file}", target="price", scale_target=True), out=out, progress=False)
    return csv_file, out


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_scale_target_predicts_and_scores_in_the_targets_units(price_run):
    csv_file, out = price_run
    results = results_of(out)
    model = honing.load_model(out)
    rows = _rows(csv_file)
    pred = model.predict(rows)  # a list of dicts, as csv.DictReader gives them (the target ignored)
    assert pred.shape == (len(rows),) and pred.dtype == np.float64
    truth = np.array([float(r["price"]) for r in rows])
    assert 40_000 < pred.mean() < 200_000  # prices, not standardized values near 0
    assert np.sqrt(np.mean((pred - truth) ** 2)) < 0.5 * truth.std()  # learned something, in prices
    evaluated = model.evaluate(f"csv:{csv_file}")
    assert evaluated["rows"] == results["data"]["rows"]["test"]
    for key in ("mse", "mae", "rmse", "r2"):
        if key in results["test_metrics"]:
            assert evaluated[key] == pytest.approx(results["test_metrics"][key], rel=1e-4), key
    assert results["test_metrics"]["mae"] > 100  # in prices (a scaled MAE would be below 1)


def test_predict_takes_dataframes_arrays_and_dicts_alike(price_run):
    import pandas

    csv_file, out = price_run
    model = honing.load_model(out)
    frame = pandas.read_csv(csv_file)
    by_frame = model.predict(frame)
    by_dicts = model.predict(frame.to_dict("records"))
    by_array = model.predict(frame[model.columns].to_numpy(dtype=object))
    shuffled = model.predict(frame[["town", "area", "rooms"]])  # another column order, matched by name
    np.testing.assert_allclose(by_frame, by_dicts, rtol=1e-6)
    np.testing.assert_allclose(by_frame, by_array, rtol=1e-6)
    np.testing.assert_allclose(by_frame, shuffled, rtol=1e-6)
    one = model.predict({"rooms": 3, "area": 80.0, "town": "b"})
    assert one.shape == (1,)


def test_columns_are_matched_by_name_and_a_wrong_one_is_named(price_run, tmp_path):
    csv_file, out = price_run
    model = honing.load_model(out)
    with pytest.raises(DataError, match="missing column\\(s\\) 'town'.*unknown column\\(s\\) 'city'"):
        model.predict([{"rooms": 3, "area": 80.0, "city": "b"}])
    rows = _rows(csv_file)
    swapped = tmp_path / "swapped.csv"  # the same rows, two feature columns swapped
    with open(swapped, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["price", "area", "rooms", "town"])
        w.writeheader()
        w.writerows(rows)
    a = model.evaluate(f"csv:{csv_file}", split="all")
    b = model.evaluate(f"csv:{swapped}")
    assert b["rows"] == len(rows) and a["mse"] == pytest.approx(b["mse"], rel=1e-6)
    renamed = tmp_path / "renamed.csv"
    renamed.write_text(swapped.read_text().replace("rooms", "bedrooms", 1))
    with pytest.raises(DataError, match="'rooms'.*'bedrooms'"):
        model.evaluate(f"csv:{renamed}")


def test_evaluate_refuses_a_changed_training_source(price_run, tmp_path):
    csv_file, out = price_run
    model = honing.load_model(out)
    changed = tmp_path / "prices.csv"
    changed.write_text(csv_file.read_text())
    model.recipe["data"]["source"] = f"csv:{changed}"  # as if the file had been edited where it was
    lines = changed.read_text().splitlines()
    changed.write_text("\n".join(lines[:1] + lines[1:][::-1]) + "\n")  # same rows, another order
    with pytest.raises(DataError, match="changed since the model was trained"):
        model.evaluate(f"csv:{changed}")


def _imbalanced(path: Path, seed: int = 0) -> Path:
    """Three classes, 85% / 12% / 3% of 400 rows, separable on two numeric columns."""
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["a", "b", "kind"])
        for i in range(400):
            k = "common" if i % 100 < 85 else ("rare" if i % 100 < 97 else "very_rare")
            centre = {"common": (0, 0), "rare": (3, 0), "very_rare": (0, 3)}[k]
            w.writerow([f"{centre[0] + rng.normal(0, 0.7):.3f}", f"{centre[1] + rng.normal(0, 0.7):.3f}", k])
    return path


def test_every_run_reports_baselines_and_warns_when_they_win(tmp_path, capsys):
    """A model trained for one epoch at a tiny learning rate: the linear baseline beats it, and
    the run says so (results.json, the console summary and a warning)."""
    from honing.cli import main as cli
    from _run_helpers import write_recipe

    r = tiny({"data.source": "sklearn:wine", "tune": None, "training.epochs": 1,
              "training.optimizer": {"name": "sgd", "lr": 1e-5}, "training.early_stopping": None})
    recipe = write_recipe(tmp_path / "weak.yaml", r)
    assert cli(["train", str(recipe), "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    results = results_of(tmp_path / "out")
    assert {"majority", "logistic_regression", "gradient_boosting"} <= set(results["baselines"])
    for entry in results["baselines"].values():
        assert set(entry["metrics"]) == set(results["test_metrics"]) - {"loss"} and entry["rows"] > 100
    vs = results["vs_baseline"]
    assert vs["metric"] == "accuracy" and vs["better"] is False and vs["baseline"] > 0.9
    assert any("not better than the" in w for w in results["warnings"])
    assert "honing: warning: the model is not better than the" in captured.err
    assert "honing vs baselines" in captured.out and "NOT better" in captured.out
    assert "target: (the source's labels)" in captured.out  # the target is always stated


def test_imbalanced_classes_lead_with_macro_f1_and_warn(tmp_path, capsys):
    data = _imbalanced(tmp_path / "imb.csv")
    r = tiny({"data.source": f"csv:{data}", "data.target": "kind", "tune": None, "training.epochs": 30,
              "training.early_stopping": None})
    results = train_once(r, out=tmp_path / "out", progress=True).results
    err = capsys.readouterr().err
    assert results["imbalance"]["imbalanced"] is True and results["imbalance"]["ratio"] >= 20
    assert results["primary_metric"] == "f1_macro" and results["vs_baseline"]["metric"] == "f1_macro"
    assert results["baselines"]["majority"]["metrics"]["accuracy"] > 0.8  # accuracy alone would flatter
    assert any("imbalanced classes" in w for w in results["warnings"])
    assert "fewer than 5 val rows of class(es) very_rare" in err and "fewer than 5 test rows" in err
    counts = results["data"]["classes"]
    assert counts["very_rare"]["train"] >= 6 and counts["common"]["test"] > 40  # stratified
    assert "honing: data: csv:" in err and "target: kind [data.target]" in err  # printed before training


def test_dropped_and_imputed_rows_are_counted(tmp_path, capsys):
    rows = [[i % 7, "" if i % 10 == 3 else f"{(i * 37) % 11}", "x" if i % 3 else "", i % 2] for i in range(200)]
    rows += [rows[0]] * 5 + [[1, 2, "x", ""]] * 3  # 5 repeated rows, 3 rows without a target
    path = tmp_path / "d.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["a", "b", "c", "label"])
        w.writerows(rows)
    results = train_once(tiny({"data.source": f"csv:{path}", "tune": None}), out=tmp_path / "out").results
    data = results["data"]
    assert data["target"] == ["label"] and "named" in data["target_from"]
    assert data["rows_read"] == 205 and data["dropped"]["missing_target"] == 3
    assert data["dropped"]["duplicates"] >= 5
    assert sum(data["rows"].values()) == 205 - data["dropped"]["duplicates"]
    assert data["imputed"]["columns"] == {"b": 20, "c": 67 + 5}  # counted over the 205 rows with a target
    err = capsys.readouterr().err
    assert "duplicate rows dropped" in err and "missing values imputed" in err


def test_tied_trials_are_broken_by_the_validation_loss():
    from types import SimpleNamespace

    from honing.pipeline._stage_search import select as _select

    def trial(n: int, value: float, loss: float) -> dict:
        return {"number": n, "state": "complete", "values": [value], "params": {"x": n},
                "user_attrs": {"val_loss": loss}}

    study = SimpleNamespace(trials=[trial(0, 1.0, 0.30), trial(1, 0.9, 0.01), trial(2, 1.0, 0.05),
                                    trial(3, 1.0, 0.20)], best_trial=0)
    chosen = _select(study, ["maximize"], {})
    assert chosen["number"] == 2 and "3 trials tied" in chosen["tie_break"] and "0.05" in chosen["tie_break"]
    study.trials[2]["values"] = [0.95]
    assert _select(study, ["maximize"], {})["number"] == 3
    alone = SimpleNamespace(trials=[trial(0, 0.5, 1.0), trial(1, 0.7, 2.0)], best_trial=1)
    assert "tie_break" not in _select(alone, ["maximize"], {})


def test_cv_auto_cross_validates_small_sets_and_says_so(tmp_path, capsys):
    import honing
    from honing.pipeline._stage_search import resolve_cv

    small, large = honing.load("sklearn:iris"), honing.load("sklearn:digits")
    from types import SimpleNamespace

    def tune(cv, final="retrain"):  # the tune section's two fields resolve_cv reads
        return SimpleNamespace(cv=cv, final=final)

    assert resolve_cv(tune("auto"), small)[0] == 5 and resolve_cv(tune("auto"), large)[0] is None
    assert resolve_cv(tune("auto", "best_trial"), small)[0] is None
    assert resolve_cv(tune(None), small)[0] is None and resolve_cv(tune(3), large)[0] == 3
    r = tiny({"tune.cv": "auto", "tune.n_trials": 2, "training.epochs": 2})
    results = honing.run(r, out=tmp_path / "auto", progress=True).results
    assert results["search"]["cv"] == 5 and "5-fold" in results["search"]["validation"]
    assert "honing: search: 5-fold cross-validation" in capsys.readouterr().err
    r = tiny({"tune.n_trials": 2, "training.epochs": 2})  # tiny() sets tune.cv: null
    results = honing.run(r, out=tmp_path / "split", progress=False).results
    assert results["search"]["cv"] is None
    assert any("the validation split has 30 rows" in w for w in results["warnings"])  # iris: 20% of 150
    final = results["final_validation"]  # shown beside the chosen trial's best validation value
    assert final["metric"] == "val_accuracy" and 0 <= final["value"] <= 1 and final["trained_on_them"] is True


def test_an_external_test_file_and_balanced_class_weights(tmp_path):
    import honing

    data = _imbalanced(tmp_path / "train.csv", seed=0)
    test = tmp_path / "test.csv"
    lines = _imbalanced(tmp_path / "t.csv", seed=1).read_text().splitlines()
    cols = lines[0].split(",")  # the same columns in another order: matched by name
    order = [cols.index(c) for c in ("kind", "b", "a")]
    test.write_text("\n".join(",".join(line.split(",")[i] for i in order) for line in lines) + "\n")
    ds = honing.load(f"csv:{data}", target="kind", test=f"csv:{test}")
    assert len(ds.test) == 400 and ds.summary()["test_rows_from"] == f"the test file csv:{test}"
    assert sum(ds.summary()["rows"].values()) == 800
    r = tiny({"data.source": f"csv:{data}", "data.target": "kind", "data.test": f"csv:{test}", "tune": None,
              "training.class_weight": "balanced", "training.epochs": 20, "training.early_stopping": None})
    from honing.pipeline._build import build_model, build_trainer
    from honing.recipe import parse_recipe

    rec = parse_recipe(r)
    trainer = build_trainer(rec, build_model(rec, ds, seed=0), ds, seed=0, num_train=len(ds.train))
    weights = trainer.loss_fn.weight
    assert weights is not None and weights[ds.class_names.index("very_rare")] > 10 * weights[
        ds.class_names.index("common")]
    results = train_once(r, out=tmp_path / "out", progress=False).results
    assert results["data"]["rows"]["test"] == 400 and "test file" in results["data"]["test_rows_from"]
    bad = tmp_path / "bad.csv"
    bad.write_text(test.read_text().replace("kind,b,a", "kind,b,c", 1))
    with pytest.raises(DataError, match="missing: \\['a'\\].*unknown: \\['c'\\]"):
        honing.load(f"csv:{data}", target="kind", test=f"csv:{bad}")


def test_progress_lines_in_a_log_and_none_when_quiet(tmp_path, capsys):
    from honing.cli import main as cli
    from _run_helpers import write_recipe

    recipe = write_recipe(tmp_path / "r.yaml", tiny({"tune.n_trials": 2}))
    assert cli(["run", str(recipe), "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "honing: trial 0 complete" in err and "honing: trial 1 " in err and "2/2 trials" in err
    assert "honing: final model: epoch 1/" in err
    recipe = write_recipe(tmp_path / "t.yaml", tiny({"tune": None}))
    assert cli(["train", str(recipe), "--out", str(tmp_path / "b")]) == 0
    assert "honing: train: epoch 1/3: loss" in capsys.readouterr().err
    assert cli(["train", str(recipe), "--out", str(tmp_path / "c"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "epoch" not in err and "honing: data:" not in err


def test_a_warm_up_longer_than_the_training_is_shortened_and_said(tmp_path, capsys):
    # 50 warm-up steps fit a large data set; iris at batch 16 for 3 epochs has 18 steps. The run
    # goes on with a quarter of them and says so, instead of failing after its search.
    from honing.pipeline._build import build_model, build_trainer
    from honing.recipe import parse_recipe

    r = tiny({"training.schedule": {"name": "cosine", "warmup_steps": 50}})
    rec = parse_recipe(r)
    ds = honing.load("sklearn:iris", val_size=0.2, test_size=0.2, seed=0)
    trainer = build_trainer(rec, build_model(rec, ds, seed=0), ds, seed=0, num_train=len(ds.train))
    total = trainer.config.epochs * trainer.config.steps_per_epoch(len(ds.train))
    assert trainer.schedule.warmup_steps == total // 4 < 50
    assert trainer.notes == [f"training.schedule.warmup_steps (50 steps) does not fit this training's {total} steps "
                             f"({len(ds.train)} rows, 3 epochs): warm-up shortened to {total // 4} steps"]
    fits = tiny({"training.schedule": {"name": "cosine", "warmup_steps": 5}})
    rec = parse_recipe(fits)
    trainer = build_trainer(rec, build_model(rec, ds, seed=0), ds, seed=0, num_train=len(ds.train))
    assert trainer.schedule.warmup_steps == 5 and trainer.notes == []
    capsys.readouterr()
    results = train_once(r, out=tmp_path / "train", progress=True).results
    assert results["test_metrics"]["accuracy"] > 0.5
    assert "train: training.schedule.warmup_steps (50 steps) does not fit" in capsys.readouterr().err
    results = run(r, out=tmp_path / "run", progress=True).results  # the search, then the retrain
    assert results["trials"] and results["test_metrics"]["accuracy"] > 0.5
    assert "final model: training.schedule.warmup_steps (50 steps) does not fit" in capsys.readouterr().err


def test_check_labels_in_a_run_is_said_reported_and_leaves_the_test_rows_alone(tmp_path, capsys):
    from sklearn.datasets import load_digits

    d = load_digits()
    y = d.target.copy()
    rng = np.random.default_rng(1)
    flip = rng.random(len(y)) < 0.2
    y[flip] = (y[flip] + 1) % 10
    np.savez(tmp_path / "noisy.npz", x=d.data.astype(np.float32), y=y)
    r = tiny({"data.source": f"npz:{tmp_path / 'noisy.npz'}", "data.check_labels": "drop", "tune": None})
    capsys.readouterr()
    results = train_once(r, out=tmp_path / "run", progress=True).results
    err = capsys.readouterr().err
    issues = results["data"]["label_issues"]
    assert issues["action"] == "drop" and issues["dropped"] == issues["train"] > 0
    assert f"labels: {issues['found']} of {issues['checked']} train+validation rows look mislabelled" in err
    assert err.index("data: checking the labels (data.check_labels: drop)") < err.index("labels: ")  # said first
    assert f"{issues['dropped']} training rows dropped" in err
    plain = honing.load(f"npz:{tmp_path / 'noisy.npz'}", val_size=0.2, test_size=0.2, seed=0)
    assert results["data"]["rows"]["test"] == len(plain.test)  # the test rows are never checked
    assert results["data"]["rows"]["train"] == len(plain.train) - issues["dropped"]
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Labels that look wrong" in html and "labels that look wrong (data.check_labels)" in html
    # a fifth of the labels changed: the checking model agrees with few of them, and the run says what that means
    assert issues["agreement"] < 0.9
    assert any(w.startswith("data.check_labels: the checking model (a logistic regression) agrees with")
               for w in results["warnings"])


def test_a_data_option_that_does_not_fit_the_data_names_its_field_and_line(tmp_path, capsys):
    from honing.cli import main as cli
    from _run_helpers import write_recipe

    path = write_recipe(tmp_path / "reg.yaml", tiny({"data.source": "sklearn:diabetes", "data.check_labels": "report",
                                                    "tune": None}))
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "check_labels" in text)
    assert cli(["train", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert f"reg.yaml:{line}: data.check_labels: invalid check_labels" in capsys.readouterr().err


def test_a_worker_process_reuses_the_runs_label_check_and_checks_a_trials_other_data_again(tmp_path, monkeypatch):
    import pickle

    from honing.pipeline._objective import RecipeObjective
    from honing.recipe import parse_recipe

    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    y[:15] = 1 - y[:15]
    np.savez(tmp_path / "rows.npz", x=x, y=y)
    recipe = parse_recipe(tiny({"data.source": f"npz:{tmp_path / 'rows.npz'}", "data.check_labels": "drop"}))
    run_data = honing.load(recipe.data.source, **recipe.load_args())
    record = run_data.info["label_issues"]
    objective = RecipeObjective(recipe, str(tmp_path), label_issues=record)
    worker = pickle.loads(pickle.dumps(objective))  # what crosses to a worker process: no data, the check's record
    calls = []
    real = honing.data._load.out_of_fold_probabilities
    monkeypatch.setattr("honing.data._load.out_of_fold_probabilities", lambda *a, **k: calls.append(1) or real(*a, **k))
    data = worker.data(recipe)
    assert not calls and data.info["label_issues"] == record and len(data.train) == len(run_data.train)
    other = recipe.with_params({"data.val_size": 0.3})  # a trial that searches a data option: other rows, checked
    assert len(worker.data(other).val) != len(data.val) and calls == [1]
