"""`honing refit` and `honing rollback` against a running server: promotion by the gates, the
switch to the new version with requests in flight, none failed; a candidate that forgets is not
promoted."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from _serve_helpers import start_server, train_model

from honing.artifacts import current_version, list_versions, load_model
from honing.data import read_source
from honing.serve import RefitConfig, refit


def write_iris(path, *, shift: float = 0.0, swap: bool = False, seed: int = 0):
    raw = read_source("sklearn:iris")
    names = ["setosa", "versicolor", "virginica"]
    rng = np.random.default_rng(seed)
    x = raw.x.astype(float) + shift + rng.normal(0, 0.05, raw.x.shape)
    y = raw.y.astype(int)
    if swap:  # the same flowers, labels exchanged: what the old model knew is now wrong
        y = np.choose(y, [2, 1, 0])
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*raw.layout["columns"], "species"])
        for row, label in zip(x, y):
            w.writerow([*(f"{v:.4f}" for v in row), names[label]])
    return f"csv:{path}"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_model(tmp_path_factory.mktemp("refit") / "run")


def test_a_promoted_refit_is_served_with_no_failed_request_and_rolled_back(run_dir, tmp_path):
    new_source = write_iris(tmp_path / "shifted.csv", shift=0.8)
    server = start_server(run_dir)
    stop, codes = threading.Event(), []
    row = {"rows": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}

    def hammer():
        while not stop.is_set():
            codes.append(server.request("POST", "/predict", row)[0])

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        done = subprocess.run([sys.executable, "-m", "honing.cli", "refit", str(run_dir), "--data", new_source,
                               "--target", "species", "--out", str(tmp_path / "candidate"), "--epochs", "15", "--quiet",
                               "--forgetting-budget", "0.05"],  # 30 old test rows: one row is 3.3 points
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "promoted" in done.stdout and list_versions(run_dir) == ["v1", "v2"]
        assert _wait_for_version(server, "v2")
        time.sleep(0.5)  # requests keep coming after the switch
        back = subprocess.run([sys.executable, "-m", "honing.cli", "rollback", str(run_dir)],
                              capture_output=True, text=True, timeout=60)
        assert back.returncode == 0 and "now serves v1" in back.stdout
        assert _wait_for_version(server, "v1")
    finally:
        stop.set()
        for t in threads:
            t.join()
        server.stop()
    assert len(codes) > 50 and set(codes) == {200}, {c: codes.count(c) for c in set(codes)}
    result = json.loads((tmp_path / "candidate" / "refit.json").read_text())
    assert result["gates"] == {"new_data": True, "forgetting": True}
    assert result["scores"]["new_data"]["candidate"] >= result["scores"]["new_data"]["old_model"]
    assert (tmp_path / "candidate" / "model" / "reference.json").is_file()
    assert current_version(run_dir)[0] == "v1"


def test_a_candidate_that_forgets_is_not_promoted(run_dir, tmp_path):
    swapped = write_iris(tmp_path / "swapped.csv", swap=True)
    before = list_versions(run_dir)
    result = refit(run_dir, swapped, tmp_path / "out", RefitConfig(epochs=20, replay=0, lr_scale=1.0),
                   target="species")
    assert result["gates"]["forgetting"] is False and result["promoted"] is None
    assert result["forgetting"] > 0.3 and list_versions(run_dir) == before
    # the candidate is written for inspection, and loads like any model folder
    assert load_model(tmp_path / "out" / "model").task == "classification"
    done = subprocess.run([sys.executable, "-m", "honing.cli", "refit", str(run_dir), "--data", swapped, "--target",
                           "species", "--out", str(tmp_path / "out2"), "--epochs", "20", "--replay", "0", "--lr-scale", "1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "not promoted" in done.stdout and "FAIL" in done.stdout


def test_refit_refuses_data_of_another_task(run_dir, tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b,c,d,label\n" + "\n".join(f"{i},{i},{i},{i},{'xyz'[i % 3]}" for i in range(30)))
    done = subprocess.run([sys.executable, "-m", "honing.cli", "refit", str(run_dir), "--data", f"csv:{path}",
                           "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr


def _wait_for_version(server, version: str, timeout: float = 30) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.request("GET", "/ready", auth=False)[1].get("version") == version:
            return True
        time.sleep(0.2)
    return False


def test_ewc_holds_the_old_weights_where_the_old_data_needs_them(run_dir, tmp_path):
    swapped = write_iris(tmp_path / "swapped.csv", swap=True)
    free, held = (refit(run_dir, swapped, tmp_path / f"out{i}", RefitConfig(epochs=15, replay=0, lr_scale=1.0, ewc=ewc,
                                                                            promote=False), target="species")
                  for i, ewc in enumerate((0.0, 3000.0)))
    assert held["config"]["ewc"] == 3000.0
    # the labels conflict outright: without EWC the candidate learns the swap and forgets the old task
    assert free["forgetting"] > 0.3 and held["forgetting"] < free["forgetting"] - 0.2
    assert held["scores"]["new_data"]["candidate"] < free["scores"]["new_data"]["candidate"]


def test_a_refit_search_chooses_its_options_on_validation_rows(run_dir, tmp_path):
    shifted = write_iris(tmp_path / "shifted.csv", shift=0.8, seed=3)
    space = {"lr_scale": {"float": [0.1, 2.0], "log": True}, "ewc": {"float": [0.0, 100.0]}}
    result = refit(run_dir, shifted, tmp_path / "out", RefitConfig(epochs=8, search=4, space=space, promote=False),
                   target="species")
    s = result["search"]
    assert s["trials"] == 4 and set(s["best_params"]) == {"lr_scale", "ewc"}
    assert result["chosen"]["lr_scale"] == s["best_params"]["lr_scale"] and result["chosen"]["replay"] == 500
    assert (tmp_path / "out" / "search" / "study.journal").is_file()
    journal = json.loads((tmp_path / "out" / "refit.json").read_text())
    assert journal["search"]["best_value"] == s["best_value"]
    with pytest.raises(Exception, match="unknown field 'momentum'; allowed: epochs, lr_scale"):
        RefitConfig(search=2, space={"momentum": {"float": [0, 1]}})
    done = subprocess.run([sys.executable, "-m", "honing.cli", "refit", str(run_dir), "--data", shifted, "--target",
                           "species", "--out", str(tmp_path / "o"), "--search", "2", "--space", "{lr: {float: [0, 1]}}"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "unknown field 'lr'" in done.stderr


def test_a_chain_of_refits_guards_every_earlier_data_set(tmp_path):
    home = train_model(tmp_path / "run")
    first = write_iris(tmp_path / "first.csv", shift=0.3, seed=1)
    second = write_iris(tmp_path / "second.csv", shift=0.6, seed=2)
    one = refit(home, first, tmp_path / "r1", RefitConfig(epochs=10, forgetting_budget=0.2), target="species")
    assert one["promoted"] == "v2" and "earlier_data" not in one["scores"]
    lineage = json.loads((home / "versions" / "v2" / "lineage.json").read_text())
    assert [r["data"]["source"] for r in lineage] == ["sklearn:iris"]
    two = refit(home, second, tmp_path / "r2", RefitConfig(epochs=10, forgetting_budget=0.2, replay=100),
                target="species")
    # v2's own data is the "old data"; the original data set is guarded too
    assert two["scores"]["old_data"]["source"] == first
    assert [e["source"] for e in two["scores"]["earlier_data"]] == ["sklearn:iris"]
    assert set(two["forgetting_by_source"]) == {first, "sklearn:iris"}
    assert two["replayed_rows"] == 100  # 50 rows of each earlier data set


def test_new_rows_with_fewer_classes_or_class_indices_map_onto_the_models_classes(run_dir, tmp_path):
    raw = read_source("sklearn:iris")
    cols = raw.layout["columns"]
    keep = raw.y != 2  # no virginica in the new rows
    path = tmp_path / "two.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*cols, "species"])
        for row, label in zip(raw.x[keep], raw.y[keep]):
            w.writerow([*row, ["setosa", "versicolor"][label]])
    named = refit(run_dir, f"csv:{path}", tmp_path / "a", RefitConfig(epochs=2, promote=False), target="species")
    assert named["labels_as"] == "class names" and named["scores"]["new_data"]["candidate"] > 0.9
    np.savez(tmp_path / "idx.npz", x=raw.x.astype(np.float32), y=raw.y)
    indexed = refit(run_dir, f"npz:{tmp_path / 'idx.npz'}", tmp_path / "b", RefitConfig(epochs=2, promote=False))
    assert indexed["labels_as"] == "class indices" and indexed["scores"]["new_data"]["candidate"] > 0.8
    path.write_text(path.read_text().replace("versicolor", "rose"))
    with pytest.raises(Exception, match=r"labels \['rose'\] the model does not know"):
        refit(run_dir, f"csv:{path}", tmp_path / "c", RefitConfig(epochs=2, promote=False), target="species")
