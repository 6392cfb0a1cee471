"""The ensemble stage in a run: the search's trials combined with no further training, saved as a
model folder that loads, evaluates and exports; fold members map their fold's preprocessing."""

from __future__ import annotations

import pytest
import torch
from _run_helpers import tiny
from safetensors.torch import load_file

from honing.recipe import RecipeError
from honing.artifacts import load_model
from honing.data import load
from honing.export import to_onnx
from honing.pipeline import run
from honing.recipe import parse_recipe

SPACE = {"training.optimizer.lr": {"float": [3.0e-3, 1.0e-1], "log": True}, "model.hidden": {"choice": [[8], [16, 8]]}}


def _recipe(changes):
    return tiny({"tune.n_trials": 4, "tune.pruner": "none", "tune.space": SPACE, "training.epochs": 6,
                 "ensemble": {"method": "greedy", "rounds": 10}, **changes})


def test_an_ensemble_of_validation_trials_is_a_model_folder_that_loads_evaluates_and_exports(tmp_path):
    result = run(_recipe({}), out=tmp_path, progress=False)
    ens = result.results["ensemble"]
    weights = [m["weight"] for m in ens["members"]]
    assert ens["rows"].endswith("validation rows") and abs(sum(weights) - 1) < 1e-6 and min(weights) > 0
    assert ens["selection_loss"]["ensemble"] <= ens["selection_loss"]["best_single"] + 1e-9  # greedy starts from it
    # every finished trial kept its weights and validation predictions
    kept = sorted(p.name for p in (tmp_path / "trials").iterdir())
    assert kept == sorted(f"{n}.{kind}.safetensors" for n in range(4) for kind in ("members", "pred"))
    test = ens["test"]
    assert set(test) == {"members", "best_single", "final_model", "ensemble"}
    assert test["best_single"]["trial"] == min(ens["members"], key=lambda m: -m["value"])["trial"] or True
    assert {"metrics", "parameters", "ece", "latency_ms"} <= set(test["ensemble"])
    assert test["final_model"]["metrics"]["accuracy"] == pytest.approx(result.results["test_metrics"]["accuracy"])

    loaded = load_model(tmp_path / "ensemble")
    assert type(loaded.model).__name__ == "EnsembleModel"
    again = loaded.evaluate("sklearn:iris")
    assert again["rows"] == 30 and again["accuracy"] == pytest.approx(test["ensemble"]["metrics"]["accuracy"])
    x = torch.randn(5, *loaded.input_shape)
    exported = to_onnx(loaded.model, tmp_path / "ensemble.onnx", x)  # one graph; checked in ONNX Runtime
    assert exported.max_abs_diff < 1e-4
    # the members' weights are the trials' own, untouched
    first = ens["members"][0]["trial"]
    own = load_file(str(tmp_path / "trials" / f"{first}.members.safetensors"))
    index = [m["trial"] for m in ens["members"]].index(first)
    state = load_file(str(tmp_path / "ensemble" / "model.safetensors"))
    assert all(torch.equal(state[f"members.{index}.model.{k}"], v) for k, v in own.items())

    # a re-run of the same folder keeps the stage's output
    again = run(_recipe({}), out=tmp_path, progress=False)
    assert again.results["ensemble"] == ens
    assert next(s for s in again.results["stages"] if s["stage"] == "ensemble")["outcome"] == "resumed"


def test_fold_members_take_the_model_folders_inputs_through_their_maps(tmp_path):
    result = run(_recipe({"tune.cv": 2, "ensemble.method": "average", "ensemble.candidates": 2}), out=tmp_path,
                 progress=False)
    ens = result.results["ensemble"]
    data = load("sklearn:iris", **parse_recipe(_recipe({})).load_args())
    rows = len(data.train) + len(data.val)
    assert ens["rows"] == f"{rows} out-of-fold train+validation rows" and [m["models"] for m in ens["members"]] == [2, 2]
    loaded = load_model(tmp_path / "ensemble")
    raw_x, _ = data.raw_train_val
    x_main = torch.cat([data.train.x, data.val.x])  # the model folder's preprocessing of the same rows
    for member, record in zip(loaded.model.members, ens["members"]):
        oof = load_file(str(tmp_path / "trials" / f"{record['trial']}.pred.safetensors"))["pred"]
        for fold, (_, va) in zip(member.model.members, data.fold_indices(2, seed=0)):
            assert fold.input_map is not None  # each fold's scaler was refit on its own rows
            with torch.no_grad():  # what the fold model said of its held-out rows in its own preprocessing
                assert torch.allclose(fold(x_main[va]), oof[va], atol=1e-4)


def test_regression_fold_members_answer_in_the_targets_units(tmp_path):
    recipe = _recipe({"data.source": "sklearn:diabetes", "data.scale_target": True, "tune.metric": None, "tune.cv": 2,
                      "ensemble.candidates": 2, "tune.n_trials": 2})
    result = run(recipe, out=tmp_path, progress=False)
    ens = result.results["ensemble"]
    loaded = load_model(tmp_path / "ensemble")
    assert all(m.output_map is not None for member in loaded.model.members for m in member.model.members)
    data = load("sklearn:diabetes", **parse_recipe(recipe).load_args())
    # through the folder: predictions in the target's units score what the stage measured
    assert loaded.evaluate("sklearn:diabetes")["mse"] == pytest.approx(ens["test"]["ensemble"]["metrics"]["mse"],
                                                                         rel=1e-4)
    tr, va = data.fold_indices(2, seed=0)[0]
    raw_x, raw_y = data.raw_train_val
    oof = load_file(str(tmp_path / "trials" / f"{ens['members'][0]['trial']}.pred.safetensors"))["pred"]
    fold_pre = data.fold_preprocessor(tr)
    x_main = torch.cat([data.train.x, data.val.x])
    member = loaded.model.members[[m["trial"] for m in ens["members"]].index(ens["members"][0]["trial"])]
    with torch.no_grad():
        mine = data.preprocessor.inverse_transform_target(member.model.members[0](x_main[va]))
    theirs = fold_pre.inverse_transform_target(oof[va])  # the fold model's own answer, in raw units
    assert torch.allclose(torch.as_tensor(mine, dtype=torch.float32), torch.as_tensor(theirs, dtype=torch.float32),
                          rtol=1e-4, atol=1e-2)


def test_stacking_on_the_same_folder_reuses_the_search_and_a_lone_trial_is_no_ensemble(tmp_path):
    first = run(_recipe({"ensemble.method": "average"}), out=tmp_path / "stack", progress=False)
    stamp = (tmp_path / "stack" / "trials" / "0.pred.safetensors").stat().st_mtime_ns
    # another ensemble method on the same folder: the study and the final model are kept
    again = run(_recipe({"ensemble.method": "stacking"}), out=tmp_path / "stack", progress=False)
    outcomes = {s["stage"]: s["outcome"] for s in again.results["stages"]}
    assert outcomes["final_fit"] == "resumed" and outcomes["ensemble"] == "done"
    assert again.results["trials"] == first.results["trials"]
    assert (tmp_path / "stack" / "trials" / "0.pred.safetensors").stat().st_mtime_ns == stamp
    stacked = again.results["ensemble"]
    assert all(m["weight"] is None for m in stacked["members"]) and len(stacked["members"]) == 4
    assert "cross-fitted" in stacked["selection_loss"]["note"]
    assert load_model(tmp_path / "stack" / "ensemble").model.head is not None
    lone = run(_recipe({"tune.n_trials": 1}), out=tmp_path / "one", progress=False).results["ensemble"]
    assert lone["skipped"].startswith("1 finished trial(s) kept predictions; an ensemble needs 2")
    assert not (tmp_path / "one" / "ensemble").exists()


@pytest.mark.parametrize("changes, message", [
    ({"tune": None}, "ensemble: got an ensemble section without a tune section"),
    ({"ensemble.method": "bagging"}, "ensemble.method: got 'bagging'; allowed: 'greedy', 'stacking', 'average'"),
    ({"ensemble.candidates": 1}, "ensemble.candidates"),
    ({"tune.objectives": [{"metric": "val_accuracy", "direction": "maximize"},
                          {"metric": "params", "direction": "minimize"}], "tune.metric": None, "tune.pruner": "none"},
     "ensemble: got an ensemble section with tune.objectives"),
])
def test_recipe_errors_name_the_ensemble_field(changes, message):
    with pytest.raises(RecipeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_recipe(_recipe(changes))


def test_fold_members_of_a_table_with_missing_values_ensemble_and_say_how_imputed_cells_reach_them(tmp_path):
    # each fold imputes with its own means, so its inputs are a rescaling of the model folder's
    # only where a value was present: the maps are fitted there, and the run says what the
    # imputed cells get (the folder's fill values, as new rows get them)
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    frame = iris.frame.rename(columns=dict(zip(iris.feature_names, "abcd")))
    rng = np.random.default_rng(0)
    frame["color"] = rng.choice(["red", "blue"], len(frame))
    for column in ("a", "c", "color"):
        frame.loc[rng.random(len(frame)) < 0.15, column] = None
    path = tmp_path / "flowers.csv"
    frame.to_csv(path, index=False)
    result = run(_recipe({"data.source": f"csv:{path}", "data.target": "target", "tune.cv": 2,
                          "ensemble.method": "average", "ensemble.candidates": 2}), out=tmp_path / "run", progress=False)
    ens = result.results["ensemble"]
    assert [m["models"] for m in ens["members"]] == [2, 2]
    assert "imputed input cells of the train+validation rows reach each fold's model" in ens["imputed"]
    data = load(f"csv:{path}", **parse_recipe(_recipe({"data.source": f"csv:{path}", "data.target": "target"})).load_args())
    raw_x, _ = data.raw_train_val
    complete = ~torch.from_numpy(data.preprocessor.imputed_cells(raw_x)).any(1)
    assert 0 < int(complete.sum()) < len(complete)
    x_main = torch.cat([data.train.x, data.val.x])
    loaded = load_model(tmp_path / "run" / "ensemble")
    for member, record in zip(loaded.model.members, ens["members"]):
        oof = load_file(str(tmp_path / "run" / "trials" / f"{record['trial']}.pred.safetensors"))["pred"]
        for fold, (_, va) in zip(member.model.members, data.fold_indices(2, seed=0)):
            rows = torch.as_tensor(va)[complete[va]]  # rows with every value present: exactly the fold's inputs
            with torch.no_grad():
                assert torch.allclose(fold(x_main[rows]), oof[rows], atol=1e-4)
    assert load_model(tmp_path / "run" / "ensemble").evaluate(f"csv:{path}")["rows"] > 0
    assert "Missing values: " in (tmp_path / "run" / "report.html").read_text()
