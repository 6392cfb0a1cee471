"""The chart kit: ticks, scales, number formatting, colours, labels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from honing.report import ReportData, render_report
from honing.report._charts import label_of, short_name
from honing.report._svg import Scale, colormap, extent, fmt, log_ticks, nice_ticks


def test_nice_ticks_are_round_and_cover_the_range():
    assert nice_ticks(0, 1, 5) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0.81, 0.94, 5) == [0.82, 0.84, 0.86, 0.88, 0.9, 0.92, 0.94]
    assert nice_ticks(-7, 23, 5) == [-5, 0, 5, 10, 15, 20]
    assert nice_ticks(3, 3) == [3]


def test_log_ticks():
    assert log_ticks(1e-4, 1e-1) == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1])
    assert log_ticks(1e-3, 5e-2) == pytest.approx([1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2])
    assert log_ticks(2, 8) == [2, 5]
    assert log_ticks(3, 8) == [3, 4, 5, 6, 7, 8]  # one 1-2-5 value inside: linear ticks
    assert log_ticks(-1, 10) == []
    many = log_ticks(1e-12, 1e6)
    assert 4 <= len(many) <= 10


def test_scales():
    lin = Scale(0, 10, 100, 200)
    assert lin(5) == 150 and lin(0) == 100
    log = Scale(1e-4, 1e-1, 300, 0, log=True)  # y axis: pixels grow downward
    assert log(1e-4) == pytest.approx(300) and log(1e-1) == pytest.approx(0)
    assert log(1e-3) == pytest.approx(200)
    assert not Scale(-1, 1, 0, 1, log=True).log  # a log axis needs positive bounds
    assert extent([1, 1]) == (0.9, 1.1) and extent([]) == (0.0, 1.0)
    lo, hi = extent([1e-4, 1e-1], log=True)
    assert lo < 1e-4 and hi > 1e-1


def test_fmt():
    assert fmt(0.97312) == "0.9731" and fmt(17980.0) == "17980" and fmt(3) == "3"
    assert fmt(1.5e-5) == "1.5e-05" and fmt(None) == "—" and fmt(True) == "True"
    assert fmt(np.float32(0.5)) == "0.5" and fmt(np.int64(7)) == "7"
    assert fmt(float("nan")) == "nan"


def test_colormap_ends_and_clamps():
    assert colormap(0) == "#440154" and colormap(1) == "#fde725"
    assert colormap(-3) == colormap(0) and colormap(math.nan) == colormap(0)


def test_labels():
    assert label_of([128, 64]) == "[128, 64]" and label_of(None) == "None" and label_of(0.5) == "0.5"
    assert short_name("training.optimizer.lr", 14) == "optimizer.lr"
    assert short_name("training.optimizer.lr", 40) == "training.optimizer.lr"
    assert short_name("a.very_long_parameter_name", 10) == "very_long…"


def test_numpy_scalars_are_numbers():
    trials = [{"number": i, "state": "COMPLETE", "params": {"lr": np.float64(10.0 ** -i), "n": np.int64(i)},
               "values": [np.float32(0.5 + 0.1 * i)], "intermediate": {np.int64(1): np.float32(0.4)},
               "user_attrs": {}, "duration_s": np.float64(1.0)} for i in range(1, 4)]
    html = render_report(ReportData(title="np", task="classification", metric="acc", trials=trials,
                                    log_params={"lr"}))
    assert html.count("COMPLETE: ") == 3
    assert '<section id="parallel">' in html and ">log<" in html
