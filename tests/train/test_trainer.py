from __future__ import annotations

import math

import pytest
import torch
from _train_helpers import NoiseAugment, Plateau, Recorder, Split, StepDecay, blobs, linear_data, mlp
from torch import nn

from honing._core import ConfigError, DivergedError
from honing.train import Callback, EarlyStopping, LambdaCallback, TrainConfig, Trainer


def params_of(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_learns_a_toy_classification_problem():
    train, val = blobs()
    model = mlp()
    trainer = Trainer(model, torch.optim.Adam(model.parameters(), lr=1e-2), config=TrainConfig(epochs=15, batch_size=16))
    result = trainer.fit(train, val)
    assert result.history[-1]["val_accuracy"] > 0.95
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert list(result.history[0]) == ["epoch", "loss", "lr", "time", "val_loss", "val_accuracy",
                                       "val_balanced_accuracy", "val_f1_macro", "val_precision_macro"]
    assert result.stop_reason == "completed 15 epochs" and result.epochs_run == 15
    assert result.global_step == 15 * math.ceil(len(train) / 16)
    assert result.monitor == "val_loss" and result.best_epoch is not None
    assert result.best_value == min(h["val_loss"] for h in result.history)
    metrics = trainer.evaluate(val)
    assert metrics["accuracy"] == pytest.approx(result.history[-1]["val_accuracy"])
    assert set(trainer.evaluate((val.x, val.y), prefix="test_")) == {
        "test_loss", "test_accuracy", "test_balanced_accuracy", "test_f1_macro", "test_precision_macro"}


def test_learns_a_toy_regression_problem_with_the_task_defaults():
    train, val = linear_data()
    torch.manual_seed(0)
    model = nn.Linear(5, 2)
    trainer = Trainer(model, torch.optim.Adam(model.parameters(), lr=5e-2), task="regression",
                      config=TrainConfig(epochs=30, batch_size=32, monitor="val_r2"))
    result = trainer.fit(train, val)
    assert result.history[-1]["val_r2"] > 0.95
    assert set(result.history[-1]) >= {"val_mse", "val_mae", "val_r2"}
    assert trainer.mode == "max" and result.best_value == max(h["val_r2"] for h in result.history)
    pred = trainer.predict(val.x)
    assert pred.shape == (len(val), 2) and model.training  # predict restores the mode


def test_full_batch_takes_one_step_per_epoch():
    train, _ = blobs()
    model = mlp()
    rec = Recorder()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), callbacks=[rec],
                      config=TrainConfig(epochs=4, batch_size=None))
    result = trainer.fit(train)
    assert result.global_step == 4
    assert [c for c in rec.calls if c[0] == "batch_end"] == [("batch_end", s) for s in (1, 2, 3, 4)]
    assert result.monitor == "loss"  # no validation split: val_loss falls back to the training loss


def test_gradient_accumulation_matches_a_larger_batch():
    train = Split(*[t[:128] for t in (blobs(n=200)[0].x, blobs(n=200)[0].y)])
    results = []
    for batch_size, accumulate in [(32, 1), (16, 2)]:
        model = mlp(seed=1)
        trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1),
                          config=TrainConfig(epochs=3, batch_size=batch_size, accumulate=accumulate))
        result = trainer.fit(train)
        results.append((params_of(model), result.global_step))
    (big, big_steps), (acc, acc_steps) = results
    assert big_steps == acc_steps == 3 * 4
    for a, b in zip(big, acc):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_accumulation_steps_at_the_end_of_an_uneven_epoch():
    train, _ = blobs(n=200)  # 150 rows: 10 batches of 16 -> groups of 3, 3, 3, 1
    model = mlp()
    result = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1),
                     config=TrainConfig(epochs=2, batch_size=16, accumulate=3)).fit(train)
    assert result.global_step == 2 * 4


@pytest.mark.parametrize("clip", [{"grad_clip_value": 1e-3}, {"grad_clip_norm": 1e-3}])
def test_clipping_bounds_the_update(clip):
    train, _ = blobs()
    updates = {}
    for name, kw in [("plain", {}), ("clipped", clip)]:
        model = mlp()
        before = params_of(model)
        Trainer(model, torch.optim.SGD(model.parameters(), lr=1.0),
                config=TrainConfig(epochs=1, batch_size=None, **kw)).fit(train)
        updates[name] = [a - b for a, b in zip(params_of(model), before)]
    if "grad_clip_value" in clip:
        assert max(u.abs().max().item() for u in updates["clipped"]) <= 1e-3 * (1 + 1e-4)
        assert max(u.abs().max().item() for u in updates["plain"]) > 1e-2
    else:
        total = torch.cat([u.flatten() for u in updates["clipped"]]).norm().item()
        assert total == pytest.approx(1e-3, rel=1e-3)
        assert torch.cat([u.flatten() for u in updates["plain"]]).norm().item() > 1e-2


def test_nan_loss_raises_diverged_error_naming_the_step():
    train, _ = blobs()
    model = mlp()
    calls = {"n": 0}

    def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        value = nn.functional.cross_entropy(pred, target)
        return value * math.nan if calls["n"] == 7 else value

    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), loss=loss,
                      config=TrainConfig(epochs=3, batch_size=32))  # 180 rows: 6 batches an epoch
    with pytest.raises(DivergedError) as err:
        trainer.fit(train)
    e = err.value
    assert (e.epoch, e.step, e.global_step) == (2, 1, 7) and math.isnan(e.value)
    assert "epoch 2, step 1 of 6 in the epoch (global step 7)" in str(e)
    assert "lower learning rate" in str(e) and "grad_clip_norm" in str(e)
    assert all(torch.isfinite(p).all() for p in model.parameters())  # checked before the backward pass


def test_a_huge_learning_rate_diverges():
    train, _ = blobs()
    model = mlp()
    with pytest.raises(DivergedError, match=r"the loss is (nan|inf) at epoch 1, step \d+ of 6"):
        Trainer(model, torch.optim.SGD(model.parameters(), lr=1e30), config=TrainConfig(epochs=2)).fit(train)


def test_early_stopping_stops_and_records_its_reason():
    train, val = blobs()
    model = mlp()
    es = EarlyStopping(monitor="val_loss", patience=2)
    rec = Recorder()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.0), callbacks=[es, rec],
                      config=TrainConfig(epochs=20))
    result = trainer.fit(train, val)
    assert result.epochs_run == 3 and len(result.history) == 3
    best = result.history[0]["val_loss"]
    assert result.stop_reason == f"early stopping: val_loss did not improve for 2 epochs (best {best:.4g} at epoch 1)"
    assert rec.calls[-1] == ("fit_end", result.stop_reason) and not result.pruned


def test_a_reporter_that_prunes_stops_training():
    class Reporter:
        def __init__(self) -> None:
            self.reports: list[tuple[float, int]] = []

        def report(self, value: float, step: int) -> None:
            self.reports.append((value, step))

        def should_prune(self) -> bool:
            return len(self.reports) >= 3

    train, val = blobs()
    model = mlp()
    reporter = Reporter()
    trainer = Trainer(model, torch.optim.Adam(model.parameters(), lr=1e-2), reporter=reporter,
                      config=TrainConfig(epochs=10, monitor="val_accuracy"))
    result = trainer.fit(train, val)
    assert result.pruned and result.stop_reason == "pruned at epoch 3" and result.epochs_run == 3
    assert reporter.reports == [(h["val_accuracy"], h["epoch"]) for h in result.history]

    # the reporter may watch another log key than the monitor (a search metric beside early stopping)
    reporter = Reporter()
    model = mlp()
    result = Trainer(model, torch.optim.Adam(model.parameters(), lr=1e-2), reporter=reporter, report="val_loss",
                     config=TrainConfig(epochs=10, monitor="val_accuracy")).fit(train, val)
    assert reporter.reports == [(h["val_loss"], h["epoch"]) for h in result.history] and result.pruned
    with pytest.raises(ConfigError, match="invalid report: got 'val_f1'"):
        Trainer(model, torch.optim.Adam(model.parameters()), reporter=reporter, report="val_f1").fit(train, val)


def test_lbfgs_trains_through_a_closure():
    train, val = linear_data()
    torch.manual_seed(0)
    model = nn.Linear(5, 2)
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=10)
    result = Trainer(model, opt, task="regression", config=TrainConfig(epochs=3, batch_size=None)).fit(train, val)
    assert result.global_step == 3
    assert result.history[-1]["val_r2"] > 0.99 and result.history[-1]["loss"] < 0.01 * result.history[0]["loss"]


def test_an_optimizer_flagged_needs_closure_gets_one():
    class ClosureSGD(torch.optim.SGD):
        needs_closure = True

        def step(self, closure=None):  # type: ignore[override]
            if closure is None:
                raise RuntimeError("closure required")
            with torch.enable_grad():
                closure()
            return super().step()

    train, _ = blobs()
    model = mlp()
    result = Trainer(model, ClosureSGD(model.parameters(), lr=0.1), config=TrainConfig(epochs=3)).fit(train)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    with pytest.raises(ConfigError, match="needs a closure trains with accumulate=1"):
        Trainer(model, ClosureSGD(model.parameters(), lr=0.1), config=TrainConfig(accumulate=2))


def test_callbacks_receive_hooks_in_order():
    train, val = blobs(n=80)  # 60 training rows: 2 batches of 32
    model = mlp()
    rec = Recorder()
    result = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), callbacks=[rec],
                     config=TrainConfig(epochs=2, batch_size=32)).fit(train, val)
    keys = tuple(result.history[0])
    assert rec.calls == [
        ("fit_start",),
        ("epoch_start", 1), ("batch_end", 1), ("batch_end", 2), ("epoch_end", 1, keys),
        ("epoch_start", 2), ("batch_end", 3), ("batch_end", 4), ("epoch_end", 2, keys),
        ("fit_end", "completed 2 epochs"),
    ]


def test_batch_hooks_are_dispatched_only_to_callbacks_that_override_them():
    train, _ = blobs()
    model = mlp()
    rec = Recorder(batches=False)
    lam = LambdaCallback(on_epoch_end=lambda t, e, logs: None)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), callbacks=[rec, lam, Callback()],
                      config=TrainConfig(epochs=1))
    trainer.fit(train)
    assert trainer._hooks["on_batch_end"] == [] and len(trainer._hooks["on_epoch_end"]) == 2
    assert not any(c[0] == "batch_end" for c in rec.calls)


def test_a_stop_requested_in_a_batch_hook_ends_the_epoch_early():
    train, _ = blobs()
    model = mlp()

    class MaxSteps(Callback):
        def on_batch_end(self, trainer, step, loss):
            if step == 4:
                trainer.request_stop("stopped by callback MaxSteps: reached 4 steps")

    result = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), callbacks=[MaxSteps()],
                     config=TrainConfig(epochs=5)).fit(train)
    assert result.global_step == 4 and result.epochs_run == 1
    assert result.stop_reason == "stopped by callback MaxSteps: reached 4 steps"


def test_keep_best_restores_the_best_epochs_weights():
    train, val = blobs()
    saved = {}

    class Sabotage(Callback):
        """Keep epoch 2's weights, then wreck the model so later epochs are worse."""

        def on_epoch_start(self, trainer, epoch):
            if epoch >= 3:
                with torch.no_grad():
                    for p in trainer.model.parameters():
                        p.add_(5.0 * torch.randn_like(p))

        def on_epoch_end(self, trainer, epoch, logs):
            saved[epoch] = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    for keep_best in (True, False):
        model = mlp()
        result = Trainer(model, torch.optim.Adam(model.parameters(), lr=1e-2), callbacks=[Sabotage()],
                         config=TrainConfig(epochs=4, keep_best=keep_best)).fit(train, val)
        assert result.best_epoch == 2
        same = all(torch.equal(v, saved[2][k]) for k, v in model.state_dict().items())
        assert same is keep_best


def test_same_seed_same_weights_with_dropout_and_shuffling():
    train, _ = blobs()

    def run(seed: int) -> list[torch.Tensor]:
        model = mlp(dropout=0.3)
        Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                config=TrainConfig(epochs=2, seed=seed)).fit(train)
        return params_of(model)

    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


def test_schedule_is_stepped_per_optimizer_step_and_told_the_monitored_metric():
    train, val = blobs()
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = StepDecay(opt, every=6, gamma=0.5)
    result = Trainer(model, opt, schedule=sched, config=TrainConfig(epochs=3)).fit(train, val)
    assert sched.steps == result.global_step == 18
    assert [h["lr"] for h in result.history] == pytest.approx([0.1, 0.05, 0.025])  # lr at each epoch's start
    assert sched.epoch_end_calls == [None, None, None]

    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    plateau = Plateau(opt, monitor="val_accuracy")
    result = Trainer(model, opt, schedule=plateau, config=TrainConfig(epochs=3)).fit(train, val)
    assert plateau.epoch_end_calls == [h["val_accuracy"] for h in result.history]


def test_augment_applies_to_training_batches_only():
    train, val = blobs()
    model = mlp()
    aug = NoiseAugment()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), augment=aug, config=TrainConfig(epochs=2))
    result = trainer.fit(train, val)
    assert aug.calls == result.global_step == 12
    trainer.evaluate(val)
    trainer.predict(val.x)
    assert aug.calls == 12


def test_mixup_style_soft_targets_train_with_cross_entropy():
    def mixup(x, y):
        onehot = nn.functional.one_hot(y, 3).float()  # (N, C)
        return 0.8 * x + 0.2 * x.flip(0), 0.8 * onehot + 0.2 * onehot.flip(0)

    train, val = blobs()
    model = mlp()
    result = Trainer(model, torch.optim.Adam(model.parameters(), lr=1e-2), augment=mixup,
                     config=TrainConfig(epochs=10)).fit(train, val)
    assert result.history[-1]["val_accuracy"] > 0.9


def test_bf16_autocast_on_cpu_trains():
    train, val = blobs()
    model = mlp()
    trainer = Trainer(model, torch.optim.Adam(model.parameters(), lr=1e-2),
                      config=TrainConfig(epochs=8, precision="bf16"))
    result = trainer.fit(train, val)
    assert result.history[-1]["val_accuracy"] > 0.9
    assert trainer.predict(val.x).dtype == torch.float32


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": 0}, "invalid epochs in TrainConfig: got 0; allowed: an integer >= 1"),
        ({"batch_size": 0}, "invalid batch_size in TrainConfig: got 0; allowed: an integer >= 1"),
        ({"precision": "8"}, "invalid precision in TrainConfig: got '8'; allowed: '32', 'bf16', '16'"),
        ({"mode": "up"}, "invalid mode in TrainConfig: got 'up'; allowed: 'auto', 'min', 'max'"),
        ({"device": "gpu0"}, "invalid device in TrainConfig: got 'gpu0'"),
        ({"grad_clip_norm": -1.0}, "invalid grad_clip_norm in TrainConfig: got -1.0"),
        ({"grad_clip_norm": 1.0, "grad_clip_value": 1.0}, "set one of them, not both"),
        ({"accumulate": 0}, "invalid accumulate in TrainConfig: got 0"),
        ({"shuffle": "yes"}, "invalid shuffle in TrainConfig: got 'yes'; allowed: True or False"),
        ({"progress": 1}, "invalid progress in TrainConfig: got 1; allowed: True, False or None"),
        ({"threads": 0}, "invalid threads in TrainConfig: got 0"),
        ({"checkpoint_every": 0}, "invalid checkpoint_every in TrainConfig: got 0"),
        ({"monitor": ""}, "invalid monitor in TrainConfig"),
    ],
)
def test_bad_config_values_raise_config_error(kwargs, message):
    with pytest.raises(ConfigError) as err:
        TrainConfig(**kwargs)
    assert message in str(err.value)


def test_config_normalizes_and_counts_steps():
    assert TrainConfig(precision=16).precision == "16"
    cfg = TrainConfig(batch_size=16, accumulate=3)
    assert cfg.batches_per_epoch(150) == 10 and cfg.steps_per_epoch(150) == 4
    assert TrainConfig(batch_size=None).steps_per_epoch(150) == 1
    assert TrainConfig(batch_size=64, drop_last=True).batches_per_epoch(150) == 2


def test_bad_trainer_arguments_raise_config_error():
    train, val = blobs()
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ConfigError, match="invalid task: got 'ranking'"):
        Trainer(model, opt, task="ranking")
    with pytest.raises(ConfigError, match="invalid reporter"):
        Trainer(model, opt, reporter=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="invalid monitor: got 'val_accuracy'.*need a validation split"):
        Trainer(model, opt, config=TrainConfig(monitor="val_accuracy")).fit(train)
    with pytest.raises(ConfigError, match="invalid monitor: got 'val_acc'; allowed: 'epoch', 'loss'"):
        Trainer(model, opt, config=TrainConfig(monitor="val_acc")).fit(train, val)
    with pytest.raises(ConfigError, match="invalid monitor in EarlyStopping: 'val_f1'"):
        Trainer(model, opt, callbacks=[EarlyStopping("val_f1")]).fit(train, val)
    with pytest.raises(ConfigError, match="invalid train data"):
        Trainer(model, opt).fit(train.x)
    with pytest.raises(ConfigError, match="x has 180 rows and y has 10"):
        Trainer(model, opt).fit((train.x, train.y[:10]))
    with pytest.raises(ConfigError, match="drop_last=True but the training split has only 180 rows"):
        Trainer(model, opt, config=TrainConfig(batch_size=500, drop_last=True)).fit(train)
    with pytest.raises(ConfigError, match="invalid resume"):
        Trainer(model, opt).fit(train, resume=True)


def test_the_per_epoch_finite_check_used_on_accelerators_agrees_with_the_per_step_one():
    train, _ = blobs()
    histories = []
    for each_step in (True, False):
        model = mlp()
        trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), config=TrainConfig(epochs=2))
        trainer._check_each_step = each_step
        histories.append([h["loss"] for h in trainer.fit(train).history])
    assert histories[0] == pytest.approx(histories[1], rel=1e-6)

    calls = {"n": 0}

    def loss(pred, target):
        calls["n"] += 1
        return nn.functional.cross_entropy(pred, target) * (math.inf if calls["n"] == 9 else 1.0)

    model = mlp()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), loss=loss, config=TrainConfig(epochs=2))
    trainer._check_each_step = False
    with pytest.raises(DivergedError, match=r"the loss is inf at epoch 2, step 3 of 6 .*\(global step 9\)") as err:
        trainer.fit(train)
    assert (err.value.epoch, err.value.step, err.value.global_step) == (2, 3, 9)


def test_progress_bar_over_epochs(capsys):
    train, _ = blobs()
    model = mlp()
    Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), config=TrainConfig(epochs=3, progress=True)).fit(train)
    assert "3/3" in capsys.readouterr().err
    Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), config=TrainConfig(epochs=3, progress=False)).fit(train)
    assert capsys.readouterr().err == ""


def test_iter_fit_yields_each_epoch_and_runs_in_lockstep_with_stop():
    import torch as _torch

    from honing.train import TrainConfig as _Cfg
    from honing.train import Trainer as _Trainer

    g = _torch.Generator().manual_seed(0)
    x = _torch.randn(64, 4, generator=g)
    y = (x[:, 0] > 0).long()
    trainers = []
    for seed in (0, 1):
        _torch.manual_seed(seed)
        model = _torch.nn.Linear(4, 2)
        trainers.append(_Trainer(model, _torch.optim.SGD(model.parameters(), lr=0.1), config=_Cfg(epochs=10, seed=seed)))
    runs = [t.iter_fit((x, y), (x, y)) for t in trainers]
    seen = []
    for logs in zip(*runs):
        seen.append([entry["epoch"] for entry in logs])
        if len(seen) == 3:
            for t in trainers:
                t.request_stop("pruned at epoch 3")
    for run in runs:  # let each finish: the stop takes effect at the next epoch boundary
        for _ in run:
            raise AssertionError("no epoch may run after request_stop")
    assert seen == [[1, 1], [2, 2], [3, 3]]
    assert all(t.result is not None and t.result.stop_reason == "pruned at epoch 3" for t in trainers)
    assert all(t.result.epochs_run == 3 for t in trainers)
