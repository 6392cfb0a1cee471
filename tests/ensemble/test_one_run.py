"""Snapshot ensembles and stochastic weight averaging from one training run (Trainer callbacks)."""

from __future__ import annotations

import pytest
import torch

from honing import ConfigError
from honing.ensemble import SnapshotEnsemble, StochasticWeightAveraging
from honing.train import Callback, TrainConfig, Trainer


def _task():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 6, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
    return x, y


class _Weights(Callback):
    def __init__(self):
        self.seen, self.lrs = [], []

    def on_epoch_end(self, trainer, epoch, logs):
        self.seen.append({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})
        self.lrs.append(trainer.optimizer.param_groups[0]["lr"])


def _trainer(callbacks, epochs=9):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return Trainer(model, opt, loss="cross_entropy", config=TrainConfig(epochs=epochs, batch_size=32, seed=0),
                   callbacks=callbacks)


def test_snapshots_follow_cosine_cycles_and_average_their_probabilities():
    x, y = _task()
    snap, seen = SnapshotEnsemble(epochs=9, cycles=3, lr_max=0.2), _Weights()
    trainer = _trainer([snap, seen])
    trainer.fit((x, y))
    assert seen.lrs[0] == pytest.approx(0.2) and seen.lrs[3] == pytest.approx(0.2)  # restarts at 1, 4, 7
    assert seen.lrs[2] == pytest.approx(0.2 / 2 * (1 + torch.cos(torch.tensor(2 / 3 * torch.pi)).item()))
    assert len(snap.snapshots) == 3
    for kept, epoch in zip(snap.snapshots, (3, 6, 9)):  # each cycle's last epoch
        assert all(torch.equal(kept[k], seen.seen[epoch - 1][k]) for k in kept)
    ens = snap.ensemble(trainer.model, task="classification")
    members = [torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)) for _ in range(3)]
    for m, state in zip(members, snap.snapshots):
        m.load_state_dict(state)
    with torch.no_grad():
        expected = sum(m(x).softmax(-1) for m in members) / 3
        assert torch.allclose(ens(x).softmax(-1), expected, atol=1e-6)


def test_swa_leaves_the_model_at_the_mean_of_the_late_epochs_weights():
    x, y = _task()
    swa, seen = StochasticWeightAveraging(epochs=8, start=0.5, lr=0.05), _Weights()
    trainer = _trainer([seen, swa], epochs=8)
    trainer.fit((x, y))
    assert swa.start == 4 and swa.count == 5 and seen.lrs[3:] == [0.05] * 5
    late = seen.seen[3:]  # epochs 4..8
    state = trainer.model.state_dict()
    for k in state:
        assert torch.allclose(state[k], sum(w[k] for w in late) / len(late), atol=1e-6)


def test_bad_options_are_named():
    with pytest.raises(ConfigError, match="cycles"):
        SnapshotEnsemble(epochs=3, cycles=5, lr_max=0.1)
    with pytest.raises(ConfigError, match="start: epoch 12 is after the run's last"):
        StochasticWeightAveraging(epochs=10, start=12)
