"""Step policies: the default ones match the config, and a replacement runs in the Trainer's loop."""

from __future__ import annotations

import pytest
import torch
from _train_helpers import blobs, mlp

from honing._core import ConfigError
from honing.train import AmpStep, ClosureStep, StandardStep, StepPolicy, TrainConfig, Trainer, default_step


def weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_the_default_policy_follows_the_optimizer_and_config():
    model = mlp()
    cpu = torch.device("cpu")
    assert type(default_step(torch.optim.SGD(model.parameters(), lr=0.1), TrainConfig(), cpu)) is StandardStep
    assert default_step(torch.optim.SGD(model.parameters(), lr=0.1), TrainConfig(accumulate=3), cpu).accumulate == 3
    assert isinstance(default_step(torch.optim.LBFGS(model.parameters()), TrainConfig(), cpu), ClosureStep)
    # float16 with a scaler is a CUDA matter; on CPU float16 is not scaled
    assert type(default_step(torch.optim.SGD(model.parameters(), lr=0.1), TrainConfig(precision="16"), cpu)) is StandardStep


def test_an_explicit_standard_policy_gives_the_same_weights_as_the_default():
    train, _ = blobs(n=200)
    runs = []
    for step in (None, StandardStep(2)):
        model = mlp(seed=3)
        cfg = TrainConfig(epochs=2, batch_size=16, accumulate=2)
        Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), config=cfg, step=step).fit(train)
        runs.append(weights(model))
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


class SignStep(StandardStep):
    """A replacement policy: steps on the sign of each gradient (signSGD), counting its calls."""

    def __init__(self) -> None:
        super().__init__(1)
        self.forwards = self.backwards = 0

    def loss(self, trainer, xb, yb):
        self.forwards += 1
        return super().loss(trainer, xb, yb)

    def backward(self, trainer, loss, index, count):
        self.backwards += 1
        loss.backward()
        for p in trainer.model.parameters():
            if p.grad is not None:
                p.grad = p.grad.sign()
        self._step(trainer)


def test_a_replacement_policy_runs_inside_the_trainers_loop():
    train, val = blobs(n=200)
    model = mlp(seed=0)
    step = SignStep()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), step=step,
                      config=TrainConfig(epochs=4, batch_size=32))
    before = weights(model)
    result = trainer.fit(train, val)
    batches = 4 * trainer.config.batches_per_epoch(len(train.x))
    assert step.forwards == step.backwards == batches == result.global_step
    # every SGD update moved each weight by exactly lr (sign gradients), so the total move is a multiple of 0.01
    moved = torch.cat([(a - b).flatten() for a, b in zip(weights(model), before)]) / 0.01
    torch.testing.assert_close(moved, moved.round(), rtol=0, atol=1e-3)
    assert result.history[-1]["val_accuracy"] > 0.8


def test_the_amp_policy_scales_and_keeps_its_scaler_in_the_trainer_state():
    train, _ = blobs(n=200)
    model = mlp(seed=0)
    step = AmpStep(1, device="cpu")
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), step=step,
                      config=TrainConfig(epochs=2, batch_size=32, grad_clip_norm=1.0))
    trainer.fit(train)
    state = trainer.state_dict()
    assert state["scaler"]["scale"] == step.scaler.get_scale()
    other = AmpStep(1, device="cpu")
    again = Trainer(mlp(seed=0), torch.optim.SGD(model.parameters(), lr=0.1), step=other)
    again.load_state_dict({**state, "epoch": 2})
    assert other.scaler.get_scale() == step.scaler.get_scale()


def test_bad_policies_are_refused():
    model = mlp()
    with pytest.raises(ConfigError, match="invalid step: got 'plain'"):
        Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), step="plain")
    with pytest.raises(ConfigError, match="invalid accumulate: got 0"):
        StandardStep(0)
    assert isinstance(ClosureStep(), StepPolicy)
