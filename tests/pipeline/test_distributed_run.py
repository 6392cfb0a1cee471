"""training.distributed through the pipeline: `honing train --nproc 2` and a run's final model on
two DDP processes (gloo) give the weights one process gives."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from honing import ConfigError
from honing.cli import main
from honing.pipeline import run, train_once
from honing.recipe import parse_recipe

RECIPE = {
    "name": "ddp-iris", "seed": 0,
    "data": {"source": "sklearn:iris", "val_size": 0.2, "test_size": 0.2},
    "model": {"name": "mlp", "hidden": [16]},
    "training": {"epochs": 8, "batch_size": 16, "optimizer": {"name": "adam", "lr": 0.01}},
    "output": {"report": False},
}


def _weights(folder):
    return load_file(str(folder / "model" / "model.safetensors"))


def _worst(a, b):
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_train_on_two_processes_gives_the_weights_of_one(tmp_path, capsys):
    one = train_once(RECIPE, out=tmp_path / "one", progress=False)
    assert main(["train", _write(tmp_path, RECIPE), "--out", str(tmp_path / "two"), "--nproc", "2", "--quiet"]) == 0
    assert "trained once on 2 data-parallel processes" in capsys.readouterr().out
    assert _worst(_weights(one.out_dir), _weights(tmp_path / "two")) < 1e-5
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert two["test_metrics"] == pytest.approx(one.results["test_metrics"], abs=1e-6)


def test_a_runs_final_model_on_two_processes(tmp_path):
    recipe = {**RECIPE, "tune": {"n_trials": 2, "sampler": "random", "cv": None, "warm_start": False,
                                 "space": {"training.optimizer.lr": {"float": [1e-3, 1e-1], "log": True}}}}
    one = run(recipe, out=tmp_path / "run", progress=False)
    again = run(recipe, out=tmp_path / "run", progress=False, nproc=2)  # the same folder: the study is kept
    assert again.results["trials"] == one.results["trials"]
    assert "2 data-parallel processes" not in json.dumps(one.results)
    assert _worst(_weights(one.out_dir), _weights(again.out_dir)) < 1e-5  # retrained, the same weights


def test_more_processes_than_rows_per_batch_is_a_recipe_error():
    with pytest.raises(ConfigError, match=r"training\.distributed\.processes: got 32 processes for batch_size 16"):
        parse_recipe({**RECIPE, "training": {**RECIPE["training"], "distributed": {"processes": 32}}})


def _write(tmp_path, recipe):
    import yaml

    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)
