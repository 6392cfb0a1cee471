"""The ray executor on a real local Ray head started by the test (`ray start --head`): a small
study of `honing run --executor ray` spends exactly its budget, and survives one of its Ray
worker processes being killed mid-trial."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from honing.tune import RayExecutor, load_study_result
from honing.tune._ray import _write_files, trial_files

RECIPE = """\
name: ray-iris
seed: 0
data:
  source: sklearn:iris
  val_size: 0.2
  test_size: 0.2
model:
  name: mlp
  hidden: [16]
training:
  epochs: {epochs}
  batch_size: 16
  early_stopping: null
  optimizer: {{name: adam, lr: 0.01}}
tune:
  n_trials: {n_trials}
  sampler: random
  pruner: none
  final: best_trial
  warm_start: false
  metric: val_accuracy
  space:
    training.optimizer.lr: {{float: [1.0e-3, 1.0e-1], log: true}}
output:
  report: false
"""


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head on this machine (2 CPUs, a small object store); its address. Ray binds the
    node's own address (it does not accept 127.0.0.1 as a node address when the machine has
    another one); nothing outside this machine is contacted."""
    ray_bin = Path(sys.executable).parent / "ray"
    if not ray_bin.is_file():
        pytest.fail("Ray is missing: run `make setup` (installs the test extra, which includes ray)", pytrace=False)
    temp = Path(tempfile.mkdtemp(prefix="honing-ray-"))
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    out = subprocess.run([str(ray_bin), "start", "--head", "--port=0", "--num-cpus=2", "--include-dashboard=false",
                          "--disable-usage-stats", "--object-store-memory=100000000", f"--temp-dir={temp}"],
                         capture_output=True, text=True, env=env, timeout=120)
    found = re.search(r"ray start --address='([^']+)'", out.stdout + out.stderr)
    if out.returncode != 0 or not found:
        pytest.fail(f"ray start failed ({out.returncode}):\n{out.stdout}\n{out.stderr}", pytrace=False)
    try:
        yield found.group(1)
    finally:
        subprocess.run([str(ray_bin), "stop", "--force"], capture_output=True, env=env, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def _run(tmp_path: Path, address: str, *, epochs: int, n_trials: int) -> tuple[subprocess.Popen, Path]:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE.format(epochs=epochs, n_trials=n_trials))
    out = tmp_path / "out"
    log = tmp_path / "run.log"
    proc = subprocess.Popen([sys.executable, "-m", "honing.cli", "run", str(recipe), "--out", str(out), "--quiet",
                             "--executor", "ray", "--address", address, "--workers", "2"],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return proc, out


def test_a_study_on_ray_spends_exactly_its_budget(ray_head, tmp_path):
    proc, out = _run(tmp_path, ray_head, epochs=5, n_trials=6)
    assert proc.wait(timeout=240) == 0, (tmp_path / "run.log").read_text()[-3000:]
    study = load_study_result(str(out / "study.journal"), "ray-iris")
    assert len(study.trials) == 6 and study.counts["complete"] == 6
    assert len({t["user_attrs"]["worker"] for t in study.trials}) >= 2  # trials ran in several Ray workers
    assert {f"{t['number']}.safetensors" for t in study.trials} <= {p.name for p in (out / "trials").iterdir()}
    assert (out / "results.json").is_file()


def test_a_killed_ray_worker_s_trial_is_retried_and_the_budget_holds(ray_head, tmp_path):
    proc, out = _run(tmp_path, ray_head, epochs=60, n_trials=8)  # 5 folds x 60 epochs: seconds per trial
    journal = out / "study.journal"
    deadline, victim = time.time() + 120, None
    while time.time() < deadline and victim is None:
        time.sleep(0.3)
        try:
            running = [t for t in load_study_result(str(journal), "ray-iris").trials if t["state"] == "running"]
        except Exception:  # the study is not created yet
            continue
        if running:
            victim = running[0]
    assert victim is not None, (tmp_path / "run.log").read_text()[-3000:]
    os.kill(int(victim["user_attrs"]["worker"].rpartition(":")[2]), signal.SIGKILL)
    assert proc.wait(timeout=240) == 0, (tmp_path / "run.log").read_text()[-3000:]
    study = load_study_result(str(journal), "ray-iris")
    assert len(study.trials) == 8 and study.counts["running"] == 0 and study.counts["waiting"] == 0
    dead = study.trial(victim["number"])
    assert dead["state"] == "fail" and dead["user_attrs"]["error"] == "interrupted: its worker process died"
    retry = [t for t in study.trials if t["user_attrs"].get("retry_of") == victim["number"]]
    assert len(retry) == 1 and retry[0]["state"] == "complete" and retry[0]["params"] == victim["params"]


def test_trial_files_cross_from_another_node_into_the_run_folder(tmp_path):
    node, run_dir = tmp_path / "node", tmp_path / "run"
    (node / "trials").mkdir(parents=True)
    (node / "trials" / "3.safetensors").write_bytes(b"w3")
    (node / "trials" / "3.pred.safetensors").write_bytes(b"p3")
    (node / "trials" / "4.safetensors").write_bytes(b"w4")
    files = trial_files(node, [3])
    assert files == {"trials/3.safetensors": b"w3", "trials/3.pred.safetensors": b"p3"}
    _write_files(run_dir, files)
    assert (run_dir / "trials" / "3.pred.safetensors").read_bytes() == b"p3"
    with pytest.raises(Exception, match="outside the run folder"):
        _write_files(run_dir, {"../evil": b"x"})


def test_ray_executor_options_are_checked():
    from honing import ConfigError

    with pytest.raises(ConfigError, match="gpus"):
        RayExecutor(gpus=1.5)
    with pytest.raises(ConfigError, match="cpus"):
        RayExecutor(cpus=0)
