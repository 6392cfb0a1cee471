"""The ``nas`` stage: the model's architecture searched before the rest of the run, resumable
from its journal, the chosen architecture the one the run trains and saves."""

from __future__ import annotations

import json
import time

import pytest
import torch
from _run_helpers import tiny

from honing import ConfigError
from honing.artifacts import load_model
from honing.pipeline import run, train_once
from honing.pipeline._nas import _MedianStop

DIGITS = {"data.source": "sklearn:digits", "data.image": True, "tune": None,
          "model": {"name": "mobilenet", "stem": 4, "last": None, "blocks": [{"op": "conv", "out": 4}]},
          "training.epochs": 2, "training.early_stopping": None,
          "nas": {"blocks": 2, "widths": [4, 8], "expand": [2], "kernels": [3], "budget": 4, "epochs": 1,
                  "objectives": ["val_accuracy", "params"], "strategy": "random", "fraction": 0.5}}


def test_the_chosen_architecture_is_trained_and_saved_and_the_journal_resumes(tmp_path):
    result = train_once(tiny(DIGITS), out=tmp_path, progress=False)
    n = result.results["nas"]
    assert n["evaluated"] <= 4 and n["objectives"] == ["val_accuracy", "params"]
    assert n["baseline"]["model"] == {"model.blocks": [{"op": "conv", "out": 4}]}
    assert n["train_rows"] == 539  # nas.fraction 0.5: half of the 1,079 training rows
    chosen = n["chosen"]["model"]["model.blocks"]
    saved = json.loads((tmp_path / "model" / "recipe.json").read_text())
    assert saved["model"]["blocks"] == chosen  # the run trained and saved the chosen architecture
    assert load_model(tmp_path / "model").model.blocks.__len__() == len(chosen)
    front = [tuple(f["scores"]) for f in n["front"]]
    assert tuple(n["chosen"]["scores"]) in front  # the knee is a point of the front
    lines = (tmp_path / "nas.jsonl").read_text().splitlines()
    assert len(lines) == 4
    report = (tmp_path / "report.html").read_text()
    assert "Architecture search" in report and "Pareto front" in report  # the table and the front's chart
    # a larger budget continues the journal: the first 4 candidates are not trained again; here the
    # 2 new ones move the front's knee, so the folder (which trained the old choice) is refused clearly
    more = tiny({**DIGITS, "nas": {**DIGITS["nas"], "budget": 6}})
    with pytest.raises(ConfigError, match="the architecture search now chooses candidate 1, another architecture"):
        train_once(more, out=tmp_path, progress=False)
    after = (tmp_path / "nas.jsonl").read_text().splitlines()
    assert after[:4] == lines and len(after) == 6
    # in a new folder with the journal copied, nothing is trained again and the new choice trains
    fresh = tmp_path / "more"
    fresh.mkdir()
    for name in ("nas.jsonl", "nas.key"):
        (fresh / name).write_text((tmp_path / name).read_text())
    again = train_once(more, out=fresh, progress=False).results["nas"]
    assert (fresh / "nas.jsonl").read_text().splitlines() == after and again["chosen"]["index"] == 1
    # another search space sets the old journal aside
    other = tiny({**DIGITS, "nas": {**DIGITS["nas"], "widths": [4, 6]}})
    train_once(other, out=tmp_path / "other", progress=False)
    assert len((tmp_path / "other" / "nas.jsonl").read_text().splitlines()) == 4


def test_a_cell_search_feeds_the_hyperparameter_search(tmp_path):
    recipe = tiny({**DIGITS, "model": {"name": "cellnet", "channels": 4, "stages": 1},
                   "nas": {"space": "cell", "ops": ["skip", "conv3x3"], "budget": 3, "epochs": 1},
                   "tune": {"n_trials": 2, "pruner": "none", "metric": "val_accuracy",
                            "space": {"training.optimizer.lr": {"float": [1.0e-3, 1.0e-2], "log": True}}}})
    result = run(recipe, out=tmp_path, progress=False)
    cell = result.results["nas"]["chosen"]["model"]["model.cell"]
    assert len(cell) == 6 and set(cell) <= {"skip", "conv3x3"}
    assert result.results["nas"]["objectives"] == ["val_accuracy"] and not result.results["nas"]["front"]
    assert result.results["recipe"]["model"]["cell"] == cell  # the search's trials used it


def test_the_median_rule_stops_a_candidate_below_the_earlier_ones():
    earlier = [[0.5, 0.6], [0.4, 0.7], [0.6, 0.8], [0.5, 0.65], [0.45, 0.75]]
    stop = _MedianStop(earlier, "max", seed=0)
    stop.report(0.49, 1)
    assert stop.should_prune()  # median at epoch 1 is 0.5
    stop.report(0.5, 1)
    assert not stop.should_prune()
    assert not _MedianStop(earlier[:4], "max", seed=0).should_prune()  # fewer than 5 earlier: no decision
    low = _MedianStop([[0.3]] * 5, "min", seed=0)
    low.report(0.31, 1)
    assert low.should_prune()
    last = _MedianStop(earlier, "max", seed=0, last=2)
    last.report(0.1, 2)
    assert not last.should_prune()  # the candidate's last epoch: stopping saves nothing


@pytest.mark.parametrize("changes, message", [
    ({"model": {"name": "cnn"}, "nas": {}}, "model.name: got 'cnn' with nas.space 'mobile'"),
    ({"nas": {"space": "cell", "ops": ["sepconv"]}, "model": {"name": "cellnet"}}, "nas.ops.0: got 'sepconv'"),
    ({"nas": {"latency_runtime": "onnxruntime"}},
     "nas.latency_runtime: got 'onnxruntime', but latency is not measured; allowed: add latency_ms"),
])
def test_recipe_errors_name_the_nas_field(changes, message):
    from honing.recipe import RecipeError, parse_recipe

    with pytest.raises(RecipeError, match=message):
        parse_recipe(tiny({**DIGITS, **changes}))


def test_flops_count_a_known_layer():
    import torch

    from honing.pipeline._nas import count_flops

    assert count_flops(torch.nn.Linear(10, 4), (10,)) == 2 * 10 * 4  # a multiply-add counts 2


def test_the_head_is_searched_and_the_chosen_one_builds(tmp_path):
    recipe = tiny({**DIGITS, "nas": {**DIGITS["nas"], "heads": ["avg", "flatten"], "strides": [1], "budget": 3,
                                     "objectives": ["val_accuracy"]}})
    n = train_once(recipe, out=tmp_path, progress=False).results["nas"]
    chosen = n["chosen"]["model"]
    assert chosen["model.global_pool"] in (None, "avg") and [b["stride"] for b in chosen["model.blocks"]][:2] == [1, 2]
    saved = json.loads((tmp_path / "model" / "recipe.json").read_text())["model"]
    assert saved["global_pool"] == chosen["model.global_pool"]
    from honing.recipe import RecipeError, parse_recipe

    with pytest.raises(RecipeError, match=r"nas.strides.0: got layer 2; allowed: a layer of the 2 \(0 to 1\)"):
        parse_recipe(tiny({**DIGITS, "nas": {**DIGITS["nas"], "strides": [2]}}))


def test_limits_reject_architectures_before_they_train_and_the_most_accurate_within_them_is_chosen(tmp_path):
    free = train_once(tiny(DIGITS), out=tmp_path / "free", progress=False).results["nas"]
    cap = sorted(c[2] for c in free["candidates"])[1]  # [index, accuracy, params]: the two smallest fit
    limited = tiny({**DIGITS, "nas": {**DIGITS["nas"], "limits": {"params": cap}}})
    n = train_once(limited, out=tmp_path / "limited", progress=False).results["nas"]
    trained = n["candidates"]
    assert trained and all(c[2] <= cap for c in trained)  # nothing over the limit trained
    within = max(trained, key=lambda c: (c[1], -c[0]))
    assert n["chosen"]["index"] == within[0] and n["chosen"]["scores"][1] <= cap
    assert n["select"] == "the most accurate within the limits"
    records = [json.loads(line) for line in (tmp_path / "limited" / "nas.jsonl").read_text().splitlines()]
    rejected = [r for r in records if r.get("rejected")]
    assert n["rejected"] == len(rejected) > 0 and n["evaluated"] + n["rejected"] <= n["proposed"]
    assert all("over nas.limits: params" in r["error"] and "info" not in r for r in rejected)  # never trained
    from honing import ConfigError as Err

    with pytest.raises(Err, match=r"no proposed architecture is within them \(all 500 proposals were over them; "
                                  r"the lowest measured: \{'params': \d+"):
        train_once(tiny({**DIGITS, "nas": {**DIGITS["nas"], "limits": {"params": 1}}}), out=tmp_path / "none",
                   progress=False)
    from honing.recipe import RecipeError, parse_recipe

    with pytest.raises(RecipeError, match="nas.limits.latency_ms: got a limit on 'latency_ms', which is not measured"):
        parse_recipe(tiny({**DIGITS, "nas": {**DIGITS["nas"], "limits": {"latency_ms": 1.0}}}))


class _SlowInPython(torch.nn.Module):
    """A linear layer whose eager forward also sleeps: time that an exported graph does not have."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.02)
        return self.fc(x)


def test_latency_is_measured_in_the_runtime_asked_for():
    from honing.pipeline._objective import measure_latency_ms

    eager = measure_latency_ms(_SlowInPython(), (8,), repeats=3)
    exported = measure_latency_ms(_SlowInPython(), (8,), repeats=3, runtime="onnxruntime")
    assert eager >= 20.0  # eager PyTorch runs the module's Python, sleep included
    assert 0 < exported < 5.0  # ONNX Runtime runs the exported graph: one matrix product
    with pytest.raises(ConfigError, match="invalid runtime 'tensorrt'; allowed: torch, onnxruntime"):
        measure_latency_ms(_SlowInPython(), (8,), runtime="tensorrt")


def test_a_search_measures_latency_in_onnxruntime_and_says_so(tmp_path):
    recipe = tiny({**DIGITS, "nas": {**DIGITS["nas"], "budget": 2, "latency_runtime": "onnxruntime",
                                     "objectives": ["val_accuracy", "latency_ms"]}})
    result = train_once(recipe, out=tmp_path, progress=False)
    n = result.results["nas"]
    assert n["latency_runtime"] == "onnxruntime" and n["chosen"]["scores"][1] > 0
    assert "latency_ms: one row, CPU, in onnxruntime" in (tmp_path / "report.html").read_text()


def test_the_head_hidden_width_is_searched_and_the_chosen_one_is_saved(tmp_path):
    recipe = tiny({**DIGITS, "nas": {**DIGITS["nas"], "hidden": [None, 16], "budget": 4,
                                     "objectives": ["val_accuracy", "params"]}})
    n = train_once(recipe, out=tmp_path, progress=False).results["nas"]
    seen = {f["model"]["model.head_hidden"] for f in n["front"]}
    chosen = n["chosen"]["model"]
    assert chosen["model.head_hidden"] in (None, 16)
    saved = json.loads((tmp_path / "model" / "recipe.json").read_text())["model"]
    assert saved["head_hidden"] == chosen["model.head_hidden"]
    model = load_model(tmp_path / "model").model
    hidden_layers = [m for m in model.head.modules() if isinstance(m, torch.nn.Linear)]
    assert len(hidden_layers) == (1 if chosen["model.head_hidden"] is None else 2)
    assert seen and seen <= {None, 16}
    one = tiny({**DIGITS, "nas": {**DIGITS["nas"], "hidden": [8], "budget": 2}})
    n = train_once(one, out=tmp_path / "one", progress=False).results["nas"]
    assert n["chosen"]["model"]["model.head_hidden"] == 8  # a single width: every candidate's head has it
    from honing.recipe import RecipeError, parse_recipe

    with pytest.raises(RecipeError, match=r"nas.hidden: got \[\]; allowed: a non-empty list"):
        parse_recipe(tiny({**DIGITS, "nas": {**DIGITS["nas"], "hidden": []}}))
    with pytest.raises(RecipeError, match="nas.hidden: got \\[8\\]; allowed: leave it out with nas.space 'cell'"):
        parse_recipe(tiny({**DIGITS, "model": {"name": "cellnet"}, "nas": {"space": "cell", "hidden": [8]}}))


def test_latency_ratio_times_each_candidate_beside_the_reference(tmp_path):
    own = DIGITS["model"]
    recipe = tiny({**DIGITS, "nas": {**DIGITS["nas"], "objectives": ["val_accuracy", "latency_ratio"],
                                     "reference": own, "limits": {"latency_ratio": 50.0}}})
    n = train_once(recipe, out=tmp_path, progress=False).results["nas"]
    assert n["reference"]["name"] == "mobilenet" and n["objectives"] == ["val_accuracy", "latency_ratio"]
    assert 0.5 < n["baseline"]["scores"][1] < 2.0  # the recipe's own architecture beside itself: about 1
    assert all(0 < c[2] <= 50.0 for c in n["candidates"])
    assert "latency_ratio: one row, CPU, in torch, a multiple of the reference" in \
        (tmp_path / "report.html").read_text()
    from honing.recipe import RecipeError, parse_recipe

    with pytest.raises(RecipeError, match="nas.reference: missing: latency_ratio is timed against a reference"):
        parse_recipe(tiny({**DIGITS, "nas": {**DIGITS["nas"], "objectives": ["val_accuracy", "latency_ratio"]}}))
    with pytest.raises(RecipeError, match="nas.reference: got a reference, but latency_ratio is not measured"):
        parse_recipe(tiny({**DIGITS, "nas": {**DIGITS["nas"], "reference": own}}))
    with pytest.raises(RecipeError, match=r"nas.reference.name"):
        parse_recipe(tiny({**DIGITS, "nas": {**DIGITS["nas"], "objectives": ["val_accuracy", "latency_ratio"],
                                             "reference": {"name": "resnet9000"}}}))


def test_a_latency_near_its_limit_is_timed_again_longer_before_the_limit_decides(tmp_path, monkeypatch):
    from honing.pipeline import _nas

    from honing.models import count_parameters

    calls = []
    small = None

    def fake(model, reference, shape, *, runtime, rounds=6, repeats=20):
        nonlocal small
        calls.append(rounds)
        small = small or count_parameters(model)  # the first timed: the recipe's own architecture
        quick = 0.3 if count_parameters(model) <= small else 0.95  # larger ones: just under the limit
        return quick if rounds == 6 else 1.2 * quick  # and the longer timing puts them over

    monkeypatch.setattr(_nas, "measure_latency_ratio", fake)
    own = DIGITS["model"]
    recipe = tiny({**DIGITS, "nas": {**DIGITS["nas"], "blocks": 1, "objectives": ["val_accuracy", "latency_ratio"],
                                     "reference": own, "limits": {"latency_ratio": 1.0}}})
    n = train_once(recipe, out=tmp_path, progress=False).results["nas"]
    assert 20 in calls and 6 in calls  # near the limit: timed again with 20 rounds; far from it: once
    assert calls.count(20) < calls.count(6)
    # what the longer timing put over the limit was rejected, what stayed under it trained
    assert n["rejected"] >= 1 and all(c[2] <= 1.0 for c in n["candidates"])


def test_a_latency_ratio_holds_still_where_the_time_does_not():
    from honing.pipeline._objective import measure_latency_ratio

    torch.set_num_threads(1)
    slow, fast = _SlowInPython(), torch.nn.Linear(8, 2)
    assert measure_latency_ratio(slow, fast, (8,), repeats=3, rounds=2) > 20  # 20 ms against microseconds
    assert 0.5 < measure_latency_ratio(fast, torch.nn.Linear(8, 2), (8,), repeats=50) < 2.0


def test_promotion_trains_the_best_candidates_again_and_chooses_by_that_training(tmp_path, monkeypatch):
    from honing.pipeline import _nas

    recipe = tiny({**DIGITS, "nas": {**DIGITS["nas"], "objectives": ["val_accuracy"], "budget": 4, "promote": 2}})
    calls = []
    real = _nas._Candidates.__call__

    def counted(self, params, **kw):
        calls.append((self.epochs, len(self.train)))
        return real(self, params, **kw)

    monkeypatch.setattr(_nas._Candidates, "__call__", counted)
    n = train_once(recipe, out=tmp_path, progress=False).results["nas"]
    promoted = n["promoted"]
    assert len(promoted) == 2 and calls[-2:] == [(2, 1079), (2, 1079)]  # training.epochs on every training row
    proxies = sorted((h[1] for h in n["candidates"]), reverse=True)
    assert sorted(p["proxy"] for p in promoted) == sorted(proxies[:2])  # the proxy's best two
    assert promoted[0]["full"] >= promoted[1]["full"] and n["chosen"]["index"] == promoted[0]["index"]
    saved = json.loads((tmp_path / "model" / "recipe.json").read_text())
    assert saved["model"]["blocks"] == promoted[0]["model"]["model.blocks"]  # the run trained the promoted best
    report = (tmp_path / "report.html").read_text()
    assert "after the full training (proxy" in report and "Promoted: the best 2 trained again" in report
    # a re-run (here with one more promoted) trains only what it has not trained yet
    calls.clear()
    more = tiny({**DIGITS, "nas": {**DIGITS["nas"], "objectives": ["val_accuracy"], "budget": 4, "promote": 3}})
    for name in ("nas.jsonl", "nas.key", "nas_baseline.json", "nas_promoted.json"):
        (tmp_path / "copy").mkdir(exist_ok=True)
        (tmp_path / "copy" / name).write_text((tmp_path / name).read_text())
    n3 = train_once(more, out=tmp_path / "copy", progress=False).results["nas"]
    assert len(calls) == 1 and len(n3["promoted"]) == 3  # only the third is trained; the search is replayed


def test_the_final_model_is_the_promoted_training_of_the_chosen_candidate_not_a_repeat(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from honing.pipeline import _stage_model
    from honing.train import Trainer

    recipe = tiny({**DIGITS, "nas": {**DIGITS["nas"], "objectives": ["val_accuracy"], "budget": 4, "promote": 2}})
    epochs = []
    real = Trainer._run_epoch

    def counted(self, *args, **kw):
        epochs.append(self.epoch)
        return real(self, *args, **kw)

    monkeypatch.setattr(Trainer, "_run_epoch", counted)
    reused = train_once(recipe, out=tmp_path / "reused", progress=False).results
    n_reused = len(epochs)
    assert f"(the training nas.promote gave candidate {reused['nas']['chosen']['index']}, not repeated)" in \
        reused["final_model"]
    kept = list((tmp_path / "reused" / "nas_promoted").iterdir())
    assert len(kept) == 1  # the best promoted training's checkpoint only
    # a re-run of the finished folder trains nothing and still says where the final model came from
    epochs.clear()
    rerun = train_once(recipe, out=tmp_path / "reused", progress=False).results
    assert epochs == [] and rerun["final_model"] == reused["final_model"]
    # the same run with the promoted training not reused: 2 epochs more, the same weights and test scores
    epochs.clear()
    monkeypatch.setattr(_stage_model, "_reuse_training", lambda ctx, checkpoint: None)
    again = train_once(recipe, out=tmp_path / "again", progress=False).results
    assert len(epochs) == n_reused + 2
    assert again["nas"]["chosen"] == reused["nas"]["chosen"] and again["test_metrics"] == reused["test_metrics"]
    a, b = (load_file(str(next((tmp_path / d / "model").glob("*.safetensors")))) for d in ("reused", "again"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_promotion_with_several_objectives_needs_limits():
    from honing.recipe import RecipeError, parse_recipe

    with pytest.raises(RecipeError, match="nas.promote: got 2 with objectives .* and no limits; allowed: 0"):
        parse_recipe(tiny({**DIGITS, "nas": {**DIGITS["nas"], "promote": 2}}))


def test_promote_auto_fills_what_the_search_left_of_its_timeout_and_needs_one(tmp_path, capsys):
    from honing.recipe import RecipeError, parse_recipe

    one = {**DIGITS["nas"], "objectives": ["val_accuracy"], "budget": 4}
    roomy = train_once(tiny({**DIGITS, "nas": {**one, "promote": "auto", "timeout": 3600}}), out=tmp_path / "a",
                       progress=True).results["nas"]
    err = capsys.readouterr().err
    assert "nas: promote: auto: " in err and "s of nas.timeout (3600 s) left after the search" in err
    assert len(roomy["promoted"]) == roomy["evaluated"] == 4  # an hour: every candidate trained is promoted
    assert all(p["seconds"] > 0 for p in roomy["promoted"])
    assert roomy["chosen"]["index"] == roomy["promoted"][0]["index"]
    from honing.cli import _print_nas

    _print_nas(roomy)  # the summary says the choice was made by the full training, with its value there
    assert (f"promoted: the best 4 trained again as the final model is; candidate {roomy['chosen']['index']} "
            f"scored val_accuracy {roomy['promoted'][0]['full']:.4g} there") in capsys.readouterr().out
    # no time left: the first candidate starts, the timeout ends the search, and nothing is promoted
    spent = train_once(tiny({**DIGITS, "nas": {**one, "promote": "auto", "timeout": 0.001}}), out=tmp_path / "b",
                       progress=True).results["nas"]
    assert "promoted" not in spent and "fewer than 2 full trainings fit; the proxy's choice stays" in \
        capsys.readouterr().err
    with pytest.raises(RecipeError, match="nas.promote: got 'auto' without nas.timeout"):
        parse_recipe(tiny({**DIGITS, "nas": {**one, "promote": "auto"}}))
