"""Warm start: finished studies recorded next to their run folders seed the next study of the
same family (model, task, metric, searched paths), nearest data first; off by a flag; never read
from another parent folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pipeline"))

from _run_helpers import journal_of, results_of, tiny  # noqa: E402

from honing.pipeline import run  # noqa: E402
from honing.tune import EXPERIENCE_FILE, ExperienceStore  # noqa: E402

FAMILY = {"model": "mlp", "task": "classification", "metric": "val_accuracy", "space": ["b", "a"]}


def trials(*values: float) -> list[dict]:
    return [{"params": {"a": i, "b": "x"}, "value": v} for i, v in enumerate(values)]


def test_the_store_keeps_each_studys_best_and_orders_by_the_nearest_data(tmp_path):
    store = ExperienceStore(tmp_path)
    assert store.starts(FAMILY, {"rows": 100}) == ([], [])
    assert store.record(tmp_path / "small", FAMILY, {"rows": 100, "classes": 2}, trials(0.5, 0.9, 0.7, 0.8),
                        "maximize") == 3
    store.record(tmp_path / "big", FAMILY, {"rows": 50_000, "classes": 2},
                 [{"params": {"a": 10 + i, "b": "y"}, "value": v} for i, v in enumerate([0.1, 0.2])], "maximize")
    points, sources = store.starts(FAMILY, {"rows": 40_000, "classes": 2})
    assert points == [{"a": 11, "b": "y"}, {"a": 1, "b": "x"}, {"a": 10, "b": "y"}]  # nearest study's best first
    assert [Path(s).name for s in sources] == ["big", "small"]
    points, _ = store.starts(FAMILY, {"rows": 120, "classes": 2}, k=2)
    assert points == [{"a": 1, "b": "x"}, {"a": 11, "b": "y"}]
    # a re-recorded study replaces its record; another family, or the study's own folder, is not used
    store.record(tmp_path / "small", FAMILY, {"rows": 100, "classes": 2}, trials(0.1, 0.95), "maximize")
    assert len(store.records()) == 2 and store.starts(FAMILY, {"rows": 100}, k=1)[0] == [{"a": 1, "b": "x"}]
    assert store.starts({**FAMILY, "model": "cnn"}, {"rows": 100}) == ([], [])
    # the nearest study's every finished trial, for the next study's model
    history, source = store.history(FAMILY, {"rows": 40_000, "classes": 2})
    assert Path(source).name == "big" and [h["value"] for h in history] == [0.1, 0.2]
    assert [h["value"] for h in store.history(FAMILY, {"rows": 90})[0]] == [0.1, 0.95]
    assert store.history(FAMILY, {"rows": 90}, exclude=tmp_path / "small")[1].endswith("big")
    assert store.history({**FAMILY, "model": "cnn"}, {}) == ([], None)
    assert store.starts({**FAMILY, "space": ["a"]}, {"rows": 100}) == ([], [])
    assert [p["a"] for p in store.starts(FAMILY, {"rows": 100}, exclude=tmp_path / "small")[0]] == [11, 10]
    assert store.starts({**FAMILY, "space": ["a", "b"]}, {"rows": 100})[0]  # the order of the paths does not matter
    # minimised values keep the lowest; a damaged line is skipped, not fatal
    store.record(tmp_path / "loss", {**FAMILY, "metric": "val_loss"}, {}, trials(0.5, 0.2, 0.9), "minimize")
    with store.path.open("a") as f:
        f.write("{not json\n")
    assert store.starts({**FAMILY, "metric": "val_loss"}, {})[0][0] == {"a": 1, "b": "x"}


def test_a_second_run_starts_from_the_first_runs_best_unless_turned_off(tmp_path, capsys):
    space = {"training.optimizer.lr": {"float": [1e-4, 1e-1], "log": True}, "model.dropout": {"float": [0.0, 0.5]}}
    recipe = tiny({"tune.space": space, "tune.n_trials": 4, "tune.warm_start": True, "tune.pruner": "none",
                   "tune.sampler": "auto"})
    first = run(recipe, out=tmp_path / "runs" / "first", progress=False)
    records = [json.loads(line) for line in (tmp_path / "runs" / EXPERIENCE_FILE).read_text().splitlines()]
    assert len(records) == 1 and records[0]["family"]["model"] == "mlp" and len(records[0]["best"]) == 3
    best = records[0]["best"][0]["params"]
    assert records[0]["best"][0]["value"] == first.results["best_value"]
    capsys.readouterr()
    second = run({**recipe, "name": "second"}, out=tmp_path / "runs" / "second", progress=False)
    said = capsys.readouterr().err
    assert "warm start: 3 configuration(s) from 1 earlier study of model mlp (first;" in said
    assert len(records[0]["trials"]) == 4
    params = [t["params"] for t in journal_of(tmp_path / "runs" / "second", "second").trials]
    assert params[1] == best  # trial 0 is the recipe's own values, trial 1 the earlier study's best
    assert results_of(tmp_path / "runs" / "second")["search"]["warm_start"]["configurations"] == 3
    assert second.results["search"]["warm_start"]["from"] == [str((tmp_path / "runs" / "first").resolve())]
    # off by the flag; a run folder under another parent sees nothing
    cold = run({**recipe, "name": "cold", "tune": {**recipe["tune"], "warm_start": False}},
               out=tmp_path / "runs" / "cold", progress=False)
    assert "warm_start" not in cold.results["search"]
    first_params = [t["params"] for t in journal_of(tmp_path / "runs" / "first").trials]
    assert [t["params"] for t in journal_of(tmp_path / "runs" / "cold", "cold").trials] == first_params
    assert params != first_params
    # any other sampler: the earlier best configurations are queued first
    expected, _ = ExperienceStore(tmp_path / "runs").starts(records[0]["family"], records[0]["features"])
    run({**recipe, "name": "queued", "tune": {**recipe["tune"], "sampler": "random"}},
        out=tmp_path / "runs" / "queued", progress=False)
    queued = [t["params"] for t in journal_of(tmp_path / "runs" / "queued", "queued").trials]
    assert len(expected) == 3 and queued[:3] == expected
    elsewhere = run({**recipe, "name": "elsewhere"}, out=tmp_path / "other" / "elsewhere", progress=False)
    assert elsewhere.results["search"]["warm_start"]["configurations"] == 0


def test_the_shipped_portfolios_were_learned_apart_from_the_tasks_they_are_judged_on():
    import pytest

    from honing import ConfigError
    from honing.tune import list_portfolios, portfolio
    from honing.tune._experience import _portfolios

    assert {"lcbench", "rbv2_xgboost", "rbv2_rpart"} <= set(list_portfolios())
    for name, entry in _portfolios().items():
        assert not set(entry["learned_on"]) & set(entry["held_out"]) and len(entry["learned_on"]) >= 20
        assert portfolio(name) == entry["configurations"] and len(portfolio(name)) >= 3
    with pytest.raises(ConfigError, match="allowed: lcbench"):
        portfolio("resnet")
