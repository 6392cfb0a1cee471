"""The main job on a user's own CSV: the target, the units, the columns, the rows scored."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import honing
from honing._core import DataError
from honing.pipeline import train_once

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
