"""Greedy selection, stacking, calibration and the ensemble module, on hand-made predictions
whose best answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from honing import ConfigError
from honing import ensemble as E
from honing._core import DataError


def _two_class(p_true_first: float, p_true_second: float, n: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels alternate 0/1; the candidate gives the true class ``p_true_first`` on the first half
    of the rows and ``p_true_second`` on the second."""
    y = torch.arange(n) % 2
    p_true = torch.where(torch.arange(n) < n // 2, p_true_first, p_true_second)
    probs = torch.stack([torch.where(y == 0, p_true, 1 - p_true), torch.where(y == 1, p_true, 1 - p_true)], 1)
    return probs, y


def test_greedy_selection_picks_the_complementary_pair_in_equal_parts():
    a, y = _two_class(0.9, 0.4)  # right and sure on the first half, wrong on the second
    b, _ = _two_class(0.4, 0.9)  # the reverse
    c, _ = _two_class(0.55, 0.55)  # a little better than chance everywhere
    sel = E.greedy_selection([a, b, c], y, task="classification", rounds=20)
    assert sel.weights == [0.5, 0.5, 0.0]
    # the pair at equal weights gives the true class 0.65 everywhere: the best any mix of them does
    assert sel.path[-1] == pytest.approx(-math.log(0.65), abs=1e-6)
    assert sel.path[-1] < min(sel.single) and sel.chosen == [0, 1]
    assert sel.best_single == 0  # a alone: 0.511; c alone: 0.598
    # the error rate as the score: c alone errs nowhere (a and b on half the rows each)
    sel = E.greedy_selection([a, b, c], y, task="classification", rounds=4, loss="error")
    assert sel.single == [0.5, 0.5, 0.0] and sel.weights[2] >= 0.5 and sel.path == [0.0] * 4


def test_greedy_selection_on_regression_values_cancels_opposite_biases():
    y = torch.linspace(-1, 1, 50)[:, None]
    sel = E.greedy_selection([y + 0.5, y - 0.5, y + 0.2], y, task="regression", rounds=10)
    # from the best single model (bias 0.2) greedy adds the one of opposite bias: 0.7 / 0.3 leaves -0.01
    assert sel.weights == [0.0, 0.3, 0.7] and sel.path[-1] == pytest.approx(0.01 ** 2, rel=1e-6)
    assert sel.path[-1] < 0.01 * min(sel.single)


def test_greedy_selection_refuses_mismatched_candidates():
    a, y = _two_class(0.9, 0.4)
    with pytest.raises(ConfigError, match="candidate 1"):
        E.greedy_selection([a, a[:10]], y, task="classification")
    with pytest.raises(ConfigError, match="loss"):
        E.greedy_selection([y[:, None].float()], y, task="regression", loss="error")


def test_stacking_is_cross_fitted_a_rows_own_label_never_reaches_its_prediction():
    torch.manual_seed(0)
    preds = [torch.rand(60, 3).softmax(-1) for _ in range(3)]
    y = torch.randint(0, 3, (60,))
    base = E.cross_fitted_predictions(preds, y, task="classification", folds=5, seed=1)
    for row in (0, 17, 59):
        changed = y.clone()
        changed[row] = (y[row] + 1) % 3
        again = E.cross_fitted_predictions(preds, changed, task="classification", folds=5, seed=1)
        assert torch.allclose(again[row], base[row], atol=1e-6)  # fitted without that row
        assert not torch.allclose(again, base, atol=1e-6)  # other rows' heads saw the change


def test_stacking_learns_what_averaging_cannot():
    a, y = _two_class(0.9, 0.4)
    flipped = 1 - a  # a model that is reliably wrong is informative to a head, useless to an average
    plain = E.greedy_selection([flipped], y, task="classification", rounds=1).single[0]
    stacked = E.cross_fitted_predictions([flipped], y, task="classification", folds=5)
    assert E.prediction_loss(stacked, y, "classification") < plain
    head = E.fit_stacker([flipped], y, task="classification")
    assert head.weight.shape == (2, 2)


def test_ensemble_model_outputs_the_weighted_average_of_probabilities_and_values():
    torch.manual_seed(0)
    members = [torch.nn.Linear(4, 3) for _ in range(3)]
    x = torch.randn(8, 4)
    model = E.EnsembleModel(members, task="classification", weights=[0.5, 0.3, 0.2])
    expected = sum(w * m(x).softmax(-1) for w, m in zip([0.5, 0.3, 0.2], members))
    assert torch.allclose(model(x).softmax(-1), expected, atol=1e-6)
    hot = E.EnsembleModel(members, task="classification", weights=[0.5, 0.3, 0.2], temperature=2.0)
    assert torch.equal(hot(x).argmax(-1), model(x).argmax(-1))  # a temperature keeps the predicted class
    assert hot(x).softmax(-1).amax(-1).mean() < model(x).softmax(-1).amax(-1).mean()
    reg = E.EnsembleModel(members, task="regression", weights=[0.5, 0.25, 0.25])
    assert torch.allclose(reg(x), 0.5 * members[0](x) + 0.25 * members[1](x) + 0.25 * members[2](x), atol=1e-6)
    with pytest.raises(ConfigError, match="summing to 1"):
        E.EnsembleModel(members, task="regression", weights=[0.5, 0.5, 0.5])


def test_expected_calibration_error_by_hand():
    # 10 rows at confidence 0.9 of which 8 are right, 10 rows at 0.6 of which 6 are right
    probs = torch.tensor([[0.9, 0.1]] * 10 + [[0.6, 0.4]] * 10)
    y = torch.tensor([0] * 8 + [1] * 2 + [0] * 6 + [1] * 4)
    assert E.expected_calibration_error(probs, y, bins=10) == pytest.approx(0.5 * 0.1 + 0.5 * 0.0)


def test_temperature_scaling_recovers_the_sharpening_of_calibrated_logits():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4000, 5, generator=g) * 1.5
    y = torch.multinomial(z.softmax(-1), 1, generator=g)[:, 0]  # z is calibrated for these labels
    t = E.fit_temperature(3.0 * z, y)
    assert t == pytest.approx(3.0, rel=0.1)
    before = E.expected_calibration_error((3.0 * z).softmax(-1), y)
    after = E.expected_calibration_error((3.0 * z / t).softmax(-1), y)
    assert after < before / 3


def test_fit_affine_recovers_a_per_feature_rescaling_and_refuses_anything_else():
    torch.manual_seed(0)
    x = torch.randn(200, 4)
    scale, shift = torch.tensor([2.0, 0.5, 1.0, -1.0]), torch.tensor([0.1, -3.0, 0.0, 1.0])
    fitted = E.fit_affine(x, x * scale + shift, what="fold 1 inputs")
    assert torch.allclose(fitted(x), x * scale + shift, atol=1e-5)
    assert E.fit_affine(x, x.clone(), what="same") is None
    with pytest.raises(DataError, match="fold 2 inputs: .*not a rescaling"):
        E.fit_affine(x, x ** 2, what="fold 2 inputs")


def test_a_temperature_that_does_not_help_unseen_rows_is_not_applied():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(4000, 5, generator=g) * 1.5
    y = torch.multinomial(z.softmax(-1), 1, generator=g)[:, 0]
    t, why = E.checked_temperature(3.0 * z, y)
    assert t == pytest.approx(3.0, rel=0.1) and why.startswith("fitted on 4000 rows")
    # already calibrated: a temperature fitted on one half does not help the other
    assert E.checked_temperature(z, y)[0] == 1.0
    # separable rows but one sure mistake: the half without it wants a sharpening temperature,
    # which makes the mistake on the other half cost far more than it saves
    y2 = torch.arange(40) % 2
    z2 = torch.stack([torch.where(y2 == 0, 2.0, -2.0), torch.where(y2 == 1, 2.0, -2.0)], 1)
    z2[0] = torch.tensor([-2.0, 2.0])
    t, why = E.checked_temperature(z2, y2)
    assert t == 1.0 and why.startswith("not applied: a temperature fitted on half the rows raised")
    # cleanly separable everywhere: sharpening holds up on unseen rows, so it is kept
    z3 = z2.clone()
    z3[0] = torch.tensor([2.0, -2.0])
    assert E.checked_temperature(z3, y2)[0] < 0.5


def test_fit_affine_leaves_ignored_cells_out_and_imputed_gap_measures_them():
    torch.manual_seed(0)
    x = torch.randn(200, 3)
    target = x * 2.0 + 1.0
    ignore = torch.zeros(200, 3, dtype=torch.bool)
    ignore[:20, 1] = True
    target[:20, 1] = 5.0  # imputed with another fill value in the fold
    with pytest.raises(DataError, match="not a rescaling"):
        E.fit_affine(x, target, what="fold 1 inputs")
    fitted = E.fit_affine(x, target, what="fold 1 inputs", ignore=ignore)
    assert torch.allclose(fitted(x)[~ignore], target[~ignore], atol=1e-5)
    gap = E.imputed_gap(fitted, x, target, ignore)
    spread = target.std(0, unbiased=False).clamp_min(1.0)[1]
    assert gap == pytest.approx(float(((x[:20, 1] * 2 + 1 - 5.0).abs() / spread).max()), rel=1e-4)
    assert E.imputed_gap(fitted, x, target, torch.zeros_like(ignore)) == 0.0


def test_a_tables_imputed_cells_are_its_missing_values_and_whole_one_hot_blocks():
    from honing.data._preprocess import TabularPreprocessor

    raw = np.array([[1.0, "red"], [np.nan, "blue"], [3.0, None], [None, "red"]], dtype=object)
    pre = TabularPreprocessor(["size", "color"], ["numeric", "categorical"]).fit(raw)
    assert pre.feature_names == ["size", "color=blue", "color=red"]
    assert pre.imputed_cells(raw).tolist() == [[False, False, False], [True, False, False],
                                                [False, True, True], [True, False, False]]
