"""``honing predict``: a file of new rows -> a CSV of predictions, the same values the loaded
model gives, a chunk at a time; clear errors for what it cannot read."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from honing.artifacts import load_model, predict_file
from honing.cli import main
from honing.pipeline import train_once


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A regression model of prices and an iris classifier, each trained a few epochs."""
    root = tmp_path_factory.mktemp("predict")
    rng = np.random.default_rng(0)
    n = 120
    table = pd.DataFrame({"size": rng.uniform(40, 200, n).round(1), "town": rng.choice(["a", "b", "c"], n)})
    table["price"] = (1000 * table["size"] + np.where(table["town"] == "a", 20000, 0)
                      + rng.normal(0, 5000, n)).round(0)
    table.to_csv(root / "houses.csv", index=False)
    common = {"seed": 0, "training": {"epochs": 3, "batch_size": 32}, "evaluate": {"baselines": False}}
    train_once({"name": "prices", "data": {"source": f"csv:{root / 'houses.csv'}", "target": "price"},
                "model": {"name": "mlp", "hidden": [8]}, **common}, out=root / "prices", progress=False)
    train_once({"name": "iris", "data": {"source": "sklearn:iris"}, "model": {"name": "mlp", "hidden": [8]},
                **common}, out=root / "iris", progress=False)
    return root


def _read(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_a_table_is_predicted_in_chunks_as_the_loaded_model_predicts_it(models, tmp_path):
    rows = pd.read_csv(models / "houses.csv")
    expected = load_model(models / "prices" / "model").predict(rows)
    whole, chunked = tmp_path / "whole.csv", tmp_path / "chunked.csv"
    assert predict_file(models / "prices", models / "houses.csv", out=str(whole)) == 120  # the run folder works
    assert predict_file(models / "prices" / "model", models / "houses.csv", out=str(chunked), chunk_rows=7) == 120
    assert _read(whole) == _read(chunked)  # 18 chunks, one header, the same cells
    got = _read(whole)
    assert got[0] == ["prediction"] and len(got) == 121
    np.testing.assert_allclose([float(r[0]) for r in got[1:]], expected, rtol=1e-6)
    assert np.mean(expected) > 10_000  # in the target's units (prices near 120,000), not standardized ones
    kept = tmp_path / "kept.csv"
    predict_file(models / "prices" / "model", models / "houses.csv", out=str(kept), keep_columns=True)
    head = _read(kept)
    assert head[0] == ["size", "town", "price", "prediction"] and head[1][1] in ("a", "b", "c")


def test_columns_that_are_not_inputs_are_ignored_and_named(models, tmp_path, capsys):
    rows = pd.read_csv(models / "houses.csv").head(5)
    rows.insert(0, "id", range(100, 105))
    rows.to_csv(tmp_path / "new.csv", index=False)
    assert main(["predict", str(models / "prices" / "model"), str(tmp_path / "new.csv"), "--keep-columns"]) == 0
    captured = capsys.readouterr()
    assert "columns that are not the model's inputs, ignored: id, price" in captured.err
    got = list(csv.reader(captured.out.splitlines()))
    assert got[0] == ["id", "size", "town", "price", "prediction"] and [r[0] for r in got[1:]] == list(map(str, range(100, 105)))
    expected = load_model(models / "prices" / "model").predict(rows.drop(columns="id"))
    np.testing.assert_allclose([float(r[-1]) for r in got[1:]], expected, rtol=1e-6)


def test_probabilities_and_arrays(models, tmp_path, capsys):
    model = load_model(models / "iris" / "model")
    x = np.asarray(pd.DataFrame(__import__("sklearn.datasets", fromlist=["load_iris"]).load_iris().data))[:10]
    np.savez(tmp_path / "rows.npz", x=x)
    assert main(["predict", str(models / "iris" / "model"), str(tmp_path / "rows.npz"), "--proba"]) == 0
    got = list(csv.reader(capsys.readouterr().out.splitlines()))
    names = model.class_names
    assert got[0] == ["prediction", *[f"probability_{n}" for n in names]]
    probs = np.array([[float(v) for v in r[1:]] for r in got[1:]])
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert [r[0] for r in got[1:]] == [names[i] for i in probs.argmax(1)]
    assert [r[0] for r in got[1:]] == list(model.predict(x))
    # the recipe's form of a source names the same file
    assert main(["predict", str(models / "iris" / "model"), f"npz:{tmp_path / 'rows.npz'}", "--proba"]) == 0
    assert list(csv.reader(capsys.readouterr().out.splitlines())) == got


def test_what_it_cannot_read_is_a_clear_error(models, tmp_path, capsys):
    np.savez(tmp_path / "wrong.npz", features=np.zeros((2, 4)))
    (tmp_path / "rows.json").write_text("[]")
    cases = [
        ([str(tmp_path / "wrong.npz")], "no array named x; allowed: an .npz with x"),
        ([str(tmp_path / "rows.json")], "allowed: a .csv, .tsv or .tab table, or an .npz"),
        ([str(tmp_path / "none.csv")], "no such file"),
        ([str(models / "houses.csv"), "--proba"], "the model does regression; allowed: a classifier"),
    ]
    for extra, message in cases:
        model = models / ("iris" if "npz" in extra[0] or "json" in extra[0] else "prices") / "model"
        assert main(["predict", str(model), *extra]) == 2
        assert message in capsys.readouterr().err
    (tmp_path / "clash.csv").write_text("size,town,prediction\n50,a,1\n")
    assert main(["predict", str(models / "prices" / "model"), str(tmp_path / "clash.csv"), "--keep-columns"]) == 2
    assert "already has column(s) prediction" in capsys.readouterr().err
