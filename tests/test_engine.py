"""The training engine end to end: real data, models, optimizers and schedules through the Trainer."""

from __future__ import annotations

import math

import pytest
import torch

import honing
from honing.data import Split, create_augment, load
from honing.models import create_model, list_models
from honing.optim import create_optimizer, create_schedule, get_optimizer_info, list_optimizers, list_schedules
from honing.train import Callback, EarlyStopping, TrainConfig, Trainer


@pytest.fixture(scope="module")
def digits():
    return load("sklearn:digits", seed=0)


def _optimizer_kwargs(name: str) -> dict:
    return {
        "sgd": {"lr": 0.1},
        "momentum": {"lr": 0.05},
        "nesterov": {"lr": 0.05},
        "adam": {"lr": 3e-3},
        "adamw": {"lr": 3e-3, "weight_decay": 1e-2},
        "adagrad": {"lr": 0.05},
        "adadelta": {"lr": 1.0},
        "rmsprop": {"lr": 1e-3},
        "lbfgs": {"lr": 0.5},
        "proximal": {"lr": 0.1, "lam": 1e-4},
        "admm": {"lr": 3e-3, "sparsity": 0.8, "admm_interval": 20},
        "bpag": {"lr": 0.05, "gain_lr": 0.01},
    }.get(name, {})


@pytest.mark.parametrize("name", list_optimizers())
def test_every_optimizer_trains_a_digits_mlp_through_the_trainer(name, digits):
    model = create_model("mlp", data=digits, hidden=[64], seed=0, gain="adaptive" if name == "bpag" else None)
    opt = create_optimizer(model, name, **_optimizer_kwargs(name))
    full_batch = get_optimizer_info(name).needs_closure
    config = TrainConfig(epochs=3 if full_batch else 6, batch_size=None if full_batch else 64, seed=0)
    trainer = Trainer(model, opt, config=config)
    before = trainer.evaluate(digits.val)["accuracy"]
    result = trainer.fit(digits.train, digits.val)
    after = result.history[-1]["val_accuracy"]
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert after > max(0.6, before + 0.3), (name, before, after)


def _schedule_kwargs(name: str) -> dict:
    return {
        "step": {"step_size": 2, "gamma": 0.5},
        "multistep": {"milestones": [2, 4], "gamma": 0.5},
        "exponential": {"gamma": 0.8},
        "cyclic": {"max_lr": 1e-2},
        "onecycle": {"max_lr": 1e-2},
        "plateau": {"monitor": "val_loss", "patience": 0, "factor": 0.5},
    }.get(name, {})


@pytest.mark.parametrize("name", list_schedules())
def test_every_schedule_drives_the_lr_through_the_trainer(name, digits):
    model = create_model("mlp", data=digits, hidden=[32], seed=0)
    opt = create_optimizer(model, "adam", lr=3e-3)
    config = TrainConfig(epochs=6, batch_size=128, seed=0)
    steps = config.steps_per_epoch(len(digits.train))
    sched = create_schedule(opt, name, epochs=6, steps_per_epoch=steps, warmup_steps=steps, **_schedule_kwargs(name))
    result = Trainer(model, opt, schedule=sched, config=config).fit(digits.train, digits.val)
    lrs = [h["lr"] for h in result.history]
    assert lrs[0] == pytest.approx(0.0, abs=1e-12)  # warm-up starts from zero
    assert len(set(round(v, 12) for v in lrs[1:])) >= 1
    assert result.history[-1]["val_accuracy"] > 0.5
    if name == "constant":
        assert lrs[1:] == pytest.approx([3e-3] * 5)
    if name == "step":  # after the warm-up epoch: halved every 2 epochs
        assert lrs[2] == pytest.approx(3e-3 * 0.5) and lrs[4] == pytest.approx(3e-3 * 0.25)


def _data_for(name: str) -> honing.Dataset | tuple:
    if name in ("cnn", "mobilenet", "cellnet"):  # image models
        return load("sklearn:digits", image=True, seed=0)
    if name in ("rnn", "transformer"):
        # a sequence task: does the sequence contain more positive steps than negative?
        g = torch.Generator().manual_seed(0)
        x = torch.randn(600, 12, 3, generator=g)
        y = (x[:, :, 0].sign().sum(1) > 0).long()
        return Split(x[:400], y[:400]), Split(x[400:], y[400:]), (12, 3), 2
    return load("sklearn:digits", seed=0)


@pytest.mark.parametrize("name", list_models())
def test_every_model_learns_through_the_trainer(name):
    data = _data_for(name)
    if isinstance(data, tuple):
        train, val, shape, k = data
        model = create_model(name, input_shape=shape, num_outputs=k, seed=0)
    else:
        train, val = data.train, data.val
        model = create_model(name, data=data, seed=0)
    opt = create_optimizer(model, "adam", lr=3e-3)
    trainer = Trainer(model, opt, config=TrainConfig(epochs=8, batch_size=32, seed=0))
    result = trainer.fit(train, val)
    assert result.history[-1]["val_accuracy"] > 0.75, result.history[-1]


class _Interrupt(Callback):
    def __init__(self, at_epoch: int) -> None:
        self.at_epoch = at_epoch

    def on_epoch_end(self, trainer, epoch, logs):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt


def _build(data, seed: int = 0):
    model = create_model("mlp", data=data, hidden=[64, 32], dropout=0.2, batch_norm=True, seed=seed)
    config = TrainConfig(epochs=7, batch_size=32, seed=seed, grad_clip_norm=5.0)
    opt = create_optimizer(model, "adamw", lr=2e-3, weight_decay=1e-2)
    sched = create_schedule(opt, "cosine", epochs=7, steps_per_epoch=config.steps_per_epoch(len(data.train)),
                            warmup_steps=20)
    augment = create_augment({"tabular_noise": 0.05, "mixup": 0.2}, num_classes=data.num_outputs, seed=seed)
    stop = EarlyStopping(monitor="val_loss", patience=50)
    return model, Trainer(model, opt, schedule=sched, config=config, augment=augment, callbacks=[stop]), stop


def test_interrupted_and_resumed_training_is_bit_identical(digits, tmp_path):
    honing.seed_everything(0)
    model_a, trainer_a, stop_a = _build(digits)
    trainer_a.fit(digits.train, digits.val)

    honing.seed_everything(0)
    model_b, trainer_b, stop_b = _build(digits)
    trainer_b.callbacks.append(_Interrupt(at_epoch=3))
    with pytest.raises(KeyboardInterrupt):
        trainer_b.fit(digits.train, digits.val, checkpoint_dir=tmp_path)
    torch.manual_seed(12345)  # a resumed process starts with other global RNG states

    model_c, trainer_c, stop_c = _build(digits, seed=0)
    with torch.no_grad():  # start from different weights: the checkpoint must restore everything
        for p in model_c.parameters():
            p.add_(1.0)
    result = trainer_c.fit(digits.train, digits.val, checkpoint_dir=tmp_path, resume=True)
    assert result.epochs_run == 7 and trainer_c.epoch == 7
    sa, sc = model_a.state_dict(), model_c.state_dict()
    assert sa.keys() == sc.keys()
    for key in sa:
        assert torch.equal(sa[key], sc[key]), key
    assert [h["loss"] for h in trainer_a.history] == [h["loss"] for h in trainer_c.history]
    assert stop_c.state_dict() == stop_a.state_dict()  # early-stopping state came back too


def test_admm_through_the_trainer_ends_with_at_most_k_nonzeros_per_layer(digits):
    model = create_model("mlp", data=digits, hidden=[64], seed=0)
    k = 200
    opt = create_optimizer(model, "admm", lr=3e-3, k=k, admm_interval=10, rho=1e-2)
    result = Trainer(model, opt, config=TrainConfig(epochs=15, batch_size=64, seed=0)).fit(digits.train, digits.val)
    weights = [p for n, p in model.named_parameters() if p.ndim >= 2]
    assert weights and all(int((w != 0).sum()) <= k for w in weights)
    assert len(opt.residuals) > 0
    assert result.history[-1]["val_accuracy"] > 0.8  # the pruned model still works


def test_bpag_gains_change_and_the_model_learns(digits):
    model = create_model("mlp", data=digits, hidden=[32], gain="adaptive", seed=0)
    gains = {n: p.detach().clone() for n, p in model.named_parameters() if n.endswith("gain")}
    assert gains
    opt = create_optimizer(model, "bpag", lr=0.05, gain_lr=0.02)
    result = Trainer(model, opt, config=TrainConfig(epochs=8, batch_size=64, seed=0)).fit(digits.train, digits.val)
    after = dict(model.named_parameters())
    assert all(not torch.equal(gains[n], after[n].detach()) for n in gains)
    assert result.history[-1]["val_accuracy"] > 0.85


def test_divergence_with_a_real_optimizer_names_the_step(digits):
    model = create_model("mlp", data=digits, hidden=[32], seed=0)
    opt = create_optimizer(model, "sgd", lr=1e12)
    with pytest.raises(honing.DivergedError, match=r"epoch 1.*step") as err:
        Trainer(model, opt, config=TrainConfig(epochs=3, batch_size=32, seed=0)).fit(digits.train)
    assert not math.isfinite(err.value.value)


def test_cross_validation_folds_train_independently(digits):
    scores = []
    for train, val in digits.folds(k=3, seed=0):
        model = create_model("mlp", data=digits, hidden=[32], seed=0)
        trainer = Trainer(model, create_optimizer(model, "adam", lr=3e-3), config=TrainConfig(epochs=4, seed=0))
        scores.append(trainer.fit(train, val).history[-1]["val_accuracy"])
    assert len(scores) == 3 and min(scores) > 0.85
