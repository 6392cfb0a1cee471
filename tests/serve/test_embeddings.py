"""Image and text models: the reference keeps the model's penultimate features, and a window's
embeddings are compared with them by MMD or by a domain classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from honing._core import ConfigError
from honing.artifacts import read_reference
from honing.data import EMBED_DIM, embed, embedding_profile, project
from honing.serve import detect_drift, drift_of_source


def test_embed_is_the_input_of_the_last_linear_layer_the_forward_runs():
    torch.manual_seed(0)
    body = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 6 * 6, 8), torch.nn.ReLU())
    head = torch.nn.Linear(8, 3)
    model = torch.nn.Sequential(body, head).train()
    x = torch.randn(10, 1, 8, 8)
    emb = embed(model, x, batch=4)  # in chunks: the same as one pass
    with torch.no_grad():
        np.testing.assert_allclose(emb.numpy(), body(x).numpy(), atol=1e-6)
    assert model.training  # left as it was found
    assert embed(torch.nn.Sequential(torch.nn.Flatten()), x) is None  # no linear layer: no embedding

    class Tokens(torch.nn.Module):  # a head over (batch, tokens, width): the token axis is averaged
        def __init__(self) -> None:
            super().__init__()
            self.head = torch.nn.Linear(5, 2)

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return self.head(t).mean(dim=1)

    t = torch.randn(3, 7, 5)
    np.testing.assert_allclose(embed(Tokens(), t).numpy(), t.mean(dim=1).numpy(), rtol=1e-6)


def test_wide_embeddings_are_projected_by_a_seeded_matrix_that_keeps_distances():
    rng = np.random.default_rng(0)
    wide = rng.normal(size=(50, 512))
    a, b = project(wide, seed=3), project(wide, seed=3)
    assert a.shape == (50, EMBED_DIM) and np.array_equal(a, b)
    assert project(wide[:, :EMBED_DIM], seed=3) is not None and np.array_equal(project(wide[:, :10], seed=3),
                                                                               wide[:, :10])
    d_wide = np.linalg.norm(wide[:25] - wide[25:], axis=1)
    d_low = np.linalg.norm(a[:25] - a[25:], axis=1)
    assert 0.6 < np.median(d_low / d_wide) < 1.4
    prof = embedding_profile(torch.as_tensor(wide), sample=20, seed=3)
    assert len(prof["rows"]) == 20 and len(prof["rows"][0]) == EMBED_DIM and prof["width"] == 512


@pytest.mark.parametrize("test", ["mmd", "classifier"])
def test_embedding_shift_is_found_and_calm_windows_stay_calm(test):
    rng = np.random.default_rng(1)
    ref = {"embeddings": embedding_profile(torch.as_tensor(rng.normal(size=(2000, 96))), seed=5)}
    calm = [detect_drift(ref, embeddings=rng.normal(size=(300, 96)), embedding_test=test, seed=i) for i in range(20)]
    assert sum(r.drifted for r in calm) <= 2
    moved = rng.normal(size=(300, 96))
    moved[:, :8] += 0.5  # half a standard deviation on 8 of 96 directions
    report = detect_drift(ref, embeddings=moved, embedding_test=test)
    (t,) = report.tests
    assert t.name == "embeddings" and t.drifted and t.p_value < 0.01
    assert t.test == ("mmd" if test == "mmd" else "classifier-auc")
    if test == "classifier":
        assert t.statistic > 0.6 and 0.35 < calm[0].tests[0].statistic < 0.65  # AUC, near 0.5 when calm
    with pytest.raises(ConfigError, match="width 95; allowed: 96"):
        detect_drift(ref, embeddings=moved[:, :95])
    with pytest.raises(ConfigError, match="embedding_test"):
        detect_drift(ref, embeddings=moved, embedding_test="auc")


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """A small CNN on sklearn's 8x8 digits, and two new sources: the same images, brighter ones."""
    from sklearn.datasets import load_digits

    from honing.pipeline import train_once

    root = tmp_path_factory.mktemp("image")
    recipe = {"name": "digits-img", "seed": 0,
              "data": {"source": "sklearn:digits", "image": True, "val_size": 0.2, "test_size": 0.2},
              "model": {"name": "cnn", "channels": [8], "head_hidden": 16, "global_pool": None},
              "training": {"epochs": 6, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.01}},
              "output": {"report": False}}
    train_once(recipe, out=root / "run", progress=False)
    d = load_digits()
    order = np.random.default_rng(0).permutation(len(d.target))  # the set is in writer order: mix it
    x, y = d.images[order].astype(np.float32), d.target[order]
    np.savez(root / "same.npz", x=x[:600], y=y[:600])
    np.savez(root / "bright.npz", x=np.clip(x[:600] + 4.0, 0, 16), y=y[:600])
    return root, x, y


def test_an_image_model_keeps_embeddings_and_a_brighter_source_drifts_them(image_run):
    root, _, _ = image_run
    model_dir = root / "run" / "model"
    ref = read_reference(model_dir)
    assert ref["features"] == [] and ref["embeddings"]["width"] == 16 and len(ref["embeddings"]["rows"]) == 300
    same = drift_of_source(model_dir, f"npz:{root / 'same.npz'}")
    bright = drift_of_source(model_dir, f"npz:{root / 'bright.npz'}", embedding_test="classifier")
    emb = [next(t for t in r.tests if t.name == "embeddings") for r in (same, bright)]
    assert emb[0].test == "mmd" and not emb[0].drifted
    assert emb[1].test == "classifier-auc" and emb[1].drifted and emb[1].statistic > 0.9


def test_a_server_compares_the_embeddings_of_what_it_was_sent(image_run):
    from _serve_helpers import start_server

    root, x, _ = image_run
    server = start_server(root / "run")
    try:
        status, _, _ = server.request("POST", "/predict", {"rows": x[:200, None].tolist()})
        assert status == 200
        report = server.request("GET", "/drift")[1]
        emb = next(t for t in report["tests"] if t["name"] == "embeddings")
        assert emb["rows"] == 200 and not emb["drifted"]
        bright = np.clip(x[200:600] + 4.0, 0, 16)[:, None]
        assert server.request("POST", "/predict", {"rows": bright.tolist()})[0] == 200
        report = server.request("GET", "/drift")[1]
        emb = next(t for t in report["tests"] if t["name"] == "embeddings")
        assert emb["rows"] == 300 and emb["drifted"]  # the latest 300 inputs: all brighter
    finally:
        server.stop()
    from honing.serve import export_log

    done = export_log(root / "run", root / "logged.npz")
    back = np.load(root / "logged.npz")
    assert done["rows"] == 600 and done["source"] == f"npz:{root / 'logged.npz'}" and done["target"] is None
    assert back["x"].shape == (600, 1, 8, 8) and back["y"].dtype == np.int64
    np.testing.assert_array_equal(back["x"][:200, 0], x[:200])  # oldest first, as sent
