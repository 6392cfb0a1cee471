"""Transfer from a honing model folder, and continual fine-tuning: EWC, replay, the old head."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _transfer_helpers import fit, snapshot
from torch import nn

from honing import transfer
from honing._core import ConfigError


def _honed_model(folder, num_outputs: int = 2) -> transfer.TransferModel:
    return transfer.TransferModel(transfer.load_backbone(f"honing:{folder.path}"), num_outputs)


def test_honed_backbone_drops_the_output_layer_and_keeps_it_as_old_head(honed_folder):
    bb = transfer.load_backbone(f"honing:{honed_folder.path}")
    assert isinstance(bb, transfer.HonedBackbone) and bb.spec == {"from": f"honing:{honed_folder.path}"}
    assert bb.feature_dim == 8 and bb.blocks == [["blocks.0"]]
    assert isinstance(bb.module.head, nn.Identity)
    assert not any(isinstance(m, nn.Linear) and m.out_features == 3 for m in bb.module.modules())
    assert bb.old_head.out_features == 3 and not any(p.requires_grad for p in bb.old_head.parameters())
    torch.testing.assert_close(bb.old_head.weight, honed_folder.model.head.weight, atol=0, rtol=0)
    # a run folder holding model/ works too
    assert transfer.load_backbone(f"honing:{honed_folder.path.parent}").feature_dim == 8


def test_old_head_on_the_untouched_backbone_reproduces_the_source_model(honed_folder):
    model = _honed_model(honed_folder)
    x, y = honed_folder.x, honed_folder.y
    model.eval()
    with torch.no_grad():
        expected = honed_folder.model(x)
        assert torch.equal(model.old_task(x), expected)
    accuracy = (expected.argmax(1) == y).float().mean().item()
    model.train()
    assert transfer.old_task_accuracy(model, x, y) == accuracy > 0.5
    assert model.training  # old_task_accuracy restores the mode


def test_fine_tuning_keeps_the_old_head_frozen_and_scores_forgetting(honed_folder):
    model, _ = transfer.create(f"honing:{honed_folder.path}", 2, strategy="full")
    old_head = snapshot(model.backbone.old_head)
    x = honed_folder.x
    new_y = (x[:, 0] > 0).long()  # a new task on the same inputs
    before = transfer.old_task_accuracy(model, x, honed_folder.y)

    trainer = fit(model, (x, new_y), epochs=3, lr=5e-2)

    names = {n for g in trainer.optimizer.param_groups for n in g["param_names"]}
    assert not any("old_head" in n for n in names) and "backbone.module.blocks.0.linear.weight" in names
    assert all(torch.equal(v, model.backbone.old_head.state_dict()[k]) for k, v in old_head.items())
    after = transfer.old_task_accuracy(model, x, honed_folder.y)
    with torch.no_grad():
        model.eval()
        by_hand = (model.backbone.old_head(model.backbone(x)).argmax(1) == honed_folder.y).float().mean().item()
    assert after == by_hand
    assert transfer.forgetting(before, after) == {"before": round(before, 6), "after": round(after, 6),
                                                 "forgetting": round(before - after, 6)}


def test_old_task_needs_a_honed_backbone():
    model, _ = transfer.create(nn.Sequential(nn.Linear(3, 4)), 2, feature_dim=4)
    with pytest.raises(ConfigError, match="no old task"):
        model.old_task(torch.zeros(1, 3))


# --------------------------------------------------------------------------------------- EWC

def _fisher_by_hand(model, x, y) -> dict[str, torch.Tensor]:
    params = dict(model.backbone.module.named_parameters())
    loss = F.cross_entropy(model.backbone.old_head(model.backbone(x)), y)
    grads = torch.autograd.grad(loss, list(params.values()))
    return {n: g ** 2 * len(y) for n, g in zip(params, grads)}


def test_ewc_penalty_is_the_fisher_weighted_distance(honed_folder):
    model = _honed_model(honed_folder)
    x, y = honed_folder.x[:40], honed_folder.y[:40]
    ewc = transfer.EWC(model, x, y, batch_size=40, max_rows=None)
    model.eval()
    fisher = _fisher_by_hand(model, x, y)
    assert set(ewc.fisher) == set(fisher) == {"blocks.0.linear.weight", "blocks.0.linear.bias"}
    for n in fisher:
        torch.testing.assert_close(ewc.fisher[n], fisher[n])
    assert all(p.grad is None for p in model.parameters())
    assert ewc.penalty(model).item() == 0.0  # at the anchor

    g = torch.Generator().manual_seed(0)
    deltas = {n: 0.1 * torch.randn(p.shape, generator=g) for n, p in model.backbone.module.named_parameters()}
    with torch.no_grad():
        for n, p in model.backbone.module.named_parameters():
            p.add_(deltas[n])
    expected = sum((fisher[n] * deltas[n] ** 2).sum() for n in fisher)
    penalty = ewc.penalty(model)
    assert penalty.item() > 0
    torch.testing.assert_close(penalty, expected)
    penalty.backward()  # differentiable: d/dp = 2 F (p - p*)
    w = model.backbone.module.blocks[0].linear.weight
    torch.testing.assert_close(w.grad, 2 * fisher["blocks.0.linear.weight"] * deltas["blocks.0.linear.weight"])


def test_ewc_fisher_averages_batches(honed_folder):
    model = _honed_model(honed_folder)
    x, y = honed_folder.x[:30], honed_folder.y[:30]
    ewc = transfer.EWC(model, x, y, batch_size=10, max_rows=None)
    model.eval()
    parts = [_fisher_by_hand(model, x[i:i + 10], y[i:i + 10]) for i in (0, 10, 20)]
    for n, f in ewc.fisher.items():
        torch.testing.assert_close(f, sum(p[n] for p in parts) / 3)


def test_continual_loss_adds_terms_only_while_training(honed_folder):
    model = _honed_model(honed_folder)
    x, y = honed_folder.x, honed_folder.y
    ewc = transfer.EWC(model, x, y, max_rows=None)
    replay, twin = (transfer.Replay(x, y, size=20, batch_size=8, seed=4) for _ in range(2))
    loss = transfer.ContinualLoss(F.cross_entropy, model, ewc=ewc, ewc_lambda=3.0, replay=replay, replay_weight=0.5)
    with torch.no_grad():
        model.backbone.module.blocks[0].linear.weight.add_(0.05)
    pred, target = torch.randn(4, 2), torch.tensor([0, 1, 1, 0])
    base = F.cross_entropy(pred, target)

    model.train()
    expected = base + 1.5 * ewc.penalty(model) + 0.5 * twin.loss(model)
    assert expected.item() > base.item()
    torch.testing.assert_close(loss(pred, target), expected)
    with torch.no_grad():  # evaluation in train mode: no extra terms either
        assert torch.equal(loss(pred, target), base)
    model.eval()
    assert torch.equal(loss(pred, target), base)
    with pytest.raises(ConfigError, match="invalid weights"):
        transfer.ContinualLoss(F.cross_entropy, model, ewc_lambda=-1.0)


class _Recording(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def old_task(self, x):
        self.seen.append(x)
        return torch.zeros(len(x), 3, requires_grad=True)


def test_replay_draws_from_its_stored_examples():
    x = torch.arange(100, dtype=torch.float32).unsqueeze(1).repeat(1, 4)  # row i is all i
    y = torch.arange(100) % 3
    replay = transfer.Replay(x, y, size=10, batch_size=4, seed=1)
    assert replay.x.shape == (10, 4) and torch.equal(replay.y, y[replay.x[:, 0].long()])
    stored = set(replay.x[:, 0].tolist())
    model = _Recording()
    for _ in range(20):
        replay.loss(model)
    drawn = torch.cat(model.seen)
    assert drawn.shape == (80, 4) and set(drawn[:, 0].tolist()) <= stored
    assert len(set(drawn[:, 0].tolist())) > 4  # batches differ
    again = transfer.Replay(x, y, size=10, batch_size=4, seed=1)
    assert torch.equal(again.x, replay.x)
    with pytest.raises(ConfigError, match="invalid replay: got 0"):
        transfer.Replay(x, y, size=0)
