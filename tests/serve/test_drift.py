"""Drift tests on synthetic windows with known shifts, and the reference a run saves."""

from __future__ import annotations

import json

import numpy as np
import pytest

from honing._core import ConfigError, DataError
from honing.artifacts import read_reference, write_reference
from honing.data import feature_profile
from honing.serve import DEFAULT_ALPHA, detect_drift

COLUMNS = ["a", "b", "c", "d", "colour"]
KINDS = ["numeric"] * 4 + ["categorical"]
COLOURS = np.array(["red", "green", "blue"], dtype=object)


def table(rng: np.random.Generator, n: int, *, shift: float = 0.0, colours=(0.5, 0.3, 0.2)) -> np.ndarray:
    x = np.empty((n, 5), dtype=object)
    num = rng.normal(size=(n, 4))
    num[:, 1] += shift  # the shift, in reference standard deviations, on one feature
    x[:, :4] = num
    x[:, 4] = COLOURS[rng.choice(3, size=n, p=colours)]
    return x


@pytest.fixture(scope="module")
def reference():
    rng = np.random.default_rng(0)
    return {"features": feature_profile(table(rng, 5000), COLUMNS, KINDS, seed=0)}


def test_no_shift_false_alarms_stay_under_5_percent_over_200_windows(reference):
    rng = np.random.default_rng(1)
    alarms = sum(detect_drift(reference, table(rng, 1000)).drifted for _ in range(200))
    assert alarms / 200 <= 0.05, alarms


def test_a_half_sd_mean_shift_at_1000_rows_is_found_nine_times_in_ten(reference):
    rng = np.random.default_rng(2)
    reports = [detect_drift(reference, table(rng, 1000, shift=0.5)) for _ in range(50)]
    assert sum(r.drifted for r in reports) / 50 >= 0.9
    # and it is the shifted feature that is named
    assert all([t.name for t in r.tests if t.drifted] == ["b"] for r in reports if r.drifted)
    assert reports[0].tests[1].test == "ks" and reports[0].share_drifted == pytest.approx(0.2)


def test_a_categorical_shift_is_found_by_chi_square_and_by_jensen_shannon_on_large_windows(reference):
    rng = np.random.default_rng(3)
    small = detect_drift(reference, table(rng, 800, colours=(0.3, 0.3, 0.4)))
    large = detect_drift(reference, table(rng, 5000, colours=(0.2, 0.3, 0.5)))
    same = detect_drift(reference, table(rng, 5000))
    colour = [next(t for t in r.tests if t.name == "colour") for r in (small, large)]
    assert colour[0].test == "chi-square" and colour[0].drifted
    assert colour[1].test == "jensen-shannon" and colour[1].drifted
    assert not same.drifted and next(t for t in same.tests if t.name == "b").test == "wasserstein"


def test_psi_on_request_and_a_new_category(reference):
    rng = np.random.default_rng(4)
    shifted = table(rng, 1000, shift=1.0)
    shifted[:100, 4] = "purple"  # a category the training rows never had
    report = detect_drift(reference, shifted, method="psi")
    drifted = {t.name for t in report.tests if t.drifted}
    assert {t.test for t in report.tests} == {"psi"} and drifted == {"b", "colour"}


def test_outputs_drift_by_mmd_and_the_label_free_accuracy_estimate():
    rng = np.random.default_rng(5)
    centres = np.eye(3) * 4
    def logits(n, shift=0.0):
        y = rng.integers(0, 3, n)
        return centres[y] + rng.normal(size=(n, 3)) + shift
    ref = {"outputs": logits(500).tolist(),
           "predictions": {"kind": "classes", "counts": {"x": 170, "y": 165, "z": 165}, "accuracy": 0.9,
                           "confidence": 0.95}}
    calm = detect_drift(ref, None, outputs=logits(300), class_names=["x", "y", "z"])
    moved = detect_drift(ref, None, outputs=logits(300, shift=np.array([1.5, 0, 0])), class_names=["x", "y", "z"])
    mmd = [next(t for t in r.tests if t.test == "mmd") for r in (calm, moved)]
    assert not mmd[0].drifted and mmd[1].drifted and mmd[1].p_value < 0.01
    # confident outputs -> an estimate near the reference accuracy, scaled by its accuracy/confidence
    assert 0.8 < calm.accuracy_estimate <= 0.9 / 0.95 and calm.reference_accuracy == 0.9


def test_bad_arguments_and_windows_are_refused(reference):
    with pytest.raises(ConfigError, match="invalid method: got 'kl'"):
        detect_drift(reference, table(np.random.default_rng(0), 10), method="kl")
    with pytest.raises(ConfigError, match=r"allowed: \(n, 5\)"):
        detect_drift(reference, np.zeros((10, 3), dtype=object))
    assert detect_drift(reference, np.zeros((0, 5), dtype=object)).rows == 0
    assert DEFAULT_ALPHA == 0.01


def test_a_reference_file_is_checked_like_every_file_of_a_model_folder(tmp_path, reference):
    write_reference(tmp_path, reference)
    assert read_reference(tmp_path)["features"][0]["name"] == "a"
    raw = json.loads((tmp_path / "reference.json").read_text())
    for field, value, message in [("version", 99, "version 99"),
                                  ("features", [{"name": "a", "kind": "numeric", "sample": ["x"]}], "features\\[0\\].sample"),
                                  ("outputs", [[1.0], [1.0, 2.0]], "rows of different lengths")]:
        (tmp_path / "reference.json").write_text(json.dumps({**raw, field: value}))
        with pytest.raises(DataError, match=message):
            read_reference(tmp_path)
    (tmp_path / "reference.json").write_text(json.dumps(raw).replace("0.", "NaN", 1))
    with pytest.raises(DataError, match="invalid drift reference"):
        read_reference(tmp_path)


def test_the_input_log_is_sampled_bounded_and_keeps_array_rows_compact(tmp_path):
    import base64

    import torch

    from honing.serve._runtime import InputLog

    log = InputLog(tmp_path, window=50, sample=1.0, max_rows=100, tabular=False, flush_s=3600)
    images = np.random.default_rng(0).normal(size=(30, 1, 4, 4)).astype(np.float32)
    for _ in range(10):  # 300 rows through a file that rotates past 100
        log.add(images, torch.zeros(30, 3), ["a"] * 30)
        log.flush()
    rows, outputs = log.window()
    assert rows == [] and outputs.shape == (50, 3)  # images: the window keeps outputs only
    lines = (tmp_path / "inputs.jsonl").read_text().splitlines()
    assert len(lines) <= 100 and (tmp_path / "inputs.jsonl.1").is_file()
    assert not (tmp_path / "inputs.jsonl.2").exists()
    first = json.loads(lines[0])["row"]
    back = np.frombuffer(base64.b64decode(first["float32_b64"]), dtype=np.float32).reshape(first["shape"])
    np.testing.assert_array_equal(back, images[0])
    sampled = InputLog(None, window=1000, sample=0.1, max_rows=10, seed=1)
    for _ in range(200):
        sampled.add(np.zeros((1, 2), dtype=object), torch.zeros(1, 2), ["x"])
    assert 5 <= len(sampled.window()[0]) <= 40
    log.close()
