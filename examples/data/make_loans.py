"""Writes loans.csv: 2,000 synthetic loan decisions with a built-in bias, for the fairness
audit example (examples/loans-fairness.yaml). Synthetic: no real person is in it.

Income, debt ratio and years employed decide most approvals; past decisions also favoured
group "m" of column ``sex`` at equal figures (+0.8 on the decision's logit), and the income
of group "f" is lower on average. A model that learns from these decisions learns the bias,
with the column as an input or not (income carries part of it).

usage: python examples/data/make_loans.py   (seed 0; rewrites examples/data/loans.csv)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def main() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    sex = rng.choice(["f", "m"], size=n)
    age_band = rng.choice(["<30", "30-50", ">50"], size=n, p=[0.3, 0.5, 0.2])
    income = np.round(rng.lognormal(mean=np.where(sex == "f", 3.55, 3.75), sigma=0.35), 1)  # thousands
    debt_ratio = np.round(np.clip(rng.normal(0.35, 0.15, size=n), 0.0, 1.0), 3)
    years = np.clip(np.round(rng.gamma(2.0, 3.0, size=n)), 0, 40).astype(int)
    logit = (0.06 * (income - 40) - 4.0 * (debt_ratio - 0.35) + 0.08 * (years - 6) + 0.8 * (sex == "m") - 0.3
             + rng.normal(0, 0.5, size=n))
    approved = (logit > 0).astype(int)
    lines = ["sex,age_band,income,debt_ratio,years_employed,approved"]
    lines += [f"{s},{a},{i},{d},{y},{t}" for s, a, i, d, y, t in zip(sex, age_band, income, debt_ratio, years, approved)]
    (Path(__file__).resolve().parent / "loans.csv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
