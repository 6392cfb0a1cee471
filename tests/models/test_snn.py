"""The spiking model: the surrogate gradients against a hand computation, the neuron's
dynamics by hand, each batch from rest, encodings, spike counts and synaptic operations, and
learning a small task well above chance."""

from __future__ import annotations

import math

import pytest
import torch

from honing import ConfigError
from honing.models import create_model
from honing.models._snn import surrogate_gradient
from honing.optim import create_optimizer
from honing.train import TrainConfig, Trainer


@pytest.mark.parametrize("name, slope, expected", [
    ("atan", 2.0, lambda u: 2.0 / 2 / (1 + (math.pi / 2 * 2.0 * u) ** 2)),
    ("fast_sigmoid", 25.0, lambda u: 1 / (25.0 * abs(u) + 1) ** 2),
])
def test_the_surrogate_gradient_is_the_hand_computed_one(name, slope, expected):
    u = torch.tensor([-0.5, -0.1, -0.01, 0.05, 0.3], requires_grad=True)
    spikes = surrogate_gradient(name, slope)(u)
    assert spikes.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]  # forward: a step at 0
    spikes.sum().backward()
    assert u.grad.tolist() == pytest.approx([expected(v) for v in u.detach().tolist()], rel=1e-5)


def test_a_neuron_integrates_leaks_fires_and_resets_by_subtraction():
    # one input, one neuron: weight 1, no bias, beta 0.5, threshold 1, a constant input 0.6
    model = create_model("snn", input_shape=(1,), num_outputs=1, hidden=[1], beta=0.5, steps=5)
    layer = model.layers[0]
    with torch.no_grad():
        layer.synapse.weight.fill_(1.0)
        layer.synapse.bias.zero_()
    mem, got = None, []
    for _ in range(5):
        _, mem, spike = layer(torch.tensor([[0.6]]), mem)
        got.append((round(float(mem.detach()), 4), int(spike.detach())))
    # u1 = .6; u2 = .3 + .6 = .9; u3 = .45 + .6 = 1.05 -> spike; u4 = .525 + .6 - 1 = .125; u5 = .0625 + .6
    assert got == [(0.6, 0), (0.9, 0), (1.05, 1), (0.125, 0), (0.6625, 0)]


def test_every_batch_starts_from_rest():
    model = create_model("snn", input_shape=(6,), num_outputs=3, seed=0).eval()
    x = torch.randn(4, 6)
    first = model(x)
    model(torch.randn(4, 6) * 10)  # a strong batch in between leaves no charge behind
    assert torch.equal(model(x), first)


def test_spike_counts_and_synaptic_operations_by_hand():
    model = create_model("snn", input_shape=(4,), num_outputs=3, hidden=[5], steps=6, seed=0)
    x = torch.randn(7, 4)
    stats = model.spike_stats(x)
    spikes = torch.zeros(())
    mem = None
    for _ in range(6):
        _, mem, s = model.layers[0](x, mem)
        spikes = spikes + s.sum()
    per_sample = float(spikes.detach()) / 7
    assert stats["spike_rate"]["layers.0"] == pytest.approx(per_sample / (5 * 6))
    # direct input: 4 x 5 multiply-accumulates per step; each hidden spike reaches 3 outputs
    assert stats["synaptic_ops"] == pytest.approx(4 * 5 * 6 + per_sample * 3)
    assert stats["ann_macs"] == 4 * 5 + 5 * 3 and stats["time_steps"] == 6


@pytest.mark.parametrize("kwargs", [
    {"encoding": "rate"},
    {"encoding": "latency", "learn_beta": True, "learn_threshold": True, "surrogate": "fast_sigmoid"},
])
def test_other_encodings_and_learned_neurons_learn_digits(digits_data_for_snn, kwargs):
    data = digits_data_for_snn
    torch.manual_seed(0)
    model = create_model("snn", data=data, hidden=[64], steps=8, seed=0, **kwargs)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "neurons" in n}
    result = Trainer(model, create_optimizer(model, "adam", lr=3e-3),
                     config=TrainConfig(epochs=6, batch_size=32, seed=0)).fit(data.train, data.val)
    assert result.history[-1]["val_accuracy"] > 0.6  # 10 classes: chance is 0.1
    if kwargs.get("learn_beta"):
        assert before and all(not torch.equal(p, dict(model.named_parameters())[n]) for n, p in before.items())


def test_latency_encoding_fires_once_per_input_earlier_for_larger_values():
    model = create_model("snn", input_shape=(3,), num_outputs=2, steps=5, encoding="latency")
    steps = torch.stack(model._encode(torch.tensor([[-3.0, 0.0, 3.0]])))  # (T, 1, 3)
    assert steps.sum(0).tolist() == [[1.0, 1.0, 1.0]]
    first = steps[:, 0].argmax(0).tolist()
    assert first[2] < first[1] < first[0]


def test_bad_options_are_clear():
    with pytest.raises(ConfigError, match="encoding.*direct"):
        create_model("snn", input_shape=(3,), num_outputs=2, encoding="phase")
    with pytest.raises(ConfigError, match="beta"):
        create_model("snn", input_shape=(3,), num_outputs=2, beta=1.0)
    with pytest.raises(ConfigError, match="with channels"):
        create_model("snn", input_shape=(3,), num_outputs=2, channels=[4])


def test_a_spiking_model_exports_to_onnx_with_the_same_outputs(tmp_path):
    from honing.export import to_onnx

    model = create_model("snn", input_shape=(1, 8, 8), num_outputs=3, channels=[4], hidden=[8], steps=3,
                         seed=0).eval()
    out = to_onnx(model, tmp_path / "snn.onnx", torch.randn(2, 1, 8, 8))  # checked in onnxruntime
    assert out.max_abs_diff < 1e-4 and out.size_bytes > 0
