"""Bad data and numbers stop before the search with a message (exit 2) and write nothing; the
run folder binds a recipe only once something finished in it; no password is stored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from honing.cli import main


def _recipe(tmp_path: Path, source: str, **training) -> Path:
    recipe = {"name": "inputs", "data": {"source": source, "val_size": 0.2, "test_size": 0.2},
              "model": {"name": "mlp", "hidden": [8]}, "training": {"epochs": 2, "batch_size": 16, **training}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _csv(tmp_path: Path, rows: list[str], name: str = "data.csv") -> str:
    (tmp_path / name).write_text("a,b,target\n" + "\n".join(rows) + "\n")
    return f"csv:{tmp_path / name}"


def _rng_rows(n: int, label=lambda i: i % 2, a=lambda i: None) -> list[str]:
    rng = np.random.default_rng(0)
    return [f"{a(i) if a(i) is not None else rng.random()},{rng.random()},{label(i)}" for i in range(n)]


BAD_DATA = {
    "one class": (lambda t: _csv(t, _rng_rows(60, label=lambda i: "yes")), "one class only"),
    "an infinite cell": (lambda t: _csv(t, _rng_rows(60, a=lambda i: "inf" if i == 7 else None)),
                         "row 8, column 'a' holds inf"),
    "two rows": (lambda t: _csv(t, _rng_rows(2)), "too few"),
    "three rows": (lambda t: _csv(t, _rng_rows(3)), "too few|training row"),
    "latin-1 text": (lambda t: (t / "l.csv").write_bytes(b"a,b,target\n1,2,caf\xe9\n3,4,x\n") and f"csv:{t / 'l.csv'}",
                     "not UTF-8"),
    "binary": (lambda t: (t / "b.csv").write_bytes(bytes(range(256)) * 8) and f"csv:{t / 'b.csv'}",
               "not UTF-8|binary"),
    "a header only": (lambda t: (t / "h.csv").write_text("a,b,target\n") and f"csv:{t / 'h.csv'}", "no rows"),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_exits_2_before_training_and_writes_nothing(tmp_path, capsys, case):
    make, message = BAD_DATA[case]
    recipe = _recipe(tmp_path, make(tmp_path))
    out = tmp_path / "out"
    assert main(["train", str(recipe), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    import re

    assert re.search(message, err), err
    assert re.search(r"recipe\.yaml:\d+: data\.source: ", err), err  # the recipe field and its line
    assert not out.exists()


@pytest.mark.parametrize("field,value", [("epochs", 1e30), ("batch_size", 10**30), ("eval_batch_size", 2**40)])
def test_absurd_numbers_are_refused_with_their_bound(tmp_path, capsys, field, value):
    recipe = _recipe(tmp_path, "sklearn:iris", **{field: value})
    assert main(["validate", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert f"training.{field}" in err and "<=" in err


def test_a_folder_where_every_trial_failed_does_not_bind_the_recipe(tmp_path, capsys):
    recipe = yaml.safe_load(_recipe(tmp_path, "sklearn:iris").read_text())
    recipe["tune"] = {"n_trials": 2, "sampler": "random", "pruner": "none",
                      "space": {"training.optimizer.lr": {"float": [1.0e+30, 1.0e+31]}}}  # every trial diverges
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out"
    assert main(["run", str(bad), "--out", str(out), "--quiet"]) == 1  # the work failed (exit 1), the input was valid
    recipe["tune"]["space"] = {"training.optimizer.lr": {"float": [1.0e-3, 1.0e-2]}}
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(recipe))
    capsys.readouterr()
    assert main(["run", str(good), "--out", str(out), "--quiet"]) == 0
    assert "it was replaced" in capsys.readouterr().err
    assert json.loads((out / "results.json").read_text())["trials"]["complete"] >= 1


def test_a_folder_with_a_finished_trial_still_refuses_another_recipe(tmp_path, capsys):
    recipe = yaml.safe_load(_recipe(tmp_path, "sklearn:iris").read_text())
    recipe["tune"] = {"n_trials": 1, "sampler": "random", "space": {"training.optimizer.lr": {"float": [1e-3, 1e-2]}}}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    recipe["model"]["hidden"] = [4]
    path.write_text(yaml.safe_dump(recipe))
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 2
    assert "a run of a different recipe" in capsys.readouterr().err


def test_an_unreachable_storage_writes_no_run_folder(tmp_path, capsys):
    recipe = yaml.safe_load(_recipe(tmp_path, "sklearn:iris").read_text())
    recipe["tune"] = {"n_trials": 1, "space": {"training.optimizer.lr": {"float": [1e-3, 1e-2]}}}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out"
    code = main(["run", str(path), "--out", str(out), "--storage", "postgresql://u:secret@127.0.0.1:1/db", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "cannot open storage" in err and "secret" not in err
    assert not out.exists()


def test_results_json_stores_a_storage_url_without_its_password():
    from honing.tune import mask_password

    assert mask_password("postgresql://user:s3cret@db.local:5432/h") == "postgresql://user:***@db.local:5432/h"
    assert mask_password("sqlite:///runs/x.db") == "sqlite:///runs/x.db"
    from honing.pipeline._stage_output import masked_recipe as _masked_recipe

    masked = _masked_recipe({"tune": {"storage": "postgresql://u:pw@h/db", "n_trials": 3}})
    assert masked["tune"] == {"storage": "postgresql://u:***@h/db", "n_trials": 3}


def test_a_run_that_ends_while_another_process_runs_a_trial_of_its_study_says_so(tmp_path, capsys):
    import socket
    import subprocess
    import sys

    import optuna

    recipe = yaml.safe_load(_recipe(tmp_path, "sklearn:iris").read_text())
    recipe["tune"] = {"n_trials": 3, "sampler": "random", "space": {"training.optimizer.lr": {"float": [1e-3, 1e-2]}}}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])  # the other run's worker
    try:
        study = optuna.create_study(study_name="inputs", storage=url, direction="maximize")
        trial = study.ask()
        trial.set_user_attr("worker", f"{socket.gethostname()}:{other.pid}")
        assert main(["run", str(path), "--out", str(tmp_path / "out"), "--storage", url, "--quiet"]) == 0
    finally:
        other.kill()
        other.wait()
    err = capsys.readouterr().err
    assert "1 trial(s) of study 'inputs' are still running in another process" in err
