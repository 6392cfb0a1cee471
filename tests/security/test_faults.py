"""Faults of the environment: a torn journal, a disk that fills mid-run, a read-only folder,
kill -9 of a two-worker run. Each ends with exactly the budget and nothing lost, or a clear
message (exit 1, no traceback) after which the same command resumes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest
import yaml

from honing.cli import main
from honing.tune import load_study_result, resolve_storage

RECIPE = {
    "name": "faults", "seed": 0,
    "data": {"source": "sklearn:iris", "val_size": 0.2, "test_size": 0.2},
    "model": {"name": "mlp", "hidden": [8]},
    "training": {"epochs": 6, "batch_size": 16, "threads": 1},
    "tune": {"n_trials": 40, "sampler": "random", "pruner": "none",
             "space": {"training.optimizer.lr": {"float": [0.001, 0.1], "log": True}}},
}


def _recipe(tmp_path: Path, **tune) -> Path:
    recipe = json.loads(json.dumps(RECIPE))
    recipe["tune"].update(tune)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _counts(out: Path) -> dict[str, int]:
    return load_study_result(str(out / "study.journal"), "faults").counts


def _study(path: Path, trials: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    store = resolve_storage(str(path), path.parent)
    study = optuna.create_study(storage=store.storage, study_name="s", load_if_exists=True)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=trials)


# --- the journal -----------------------------------------------------------------------------


def test_a_torn_last_record_is_cut_kept_aside_and_the_study_goes_on(tmp_path):
    journal = tmp_path / "study.journal"
    _study(journal, 3)
    whole = journal.read_bytes()
    journal.write_bytes(whole[:-25])  # the last record cut mid-write
    with pytest.warns(UserWarning, match="damaged record"):
        _study(journal, 2)
    cut = tmp_path / "study.journal.cut-1"
    assert cut.read_bytes() == whole[whole.rstrip(b"\n").rfind(b"\n") + 1:-25] + b"\n"
    states = [t.state for t in optuna.load_study(study_name="s", storage=resolve_storage(str(journal), tmp_path)
                                                 .storage).trials]
    assert len(states) == 5 and states.count(optuna.trial.TrialState.COMPLETE) == 4  # the torn one stays RUNNING
    assert all(json.loads(line) for line in journal.read_bytes().splitlines())


def test_a_torn_record_that_a_later_write_extended_is_repaired(tmp_path):
    journal = tmp_path / "study.journal"
    _study(journal, 2)
    lines = journal.read_bytes().splitlines(keepends=True)
    # what Optuna's own backend leaves: a torn record, then the next record appended onto it
    journal.write_bytes(b"".join(lines[:-2]) + lines[-2][:30] + lines[-1])
    with pytest.warns(UserWarning, match="damaged record"):
        _study(journal, 1)
    assert (tmp_path / "study.journal.cut-1").read_bytes() == lines[-2][:30] + b"\n"
    assert len(optuna.load_study(study_name="s", storage=resolve_storage(str(journal), tmp_path).storage).trials) == 3


def test_honing_show_reads_a_journal_with_a_torn_tail(tmp_path, capsys):
    recipe = _recipe(tmp_path, n_trials=3)
    out = tmp_path / "out"
    assert main(["run", str(recipe), "--out", str(out), "--quiet"]) == 0
    journal = out / "study.journal"
    journal.write_bytes(journal.read_bytes()[:-10])
    assert main(["show", str(out)]) == 0
    assert "study faults" in capsys.readouterr().out


# --- a disk that fills, a read-only folder -----------------------------------------------------


@contextmanager
def _small_disk(folder: Path, size: str):
    """A tmpfs of ``size`` at ``folder`` (CI and the developers' machines run as root)."""
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True,
                          text=True)
    assert done.returncode == 0, f"this test mounts a small tmpfs and needs root: {done.stderr}"
    try:
        yield lambda new: subprocess.run(["mount", "-o", f"remount,size={new}", str(folder)], check=True)
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_disk_that_fills_mid_run_fails_cleanly_and_the_run_resumes_to_its_budget(tmp_path, capsys):
    recipe = _recipe(tmp_path)
    with _small_disk(tmp_path / "disk", "60k") as resize:
        out = tmp_path / "disk" / "run"
        assert main(["run", str(recipe), "--out", str(out), "--quiet"]) == 1
        err = capsys.readouterr().err
        assert "no space left on the device" in err and "Traceback" not in err
        data = (out / "study.journal").read_bytes()
        assert data.endswith(b"\n") and all(json.loads(line) for line in data.splitlines())  # no torn record
        assert 0 < _counts(out)["complete"] < 40
        resize("20m")  # space freed: the same command resumes
        assert main(["run", str(recipe), "--out", str(out), "--quiet"]) == 0
        counts = _counts(out)
        assert sum(counts.values()) == 40 and counts["running"] == 0 and counts["waiting"] == 0
        assert json.loads((out / "results.json").read_text())["trials"]["complete"] >= 38


def test_a_read_only_output_folder_is_a_message_not_a_traceback(tmp_path, capsys):
    recipe = _recipe(tmp_path, n_trials=2)
    with _small_disk(tmp_path / "ro", "1m"):
        subprocess.run(["mount", "-o", "remount,ro", str(tmp_path / "ro")], check=True)
        code = main(["run", str(recipe), "--out", str(tmp_path / "ro" / "run"), "--quiet"])
        err = capsys.readouterr().err
    assert code == 1 and "read-only" in err and "Traceback" not in err


def test_an_output_path_that_is_a_file_exits_2(tmp_path, capsys):
    recipe = _recipe(tmp_path, n_trials=2)
    (tmp_path / "file").write_text("")
    assert main(["run", str(recipe), "--out", str(tmp_path / "file"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "not a folder" in err and "Traceback" not in err


# --- kill -9 of a two-worker run, at seeded random moments ----------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_a_two_worker_run_killed_at_a_random_moment_resumes_to_exactly_its_budget(tmp_path, seed):
    rng = random.Random(seed)
    recipe = _recipe(tmp_path, n_trials=24)
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "honing.cli", "run", str(recipe), "--out", str(out), "--workers", "2", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for _ in range(2):  # killed twice, each time after a random number of finished trials
        target = rng.randrange(1, 8) + (_counts(out)["complete"] if (out / "study.journal").exists() else 0)
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                                start_new_session=True)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            time.sleep(rng.uniform(0.01, 0.1))
            try:
                if _counts(out)["complete"] >= target:
                    break
            except Exception:  # the study is not created yet
                continue
        os.killpg(proc.pid, signal.SIGKILL)  # the parent and both workers, wherever they are
        proc.wait(timeout=30)
    assert main(["run", str(recipe), "--out", str(out), "--quiet"]) == 0
    counts = _counts(out)
    assert sum(counts.values()) == 24 and counts["running"] == 0 and counts["waiting"] == 0
    assert json.loads((out / "results.json").read_text())["trials"] == counts
