"""Each attack lowers accuracy, stays in its epsilon ball and the data's range; PGD at epsilon 0
changes nothing; APGD's checkpoints are the published ones."""

from __future__ import annotations

import pytest
import torch

from honing import ConfigError
from honing.robust import apgd, fgsm, pgd, square
from honing.robust._attacks import _checkpoints


def _accuracy(model, x, y):
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


ATTACKS = {
    "fgsm": lambda m, x, y, e, s: fgsm(m, x, y, e, space=s),
    "pgd": lambda m, x, y, e, s: pgd(m, x, y, e, steps=10, space=s),
    "pgd-restarts": lambda m, x, y, e, s: pgd(m, x, y, e, steps=5, restarts=3, space=s),
    "apgd": lambda m, x, y, e, s: apgd(m, x, y, e, steps=20, space=s),
    "square": lambda m, x, y, e, s: square(m, x, y, e, queries=200, space=s),
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_an_attack_lowers_accuracy_inside_its_linf_ball_and_the_pixel_range(digits, name):
    model, x, y, space, _, _ = digits
    eps = 0.1
    result = ATTACKS[name](model, x, y, eps, space)
    clean, attacked = _accuracy(model, x, y), _accuracy(model, result.x, y)
    assert attacked < clean - 0.15, (clean, attacked)
    u0, u = space.to_units(x), space.to_units(result.x)
    assert float((u - u0).abs().max()) <= eps + 1e-5
    assert float(u.min()) >= -1e-5 and float(u.max()) <= 1 + 1e-5  # pixels stay pixels
    assert model.training  # the model is put back in the mode it was in


def test_l2_attacks_respect_their_ball(digits):
    model, x, y, space, _, _ = digits
    eps = 1.0
    for result in (pgd(model, x, y, eps, norm="l2", steps=10, space=space),
                   apgd(model, x, y, eps, norm="l2", steps=20, space=space)):
        d = (space.to_units(result.x) - space.to_units(x)).flatten(1).norm(dim=1)
        assert float(d.max()) <= eps + 1e-4
        assert _accuracy(model, result.x, y) < _accuracy(model, x, y) - 0.1


def test_pgd_at_epsilon_zero_changes_nothing(digits):
    model, x, y, space, _, _ = digits
    result = pgd(model, x, y, 0.0, steps=5, space=space)
    assert torch.allclose(result.x, x, atol=1e-6)
    assert _accuracy(model, result.x, y) == _accuracy(model, x, y)


def test_pgd_loss_rises_and_more_steps_are_not_weaker(digits):
    model, x, y, space, _, _ = digits
    short = pgd(model, x, y, 0.05, steps=2, space=space)
    long = pgd(model, x, y, 0.05, steps=20, space=space)
    assert long.losses[-1] > long.losses[0]
    assert _accuracy(model, long.x, y) <= _accuracy(model, short.x, y) + 0.01


def test_attacks_are_seeded(digits):
    model, x, y, space, _, _ = digits
    a, b = pgd(model, x, y, 0.1, steps=3, seed=4, space=space), pgd(model, x, y, 0.1, steps=3, seed=4, space=space)
    assert torch.equal(a.x, b.x)
    s1, s2 = square(model, x, y, 0.1, queries=30, seed=1, space=space), square(model, x, y, 0.1, queries=30, seed=1, space=space)
    assert torch.equal(s1.x, s2.x)


def test_square_reads_no_gradient(digits):
    model, x, y, space, _, _ = digits
    for p in model.parameters():
        p.grad = None
    x = x.clone().requires_grad_(False)
    square(model, x, y, 0.1, queries=20, space=space)
    assert all(p.grad is None for p in model.parameters())


def test_apgd_checkpoints_are_the_published_ones():
    assert _checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]


def test_bad_arguments_are_clear(digits):
    model, x, y, space, _, _ = digits
    with pytest.raises(ConfigError, match="epsilon"):
        pgd(model, x, y, -0.1, space=space)
    with pytest.raises(ConfigError, match="norm.*linf, l2"):
        pgd(model, x, y, 0.1, norm="l1", space=space)
    with pytest.raises(ConfigError, match="steps"):
        apgd(model, x, y, 0.1, steps=0, space=space)
