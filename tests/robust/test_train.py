"""Adversarial training (PGD-AT, TRADES, fast FGSM) raises robust accuracy on a small task."""

from __future__ import annotations

import pytest
import torch
from robust_toys import train_mlp

from honing import ConfigError
from honing.robust import AdversarialStep, pgd


def _robust(model, x, y, space, eps=0.1):
    adv = pgd(model, x, y, eps, steps=10, space=space).x
    with torch.no_grad():
        return float((model(adv).argmax(1) == y).float().mean()), float((model(x).argmax(1) == y).float().mean())


@pytest.mark.parametrize("method", ["pgd", "trades", "fgsm"])
def test_adversarial_training_raises_robust_accuracy(digits, method):
    plain, x, y, space, xt, yt = digits
    step = AdversarialStep(method, epsilon=0.1, space=space, steps=5, seed=0)
    robust_model = train_mlp(xt, yt, step=step)
    before, _ = _robust(plain, x, y, space)
    after, clean = _robust(robust_model, x, y, space)
    assert after > before + 0.15, (before, after)
    assert clean > 0.6  # still a classifier


def test_the_step_is_seeded_and_checks_its_options(digits):
    _, _, _, space, xt, yt = digits
    a = train_mlp(xt[:300], yt[:300], step=AdversarialStep("pgd", 0.1, space=space, steps=2, seed=3), epochs=2)
    b = train_mlp(xt[:300], yt[:300], step=AdversarialStep("pgd", 0.1, space=space, steps=2, seed=3), epochs=2)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with pytest.raises(ConfigError, match="allowed: pgd, trades, fgsm"):
        AdversarialStep("mart")
    with pytest.raises(ConfigError, match="epsilon"):
        AdversarialStep("pgd", epsilon=-1)
