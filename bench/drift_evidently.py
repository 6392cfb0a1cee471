"""(drift) False alarms and power of honing's drift test against Evidently's default preset, on the
same synthetic windows.

Reference: 5,000 rows, four standard-normal numeric features and one categorical (red/green/blue
at 0.5/0.3/0.2). Windows of 1,000 rows (and 5,000 for the large-window rules):

* no shift: 200 windows drawn like the reference -> the share called drifted (false alarms);
* a 0.5-standard-deviation mean shift of one numeric feature: 100 windows -> the share called
  drifted (power), and the share where the shifted column itself was flagged;
* a categorical shift (0.5/0.3/0.2 -> 0.35/0.3/0.35): 100 windows, the same.

honing: ``honing.serve.detect_drift`` with its defaults (tests by rule, Benjamini-Hochberg,
alpha 0.01; the window drifts when any test drifts). Evidently: the legacy ``DataDriftPreset``
with its defaults (per column KS / chi-square at p < 0.05 up to 1,000 rows, Wasserstein /
Jensen-Shannon > 0.1 above; the data set drifts when at least half the columns do).

    bench/run_serve.sh bench/drift_evidently.py
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

import numpy as np

from _common import machine, save

COLUMNS = ["a", "b", "c", "d", "colour"]
COLOURS = np.array(["red", "green", "blue"], dtype=object)


def table(rng: np.random.Generator, n: int, *, shift: float = 0.0, colours=(0.5, 0.3, 0.2)) -> np.ndarray:
    x = np.empty((n, 5), dtype=object)
    num = rng.normal(size=(n, 4))
    num[:, 1] += shift
    x[:, :4] = num
    x[:, 4] = COLOURS[rng.choice(3, size=n, p=colours)]
    return x


def frame(x: np.ndarray) -> Any:
    import pandas as pd

    df = pd.DataFrame({c: x[:, i] for i, c in enumerate(COLUMNS)})
    for c in COLUMNS[:4]:
        df[c] = df[c].astype(float)
    return df


def honing_verdict(reference: dict[str, Any], x: np.ndarray, column: str | None) -> tuple[bool, bool]:
    from honing.serve import detect_drift

    report = detect_drift(reference, x)
    return report.drifted, bool(column and any(t.name == column and t.drifted for t in report.tests))


def evidently_verdict(ref_df: Any, x: np.ndarray, column: str | None) -> tuple[bool, bool]:
    from evidently.legacy.metric_preset import DataDriftPreset
    from evidently.legacy.report import Report

    report = Report(metrics=[DataDriftPreset()])
    report.run(reference_data=ref_df, current_data=frame(x))
    result = report.as_dict()["metrics"]
    dataset = next(m["result"] for m in result if "dataset_drift" in m["result"])
    by_column = next(m["result"]["drift_by_columns"] for m in result if "drift_by_columns" in m["result"])
    return bool(dataset["dataset_drift"]), bool(column and by_column[column]["drift_detected"])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="a fifth of the windows")
    args = p.parse_args()
    scale = 5 if args.quick else 1
    warnings.filterwarnings("ignore")
    from honing.data import feature_profile

    rng = np.random.default_rng(0)
    ref_x = table(rng, 5000)
    reference = {"features": feature_profile(ref_x, COLUMNS, ["numeric"] * 4 + ["categorical"], seed=0)}
    ref_df = frame(ref_x)
    cases = [("no shift", 1000, 200, {}, None), ("no shift", 5000, 50, {}, None),
             ("0.5 sd mean shift of b", 1000, 100, {"shift": 0.5}, "b"),
             ("0.5 sd mean shift of b", 5000, 50, {"shift": 0.5}, "b"),
             ("colour 0.5/0.3/0.2 -> 0.35/0.3/0.35", 1000, 100, {"colours": (0.35, 0.3, 0.35)}, "colour")]
    rows = []
    for name, n, windows, kw, column in cases:
        windows = max(10, windows // scale)
        got: dict[str, list[tuple[bool, bool]]] = {"honing": [], "evidently": []}
        seconds = {"honing": 0.0, "evidently": 0.0}
        wrng = np.random.default_rng(1000 + n)
        for _ in range(windows):
            x = table(wrng, n, **kw)
            for who, fn in (("honing", lambda: honing_verdict(reference, x, column)),
                            ("evidently", lambda: evidently_verdict(ref_df, x, column))):
                t0 = time.perf_counter()
                got[who].append(fn())
                seconds[who] += time.perf_counter() - t0
        row = {"case": name, "rows": n, "windows": windows}
        for who in ("honing", "evidently"):
            row[f"{who}_drifted"] = sum(d for d, _ in got[who]) / windows
            row[f"{who}_column_flagged"] = sum(c for _, c in got[who]) / windows if column else None
            row[f"{who}_ms_per_window"] = 1e3 * seconds[who] / windows
        rows.append(row)
        print(f"{name:<36} n={n:<5} windows={windows:<4} honing drifted {row['honing_drifted']:.3f} "
              f"(column {row['honing_column_flagged']})  evidently dataset drift {row['evidently_drifted']:.3f} "
              f"(column {row['evidently_column_flagged']})  ms/window {row['honing_ms_per_window']:.1f} vs "
              f"{row['evidently_ms_per_window']:.1f}", flush=True)
    print(f"wrote {save('drift_evidently', {'machine': machine(), 'cases': rows})}")


if __name__ == "__main__":
    main()
