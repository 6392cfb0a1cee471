"""honing's model beside the quick baselines every run fits (same split, same test rows).

usage: bench/run.sh bench/baselines.py [--only NAME ...] [--n-trials N]

Runs example recipes and public data sets nobody built honing with (mlbench's LetterRecognition
and Shuttle, read from the Debian package r-cran-mlbench with `rdata`; see --help of
``mlbench_csv``), each through ``honing.run`` as a new user would, and writes
bench/out/baselines.json: per run, the test metrics, every baseline's, the primary metric and
whether honing beat the best baseline.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MLBENCH_DEB = "r-cran-mlbench"

RUNS = {  # name -> (recipe or csv set, overrides)
    "digits-mlp": ("examples/digits-mlp.yaml", {}),
    "wine-cv": ("examples/wine-cv.yaml", {}),
    "diabetes-regression": ("examples/diabetes-regression.yaml", {}),
    "breast-cancer-multiobjective": ("examples/breast-cancer-multiobjective.yaml", {}),
    "letter-recognition": ("mlbench:LetterRecognition:lettr", {}),
    "shuttle": ("mlbench:Shuttle:Class", {}),
}


def mlbench_csv(name: str, folder: Path) -> Path:
    """The mlbench data set ``name`` as a CSV file (apt-get download + dpkg -x + rdata; no network
    beyond the Debian mirror)."""
    out = folder / f"{name}.csv"
    if out.is_file():
        return out
    subprocess.run(["apt-get", "download", MLBENCH_DEB], cwd=folder, check=True, capture_output=True)
    deb = next(folder.glob(f"{MLBENCH_DEB}_*.deb"))
    subprocess.run(["dpkg", "-x", str(deb), str(folder / "x")], check=True)
    import rdata

    rda = next((folder / "x").rglob(f"mlbench/data/{name}.rda"))
    rdata.read_rda(str(rda))[name].to_csv(out, index=False)
    return out


def recipe_for(spec: str, folder: Path, n_trials: int | None) -> tuple[object, dict]:
    import yaml

    if not spec.startswith("mlbench:"):
        return ROOT / spec, {"n_trials": n_trials}
    _, name, target = spec.split(":")
    csv = mlbench_csv(name, folder)
    recipe = yaml.safe_load((ROOT / "examples" / "digits-mlp.yaml").read_text())  # the demo's search, new data
    recipe["name"] = name.lower()
    recipe["data"] = {"source": f"csv:{csv}", "target": target, "val_size": 0.15, "test_size": 0.15}
    recipe["tune"]["n_trials"] = n_trials or 12
    return recipe, {}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=sorted(RUNS))
    ap.add_argument("--n-trials", type=int, default=None, help="override every recipe's budget")
    ap.add_argument("--data", default=str(HERE / "out" / "mlbench"), help="folder for the mlbench CSV files")
    args = ap.parse_args()
    import honing

    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    rows = {}
    for name in args.only or list(RUNS):
        spec, _ = RUNS[name]
        recipe, over = recipe_for(spec, data, args.n_trials)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            r = honing.run(recipe, out=Path(tmp) / name, progress=False, **{k: v for k, v in over.items() if v})
        res = r.results
        rows[name] = {"seconds": round(time.perf_counter() - t0, 1), "data": res["data"]["rows"],
                      "target": res["data"]["target"], "dropped": res["data"].get("dropped"),
                      "test_metrics": res["test_metrics"], "primary_metric": res["primary_metric"],
                      "baselines": {k: v.get("metrics") for k, v in res["baselines"].items()},
                      "vs_baseline": res["vs_baseline"], "imbalance": res["imbalance"],
                      "trials": res["trials"], "search": res.get("search")}
        vs = res["vs_baseline"] or {}
        print(f"{name}: {vs.get('metric')} honing {vs.get('model', float('nan')):.4f} vs best baseline "
              f"{vs.get('best_baseline')} {vs.get('baseline', float('nan')):.4f} ({rows[name]['seconds']} s)",
              flush=True)
    out = HERE / "out" / "baselines.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
