"""Every saved model gets a drift reference and a model card, from the run's own figures."""

from __future__ import annotations

import json

from honing.artifacts import read_reference
from honing.pipeline import list_stages, train_once

RECIPE = {
    "name": "wine-card", "seed": 0,
    "data": {"source": "sklearn:wine", "val_size": 0.2, "test_size": 0.2},
    "model": {"name": "mlp", "hidden": [16]},
    "training": {"epochs": 8, "batch_size": 16, "optimizer": {"name": "adam", "lr": 0.01}},
    "output": {"report": False},
}


def test_the_reference_and_the_card_come_with_the_model(tmp_path):
    out = train_once(RECIPE, out=tmp_path / "run", progress=False)
    results, model_dir = out.results, tmp_path / "run" / "model"
    ref = read_reference(model_dir)
    names = [f["name"] for f in ref["features"]]
    assert len(names) == 13 and names[0] == "alcohol" and ref["features"][0]["kind"] == "numeric"
    assert len(ref["features"][0]["sample"]) == results["data"]["rows"]["train"] + results["data"]["rows"]["val"]
    pred = ref["predictions"]
    assert pred["rows_from"] == "test" and sum(pred["counts"].values()) == results["data"]["rows"]["test"]
    assert pred["accuracy"] == round(results["test_metrics"]["accuracy"], 6)
    assert len(ref["outputs"]) == results["data"]["rows"]["test"] and len(ref["outputs"][0]) == 3
    card = (model_dir / "MODEL_CARD.md").read_text()
    assert f"| **this model** | {results['test_metrics']['loss']:.4f} | {results['test_metrics']['accuracy']:.4f}" in card
    assert all(f"| {name} |" in card for name in results["baselines"])
    assert "sklearn:wine" in card and "## Intended use and limits" in card
    stages = [s["stage"] for s in json.loads((tmp_path / "run" / "results.json").read_text())["stages"]]
    assert stages.index("save") < stages.index("reference") < stages.index("results") < stages.index("card")
    assert "reference" in list_stages("run") and "card" in list_stages("train")
