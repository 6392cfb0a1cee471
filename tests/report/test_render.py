"""The rendered report: sections present or left out, values shown, escaping, self-containment."""

from __future__ import annotations

import copy
import html
import os
import re
import sys

import pytest
from _report_helpers import ERROR_TEXT, FASHION, check_html, full_data, multi_objective_data

from honing._core import ConfigError
from honing.report import ReportData, render_report, write_report


def section(html: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}">(.*?)</section>', html, re.S)
    assert m, f"section {sid!r} missing"
    return m.group(1)


@pytest.fixture(scope="module")
def full_html() -> str:
    return render_report(full_data())


def test_full_report_parses_and_has_every_section(full_html):
    checker = check_html(full_html)
    expected = ["summary", "history", "importances", "parallel", "curves", "test", "failures",
                "extra-1", "recipe", "environment"]
    assert [i for i in checker.ids if i in expected] == expected
    assert "pareto" not in checker.ids  # single objective
    for sid in expected:  # the navigation links every section
        assert f'href="#{sid}"' in full_html
    assert checker.counts["svg"] >= 7  # history, importances, parallel, learning, 3 final curves
    assert full_html.startswith("<!DOCTYPE html>")


def test_summary_shows_values(full_html):
    data = full_data()
    summary = section(full_html, "summary")
    assert f"{data.best_value:.4g}" in summary
    assert "0.8931" in summary and "f1_macro" in summary  # test metrics
    assert "complete <b>22</b>" in summary and "fail <b>2</b>" in summary
    assert "8 min 32 s" in summary  # timings
    for name in data.best_params:
        assert name in summary
    assert data.best_params["model.hidden"] == [256, 128, 64]
    assert "[256, 128, 64]" in summary  # list-valued parameter as JSON


def test_user_text_is_escaped(full_html):
    assert "<script" not in full_html.lower()
    assert html.escape(ERROR_TEXT) in section(full_html, "failures")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html.escape(ERROR_TEXT)
    assert "<mlp>" not in full_html and "fashion &lt;mlp&gt; &amp; friends" in full_html
    assert "int8 &lt;quant&gt;" in section(full_html, "extra-1")
    assert "Trouser" in section(full_html, "test") and "T-shirt/top" in section(full_html, "test")


def test_history_chart_has_a_point_per_valued_trial_and_crosses_for_failures(full_html):
    data = full_data()
    hist = section(full_html, "history")
    complete = [t for t in data.trials if t["state"] == "COMPLETE"]
    pruned = [t for t in data.trials if t["state"] == "PRUNED"]
    assert hist.count("COMPLETE: ") == len(complete)
    assert hist.count("PRUNED: ") == len(pruned)
    # a pruned trial is drawn at its last intermediate value
    last = pruned[0]["intermediate"][max(pruned[0]["intermediate"])]
    assert f"trial {pruned[0]['number']} PRUNED: {last:.4g}" in hist
    assert hist.count(" FAIL: ") == 2
    assert "best so far" in hist and "All trials" in hist


def test_parallel_coordinates(full_html):
    data = full_data()
    par = section(full_html, "parallel")
    complete = [t for t in data.trials if t["state"] == "COMPLETE"]
    assert par.count("<polyline") == len(complete)
    assert ">absent<" in par  # momentum only exists for sgd trials
    assert ">None<" in par  # layer_decay may be None
    assert ">[128, 64]<" in par and ">adamw<" in par and ">True<" in par  # categorical ticks
    assert ">log<" in par  # the learning rate axis
    assert ">0.001<" in par and ">0.01<" in par  # log ticks
    assert 'id="pc-gradient"' in par  # colour legend


def test_curves_and_test_results(full_html):
    curves = section(full_html, "curves")
    assert curves.count("<svg") == 4  # best trials + loss + metric + lr
    assert "pruned trials" in curves and ">val_loss<" in curves and ">val_accuracy<" in curves
    test = section(full_html, "test")
    assert test.count("<tr>") == 1 + len(FASHION)  # header + a row per class
    assert ">900<" in test and "recall" in test


def test_recipe_versions_and_seed(full_html):
    recipe = section(full_html, "recipe")
    assert "<details>" in recipe and "name: fashion-mlp" in recipe and "n_trials: 30" in recipe
    env = section(full_html, "environment")
    assert "2.13.0" in env and "seed" in env


def test_no_network_resources(full_html):
    for page in (full_html, render_report(multi_objective_data())):
        refs = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", page, re.I)
        assert refs and all(r.startswith("#") for r in refs), refs
        assert not re.search(r"url\(\s*['\"]?(?!#)", page)
        assert "@import" not in page and "<link" not in page and "<script" not in page
        stripped = page.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert "http://" not in stripped and "https://" not in stripped


def test_deterministic(full_html):
    assert render_report(copy.deepcopy(full_data())) == full_html


def test_minimal_regression_with_residuals():
    y_true = [[i * 0.1, -i * 0.2] for i in range(50)]
    y_pred = [[i * 0.1 + (0.3 if i % 3 else -0.2), -i * 0.2 + 0.1] for i in range(50)]
    data = ReportData(title="houses", task="regression", metric="val_mse", directions=["minimize"],
                      test_metrics={"mse": 0.05, "mae": 0.2},
                      residuals={"y_true": y_true, "y_pred": y_pred})
    html = render_report(data)
    checker = check_html(html)
    assert [i for i in checker.ids] == ["summary", "test"]
    test = section(html, "test")
    assert test.count("<circle") >= 100 and "output 1" in test  # two outputs, a legend
    assert "residual" in test
    for absent in ("history", "parallel", "importances", "curves", "failures", "recipe", "pareto"):
        assert f'href="#{absent}"' not in html


def test_bare_minimum_renders_only_a_summary():
    html = render_report(ReportData(title="t", task="classification", metric="val_accuracy"))
    assert check_html(html).ids == ["summary"]
    assert "val_accuracy (maximize)" in html


def test_one_trial_has_history_but_no_parallel_coordinates():
    trial = full_data().trials[0]
    data = ReportData(title="one", task="classification", metric="val_accuracy", trials=[trial],
                      counts={"COMPLETE": 1}, best_value=trial["values"][0], best_params=trial["params"])
    ids = check_html(render_report(data)).ids
    assert "history" in ids and "curves" in ids and "parallel" not in ids


def test_multi_objective_pareto():
    data = multi_objective_data()
    html = render_report(data)
    checker = check_html(html)
    assert "pareto" in checker.ids and "parallel" in checker.ids
    par = section(html, "pareto")
    assert f"selected: trial {data.selected_trial}" in par
    assert par.count("(Pareto front)") == len(data.pareto)
    assert "parameters (minimize)" in par and "val_accuracy (maximize)" in par
    assert section(html, "history").count("<svg") == 2  # one history chart per objective
    assert "Selected parameters" in section(html, "summary")


def test_three_objectives_give_a_pareto_table_without_chart():
    data = multi_objective_data(objectives=3)
    par = section(render_report(data), "pareto")
    assert "<svg" not in par and "latency_ms" in par
    assert par.count("<tr>") == 1 + len(data.pareto)


def test_non_finite_values_and_string_epochs_do_not_break_charts():
    data = full_data()  # e.g. read back from JSON: epochs as strings
    data.trials[0]["values"] = [float("nan")]
    data.trials[2]["intermediate"][3] = float("inf")
    data.final_history[2]["val_loss"] = float("nan")
    pruned = next(t for t in data.trials if t["state"] == "PRUNED")
    last = pruned["intermediate"][max(pruned["intermediate"])]
    pruned["intermediate"] = {str(k): v for k, v in pruned["intermediate"].items()}
    html = render_report(data)
    check_html(html)
    assert not re.search(r'="[^"]*\b(nan|inf)\b', html)  # no NaN coordinates
    assert f"trial {pruned['number']} PRUNED: {last:.4g}" in section(html, "history")
    assert "trial 0 COMPLETE" not in section(html, "history")  # its value is NaN


def test_large_residuals_are_subsampled():
    n = 10_000
    data = ReportData(title="big", task="regression", metric="val_mse", directions=["minimize"],
                      residuals={"y_true": [float(i % 97) for i in range(n)],
                                 "y_pred": [float(i % 89) for i in range(n)]})
    test = section(render_report(data), "test")
    assert 2000 <= test.count("<circle") <= 3000


def test_large_confusion_matrix_is_a_heat_map():
    k = 40
    matrix = [[(50 if i == j else 1) for j in range(k)] for i in range(k)]
    html = render_report(ReportData(title="c", task="classification", metric="val_accuracy",
                                    confusion_matrix=matrix))
    test = section(html, "test")
    assert "<svg" in test and test.count("<rect") >= k * k and ">39<" in test
    check_html(html)


@pytest.mark.parametrize(("field", "value", "match"), [
    ("task", "ranking", "ReportData.task: got 'ranking'"),
    ("directions", ["maximize", "up"], r"ReportData.directions\[1\]: got 'up'"),
    ("extra_tables", [{"title": "x"}], r"extra_tables\[0\]"),
])
def test_invalid_data_is_rejected(field, value, match):
    kwargs = {"title": "t", "task": "classification", "metric": "m", field: value}
    with pytest.raises(ConfigError, match=match):
        ReportData(**kwargs)


def test_render_rejects_other_objects():
    with pytest.raises(ConfigError, match="got dict; allowed: a ReportData"):
        render_report({"title": "x"})  # type: ignore[arg-type]


def test_write_report_is_atomic_and_equal_to_render(tmp_path):
    data = multi_objective_data()
    path = write_report(tmp_path / "out" / "report.html", data=data)
    assert path.read_text(encoding="utf-8") == render_report(data)
    assert os.listdir(tmp_path / "out") == ["report.html"]  # no temporary file left behind


def test_report_does_not_import_optuna():
    import subprocess

    code = "import sys, honing.report; print('optuna' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_trial_states_and_counts_are_accepted_in_any_case():
    from honing.report import ReportData, render_report

    data = ReportData(title="t", task="classification", metric="val_accuracy",
                      trials=[{"number": 0, "state": "complete", "params": {"lr": 0.1}, "values": [0.9],
                               "intermediate": {1: 0.8, 2: 0.9}, "user_attrs": {}, "duration_s": 1.0},
                              {"number": 1, "state": "pruned", "params": {"lr": 0.5}, "values": None,
                               "intermediate": {1: 0.3}, "user_attrs": {}, "duration_s": 0.5}],
                      counts={"complete": 1, "pruned": 1})
    assert [t["state"] for t in data.trials] == ["COMPLETE", "PRUNED"]
    assert data.counts == {"COMPLETE": 1, "PRUNED": 1}
    assert "<svg" in render_report(data)
