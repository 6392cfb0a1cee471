"""Pruning: magnitude (masks, cumulative targets), schedules, structured (smaller layers), ADMM."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from honing._core import ConfigError
from honing.compress._prune import (
    admm_prune,
    has_masks,
    iterative_prune,
    keep_sparsity,
    magnitude_prune,
    make_permanent,
    prune_schedule,
    sparsity_report,
    total_sparsity,
)
from honing.compress._structured import layer_widths, rebuild_like, structured_prune, width_changes
from honing.models import create_model



def _mlp(**kw):
    kw.setdefault("hidden", [64, 32])
    return create_model("mlp", input_shape=(10,), num_outputs=3, seed=0, **kw)


def _cnn(**kw):
    kw.setdefault("channels", [8, 16])
    return create_model("cnn", input_shape=(3, 8, 8), num_outputs=3, seed=0, **kw)


def _weights(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def _effective(module):
    if hasattr(module, "weight_mask"):
        return module.weight_orig.detach() * module.weight_mask
    return module.weight.detach()


def _n_params(model):
    return sum(p.numel() for p in model.parameters())


# -- magnitude pruning ---------------------------------------------------------------------------
def test_layer_scope_hits_the_sparsity_in_every_layer_and_removes_the_smallest():
    model = _cnn()
    before = {n: m.weight.detach().clone() for n, m in _weights(model)}
    magnitude_prune(model, 0.7, scope="layer")
    assert has_masks(model)
    for name, module in _weights(model):
        w = _effective(module)
        assert abs(float((w == 0).float().mean()) - 0.7) <= 1 / w.numel(), name
        orig, mask = before[name].abs(), module.weight_mask.bool()
        assert orig[~mask].max() <= orig[mask].min()  # the smallest magnitudes went
        assert torch.equal(w[mask], before[name][mask])  # the rest is untouched
    assert all(not hasattr(m, "bias_mask") for _, m in _weights(model))  # biases untouched


def test_global_scope_hits_the_sparsity_over_all_chosen_weights_with_one_threshold():
    model = _mlp()
    before = {n: m.weight.detach().abs().clone() for n, m in _weights(model)}
    magnitude_prune(model, 0.6, scope="global")
    report = sparsity_report(model)
    numel = sum(r["parameters"] for r in report)
    assert abs(total_sparsity(report) - 0.6) <= 1 / numel
    assert len({round(r["sparsity"], 3) for r in report}) > 1  # layers end at different sparsities
    pruned = torch.cat([before[n][~m.weight_mask.bool()] for n, m in _weights(model)])
    kept = torch.cat([before[n][m.weight_mask.bool()] for n, m in _weights(model)])
    assert pruned.max() <= kept.min()


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_sparsity_is_a_cumulative_target(scope):
    model = _mlp()
    magnitude_prune(model, 0.5, scope=scope)
    first = {n: m.weight_mask.clone() for n, m in _weights(model)}
    magnitude_prune(model, 0.8, scope=scope)
    report = sparsity_report(model)
    total = {"sparsity": total_sparsity(report), "parameters": sum(r["parameters"] for r in report)}
    rows = report if scope == "layer" else [total]
    for row in rows:
        assert abs(row["sparsity"] - 0.8) <= 1 / row["parameters"]
    for name, module in _weights(model):  # what was pruned stays pruned
        assert not (module.weight_mask.bool() & ~first[name].bool()).any()
    magnitude_prune(model, 0.3, scope=scope)  # below the current sparsity: masks unchanged
    assert abs(total_sparsity(sparsity_report(model)) - 0.8) < 0.01


def test_masks_keep_zeros_through_training_and_make_permanent_folds_them_in():
    model = _mlp()
    magnitude_prune(model, 0.75, scope="global")
    zero = {n: _effective(m) == 0 for n, m in _weights(model)}
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    x, y = torch.randn(32, 10), torch.randint(0, 3, (32,))
    for _ in range(5):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    for name, module in _weights(model):
        w = _effective(module)
        assert (w[zero[name]] == 0).all() and (w[~zero[name]] != 0).all()
    make_permanent(model)
    assert not has_masks(model)
    keys = set(model.state_dict())
    assert not any(k.endswith(("_orig", "_mask")) for k in keys) and "head.weight" in keys
    for name, module in _weights(model):
        assert isinstance(module.weight, nn.Parameter) and torch.equal(module.weight == 0, zero[name])


def test_sparsity_report_matches_a_hand_count():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(12, 2))
    with torch.no_grad():
        model[0].weight[0, 0] = 0.0  # 9 zeros of 54
        model[0].bias.zero_()  # biases are not counted
        model[2].weight[1, :4] = 0.0  # 4 zeros of 24
    report = sparsity_report(model)
    assert report == [
        {"layer": "0", "type": "Conv2d", "shape": [3, 2, 3, 3], "parameters": 54, "zeros": 9, "sparsity": 9 / 54},
        {"layer": "2", "type": "Linear", "shape": [2, 12], "parameters": 24, "zeros": 4, "sparsity": 4 / 24},
    ]
    assert total_sparsity(report) == pytest.approx(13 / 78)
    # with masks, after an optimizer step (module.weight is stale until the next forward)
    magnitude_prune(model, 0.5, scope="layer")
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    model(torch.randn(4, 2, 4, 4)).sum().backward()
    opt.step()
    assert [r["zeros"] for r in sparsity_report(model)] == [27, 12]


def test_keep_sparsity_masks_existing_zeros_only_where_there_are_some():
    model = _mlp()
    with torch.no_grad():
        model.blocks[0].linear.weight[:5] = 0.0
    keep_sparsity(model)
    assert hasattr(model.blocks[0].linear, "weight_mask") and not hasattr(model.head, "weight_mask")
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(8, 10)).pow(2).sum().backward()
    opt.step()
    assert (_effective(model.blocks[0].linear)[:5] == 0).all()


def test_layers_option_limits_which_layers_are_pruned():
    model = _cnn(head_hidden=12)
    magnitude_prune(model, 0.5, layers=("conv",))
    assert all(hasattr(b.conv, "weight_mask") for b in model.blocks)
    assert not hasattr(model.head.out, "weight_mask") and not hasattr(model.head.hidden, "weight_mask")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sparsity": 1.5}, r"invalid sparsity: got 1.5; allowed: a fraction in \[0, 1\)"),
        ({"sparsity": -0.1}, r"invalid sparsity: got -0.1"),
        ({"sparsity": 1.0}, r"invalid sparsity: got 1.0"),
        ({"sparsity": 0.5, "scope": "model"}, r"invalid scope: got 'model'; allowed: 'layer', 'global'"),
        ({"sparsity": 0.5, "layers": ("lstm",)}, r"invalid layers: got 'lstm'; allowed: 'linear', 'conv'"),
    ],
)
def test_magnitude_prune_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        magnitude_prune(_mlp(), **kwargs)


def test_magnitude_prune_needs_a_prunable_layer():
    with pytest.raises(ConfigError, match="no prunable layer"):
        magnitude_prune(nn.Sequential(nn.ReLU()), 0.5)
    with pytest.raises(ConfigError, match="no prunable layer"):
        magnitude_prune(_mlp(), 0.5, layers=("conv",))


# -- schedules and iterative pruning -----------------------------------------------------------
def test_prune_schedule_cubic_and_linear():
    cubic = prune_schedule(0.9, 4)
    assert cubic[-1] == 0.9 and all(a < b for a, b in zip(cubic, cubic[1:]))
    assert cubic[0] == pytest.approx(0.9 * (1 - 0.75**3))
    steps = [b - a for a, b in zip([0.0, *cubic], cubic)]
    assert all(a > b for a, b in zip(steps, steps[1:]))  # big rounds first
    assert prune_schedule(0.8, 4, kind="linear") == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert prune_schedule(0.8, 2, start=0.4, kind="linear") == pytest.approx([0.6, 0.8])
    assert prune_schedule(0.5, 1) == [0.5]
    for bad, match in [
        ({"target": 1.0, "steps": 3}, "invalid target"),
        ({"target": 0.5, "steps": 0}, "invalid steps"),
        ({"target": 0.5, "steps": 3, "start": 0.6}, "invalid start"),
        ({"target": 0.5, "steps": 3, "kind": "exp"}, "invalid kind"),
    ]:
        with pytest.raises(ConfigError, match=match):
            prune_schedule(**bad)


def test_iterative_magnitude_pruning_follows_the_schedule_and_fine_tunes_each_round():
    model = _mlp()
    x, y = torch.randn(64, 10), torch.randint(0, 3, (64,))
    seen = []

    def finetune(m):
        seen.append(total_sparsity(sparsity_report(m)))
        opt = torch.optim.SGD(m.parameters(), lr=0.05)
        for _ in range(3):
            opt.zero_grad()
            nn.functional.cross_entropy(m(x), y).backward()
            opt.step()

    out = iterative_prune(model, target=0.9, steps=3, finetune=finetune)
    assert out is model and len(seen) == 3
    assert seen == pytest.approx(prune_schedule(0.9, 3), abs=1e-3)
    assert total_sparsity(sparsity_report(model)) == pytest.approx(0.9, abs=1e-3)


def test_iterative_structured_pruning_removes_a_fraction_of_the_original_widths():
    model = _mlp(batch_norm=True)
    widths = []
    out = iterative_prune(
        model, target=0.5, steps=2, kind="linear", method="structured", example_inputs=torch.randn(4, 10),
        finetune=lambda m: widths.append([b.linear.out_features for b in m.blocks]),
    )
    assert out is model and widths == [[48, 24], [32, 16]]
    with pytest.raises(ConfigError, match="invalid argument 'layers' for method 'structured'"):
        iterative_prune(_mlp(), target=0.5, steps=2, method="structured", finetune=print,
                        example_inputs=torch.randn(4, 10), layers=("linear",))
    with pytest.raises(ConfigError, match="invalid example_inputs"):
        iterative_prune(_mlp(), target=0.5, steps=2, method="structured", finetune=print)
    with pytest.raises(ConfigError, match="invalid scope in structured pruning: got 'global'"):
        iterative_prune(_mlp(), target=0.5, steps=2, method="structured", scope="global", finetune=print,
                        example_inputs=torch.randn(4, 10))


# -- structured pruning --------------------------------------------------------------------------
STRUCTURED = {
    "mlp": (lambda: _mlp(), (10,)),
    "mlp_bn": (lambda: _mlp(batch_norm=True), (10,)),
    "cnn_bn": (lambda: _cnn(batch_norm=True), (3, 8, 8)),
    "cnn_bn_flatten": (lambda: _cnn(batch_norm=True, global_pool=None), (3, 8, 8)),
}


@pytest.mark.parametrize("kind", list(STRUCTURED))
def test_structured_pruning_halves_hidden_widths_and_keeps_the_outputs(kind):
    build, shape = STRUCTURED[kind]
    model = build()
    x = torch.randn(6, *shape)
    before, n_before = layer_widths(model), _n_params(model)
    out = structured_prune(model, 0.5, example_inputs=x)
    assert out is model
    layers = [b.linear for b in model.blocks] if kind.startswith("mlp") else [b.conv for b in model.blocks]
    widths = [m.out_features if isinstance(m, nn.Linear) else m.out_channels for m in layers]
    assert widths == ([32, 16] if kind.startswith("mlp") else [4, 8])
    for b in model.blocks:
        if b.norm is not None:
            assert b.norm.num_features == b.norm.weight.numel() == b.norm.running_mean.numel()
    head = model.head if isinstance(model.head, nn.Linear) else model.head.out
    assert head.out_features == 3
    assert _n_params(model) < 0.5 * n_before
    model.train()
    assert model(x).shape == (6, 3)  # still trains and runs
    rows = {r["layer"]: r for r in width_changes(before, model)}
    mlp = kind.startswith("mlp")
    changed = {"blocks.0.linear", "blocks.1.linear", "head"} if mlp else {"blocks.0.conv", "blocks.1.conv", "head.out"}
    assert set(rows) == changed
    first = rows["blocks.0.linear" if mlp else "blocks.0.conv"]
    assert (first["in_before"], first["in_after"], first["out_before"], first["out_after"]) == (
        (10, 10, 64, 32) if mlp else (3, 3, 8, 4)
    )
    last = rows["head" if mlp else "head.out"]
    assert last["out_before"] == last["out_after"] == 3 and last["in_after"] == last["in_before"] // 2


def _zero_half(layers, norms, head, per_channel=1):
    """Zero the even-indexed units of every hidden layer: incoming weights, bias, norm and outgoing weights."""
    with torch.no_grad():
        for i, layer in enumerate(layers):
            drop = torch.arange(0, layer.weight.shape[0], 2)
            layer.weight[drop] = 0.0
            if layer.bias is not None:
                layer.bias[drop] = 0.0
            if norms[i] is not None:
                norms[i].weight[drop] = 0.0
                norms[i].bias[drop] = 0.0
            nxt = layers[i + 1] if i + 1 < len(layers) else head
            cols = (drop[:, None] * per_channel + torch.arange(per_channel)).flatten() if nxt is head else drop
            nxt.weight[:, cols] = 0.0


@pytest.mark.parametrize("kind", list(STRUCTURED))
def test_structured_pruning_of_dead_units_leaves_the_outputs_identical(kind):
    build, shape = STRUCTURED[kind]
    model = build()
    x = torch.randn(6, *shape)
    if kind.startswith("mlp"):
        layers, head, per_channel = [b.linear for b in model.blocks], model.head, 1
    else:
        layers, head = [b.conv for b in model.blocks], model.head.out
        per_channel = head.in_features // layers[-1].out_channels  # flatten: H * W columns per channel
    with torch.no_grad():  # non-trivial BN statistics on the kept channels
        for b in model.blocks:
            if b.norm is not None:
                b.norm.running_mean.uniform_(-0.5, 0.5)
                b.norm.running_var.uniform_(0.5, 2.0)
                b.norm.running_mean[::2] = 0.0  # the channels made dead below output exactly 0
    _zero_half(layers, [b.norm for b in model.blocks], head, per_channel)
    model.eval()
    expected = model(x)
    widths = [m.weight.shape[0] for m in layers]
    structured_prune(model, 0.5, example_inputs=x)
    assert [m.weight.shape[0] for m in layers] == [w // 2 for w in widths]
    assert all((m.weight.abs().sum(dim=tuple(range(1, m.weight.dim()))) > 0).all() for m in layers)  # dead ones went
    model.eval()
    torch.testing.assert_close(model(x), expected, atol=1e-6, rtol=0)


REBUILD = {
    "mlp_residual_gain_bn": (lambda: _mlp(residual=True, gain="adaptive", batch_norm=True), (10,)),
    "mlp_residual_same_width": (lambda: _mlp(hidden=[32, 32], residual=True), (10,)),
    "cnn_depthwise_flatten": (
        lambda: _cnn(depthwise_separable=True, batch_norm=True, global_pool=None, head_hidden=12, gain="adaptive"),
        (3, 8, 8),
    ),
    "cnn_gray": (lambda: create_model("cnn", input_shape=(8, 8), num_outputs=3, seed=0, channels=[8, 16],
                                      depthwise_separable=True), (8, 8)),
}


@pytest.mark.parametrize("kind", list(REBUILD))
def test_rebuild_like_loads_a_structurally_pruned_state_into_a_fresh_model(kind):
    build, shape = REBUILD[kind]
    model = build()
    x = torch.randn(5, *shape)
    n_before = _n_params(model)
    structured_prune(model, 0.5, example_inputs=x)
    assert _n_params(model) < n_before
    model.eval()
    expected = model(x)
    fresh = build()
    with pytest.raises(RuntimeError):
        fresh.load_state_dict(model.state_dict())
    rebuilt = rebuild_like(fresh, model.state_dict())
    assert rebuilt is fresh
    rebuilt.eval()
    torch.testing.assert_close(rebuilt(x), expected, atol=0, rtol=0)
    for a, b in zip(model.modules(), rebuilt.modules()):
        if isinstance(a, nn.Conv2d):
            assert (a.groups, a.in_channels, a.out_channels) == (b.groups, b.in_channels, b.out_channels)


def test_rebuild_like_refuses_a_shape_it_cannot_rebuild():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 6)
            self.scale = nn.Parameter(torch.ones(6))

        def forward(self, x):
            return self.fc(x) * self.scale

    state = {"fc.weight": torch.zeros(3, 4), "fc.bias": torch.zeros(3), "scale": torch.ones(3)}
    with pytest.raises(ConfigError, match="scale"):
        rebuild_like(Scaled(), state)


def test_structured_pruning_rejects_bad_amounts_and_unsupported_models():
    x = torch.randn(4, 10)
    for amount in (0, 1, 1.5, -0.2):
        with pytest.raises(ConfigError, match="invalid amount"):
            structured_prune(_mlp(), amount, example_inputs=x)
    with pytest.raises(ConfigError, match="would remove every channel of layer 'blocks.0.linear'"):
        structured_prune(_mlp(hidden=[2]), 0.6, example_inputs=x)
    with pytest.raises(ConfigError, match="invalid importance: got 'taylor'"):
        structured_prune(_mlp(), 0.5, example_inputs=x, importance="taylor")
    rnn = create_model("rnn", input_shape=(5, 4), num_outputs=3, seed=0)
    supports = r"structured pruning supports Linear/Conv/BatchNorm networks \(honing mlp, cnn\); got a model with LSTM"
    with pytest.raises(ConfigError, match=supports):
        structured_prune(rnn, 0.5, example_inputs=torch.randn(2, 5, 4))
    tf = create_model("transformer", input_shape=(5, 4), num_outputs=3, seed=0)
    with pytest.raises(ConfigError, match="structured pruning supports Linear/Conv/BatchNorm"):
        structured_prune(tf, 0.5, example_inputs=torch.randn(2, 5, 4))
    masked = magnitude_prune(_mlp(), 0.5)
    with pytest.raises(ConfigError, match="make_permanent"):
        structured_prune(masked, 0.5, example_inputs=x)


def test_structured_pruning_options_ignored_round_to_and_importance():
    x = torch.randn(4, 10)
    model = _mlp()
    structured_prune(model, 0.5, example_inputs=x, ignored=[model.blocks[1].linear])
    assert [b.linear.out_features for b in model.blocks] == [32, 32]
    model = _mlp(hidden=[60, 30])
    structured_prune(model, 0.3, example_inputs=x, round_to=8)
    assert [b.linear.out_features for b in model.blocks] == [40, 16]
    widths = []
    for _ in range(2):
        m = _mlp()
        structured_prune(m, 0.5, example_inputs=x, importance="random", seed=3)
        widths.append(m.blocks[0].linear.weight.detach())
    assert torch.equal(widths[0], widths[1])  # random importance is seeded


# -- ADMM --------------------------------------------------------------------------------------
def test_admm_prune_reaches_the_sparsity_per_layer_and_still_separates_the_classes():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] > 0).long()
    model = create_model("mlp", input_shape=(8,), num_outputs=2, seed=0, hidden=[16])
    calls = []

    def fit(m, opt):
        calls.append(type(opt).__name__)
        for _ in range(300):
            opt.zero_grad()
            nn.functional.cross_entropy(m(x), y).backward()
            opt.step()

    out = admm_prune(model, 0.75, fit=fit, lr=1e-2, rho=1e-2, admm_interval=20, rho_growth=1.2)
    assert out is model and calls == ["ADMM"] and has_masks(model)
    for row in sparsity_report(model):
        assert row["zeros"] == round(0.75 * row["parameters"]), row
    assert (model.blocks[0].linear.bias != 0).all()  # biases are not constrained
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    assert acc > 0.85
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)  # a fine-tune keeps the zeros
    for _ in range(5):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    assert all(r["zeros"] >= round(0.75 * r["parameters"]) for r in sparsity_report(model))


def test_admm_prune_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="invalid sparsity"):
        admm_prune(_mlp(), 1.5, fit=lambda m, o: None)
    with pytest.raises(ConfigError, match="make_permanent"):
        admm_prune(magnitude_prune(_mlp(), 0.5), 0.5, fit=lambda m, o: None)
    with pytest.raises(ConfigError, match="invalid argument 'bogus'"):
        admm_prune(_mlp(), 0.5, fit=lambda m, o: None, bogus=1)


def test_clone_copies_a_model_with_masks_attached():
    from honing.compress._prune import clone

    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))
    magnitude_prune(model, 0.5, scope="global")
    model(torch.randn(3, 6)).sum().backward()  # weight is a computed tensor now
    copied = clone(model)
    x = torch.randn(4, 6)
    assert torch.equal(copied(x), model(x))
    make_permanent(copied)
    assert has_masks(model) and not has_masks(copied)
    assert torch.equal(copied[0].weight, model[0].weight.detach())
