"""The `honing` command end to end: in-process through ``honing.cli.main`` (fast), and as a
real process where one is needed (killed mid-study, then resumed)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file
from sklearn.datasets import load_digits

import honing
from honing.cli import main

_PIPELINE_TESTS = str(Path(__file__).resolve().parent / "pipeline")
if _PIPELINE_TESTS not in sys.path:
    sys.path.insert(0, _PIPELINE_TESTS)

from _run_helpers import journal_of, results_of, tiny, write_recipe  # noqa: E402

TEST_METRICS = {"accuracy", "balanced_accuracy", "f1_macro", "precision_macro"}
TERMINAL = {"complete", "pruned", "fail"}


def cli(*args: object) -> int:
    return main([str(a) for a in args])


def run_cli(recipe: Path, out: Path, *extra: object) -> int:
    return cli("run", recipe, "--out", out, "--quiet", *extra)


def assert_budget(out: Path, n: int, name: str = "tiny") -> list[dict]:
    """results.json and the journal agree on exactly ``n`` trials, none left unfinished."""
    counts = results_of(out)["trials"]
    study = journal_of(out, name)
    assert sum(counts.values()) == n and counts["running"] == 0 and counts["waiting"] == 0
    assert study.counts == counts
    assert sorted(t["number"] for t in study.trials) == list(range(n))
    assert {t["state"] for t in study.trials} <= TERMINAL
    return study.trials


# --- one small digits run, shared by the tests that read it -------------------------------------

DIGITS_SPACE = {"training.optimizer.lr": {"float": [3.0e-3, 3.0e-2], "log": True},
                "model.hidden": {"choice": [[16], [32]]}}


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path, Path]:
    folder = tmp_path_factory.mktemp("digits")
    recipe = write_recipe(folder / "digits.yaml", tiny({"name": "digits", "data.source": "sklearn:digits",
                                                        "tune.n_trials": 3, "tune.space": DIGITS_SPACE}))
    out = folder / "run"
    return run_cli(recipe, out), recipe, out


def test_run_writes_every_artifact(digits_run):
    rc, _, out = digits_run
    assert rc == 0
    results = results_of(out)
    assert results["name"] == "digits" and results["task"] == "classification"
    assert results["metric"] == "val_accuracy" and results["direction"] == "maximize"
    trials = assert_budget(out, 3, "digits")
    complete = [t for t in trials if t["state"] == "complete"]
    assert complete and results["trials"]["complete"] == len(complete)
    top = max(t["values"][0] for t in complete)  # ties broken by the lowest validation loss
    best = min((t for t in complete if t["values"][0] == top), key=lambda t: (t["user_attrs"]["val_loss"], t["number"]))
    assert results["best_value"] == best["values"][0] and results["best_params"] == best["params"]
    assert set(results["best_params"]) == set(DIGITS_SPACE)
    assert TEST_METRICS <= set(results["test_metrics"])
    assert all(0.0 <= results["test_metrics"][k] <= 1.0 for k in TEST_METRICS)
    assert results["test_metrics"]["accuracy"] > 0.5  # 10 classes: far above chance even after 3 epochs
    timings = results["timings"]
    assert {"total", "search", "final_training"} <= set(timings)
    assert timings["total"] >= timings["search"] > 0 and timings["final_training"] >= 0
    assert results["seed"] == 0 and {"honing", "torch", "optuna"} <= set(results["versions"])
    assert results["recipe"]["data"]["source"] == "sklearn:digits" and results["recipe"]["tune"]["n_trials"] == 3

    model_dir = out / "model"
    assert {p.name for p in model_dir.iterdir()} >= {"model.safetensors", "recipe.json", "preprocessor.json",
                                                     "meta.json"}
    weights = load_file(str(model_dir / "model.safetensors"))
    assert sum(t.numel() for t in weights.values()) == results["parameters"] > 0
    meta = json.loads((model_dir / "meta.json").read_text())
    assert meta["task"] == "classification" and meta["num_outputs"] == 10 and meta["input_shape"] == [64]
    saved_recipe = json.loads((model_dir / "recipe.json").read_text())
    assert saved_recipe["model"]["hidden"] == results["best_params"]["model.hidden"]

    html = (out / "report.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html") and "digits" in html and "<svg" in html


def test_evaluate_scores_the_held_out_rows_of_the_training_source(digits_run, capsys):
    """sklearn:digits has no fixed test set: evaluate re-creates the run's test split (it used to
    score all 1797 rows, training rows included, and called that the test score)."""
    _, _, out = digits_run
    results = results_of(out)
    capsys.readouterr()
    assert cli("evaluate", out / "model", "--data", "sklearn:digits", "--json") == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["rows"] == results["data"]["rows"]["test"] and evaluated["split"] == "test"
    assert "held out" in evaluated["scored"] and "digest checked" in evaluated["scored"]
    for key, value in results["test_metrics"].items():
        assert evaluated[key] == pytest.approx(value, abs=1e-6), key
    assert cli("evaluate", out / "model", "--data", "sklearn:digits", "--split", "test", "--json") == 0
    assert json.loads(capsys.readouterr().out)["rows"] == evaluated["rows"]

    assert cli("evaluate", out / "model", "--data", "sklearn:digits", "--split", "all", "--json") == 0
    every = json.loads(capsys.readouterr().out)
    assert every["rows"] == 1797 and "TRAINING ROWS" in every["scored"]
    assert cli("evaluate", out / "model", "--data", "sklearn:digits", "--split", "all") == 0
    assert "scored: every row" in capsys.readouterr().out  # the plain form says which rows too

    loaded = honing.load_model(out)  # a run folder or its model/ folder
    assert loaded.task == "classification" and loaded.num_outputs == 10
    x, y = load_digits(return_X_y=True)
    labels = np.asarray(loaded.class_names, dtype=object)[y] if loaded.class_names else y
    assert np.mean(loaded.predict(x) == labels) == pytest.approx(every["accuracy"], abs=1e-12)
    assert np.allclose(loaded.predict_proba(x[:5]).sum(axis=1), 1.0, atol=1e-5)

    # the same rows, preprocessing and seed as the run: the saved model scores exactly the run's test accuracy
    d = results["recipe"]["data"]
    ds = honing.load(d["source"], val_size=d["val_size"], test_size=d["test_size"], scale=d["scale"],
                     seed=results["seed"])
    pred = honing.load_model(out / "model").forward_prepared(ds.test.x).argmax(1)
    assert results["data"]["rows"]["test"] == len(ds.test)
    accuracy = (pred == ds.test.y).sum().item() / len(ds.test)
    assert accuracy == pytest.approx(results["test_metrics"]["accuracy"], abs=1e-9)


def test_evaluate_split_test_on_a_source_without_one_exits_2(digits_run, tmp_path, capsys):
    _, _, out = digits_run
    x, y = load_digits(return_X_y=True)
    np.savez(tmp_path / "new.npz", x=x[:50], y=y[:50])
    assert cli("evaluate", out / "model", "--data", f"npz:{tmp_path / 'new.npz'}", "--split", "test") == 2
    assert "no fixed test set" in capsys.readouterr().err
    assert cli("evaluate", out / "model", "--data", f"npz:{tmp_path / 'new.npz'}", "--json") == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["rows"] == 50 and "not the source the model trained on" in evaluated["scored"]


def test_show_prints_the_best_value_and_the_trials(digits_run, capsys):
    _, _, out = digits_run
    best = results_of(out)["best_value"]
    capsys.readouterr()
    assert cli("show", out) == 0
    shown = capsys.readouterr().out
    assert f"best validation val_accuracy (trial {results_of(out)['best_trial']}, the chosen one): {best:.6g}" in shown
    assert "study digits: " in shown and f"{best:>10.4f}" in shown


def test_show_on_a_folder_that_is_no_run_exits_2(tmp_path, capsys):
    assert cli("show", tmp_path) == 2
    assert "not a honing run folder" in capsys.readouterr().err


def test_rerun_of_a_finished_folder_runs_no_more_trials_and_a_changed_recipe_is_refused(digits_run, tmp_path,
                                                                                         capsys):
    _, recipe, out = digits_run
    before = journal_of(out, "digits").trials
    assert run_cli(recipe, out) == 0
    assert journal_of(out, "digits").trials == before  # the budget was spent: nothing new ran
    assert_budget(out, 3, "digits")

    changed = write_recipe(tmp_path / "changed.yaml",
                           tiny({"name": "digits", "data.source": "sklearn:digits", "tune.n_trials": 3,
                                 "tune.space": DIGITS_SPACE, "training.epochs": 4}))
    results = (out / "results.json").read_bytes()
    capsys.readouterr()
    assert run_cli(changed, out) == 2
    err = capsys.readouterr().err
    assert "different recipe" in err and "training" in err and "another --out" in err
    assert (out / "results.json").read_bytes() == results
    assert journal_of(out, "digits").trials == before


# --- validate, init, train -------------------------------------------------------------------


def test_validate_and_init(tmp_path, capsys):
    good = write_recipe(tmp_path / "good.yaml", tiny())
    assert cli("validate", good) == 0
    assert "valid" in capsys.readouterr().out

    path = tmp_path / "recipe.yaml"
    assert cli("init", path) == 0
    written = path.read_text()
    assert cli("validate", path) == 0

    path.write_text("name: mine\n")
    capsys.readouterr()
    assert cli("init", path) == 2
    assert "--force" in capsys.readouterr().err and path.read_text() == "name: mine\n"
    assert cli("init", path, "--force") == 0 and path.read_text() == written


def test_train_without_a_search(tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", tiny())
    out = tmp_path / "out"
    assert cli("train", recipe, "--out", out, "--quiet") == 0
    results = results_of(out)
    assert results["trials"] == {} and results["best_params"] == {} and results["study"] is None
    assert results["final_model"].startswith("trained once")
    assert TEST_METRICS <= set(results["test_metrics"]) and results["timings"]["search"] == 0
    assert (out / "model" / "model.safetensors").is_file() and (out / "report.html").is_file()
    assert not (out / "study.journal").exists()
    assert honing.load_model(out).recipe["model"]["hidden"] == tiny()["model"]["hidden"]  # no search: as written


def test_regression_recipe_reports_regression_metrics(tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", tiny({
        "data.source": "sklearn:diabetes", "training.loss": "mse", "tune.metric": "val_loss", "tune.n_trials": 2,
        "tune.space": {"training.optimizer.lr": {"float": [1.0e-3, 1.0e-1], "log": True}}}))
    out = tmp_path / "out"
    assert run_cli(recipe, out) == 0
    results = results_of(out)
    assert results["task"] == "regression" and results["direction"] == "minimize"  # from val_loss
    m = results["test_metrics"]
    assert {"mse", "mae", "r2"} <= set(m) and not TEST_METRICS & set(m)
    assert m["mse"] >= m["mae"] ** 2 > 0 and m["r2"] <= 1.0  # mean(e^2) >= mean(|e|)^2
    assert_budget(out, 2)


# --- every sampler and every rule for stopping trials early -----------------------------------

LR = {"training.optimizer.lr": {"float": [1.0e-3, 1.0e-1], "log": True}}
SAMPLER_CASES = {
    "random": {}, "qmc": {}, "tpe": {}, "gp": {},
    "cmaes": {"tune.space": {**LR, "model.dropout": {"float": [0.0, 0.3]}}},  # CMA-ES samples real numbers
    "grid": {"tune.n_trials": None,  # the grid's size
             "tune.space": {"training.optimizer.lr": {"grid": [0.003, 0.03]}, "model.hidden": {"choice": [[4], [8]]},
                            "training.batch_size": {"int": [16, 32], "step": 16}}},
    "nsga2": {"tune.metric": None, "tune.pruner": "none",
              "tune.objectives": [{"metric": "val_accuracy", "direction": "maximize"},
                                  {"metric": "params", "direction": "minimize"}],
              "tune.space": {**LR, "model.hidden": {"choice": [[4], [16]]}}},
}


@pytest.mark.parametrize("sampler", sorted(SAMPLER_CASES))
def test_every_sampler_runs(tmp_path, sampler):
    changes = {"tune.sampler": sampler, "tune.n_trials": 3, **SAMPLER_CASES[sampler]}
    recipe = tiny(changes)
    out = tmp_path / "out"
    assert run_cli(write_recipe(tmp_path / "r.yaml", recipe), out) == 0
    results = results_of(out)
    space = recipe["tune"]["space"]
    if sampler == "grid":  # the whole grid, each point once
        trials = assert_budget(out, 8)
        seen = {json.dumps(t["params"], sort_keys=True) for t in trials}
        grid = {json.dumps(dict(zip(space, point)), sort_keys=True)
                for point in itertools.product([0.003, 0.03], [[4], [8]], [16, 32])}
        assert seen == grid
    else:
        trials = assert_budget(out, 3)
    assert set(results["best_params"]) == set(space)
    assert results["trials"]["complete"] >= 1
    if sampler == "nsga2":
        assert results["direction"] == ["maximize", "minimize"] and results["objectives"] == ["val_accuracy", "params"]
        front = results["pareto"]
        assert front and all(len(p["values"]) == 2 for p in front)
        assert results["best_value"] in [p["values"] for p in front]
        assert results["best_value"][1] == results["parameters"]  # the final model has the chosen size
    else:
        assert isinstance(results["best_value"], float)


@pytest.mark.parametrize("pruner", ["none", "median", "percentile", "asha", "hyperband"])
def test_every_rule_for_stopping_trials_early_runs(tmp_path, pruner):
    recipe = tiny({"tune.pruner": pruner, "tune.sampler": "random", "tune.n_trials": 4, "training.epochs": 4,
                   "training.early_stopping": None})
    out = tmp_path / "out"
    assert run_cli(write_recipe(tmp_path / "r.yaml", recipe), out) == 0
    trials = assert_budget(out, 4)
    assert results_of(out)["trials"]["complete"] >= 1
    for t in trials:
        reason = t["user_attrs"]["stop_reason"]
        if t["state"] == "pruned":
            assert reason.startswith("pruned") and t["user_attrs"]["epochs_run"] < 4
        else:
            assert t["state"] == "complete" and t["user_attrs"]["epochs_run"] == 4
    if pruner == "none":
        assert all(t["state"] == "complete" for t in trials)


# --- several workers; a run killed and resumed ------------------------------------------------


def test_two_workers_spend_exactly_the_budget(tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", tiny({"tune.n_trials": 6, "tune.sampler": "random"}))
    out = tmp_path / "out"
    assert run_cli(recipe, out, "--workers", 2) == 0
    trials = assert_budget(out, 6)
    assert all(t["user_attrs"].get("worker") for t in trials)


def test_a_killed_run_resumes_to_exactly_its_budget(tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", tiny({
        "name": "killed", "data.source": "sklearn:digits", "model.hidden": [64], "training.epochs": 8,
        "training.early_stopping": None, "tune.n_trials": 5, "tune.sampler": "random", "tune.pruner": "none",
        "tune.space": {"training.optimizer.lr": {"float": [1.0e-3, 1.0e-2], "log": True}}}))
    out = tmp_path / "out"
    argv = ["run", str(recipe), "--out", str(out), "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "honing.cli", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    journal = out / "study.journal"
    deadline = time.time() + 90
    study = None
    try:
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
            try:
                study = journal_of(out, "killed") if journal.is_file() else None
            except Exception:  # the study is not created yet
                continue
            if study and study.counts["complete"] >= 2 and any(
                    t["state"] == "running" and 0 < len(t["intermediate"]) <= 4 for t in study.trials):
                break  # two trials done, another in the first half of its 8 epochs
        else:
            pytest.fail(f"no trial was caught training (exit code {proc.poll()}): {proc.stderr.read()}")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)

    after_kill = journal_of(out, "killed")
    assert after_kill.counts["running"] == 1 and not (out / "results.json").exists()
    killed = next(t for t in after_kill.trials if t["state"] == "running")

    assert main(argv) == 0  # the same command again
    trials = assert_budget(out, 5, "killed")
    by_number = {t["number"]: t for t in trials}
    assert by_number[killed["number"]]["state"] == "fail"
    assert by_number[killed["number"]]["user_attrs"]["error"].startswith("interrupted")
    retry = [t for t in trials if t["user_attrs"].get("retry_of") == killed["number"]]
    assert len(retry) == 1 and retry[0]["params"] == killed["params"] and retry[0]["state"] == "complete"
    assert results_of(out)["trials"]["complete"] == 4


# --- bad input: exit 2, a message naming the field, nothing written ---------------------------

BAD_RECIPES = {
    "unknown key": ({"model.foo": 1}, "model.foo"),
    "unknown section key": ({"training.epochz": 3}, "training.epochz"),
    "wrong type": ({"training.optimizer.lr": "abc"}, "training.optimizer.lr"),
    "low > high": ({"tune.space": {"training.optimizer.lr": {"float": [0.1, 0.001]}}},
                   "tune.space.training.optimizer.lr"),
    "empty choice": ({"tune.space": {"model.hidden": {"choice": []}}}, "tune.space.model.hidden"),
    "missing data file": ({"data.source": "csv:/no/such.csv"}, "data.source"),
}


@pytest.mark.parametrize("case", sorted(BAD_RECIPES))
def test_a_bad_recipe_exits_2_naming_the_field_and_writes_nothing(tmp_path, capsys, case):
    changes, field = BAD_RECIPES[case]
    recipe = write_recipe(tmp_path / "r.yaml", tiny(changes))
    out = tmp_path / "out"
    for command in ("run", "train"):
        assert cli(command, recipe, "--out", out, "--quiet") == 2
        err = capsys.readouterr().err
        assert "r.yaml:" in err and f"{field}:" in err
        assert not out.exists()
    assert cli("validate", recipe) == 2
    assert field in capsys.readouterr().err


def test_a_python_yaml_tag_is_refused(tmp_path, capsys):
    marker = tmp_path / "was-run"
    recipe = tmp_path / "r.yaml"
    write_recipe(recipe, tiny())
    text = recipe.read_text().replace("seed: 0", f"seed: !!python/object/apply:os.system ['touch {marker}']")
    recipe.write_text(text)
    out = tmp_path / "out"
    assert run_cli(recipe, out) == 2
    err = capsys.readouterr().err
    assert "seed:" in err and "tag" in err
    assert not out.exists() and not marker.exists()


@pytest.mark.parametrize("argument", [["--workers", "0"], ["--n-trials", "-1"], ["--timeout", "abc"]])
def test_a_bad_argument_exits_2_and_writes_nothing(tmp_path, capsys, argument):
    recipe = write_recipe(tmp_path / "r.yaml", tiny())
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        run_cli(recipe, out, *argument)
    assert info.value.code == 2
    assert f"argument {argument[0]}: got" in capsys.readouterr().err
    assert not out.exists()


def test_exit_code_of_a_real_process(tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", tiny({"model.foo": 1}))
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "honing.cli", "run", str(recipe), "--out", str(out)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 2 and "model.foo: unknown argument 'foo'" in done.stderr
    assert "Traceback" not in done.stderr and not out.exists()


def test_data_that_fails_to_load_exits_2_and_writes_nothing(tmp_path, capsys):
    csv = tmp_path / "rows.csv"
    csv.write_text("a,b\n1,2\n3,4\n")  # the recipe's target column is not there
    recipe = write_recipe(tmp_path / "r.yaml", tiny({"data.source": f"csv:{csv}", "data.target": "label"}))
    out = tmp_path / "out"
    for command in ("run", "train"):
        assert cli(command, recipe, "--out", out, "--quiet") == 2
        assert "label" in capsys.readouterr().err
        assert not out.exists()


def test_dashboard_serves_the_study_on_loopback(digits_run):
    import socket
    import urllib.request

    _, _, out = digits_run
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "honing.cli", "dashboard", str(out), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, body = time.time() + 60, None
        while time.time() < deadline and body is None:
            time.sleep(0.5)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as resp:
                    body = json.loads(resp.read())
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
        assert body is not None, "the dashboard did not answer within 60 s"
        names = [s.get("study_name") for s in body.get("study_summaries", body if isinstance(body, list) else [])]
        assert "digits" in names or "\"digits\"" in json.dumps(body)
        # bound to loopback only: no listener on the machine's other addresses
        listening = {line.split()[1] for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
                     if line.split()[3] == "0A"}
        assert f"0100007F:{port:04X}" in listening and f"00000000:{port:04X}" not in listening
    finally:
        proc.terminate()
        proc.wait(timeout=30)
