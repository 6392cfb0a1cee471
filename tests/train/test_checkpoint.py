from __future__ import annotations

import json
import os

import pytest
import torch
from _train_helpers import InterruptAt, NoiseAugment, Plateau, Recorder, StepDecay, blobs, mlp
from safetensors.torch import load_file

from honing._core import ConfigError, DataError
from honing.train import (
    INDEX_FILE,
    STATE_FILE,
    WEIGHTS_FILE,
    EarlyStopping,
    TrainConfig,
    Trainer,
    has_checkpoint,
    load_checkpoint_weights,
)

TRAIN, VAL = blobs(spread=0.8)  # hard enough that early stopping triggers late


def build(optimizer: str = "adam", *, schedule: str = "step", extra=(), epochs: int = 8, **config):
    """A fresh model/optimizer/schedule/callbacks/augment/Trainer, as a new process would build them."""
    model = mlp(dropout=0.2, seed=3)
    if optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = StepDecay(opt, every=5, gamma=0.8) if schedule == "step" else Plateau(opt, monitor="val_loss")
    callbacks = [Recorder(batches=False), EarlyStopping("val_accuracy", patience=2, min_delta=0.02), *extra]
    cfg = TrainConfig(epochs=epochs, batch_size=32, seed=7, **config)
    trainer = Trainer(model, opt, schedule=sched, callbacks=callbacks, augment=NoiseAugment(0.3, seed=1), config=cfg)
    return trainer


def without_time(history):
    return [{k: v for k, v in h.items() if k != "time"} for h in history]


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize(
    "optimizer, schedule, interrupt_at, every",
    [("adam", "step", 3, 1), ("sgd", "plateau", 5, 1), ("adam", "plateau", 5, 2), ("sgd", "step", 4, 3)],
)
def test_interrupted_and_resumed_training_equals_uninterrupted_bit_for_bit(tmp_path, optimizer, schedule,
                                                                           interrupt_at, every):
    whole = build(optimizer, schedule=schedule, checkpoint_every=every)
    expected = whole.fit(TRAIN, VAL)

    first = build(optimizer, schedule=schedule, extra=[InterruptAt(interrupt_at)], checkpoint_every=every)
    with pytest.raises(KeyboardInterrupt):
        first.fit(TRAIN, VAL, checkpoint_dir=str(tmp_path))
    saved_epoch = json.loads((tmp_path / INDEX_FILE).read_text())["epoch"]
    assert saved_epoch == (interrupt_at - 1) // every * every

    second = build(optimizer, schedule=schedule, checkpoint_every=every)
    result = second.fit(TRAIN, VAL, checkpoint_dir=str(tmp_path), resume=True)

    assert_same_state(second.model.state_dict(), whole.model.state_dict())
    opt_a, opt_b = second.optimizer.state_dict()["state"], whole.optimizer.state_dict()["state"]
    for i in opt_a:
        assert_same_state(opt_a[i], opt_b[i])
    assert without_time(result.history) == without_time(expected.history)
    assert (result.stop_reason, result.global_step, result.best_epoch) == (
        expected.stop_reason, expected.global_step, expected.best_epoch)
    assert result.stop_reason.startswith("early stopping: val_accuracy") and result.epochs_run > interrupt_at
    assert second.schedule.state_dict() == whole.schedule.state_dict()
    assert second.augment.calls == whole.augment.calls
    # callback state carried over: the recorder counts all epochs, not only the resumed ones
    assert second.callbacks[0].epochs_seen == whole.callbacks[0].epochs_seen == result.epochs_run
    assert second.callbacks[1].state_dict() == whole.callbacks[1].state_dict()


def test_checkpoint_files_are_written_atomically_and_load(tmp_path):
    trainer = build(epochs=3)
    result = trainer.fit(TRAIN, VAL, checkpoint_dir=str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == sorted([WEIGHTS_FILE, STATE_FILE, INDEX_FILE])  # no temp files left
    weights = load_file(str(tmp_path / WEIGHTS_FILE))
    assert_same_state(weights, trainer.model.state_dict())
    state = torch.load(tmp_path / STATE_FILE, weights_only=True)
    assert state["epoch"] == 3 and state["global_step"] == result.global_step
    assert json.loads((tmp_path / INDEX_FILE).read_text()) == {
        "format_version": 1, "epoch": 3, "weights": WEIGHTS_FILE, "state": STATE_FILE}
    fresh = mlp(dropout=0.2, seed=99)
    assert_same_state(load_checkpoint_weights(tmp_path, fresh).state_dict(), trainer.model.state_dict())


def test_checkpoint_every_n_epochs_and_at_the_end(tmp_path):
    seen = []

    class Watch(Recorder):
        def on_epoch_start(self, trainer, epoch):
            index = tmp_path / INDEX_FILE
            seen.append(json.loads(index.read_text())["epoch"] if index.exists() else None)

    trainer = build(extra=[Watch(batches=False)], epochs=5, checkpoint_every=2)
    trainer.callbacks[1] = EarlyStopping("val_loss", patience=100)
    trainer.fit(TRAIN, VAL, checkpoint_dir=str(tmp_path))
    assert seen == [None, None, 2, 2, 4]
    assert json.loads((tmp_path / INDEX_FILE).read_text())["epoch"] == 5


def test_a_failed_write_leaves_the_previous_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    trainer = build(epochs=2)
    trainer.fit(TRAIN, VAL, checkpoint_dir=str(tmp_path))
    before = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)}

    def broken_save(obj, path):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        trainer.save_checkpoint(str(tmp_path))
    monkeypatch.undo()
    # the weights were replaced (a newer epoch would differ), the state and index were not
    assert sorted(os.listdir(tmp_path)) == sorted(before)
    assert (tmp_path / STATE_FILE).read_bytes() == before[STATE_FILE]
    assert (tmp_path / INDEX_FILE).read_bytes() == before[INDEX_FILE]


def test_resume_without_a_checkpoint_starts_fresh(tmp_path):
    plain = build(epochs=3)
    expected = plain.fit(TRAIN, VAL)
    resumed = build(epochs=3)
    result = resumed.fit(TRAIN, VAL, checkpoint_dir=str(tmp_path / "new"), resume=True)
    assert without_time(result.history) == without_time(expected.history)
    assert has_checkpoint(tmp_path / "new")


def test_resuming_a_finished_run_trains_no_more(tmp_path):
    first = build(epochs=3)
    expected = first.fit(TRAIN, VAL, checkpoint_dir=str(tmp_path))
    again = build(epochs=3)
    result = again.fit(TRAIN, VAL, checkpoint_dir=str(tmp_path), resume=True)
    assert result.global_step == expected.global_step and result.stop_reason == expected.stop_reason
    assert again.augment.calls == first.augment.calls  # restored, not advanced
    assert_same_state(again.model.state_dict(), first.model.state_dict())


def test_resume_extends_a_completed_run_to_more_epochs(tmp_path):
    build(epochs=2).fit(TRAIN, VAL, checkpoint_dir=str(tmp_path))
    longer = build(epochs=4)
    longer.callbacks[1] = EarlyStopping("val_accuracy", patience=2, min_delta=0.02)
    result = longer.fit(TRAIN, VAL, checkpoint_dir=str(tmp_path), resume=True)
    assert [h["epoch"] for h in result.history][:2] == [1, 2] and result.epochs_run >= 3


def test_keep_best_weights_survive_a_resume(tmp_path):
    whole = build(epochs=5, keep_best=True)
    whole.fit(TRAIN, VAL)
    first = build(epochs=5, keep_best=True, extra=[InterruptAt(4)])
    with pytest.raises(KeyboardInterrupt):
        first.fit(TRAIN, VAL, checkpoint_dir=str(tmp_path))
    second = build(epochs=5, keep_best=True)
    second.fit(TRAIN, VAL, checkpoint_dir=str(tmp_path), resume=True)
    assert_same_state(second.model.state_dict(), whole.model.state_dict())


def test_inconsistent_or_mismatched_checkpoints_are_refused(tmp_path):
    build(epochs=2).fit(TRAIN, VAL, checkpoint_dir=str(tmp_path))
    index = json.loads((tmp_path / INDEX_FILE).read_text())
    (tmp_path / INDEX_FILE).write_text(json.dumps({**index, "epoch": 1}))
    with pytest.raises(DataError, match="inconsistent"):
        build(epochs=3).fit(TRAIN, VAL, checkpoint_dir=str(tmp_path), resume=True)
    (tmp_path / INDEX_FILE).write_text(json.dumps(index))

    no_recorder = build(epochs=3)
    no_recorder.callbacks = no_recorder.callbacks[1:]
    with pytest.raises(ConfigError, match="holds state for Recorder, which this trainer lacks"):
        no_recorder.fit(TRAIN, VAL, checkpoint_dir=str(tmp_path), resume=True)
    with pytest.raises(DataError, match="no weights at"):
        load_checkpoint_weights(tmp_path / "missing", mlp())


def test_trainer_state_dict_round_trips_and_continues_identically():
    """Trainer.state_dict / load_state_dict: the public form of what a checkpoint holds besides
    the weights; a second trainer given the state and the weights continues as the first would."""
    first = build(epochs=4)
    first.fit(TRAIN, VAL)
    state = {**first.state_dict(), "epoch": first.epoch}
    assert state["global_step"] == first.global_step and len(state["history"]) == 4
    second = build(epochs=4)
    second.model.load_state_dict(first.model.state_dict())
    second.load_state_dict(state)
    assert second.global_step == first.global_step and second.best_epoch == first.best_epoch
    assert without_time(second.history) == without_time(first.history)
    with pytest.raises(ConfigError, match="invalid callbacks for resuming"):  # states of other callbacks
        build(epochs=4, extra=()).load_state_dict({**state, "callbacks": [{"name": "Ghost", "state": {"n": 1}}]})
