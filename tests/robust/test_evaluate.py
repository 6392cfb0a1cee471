"""evaluate_robustness: the table, the sanity checks (and that they catch gradient masking),
corruptions, and the input spaces of honing's preprocessors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from honing import ConfigError, DataError
from honing.data import ArrayPreprocessor, TabularPreprocessor
from honing.robust import CORRUPTIONS, InputSpace, corrupt, evaluate_robustness


def test_the_table_and_every_check_on_a_trained_model(digits):
    model, x, y, space, _, _ = digits
    out = evaluate_robustness(model, x[:200], y[:200], epsilons=[0.2, 0.05, 0.1], space=space, steps=10, queries=100)
    assert out["epsilons"] == [0.05, 0.1, 0.2] and out["units"] == "pixels" and out["rows"] == 200
    assert set(out["accuracy"]) == {"fgsm", "pgd", "apgd", "square"}
    pgd = out["accuracy"]["pgd"]
    assert out["clean_accuracy"] > pgd["0.05"] > pgd["0.2"]
    # each row against its strongest attack: at most the best single attack's accuracy
    assert out["robust_accuracy"]["0.1"] <= min(row["0.1"] for row in out["accuracy"].values())
    assert {c["check"]: c["passed"] for c in out["checks"]} == {
        "no attack raises accuracy": True, "accuracy falls as epsilon grows": True,
        "the attack loss rises with steps": True, "an unbounded attack reaches 0": True,
        "the black-box attack is not stronger than the white-box ones": True}


class _Masked(nn.Module):
    """A model whose input gradient is zero (inputs rounded through a straight zero-gradient path):
    white-box attacks see no slope, a black-box attack still works."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x.detach() + 0.0 * x)


def test_gradient_masking_is_flagged(digits):
    model, x, y, space, _, _ = digits
    out = evaluate_robustness(_Masked(model), x[:150], y[:150], epsilons=[0.1], space=space,
                              attacks=["pgd", "square"], steps=5, queries=300)
    checks = {c["check"]: c for c in out["checks"]}
    masking = checks["the black-box attack is not stronger than the white-box ones"]
    assert not masking["passed"] and "gradient masking is likely" in masking["detail"]
    assert not checks["an unbounded attack reaches 0"]["passed"]
    assert not checks["the attack loss rises with steps"]["passed"]


def test_corruptions_lower_accuracy_with_severity_and_stay_in_range():
    torch.manual_seed(0)
    x = torch.rand(8, 1, 12, 12)
    for name in CORRUPTIONS:
        mild, harsh = corrupt(x, name, 1, space=InputSpace.identity(0, 1)), corrupt(x, name, 5, space=InputSpace.identity(0, 1))
        assert float(harsh.min()) >= 0 and float(harsh.max()) <= 1
        assert float((harsh - x).abs().mean()) > float((mild - x).abs().mean()) > 0
    flat = torch.full((1, 1, 5, 5), 0.5)
    assert torch.allclose(corrupt(flat, "gaussian_blur", 3), flat, atol=1e-6)  # a blur keeps a flat image
    with pytest.raises(ConfigError, match="images"):
        corrupt(torch.rand(4, 10), "contrast", 1)
    with pytest.raises(ConfigError, match="allowed: gaussian_noise"):
        corrupt(x, "fog", 1)


def test_an_image_space_is_in_pixel_units():
    raw = np.random.default_rng(0).integers(0, 256, size=(50, 1, 6, 6)).astype(np.uint8)
    pre = ArrayPreprocessor((1, 6, 6), pixel_max=255)
    xm = pre.fit_transform(raw)
    space = InputSpace.from_preprocessor(pre, xm)
    assert torch.allclose(space.to_units(xm), torch.from_numpy(raw / 255.0).float(), atol=1e-5)
    assert torch.allclose(space.to_model(space.to_units(xm)), xm, atol=1e-5)
    assert float(space.low.min()) == 0 and float(space.high.max()) == 1 and "pixel" in space.units


def test_a_table_space_changes_numeric_columns_only():
    rows = np.array([[1.0, "a", 10.0], [2.0, "b", 30.0], [3.0, "a", 20.0]], dtype=object)
    pre = TabularPreprocessor(["n1", "c", "n2"], kinds=["numeric", "categorical", "numeric"])
    xm = pre.fit_transform(rows)
    space = InputSpace.from_preprocessor(pre, xm)
    assert space.mask.tolist() == [[1.0, 0.0, 0.0, 1.0]]  # n1, c=a, c=b, n2
    assert "standard deviations" in space.units


def test_text_inputs_and_bad_options_are_clear(digits):
    model, x, y, space, _, _ = digits

    class Text:
        kind = "text"

    with pytest.raises(DataError, match="numeric inputs"):
        InputSpace.from_preprocessor(Text(), x)
    with pytest.raises(ConfigError, match="allowed: fgsm, pgd, apgd, square"):
        evaluate_robustness(model, x, y, epsilons=[0.1], attacks=["cw"])
    with pytest.raises(ConfigError, match="L-inf attacks"):
        evaluate_robustness(model, x, y, epsilons=[0.1], norm="l2")
    with pytest.raises(ConfigError, match="epsilons"):
        evaluate_robustness(model, x, y, epsilons=[])


def test_robust_accuracy_counts_each_row_against_its_strongest_attack(monkeypatch):
    from honing.robust import AttackResult
    from honing.robust._attacks import ATTACKS

    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))  # the class is the larger input
    x, y = torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([0, 0])

    def fooling(row):
        def attack(model, xb, yb, epsilon, **kw):
            out = xb.clone()
            if epsilon > 0:
                out[row] = torch.tensor([0.0, 1.0])
            return AttackResult(out, [0.0, 1.0])
        return attack

    monkeypatch.setitem(ATTACKS, "fgsm", fooling(0))  # fools row 0 only
    monkeypatch.setitem(ATTACKS, "square", fooling(1))  # fools row 1 only
    out = evaluate_robustness(model, x, y, epsilons=[0.1], attacks=["fgsm", "square"])
    assert out["accuracy"]["fgsm"]["0.1"] == 0.5 and out["accuracy"]["square"]["0.1"] == 0.5
    assert out["robust_accuracy"]["0.1"] == 0.0  # every row was fooled by one attack or the other
