"""The report as a new user reads it: the data section, baselines, warnings, honest charts."""

from __future__ import annotations

import re

from _report_helpers import full_data

from honing.report import render_report
from honing.report import _charts as c


def section(html: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}">(.*?)</section>', html, re.S)
    assert m, f"section {sid!r} missing"
    return m.group(1)


def test_the_data_section_and_the_baseline_table(tmp_path):
    html = render_report(full_data())
    data = section(html, "data")
    assert "fashion-mnist" in data and "(the source&#x27;s labels)" in data and "fixed by the source" in data
    assert "train 51000, val 9000, test 10000" in data and "duplicate rows" in data and "12 (0.0%)" in data
    assert "Class balance" in data and data.count('class="balance"') == 10
    base = section(html, "baselines")
    assert "honing (this model)" in base and "logistic_regression" in base and "0.8412" in base
    assert "is better than the best baseline" in base
    summary = section(html, "summary")
    assert "Read this first" in summary and "&lt;b&gt;escaped&lt;/b&gt;" in summary
    assert "f1_macro (macro average over classes)" in summary
    assert html.index('id="data"') < html.index('id="baselines"') < html.index('id="history"')


def test_importances_are_not_drawn_when_every_trial_ties():
    data = full_data()
    for t in data.trials:
        if t["state"] == "COMPLETE":
            t["values"] = [1.0]
    html = render_report(data)
    imp = section(html, "importances")
    assert "scored the same" in imp and "<svg" not in imp


def test_losses_spanning_orders_of_magnitude_get_a_log_axis():
    trials = [{"number": i, "state": "COMPLETE", "values": [v], "params": {},
               "intermediate": {1: v * 3, 2: v * 2, 3: v}} for i, v in enumerate([0.05, 0.07, 0.09, 40.0])]
    chart = c.learning_chart(trials, direction="minimize", metric="val_loss")
    ticks = re.findall(r'class="tick"[^>]*>([^<]+)<', chart)
    assert {"0.1", "1", "10"} <= set(ticks), ticks  # powers of ten: the useful trials are not squashed at 0


def test_the_y_axis_title_clears_its_tick_labels():
    history = [{"epoch": e, "loss": 0.000123 + 1e-6 * e} for e in range(1, 6)]
    chart = c.series_chart(history, ["loss"], title="loss", log=False)
    title_x = float(re.search(r'rotate\(-90 ([0-9.]+) ', chart).group(1))
    ticks = re.findall(r'<text x="([0-9.]+)"[^>]*text-anchor="end"[^>]*class="tick"[^>]*>([^<]+)<', chart)
    assert ticks
    for x, label in ticks:
        assert title_x + 8 < float(x) - 6.2 * len(label), (title_x, x, label)  # no overlap
