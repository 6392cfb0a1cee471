"""The fairness audit in a run: evaluate.groups on a table, the group column kept in or out of
the model's inputs, results.json, the report, the model card and the console; errors."""

from __future__ import annotations

import numpy as np
import pytest

from honing.pipeline import train_once
from honing.recipe import RecipeError, parse_recipe


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """600 rows: the positive class is more frequent in group a than in group b."""
    rng = np.random.default_rng(0)
    n = 600
    group = np.where(rng.random(n) < 0.5, "a", "b")
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = (x1 + 1.0 * (group == "a") + 0.3 * rng.normal(size=n) > 0.5).astype(int)
    path = tmp_path_factory.mktemp("fair") / "loans.csv"
    lines = ["group,x1,x2,approved"] + [f"{g},{a:.4f},{b:.4f},{t}" for g, a, b, t in zip(group, x1, x2, y)]
    path.write_text("\n".join(lines) + "\n")
    return f"csv:{path}"


def _recipe(source, **evaluate):
    return {"name": "fair", "seed": 0, "data": {"source": source, "target": "approved"},
            "model": {"name": "mlp", "hidden": [16]},
            "training": {"epochs": 10, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.01}},
            "evaluate": {"groups": ["group"], "baselines": False, **evaluate}}


def test_the_audit_reports_per_group_figures_and_gaps(table, tmp_path, capsys):
    out = train_once(_recipe(table), out=tmp_path / "run", progress=False)
    f = out.results["fairness"]
    c = f["columns"]["group"]
    assert set(c["groups"]) == {"a", "b"} and f["positive_class"] == "1" and f["model_inputs"] is True
    assert sum(g["rows"] for g in c["groups"].values()) == out.results["data"]["rows"]["test"]
    # the data favour group a: the model's positive rate is higher there
    assert c["groups"]["a"]["positive_rate"] > c["groups"]["b"]["positive_rate"] + 0.2
    assert c["demographic_parity_difference"] == pytest.approx(
        c["groups"]["a"]["positive_rate"] - c["groups"]["b"]["positive_rate"])
    assert any("80% rule" in w for w in out.results["warnings"])
    card = (tmp_path / "run" / "model" / "MODEL_CARD.md").read_text()
    assert "## Fairness audit" in card and "| a |" in card
    assert "Fairness audit: group" in (tmp_path / "run" / "report.html").read_text()


def test_a_group_column_kept_out_of_the_inputs_is_still_audited(table, tmp_path):
    out = train_once(_recipe(table, group_inputs=False), out=tmp_path / "run", progress=False)
    f = out.results["fairness"]
    assert f["model_inputs"] is False and set(f["columns"]["group"]["groups"]) == {"a", "b"}
    from honing.artifacts import load_model

    model = load_model(tmp_path / "run" / "model")
    assert "group" not in model.preprocessor.columns and list(model.preprocessor.columns) == ["x1", "x2"]


def test_bad_group_columns_are_clear(table, tmp_path):
    from honing import ConfigError

    with pytest.raises(ConfigError, match="invalid groups: got 'sex'.*x1"):
        train_once(_recipe(table, groups=["sex"]), out=tmp_path / "a", progress=False)
    with pytest.raises(ConfigError, match="column 'x1' has .* distinct values"):
        train_once(_recipe(table, groups=["x1"]), out=tmp_path / "b", progress=False)
    images = tmp_path / "images.npz"
    np.savez(images, x=np.random.default_rng(0).integers(0, 255, (40, 1, 4, 4)).astype(np.uint8), y=np.arange(40) % 2)
    with pytest.raises(ConfigError, match="no named columns"):
        train_once({**_recipe(table), "data": {"source": f"npz:{images}"}}, out=tmp_path / "c", progress=False)
    with pytest.raises(RecipeError, match="evaluate.groups"):
        parse_recipe({**_recipe(table), "evaluate": {"groups": "group"}})


def test_a_regression_model_is_audited_by_its_errors_in_the_target_units(tmp_path, capsys):
    """Prices whose noise is larger in group b: the model's errors there are larger."""
    from honing.cli import main

    rng = np.random.default_rng(1)
    n = 600
    group = np.where(rng.random(n) < 0.5, "a", "b")
    x1 = rng.normal(size=n)
    price = 200 + 50 * x1 + np.where(group == "b", 40.0, 5.0) * rng.normal(size=n)
    path = tmp_path / "prices.csv"
    path.write_text("\n".join(["group,x1,price"] + [f"{g},{a:.4f},{p:.2f}" for g, a, p in zip(group, x1, price)])
                    + "\n")
    recipe = {**_recipe(f"csv:{path}"), "data": {"source": f"csv:{path}", "target": "price"}}
    out = train_once(recipe, out=tmp_path / "run", progress=False)
    f = out.results["fairness"]
    c = f["columns"]["group"]
    assert f["task"] == "regression" and c["worst_group"] == "b"
    assert c["groups"]["b"]["mae"] > 2 * c["groups"]["a"]["mae"]  # noise sd 40 against 5
    assert 100 < c["groups"]["a"]["mean_target"] < 300  # in the target's units, not standardized ones
    assert c["mae_difference"] == pytest.approx(c["groups"]["b"]["mae"] - c["groups"]["a"]["mae"])
    card = (tmp_path / "run" / "model" / "MODEL_CARD.md").read_text()
    assert "in the target's units" in card and "| b |" in card
    assert "mean prediction" in (tmp_path / "run" / "report.html").read_text()
    assert main(["show", str(tmp_path / "run")]) == 0
    shown = capsys.readouterr().out
    assert "MAE gap" in shown
    assert "(on standardized targets)" in shown  # the loss's units, beside mse and mae in prices
