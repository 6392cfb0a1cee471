"""Conformance of every registered model (driven by list_models()) and of richer variants."""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import load_file, save_file

from honing.models import MODELS, count_parameters, create_model, list_models

OUT = 3

# Every registered model with its defaults, plus variants that switch the options on.
CASES = [(name, {}) for name in list_models()] + [
    ("mlp", dict(hidden=[8, 8, 5], batch_norm=True, residual=True, dropout=0.2, gain="adaptive")),
    ("mlp", dict(hidden=[])),
    ("cnn", dict(channels=[4, 6], depthwise_separable=True, batch_norm=True, pool="avg", head_hidden=5, dropout=0.1)),
    ("cnn", dict(channels=[4], pool=None, kernel_size=5, activation="tanh", gain="adaptive")),
    ("rnn", dict(cell="gru", layers=2, hidden_size=5, bidirectional=True, dropout=0.2, pool="mean")),
    ("rnn", dict(cell="lstm", layers=2, hidden_size=4, bidirectional=True, head_hidden=3, gain="adaptive")),
    ("transformer", dict(layers=1, heads=2, width=8, pool="cls", positional="learned", head_hidden=4)),
    ("transformer", dict(layers=2, heads=1, width=6, ff_width=10, positional=None, gain="adaptive")),
]
IDS = [f"{n}-{'-'.join(k) or 'defaults'}" for n, k in CASES]


def _shape(name: str) -> tuple[int, ...]:
    return tuple(MODELS.entry(name).meta["example_input_shape"])


def _build(name: str, kwargs: dict, seed: int = 0) -> torch.nn.Module:
    return create_model(name, input_shape=_shape(name), num_outputs=OUT, seed=seed, **kwargs)


def _x(name: str, n: int = 5, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *_shape(name), generator=g)


def test_every_model_has_an_example_shape_and_description():
    assert set(list_models()) >= {"mlp", "cnn", "rnn", "transformer"}
    for name in list_models():
        entry = MODELS.entry(name)
        assert entry.description and entry.meta["inputs"]
        assert len(_shape(name)) >= 1


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_forward_shape_and_backward_reaches_every_parameter(name, kwargs):
    model = _build(name, kwargs)
    model.train()
    y = model(_x(name))
    assert y.shape == (5, OUT) and y.dtype == torch.float32
    assert torch.isfinite(y).all()
    y.pow(2).mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{pname} has an all-zero gradient"


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_output_depends_on_input_and_eval_batch_of_one(name, kwargs):
    model = _build(name, kwargs).eval()
    x = _x(name)
    with torch.no_grad():
        y = model(x)
        y_other = model(_x(name, seed=2))
        single = model(x[:1])
    assert not torch.allclose(y, y_other)
    assert not torch.allclose(y[0], y[1])
    assert single.shape == (1, OUT)
    torch.testing.assert_close(single, y[:1], rtol=1e-4, atol=1e-5)  # rows do not interact in eval


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_layer_groups_cover_every_parameter_exactly_once(name, kwargs):
    model = _build(name, kwargs)
    groups = model.layer_groups()
    assert len(groups) >= 1 and all(groups), groups
    prefixes = [p for group in groups for p in group]
    assert len(prefixes) == len(set(prefixes))
    for pname, _ in model.named_parameters():
        owners = [p for p in prefixes if pname == p or pname.startswith(p + ".")]
        assert len(owners) == 1, f"{pname} matched {owners}"
    for prefix in prefixes:  # no prefix is dead
        assert any(n == prefix or n.startswith(prefix + ".") for n, _ in model.named_parameters()), prefix
    assert any(p.startswith("head") for p in groups[-1])  # ordered input -> output


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_state_dict_round_trip_through_safetensors(name, kwargs, tmp_path):
    a = _build(name, kwargs, seed=0)
    a.train()
    with torch.no_grad():
        a(_x(name))  # move batch-norm running statistics away from their initial values
    b = _build(name, kwargs, seed=1)
    x = _x(name, seed=3)
    a.eval(), b.eval()
    with torch.no_grad():
        assert not torch.allclose(a(x), b(x))
    path = tmp_path / "w.safetensors"
    save_file(a.state_dict(), str(path))
    b.load_state_dict(load_file(str(path)))
    c = copy.deepcopy(a)
    with torch.no_grad():
        torch.testing.assert_close(b(x), a(x))
        torch.testing.assert_close(c(x), a(x))


@pytest.mark.parametrize("name", list_models())
def test_seed_makes_weights_reproducible_without_touching_global_rng(name):
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = _build(name, {}, seed=7)
    after = torch.rand(3)
    torch.testing.assert_close(before, after)
    b = _build(name, {}, seed=7)
    for (n, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(p, q), n
    c = _build(name, {}, seed=8)
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


@pytest.mark.parametrize("name", list_models())
def test_count_parameters(name):
    model = _build(name, {})
    total = sum(p.numel() for p in model.parameters())
    assert count_parameters(model) == total
    for p in model.head.parameters():
        p.requires_grad_(False)
    frozen = sum(p.numel() for p in model.head.parameters())
    assert frozen > 0
    assert count_parameters(model) == total - frozen
    assert count_parameters(model, trainable_only=False) == total
