"""Boosting of small networks: SAMME's weights and votes, gradient boosting on residuals."""

from __future__ import annotations

import math

import torch

from honing.ensemble import boost


def _weak(seed):  # 3 hidden units: weak on rings
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 3))


def test_samme_alphas_follow_the_weighted_errors_and_the_votes_beat_one_weak_network():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(600, 2, generator=g) * 2 - 1
    r = x.norm(dim=1)
    y = (r > 0.45).long() + (r > 0.8).long()  # three rings
    result = boost(_weak, x, y, task="classification", rounds=10, epochs=15, lr=0.05, seed=0)
    kept = [h for h in result.rounds if h["kept"]]
    for h in kept:
        assert h["alpha"] == math.log((1 - h["error"]) / h["error"]) + math.log(2)
    model = result.model.eval()
    with torch.no_grad():
        first = (model.members[0](x).argmax(-1) == y).float().mean()
        votes = model(x)
        boosted = (votes.argmax(-1) == y).float().mean()
    assert torch.allclose(votes.sum(-1), model.alphas.sum().expand(600))  # each round gives one vote
    assert len(kept) == 10 and boosted > first + 0.04  # measured: 0.860 -> 0.917


def test_gradient_boosting_fits_the_residuals_round_after_round():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(400, 1, generator=g) * 6 - 3
    y = torch.sin(x) + 0.3 * x

    def small(seed):
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Linear(1, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))

    result = boost(small, x, y, task="regression", rounds=4, epochs=40, lr=0.03, shrinkage=0.8, seed=0)
    mse = [h["train_mse"] for h in result.rounds]
    assert mse[-1] < mse[0] < float(((y - y.mean()) ** 2).mean())
    with torch.no_grad():
        assert torch.allclose(((result.model(x) - y) ** 2).mean(), torch.tensor(mse[-1]), rtol=1e-4)


def test_boosting_and_fold_bagging_are_seeded():
    from honing.data import load

    g = torch.Generator().manual_seed(0)
    x = torch.rand(300, 2, generator=g) * 2 - 1
    y = (x.norm(dim=1) > 0.6).long()
    runs = [boost(_weak, x, y, task="classification", rounds=3, epochs=5, lr=0.05, seed=s).rounds for s in (1, 1, 2)]
    assert runs[0] == runs[1] and runs[0] != runs[2]
    data = load("sklearn:wine", seed=0)
    same = [[va.tolist() for _, va in data.fold_indices(5, seed=s)] for s in (3, 3, 4)]
    assert same[0] == same[1] and same[0] != same[2]  # a bag's folds follow the recipe's seed
