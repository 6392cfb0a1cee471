"""(issue 16) Stress: many worker processes claiming trials of one study at once.

``--procs`` separate Python processes (default 32; each as if on its own machine: its own
process, storage connection and, for PostgreSQL, its own run folder) each run
``honing.tune.optimize`` on the same study toward one budget (``--trials``, default 300). The
objective sleeps ``--sleep`` seconds (default 0.05) and returns a number, so the storage and the
budget claim are what is measured. Storages:

  journal     honing's default: a journal file in a shared run folder (the budget lock: flock)
  postgresql  a throwaway PostgreSQL server on 127.0.0.1 (advisory lock in the database)
  optuna-sqlite  the baseline: Optuna's own ``study.optimize`` on one SQLite file, each process
              stopping at the budget with ``MaxTrialsCallback`` (what Optuna's docs suggest)

Counted: processes that exited with an error, error lines in their output ("Error",
"Traceback", "database is locked"), trials in the study, trials left RUNNING, wall time.

    bench/run.sh bench/stress_workers.py [--procs 32] [--trials 300]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "tune"))

HONING = """
import random, sys, time
from honing.tune import FloatParam, SearchSpace, create_sampler, optimize
url, run_dir, seed, n, sleep = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
space = SearchSpace([FloatParam("x", 0.0, 1.0)])
def objective(params, reporter):
    time.sleep(sleep)
    return (params["x"] - 0.3) ** 2
optimize(objective, study_name="stress", storage=url if url != "-" else None, space=space, n_trials=n,
         run_dir=run_dir, sampler=create_sampler("random", seed=seed, space=space, n_trials=n), progress=False,
         seed=seed, directions="minimize", join=True)
"""

OPTUNA = """
import sys, time, optuna
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState
optuna.logging.set_verbosity(optuna.logging.WARNING)
url, seed, n, sleep = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
study = optuna.create_study(study_name="stress", storage=url, load_if_exists=True,
                            sampler=optuna.samplers.RandomSampler(seed=seed))
def objective(trial):
    x = trial.suggest_float("x", 0.0, 1.0)
    time.sleep(sleep)
    return (x - 0.3) ** 2
study.optimize(objective, callbacks=[MaxTrialsCallback(n, states=None)])
"""

ERRORS = ("Error", "Traceback", "database is locked")


def _spawn(code: str, args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env=env)


def _counts(url: str) -> dict[str, int]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if url.endswith(".journal") or url.startswith("postgresql"):
        from honing.tune import resolve_storage

        storage = resolve_storage(url, Path(url).parent).storage
    else:
        storage = url
    study = optuna.load_study(study_name="stress", storage=storage)
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name.lower()] = out.get(t.state.name.lower(), 0) + 1
    return out


def one(kind: str, procs: int, trials: int, sleep: float, root: Path, pg_url: str | None) -> dict:
    logs = [root / f"{kind}-{i}.log" for i in range(procs)]
    shared = root / f"{kind}-run"
    shared.mkdir()
    t0 = time.perf_counter()
    if kind == "journal":
        url = str(shared / "study.journal")
        ps = [_spawn(HONING, [url, str(shared), str(i), str(trials), str(sleep)], logs[i]) for i in range(procs)]
    elif kind == "postgresql":
        url = pg_url
        ps = [_spawn(HONING, [url, str(root / f"pg-{i}"), str(i), str(trials), str(sleep)], logs[i])
              for i in range(procs)]
    else:
        url = f"sqlite:///{shared / 'study.db'}"
        optuna_create(url)
        ps = [_spawn(OPTUNA, [url, str(i), str(trials), str(sleep)], logs[i]) for i in range(procs)]
    codes = [p.wait(timeout=1800) for p in ps]
    wall = time.perf_counter() - t0
    text = "\n".join(log.read_text(errors="replace") for log in logs)
    error_lines = sum(any(e in line for e in ERRORS) for line in text.splitlines())
    counts = _counts(url)
    return {"storage": kind, "procs": procs, "budget": trials, "failed_procs": sum(c != 0 for c in codes),
            "error_lines": error_lines, "trials": sum(counts.values()), "states": counts, "wall_s": round(wall, 1)}


def optuna_create(url: str) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(study_name="stress", storage=url, load_if_exists=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", type=int, default=32)
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--sleep", type=float, default=0.05)
    ap.add_argument("--storages", default="journal,postgresql,optuna-sqlite")
    args = ap.parse_args()
    out = HERE / "out" / "stress"
    out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="honing-stress-"))
    root.chmod(0o755)  # as root the server runs as the postgres user, who must reach its folder
    server = None
    try:
        pg_url = None
        if "postgresql" in args.storages:
            from _postgres import PostgresServer

            (root / "pg").mkdir()
            server = PostgresServer(root / "pg")
            server.start(options=f"-c max_connections={4 * args.procs + 20}")
            pg_url = server.new_database()
        for kind in args.storages.split(","):
            row = one(kind, args.procs, args.trials, args.sleep, root, pg_url)
            print(json.dumps(row), flush=True)
            with (out / "results.jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
