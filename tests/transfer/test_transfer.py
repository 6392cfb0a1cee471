"""Strategies on a tiny backbone: what is frozen stays bit-identical, batch-norm statistics of
frozen blocks stay put, layer-wise lr decay, gradual unfreezing on schedule, and errors."""

from __future__ import annotations

import pytest
import torch
from _transfer_helpers import fit, snapshot, tiny_backbone, toy_classes
from torch import nn

from honing import transfer
from honing._core import ConfigError, DataError
from honing.optim import create_optimizer
from honing.train import Callback


def _block_state(model: transfer.TransferModel, i: int) -> dict[str, torch.Tensor]:
    return {k: v for k, v in snapshot(model.backbone.module).items() if k.startswith(f"{i}.")}


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


def test_probe_trains_only_the_head_and_runs_the_backbone_without_grad():
    model, callbacks = transfer.create(tiny_backbone(), 3, feature_dim=8, strategy="probe")
    assert callbacks == []
    modes: list[tuple[bool, bool]] = []  # (grad enabled, batch norm training) in each forward
    model.backbone.register_forward_hook(
        lambda m, i, o: modes.append((torch.is_grad_enabled(), m.module[0][1].training)))
    backbone, head = snapshot(model.backbone), snapshot(model.head)

    trainer = fit(model, toy_classes())

    assert _changed(backbone, snapshot(model.backbone)) == set()  # weights and BN statistics
    assert _changed(head, snapshot(model.head)) == set(head)
    names = {n for g in trainer.optimizer.param_groups for n in g["param_names"]}
    assert names == {"head.0.weight", "head.0.bias"}
    assert len(modes) == 6 and set(modes) == {(False, False)}  # 3 batches x 2 epochs
    model.train()
    x = toy_classes()[0][:4]
    assert model.embed(x).grad_fn is None and model(x).grad_fn is not None


def test_freeze_keeps_first_blocks_and_their_batch_norm_statistics():
    model, _ = transfer.create(tiny_backbone(), 3, feature_dim=8, strategy="freeze", freeze_blocks=2)
    assert [p.requires_grad for p in model.backbone.module.parameters()] == [False] * 8 + [True] * 2
    before = snapshot(model)

    fit(model, toy_classes())

    after = snapshot(model)
    changed = _changed(before, after)
    assert not any(k.startswith(("backbone.module.0.", "backbone.module.1.")) for k in changed)
    assert {"backbone.module.2.0.weight", "backbone.module.2.0.bias", "head.0.weight", "head.0.bias"} <= changed
    assert model.backbone.module[0][1].training is False and model.backbone.module[2].training is True


def test_full_moves_every_block_and_batch_norm_statistics():
    """The control for the frozen cases: the same run with nothing frozen moves everything."""
    model, _ = transfer.create(tiny_backbone(), 3, feature_dim=8, strategy="full")
    before = snapshot(model)
    fit(model, toy_classes())
    changed = _changed(before, snapshot(model))
    assert changed == set(before)  # running_mean/var and num_batches_tracked too


def test_layer_decay_gives_each_block_its_rate():
    model, _ = transfer.create(tiny_backbone(), 3, feature_dim=8, strategy="full", hidden=[5])
    layers = len(model.layer_groups())
    assert layers == 4 and model.layer_groups()[-1] == ["head"]
    opt = create_optimizer(model, "adamw", lr=1e-2, weight_decay=0.1, layer_decay=0.5)
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert len(lr_of) == sum(1 for _ in model.parameters())
    for g in opt.param_groups:
        assert g["lr"] == pytest.approx(1e-2 * 0.5 ** (layers - 1 - g["layer"]), rel=1e-12)
    for i in range(model.num_blocks):
        params = model.block_parameters(i)
        assert len(params) in (2, 4)
        assert [lr_of[id(p)] for p in params] == pytest.approx([1e-2 * 0.5 ** (layers - 1 - i)] * len(params),
                                                               rel=1e-12)
    assert {lr_of[id(p)] for p in model.head.parameters()} == {1e-2}


class _Recorder(Callback):
    """Per epoch: which blocks train at its start, and the backbone's state at its end."""

    def __init__(self) -> None:
        self.trainable: list[list[bool]] = []
        self.states: list[dict[str, torch.Tensor]] = []

    def on_epoch_start(self, trainer, epoch):
        model = trainer.model
        flags = [{p.requires_grad for p in model.block_parameters(i)} for i in range(model.num_blocks)]
        assert all(len(f) == 1 for f in flags)  # a block is frozen or trained as a whole
        self.trainable.append([f.pop() for f in flags])

    def on_epoch_end(self, trainer, epoch, logs):
        self.states.append(snapshot(trainer.model.backbone.module))


def test_gradual_unfreezing_follows_its_schedule():
    model, callbacks = transfer.create(tiny_backbone(), 3, feature_dim=8, strategy="gradual", unfreeze=2)
    assert [type(c) for c in callbacks] == [transfer.GradualUnfreezing] and callbacks[0].every == 2
    assert all(p.requires_grad for p in model.parameters())  # so the optimizer holds them all
    start = snapshot(model.backbone.module)
    recorder = _Recorder()

    trainer = fit(model, toy_classes(), callbacks=[*callbacks, recorder], epochs=6)

    assert sum(len(g["params"]) for g in trainer.optimizer.param_groups) == sum(1 for _ in model.parameters())
    assert callbacks[0].unfrozen == [0, 0, 1, 1, 2, 2]
    assert recorder.trainable == [[False, False, False]] * 2 + [[False, False, True]] * 2 + [[False, True, True]] * 2
    states = [start, *recorder.states]  # states[e]: at the end of epoch e

    def block(e: int, i: int) -> dict[str, torch.Tensor]:
        return {k: v for k, v in states[e].items() if k.startswith(f"{i}.")}

    assert _changed(block(0, 0), block(6, 0)) == set()  # never unfrozen: weights and BN statistics
    assert _changed(block(0, 1), block(4, 1)) == set()  # frozen in epochs 1-4
    assert _changed(block(4, 1), block(5, 1)) == set(block(0, 1))  # trains (and its BN moves) in 5
    assert _changed(block(0, 2), block(2, 2)) == set()
    assert _changed(block(2, 2), block(3, 2)) == set(block(0, 2))


def test_gradual_unfreezing_state_depends_on_the_epoch_alone():
    model, (cb,) = transfer.create(tiny_backbone(), 3, feature_dim=8, strategy="gradual", unfreeze=1)

    class _T:
        pass

    t = _T()
    t.model = model
    cb.on_epoch_start(t, 9)  # more epochs than blocks: everything trains
    assert all(p.requires_grad for p in model.parameters())
    cb.on_epoch_start(t, 2)
    assert [p.requires_grad for p in model.backbone.module.parameters()] == [False] * 8 + [True] * 2
    t.model = nn.Linear(2, 2)
    with pytest.raises(ConfigError, match="GradualUnfreezing needs a TransferModel"):
        cb.on_epoch_start(t, 1)


def test_freeze_with_parameter_prefixes_in_blocks():
    """A block may name a parameter (a honing transformer's pos_embed), not only modules."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(6))
            self.fc1 = nn.Linear(6, 8)
            self.drop = nn.Dropout(0.5)
            self.fc2 = nn.Linear(8, 8)

        def forward(self, x):
            return self.fc2(self.drop(self.fc1(x * self.scale)))

    bb = transfer.Backbone(Net(), feature_dim=8, blocks=[["scale", "fc1", "drop"], ["fc2"]])
    model, _ = transfer.create(bb, 3, strategy="freeze", freeze_blocks=1)
    model.train()
    assert not bb.module.scale.requires_grad and bb.module.fc2.weight.requires_grad
    assert bb.module.drop.training is False and bb.module.fc2.training is True


def test_a_module_holding_its_own_parameters_is_one_block():
    lin = nn.Linear(4, 4)
    model, _ = transfer.create(lin, 2, feature_dim=4, strategy="probe")
    assert model.backbone.blocks == [["weight", "bias"]]
    assert not lin.weight.requires_grad and model.trainable_parameters() == 4 * 2 + 2


# ---------------------------------------------------------------------------------- errors

def test_unknown_source_lists_the_allowed_forms():
    with pytest.raises(ConfigError, match="invalid transfer.from: got 'resnet50'") as err:
        transfer.load_backbone("resnet50")
    for form in transfer.SOURCE_FORMS:
        assert form in str(err.value)
    with pytest.raises(ConfigError, match="backbone options"):
        transfer.load_backbone("minilm", feature_dim=3)


def test_module_without_feature_dim():
    with pytest.raises(ConfigError, match="pass feature_dim="):
        transfer.create(tiny_backbone(), 3)
    with pytest.raises(ConfigError, match="invalid feature_dim: got 0"):
        transfer.Backbone(tiny_backbone(), feature_dim=0)
    with pytest.raises(ConfigError, match="no block holds a parameter"):
        transfer.Backbone(nn.ReLU(), feature_dim=3)


def test_freeze_blocks_out_of_range_names_the_block_count():
    with pytest.raises(ConfigError, match=r"got 4; allowed: 0\.\.3 \(this backbone has 3 blocks\)"):
        transfer.create(tiny_backbone(), 3, feature_dim=8, strategy="freeze", freeze_blocks=4)
    with pytest.raises(ConfigError, match="strategy 'freeze' needs freeze_blocks"):
        transfer.create(tiny_backbone(), 3, feature_dim=8, strategy="freeze")


def test_strategy_typo():
    with pytest.raises(ConfigError, match="invalid strategy: got 'prob'; allowed: probe, full, freeze"):
        transfer.create(tiny_backbone(), 3, feature_dim=8, strategy="prob")


def test_missing_folders_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="not a honing model folder"):
        transfer.load_backbone(f"honing:{tmp_path}")
    with pytest.raises(DataError, match="not a Hugging Face model folder"):
        transfer.load_backbone("hf:/nonexistent")
