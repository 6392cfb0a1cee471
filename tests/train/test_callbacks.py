from __future__ import annotations

import math

import pytest
import torch

from honing._core import ConfigError
from honing.train import Callback, EarlyStopping, LambdaCallback, StoppingState, stopping_decision
from honing.train._callbacks import overrides


def run(es: EarlyStopping, values: list[float]) -> tuple[int | None, str]:
    """Feed values for epochs 1, 2, ...; the epoch it stops at and the reason."""
    for epoch, v in enumerate(values, start=1):
        stop, reason = es.check(v, epoch)
        if stop:
            return epoch, reason
    return None, ""


def test_min_mode_stops_after_patience_epochs_without_improvement():
    es = EarlyStopping("val_loss", mode="min", patience=3)
    epoch, reason = run(es, [1.0, 0.8, 0.9, 0.85, 0.81, 0.7])
    assert epoch == 5
    assert reason == "early stopping: val_loss did not improve for 3 epochs (best 0.8 at epoch 2)"


def test_an_improvement_resets_the_wait():
    es = EarlyStopping("val_loss", mode="min", patience=2)
    assert run(es, [1.0, 1.1, 0.9, 1.0, 0.95, 0.5])[0] == 5
    assert es.state.best == 0.9 and es.state.best_epoch == 3


def test_max_mode_with_min_delta_and_the_reason_text():
    es = EarlyStopping("val_accuracy", mode="max", patience=5, min_delta=0.001)
    values = [0.5, 0.9, 0.95, 0.97, 0.9700, 0.9712, 0.9715, 0.9720, 0.9719, 0.9721, 0.9718]
    epoch, reason = run(es, values)
    # 0.9712 improves on 0.97 by more than 0.001; later gains stay within 0.001 of it
    assert epoch == 11
    assert reason == (
        "early stopping: val_accuracy did not improve by more than 0.001 for 5 epochs (best 0.9712 at epoch 6)"
    )


def test_auto_mode_follows_the_metric_name():
    assert EarlyStopping("val_accuracy").mode == "max"
    assert EarlyStopping("val_loss").mode == "min"
    assert EarlyStopping("val_r2", mode="auto").mode == "max"


def test_non_finite_values_stop_at_once_when_checked():
    es = EarlyStopping("val_loss", patience=10)
    epoch, reason = run(es, [1.0, math.nan])
    assert epoch == 2 and reason == "early stopping: val_loss is nan at epoch 2 (best 1 at epoch 1)"
    lenient = EarlyStopping("val_loss", patience=2, check_finite=False)
    assert run(lenient, [1.0, math.nan, math.nan])[0] == 3


def test_stopping_decision_is_pure():
    state = StoppingState(best=1.0, best_epoch=1, wait=0)
    kw = dict(monitor="loss", mode="min", patience=1, min_delta=0.0, check_finite=True)
    new, stop, reason = stopping_decision(state, 2.0, 2, **kw)
    assert (new, stop) == (StoppingState(1.0, 1, 1), True) and "did not improve for 1 epoch (best 1 at epoch 1)" in reason
    assert state == StoppingState(1.0, 1, 0)  # the input is unchanged
    new, stop, reason = stopping_decision(state, 0.5, 2, **kw)
    assert (new, stop, reason) == (StoppingState(0.5, 2, 0), False, "")


def test_state_dict_round_trip_continues_the_same_decisions():
    values = [1.0, 0.9, 0.95, 0.96, 0.97, 0.98]
    whole = EarlyStopping("val_loss", patience=3)
    expected = run(whole, values)
    first = EarlyStopping("val_loss", patience=3)
    run(first, values[:3])
    second = EarlyStopping("val_loss", patience=3)
    second.load_state_dict(first.state_dict())
    for epoch, v in enumerate(values[3:], start=4):
        stop, reason = second.check(v, epoch)
        if stop:
            break
    assert (epoch, reason) == expected


class FakeTrainer:
    def __init__(self, log_keys=None):
        self.log_keys = log_keys
        self.reasons: list[str] = []

    def request_stop(self, reason: str) -> None:
        self.reasons.append(reason)


def test_missing_monitor_key_lists_the_available_keys():
    es = EarlyStopping("val_acc")
    with pytest.raises(ConfigError, match=r"'val_acc' is not among the epoch logs; available: 'loss', 'val_loss'"):
        es.on_epoch_end(FakeTrainer(), 1, {"loss": 1.0, "val_loss": 1.0})
    with pytest.raises(ConfigError, match="available: 'epoch', 'loss'"):
        es.on_fit_start(FakeTrainer(("epoch", "loss")))


def test_on_epoch_end_requests_a_stop_with_the_reason():
    trainer = FakeTrainer()
    es = EarlyStopping("loss", patience=1)
    es.on_epoch_end(trainer, 1, {"loss": 1.0})
    es.on_epoch_end(trainer, 2, {"loss": 2.0})
    assert trainer.reasons == ["early stopping: loss did not improve for 1 epoch (best 1 at epoch 1)"]


def test_bad_arguments_raise_config_error():
    with pytest.raises(ConfigError, match="invalid patience in EarlyStopping: got 0"):
        EarlyStopping(patience=0)
    with pytest.raises(ConfigError, match="invalid mode in EarlyStopping: got 'up'"):
        EarlyStopping(mode="up")
    with pytest.raises(ConfigError, match="invalid min_delta"):
        EarlyStopping(min_delta=-1)
    with pytest.raises(ConfigError, match="invalid LambdaCallback hook"):
        LambdaCallback(on_step=print)


def test_overrides_sees_subclass_methods_and_lambda_hooks():
    class Batches(Callback):
        def on_batch_end(self, trainer, step, loss):
            pass

    assert overrides(Batches(), "on_batch_end") and not overrides(Batches(), "on_epoch_end")
    assert not overrides(Callback(), "on_batch_end")
    lam = LambdaCallback(on_epoch_end=lambda t, e, logs: None)
    assert overrides(lam, "on_epoch_end") and not overrides(lam, "on_batch_end")
    assert Callback().state_dict() == {} and Callback().on_batch_end(None, 0, torch.zeros(())) is None  # type: ignore[arg-type]


def test_on_batch_start_may_replace_the_batch_with_the_model_at_hand():
    """A callback sees each training batch before the forward pass, with the model, and may
    return another batch (here: labels flipped, so the model learns the opposite)."""
    import torch

    from honing.train import Callback, TrainConfig, Trainer

    torch.manual_seed(0)
    x = torch.randn(256, 4)
    y = (x[:, 0] > 0).long()

    class Flip(Callback):
        def __init__(self) -> None:
            self.calls, self.saw_model = 0, False

        def on_batch_start(self, trainer, xb, yb):
            self.calls += 1
            self.saw_model = self.saw_model or trainer.model.training
            return xb, 1 - yb

    def trained(callbacks):
        model = torch.nn.Linear(4, 2)
        trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.5), callbacks=callbacks,
                          config=TrainConfig(epochs=5, batch_size=32, seed=0, progress=False))
        trainer.fit((x, y))
        return (model(x).argmax(1) == y).float().mean().item()

    flip = Flip()
    assert trained([]) > 0.9 and trained([flip]) < 0.1
    assert flip.calls == 5 * 8 and flip.saw_model
