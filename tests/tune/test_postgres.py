"""A study in a real PostgreSQL server (started by the fixture on 127.0.0.1, see _postgres.py)."""

from __future__ import annotations

import json
import time

import pytest
from _postgres import free_port, postgres_server, postgres_url  # noqa: F401 (fixtures)
from honing_tune_toys import Curve

from honing import HoningError
from honing.cli import main
from honing.tune import (
    FloatParam,
    SearchSpace,
    create_pruner,
    create_sampler,
    load_study_result,
    optimize,
    resolve_storage,
)

X = SearchSpace([FloatParam("x", 0.0, 1.0)])

RECIPE = """\
name: pg-iris
seed: 0
data:
  source: sklearn:iris
  val_size: 0.2
  test_size: 0.2
model:
  name: mlp
  hidden: [8]
training:
  epochs: 3
  batch_size: 32
  optimizer: {name: adam, lr: 0.01}
tune:
  n_trials: 2
  sampler: random
  pruner: none
  metric: val_accuracy
  space:
    training.optimizer.lr: {float: [1.0e-3, 1.0e-1], log: true}
output:
  report: false
"""


def _run(url, tmp_path, *, n_trials, workers=1, sleep=0.0, **kw):
    sampler = create_sampler("random", seed=0, space=X, n_trials=n_trials)
    return optimize(Curve(epochs=3, sleep=sleep), study_name="s", storage=url, space=X, sampler=sampler,
                    n_trials=n_trials, workers=workers, run_dir=tmp_path, progress=False, **kw)


def test_a_study_in_postgres_completes_its_budget_and_loads_back(postgres_url, tmp_path):
    result = _run(postgres_url, tmp_path, n_trials=4, pruner=create_pruner("median", max_epochs=3))
    assert result.storage_url == postgres_url
    assert result.counts["complete"] + result.counts["pruned"] == 4 and len(result.trials) == 4
    assert not (tmp_path / "study.journal").exists()
    loaded = load_study_result(postgres_url, "s")
    assert loaded.counts == result.counts
    assert [t["params"] for t in loaded.trials] == [t["params"] for t in result.trials]
    assert all(list(t["intermediate"]) == [1, 2, 3] for t in loaded.trials if t["state"] == "complete")


def test_exact_budget_with_two_workers_sharing_a_postgres_study(postgres_url, tmp_path):
    first = _run(postgres_url, tmp_path, n_trials=8, workers=2, sleep=0.01)
    assert len(first.trials) == 8 and first.counts["complete"] == 8
    assert {t["number"] for t in first.trials} == set(range(8))
    full = _run(postgres_url, tmp_path, n_trials=8, workers=2)
    assert len(full.trials) == 8 and full.elapsed_s < 2  # nothing to do: no worker started
    more = _run(postgres_url, tmp_path, n_trials=10)  # extended in one process (each spawn costs seconds)
    assert len(more.trials) == 10 and more.counts["complete"] == 10
    assert [t["params"] for t in more.trials[:8]] == [t["params"] for t in first.trials]


def test_cli_run_with_a_postgres_storage_and_resume(postgres_url, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE)
    out = tmp_path / "out"
    args = ["run", str(recipe), "--out", str(out), "--storage", postgres_url, "--n-trials", "3", "--quiet"]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["study"]["storage"] == postgres_url and results["study"]["name"] == "pg-iris"
    assert not (out / "study.journal").exists()
    assert sum(load_study_result(postgres_url, "pg-iris").counts.values()) == 3
    capsys.readouterr()

    assert main(args) == 0  # resumes: the budget is already spent
    assert sum(load_study_result(postgres_url, "pg-iris").counts.values()) == 3
    assert main(["show", str(out)]) == 0  # reads the trials back from the server
    assert "study pg-iris: 3 complete" in capsys.readouterr().out


def test_nothing_listening_is_a_clear_error_not_a_hang(tmp_path, capsys):
    url = f"postgresql://honing@127.0.0.1:{free_port()}/none"
    t0 = time.perf_counter()
    with pytest.raises(HoningError, match=r"cannot open storage .*127\.0\.0\.1"):
        resolve_storage(url, tmp_path)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE)
    assert main(["run", str(recipe), "--out", str(tmp_path / "out"), "--storage", url, "--quiet"]) == 1
    assert "honing: failed: cannot open storage" in capsys.readouterr().err
    assert time.perf_counter() - t0 < 20
    with pytest.raises(HoningError) as info:  # a password in the URL is never printed
        resolve_storage(f"postgresql://honing:s3cret@127.0.0.1:{free_port()}/none", tmp_path)
    assert "s3cret" not in str(info.value) and "honing:***@127.0.0.1" in str(info.value)


MACHINE = """\
import sys
from honing_tune_toys import Curve
from honing.tune import FloatParam, SearchSpace, create_sampler, optimize
space = SearchSpace([FloatParam("x", 0.0, 1.0)])
url, run_dir, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
optimize(Curve(epochs=1), study_name="machines", storage=url, space=space, n_trials=12, run_dir=run_dir,
         sampler=create_sampler("random", seed=seed, space=space, n_trials=12), progress=False, seed=seed)
"""


def test_workers_with_separate_run_folders_share_one_exact_budget_through_the_database(postgres_url, tmp_path):
    """Three 'machines' (processes with their own run folders, so no shared file lock) claim
    under PostgreSQL's advisory lock: the study ends with exactly the budget."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from honing.tune._claim import advisory_key, lock_kind

    assert lock_kind(resolve_storage(postgres_url, tmp_path).url) == "postgres"
    assert advisory_key("machines") == advisory_key("machines") != advisory_key("other")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", MACHINE, postgres_url, str(tmp_path / f"m{i}"), str(i)], env=env)
             for i in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    result = load_study_result(postgres_url, "machines")
    assert len(result.trials) == 12 and result.counts["complete"] == 12
    assert not any((tmp_path / f"m{i}" / "study.lock").exists() for i in range(3))  # the database held the lock
