"""``evaluate_robustness``: clean against robust accuracy over a list of epsilons, with the
sanity checks that tell a real robustness figure from a broken attack.

Checks (each ``{"check", "passed", "detail"}``):

* no attack raises accuracy above the clean accuracy;
* accuracy does not rise with epsilon (a larger ball holds every smaller one's attacks);
* PGD's loss rises over its steps (else the gradient does not reach the input);
* an unbounded PGD (epsilon = the whole data range) brings accuracy to at most 5%;
* the black-box Square attack is not stronger than the white-box ones: if it is, the gradients
  are likely masked (obfuscated) and the white-box figures overstate robustness.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from honing._core import ConfigError, check_int
from honing.robust._attacks import ATTACKS, NORMS, eval_mode
from honing.robust._corrupt import CORRUPTIONS, corrupt
from honing.robust._space import InputSpace

__all__ = ["evaluate_robustness"]

_TOLERANCE = 0.01  # accuracy differences this small are noise between attacks' random starts


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    right = 0
    with eval_mode(model), torch.no_grad():
        for i in range(0, len(x), batch_size):
            right += int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
    return right / max(1, len(x))


def _attacked(model: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str, epsilon: float,
              batch_size: int, kw: dict[str, Any]) -> tuple[torch.Tensor, list[float]]:
    """Each row still classified right after the attack (bool ``(N,)``), and the first batch's
    attack loss per step."""
    right, curve = [], None
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        result = ATTACKS[name](model, xb, yb, epsilon, **kw)
        with eval_mode(model), torch.no_grad():
            right.append((model(result.x).argmax(1) == yb).cpu())
        if curve is None:
            curve = result.losses
    return (torch.cat(right) if right else torch.zeros(0, dtype=torch.bool)), curve or []


def evaluate_robustness(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epsilons: Sequence[float],
    space: InputSpace | None = None,
    attacks: Sequence[str] = ("fgsm", "pgd", "apgd", "square"),
    norm: str = "linf",
    steps: int = 20,
    restarts: int = 1,
    queries: int = 1000,
    corruptions: Sequence[str] = (),
    batch_size: int = 256,
    seed: int = 0,
) -> dict[str, Any]:
    """Accuracy of ``model`` on ``x, y`` (model inputs, class labels) clean and under each attack
    at each epsilon (in ``space``'s units; L-inf or L2), image corruptions at severities 1-5, and
    the sanity checks. JSON-able; accuracies keyed by attack then epsilon (as text).
    ``robust_accuracy``: the share of rows that no attack fooled at that epsilon (each row
    against its strongest attack, as AutoAttack counts)."""
    space = space or InputSpace.identity()
    if norm not in NORMS:
        raise ConfigError(f"invalid norm: got {norm!r}; allowed: {', '.join(NORMS)}")
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown:
        raise ConfigError(f"invalid attacks: got {unknown}; allowed: {', '.join(ATTACKS)}")
    if norm == "l2" and any(a in ("fgsm", "square") for a in attacks):
        raise ConfigError("invalid attacks for norm l2: fgsm and square are L-inf attacks; allowed: pgd, apgd")
    eps = sorted(float(e) for e in epsilons)
    if not eps or eps[0] < 0:
        raise ConfigError(f"invalid epsilons: got {list(epsilons)}; allowed: one or more numbers >= 0")
    check_int("batch_size", batch_size, low=1)
    if x.dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        raise ConfigError(f"adversarial attacks need float inputs; got {x.dtype} (token ids have no gradient)")
    options = {
        "fgsm": {"space": space},
        "pgd": {"space": space, "norm": norm, "steps": steps, "restarts": restarts, "seed": seed},
        "apgd": {"space": space, "norm": norm, "steps": max(steps, 10), "seed": seed},
        "square": {"space": space, "queries": queries, "seed": seed},
    }
    out: dict[str, Any] = {"rows": int(len(x)), "units": space.units, "norm": norm, "epsilons": eps,
                           "steps": steps, "restarts": restarts, "queries": queries}
    t0 = time.perf_counter()
    clean = _accuracy(model, x, y, batch_size)
    out["clean_accuracy"] = clean
    table: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    loss_curve: list[float] = []
    survived = {_key(e): torch.ones(len(x), dtype=torch.bool) for e in eps}  # no attack fooled the row
    for name in attacks:
        t = time.perf_counter()
        table[name] = {}
        for e in eps:
            right, curve = _attacked(model, x, y, name, e, batch_size, options[name])
            table[name][_key(e)] = float(right.double().mean()) if len(right) else 0.0
            survived[_key(e)] &= right
            if name == "pgd" and e == eps[-1]:
                loss_curve = curve
        seconds[name] = round(time.perf_counter() - t, 3)
    out["accuracy"] = table
    if loss_curve:
        out["pgd_loss_by_step"] = [round(v, 5) for v in loss_curve]
    white = [a for a in attacks if a in ("pgd", "apgd")]
    # robust accuracy: the rows every attack left right (each row against its strongest attack)
    out["robust_accuracy"] = {k: float(v.double().mean()) if len(v) else 0.0 for k, v in survived.items()}
    if corruptions:
        out["corruptions"] = _corruptions(model, x, y, corruptions, space, batch_size, seed)
    out["checks"] = _checks(model, x, y, clean, table, eps, white, loss_curve, space, norm, batch_size, seed)
    seconds["total"] = round(time.perf_counter() - t0, 3)
    out["seconds"] = seconds
    return out


def _key(e: float) -> str:
    return f"{e:g}"


def _corruptions(model: nn.Module, x: torch.Tensor, y: torch.Tensor, names: Sequence[str], space: InputSpace,
                 batch_size: int, seed: int) -> dict[str, Any]:
    bad = [n for n in names if n not in CORRUPTIONS]
    if bad:
        raise ConfigError(f"invalid corruptions: got {bad}; allowed: {', '.join(CORRUPTIONS)}")
    if x.dim() != 4:
        raise ConfigError(f"corruptions apply to images (N, C, H, W); got inputs of shape {tuple(x.shape)}")
    out: dict[str, Any] = {}
    for name in names:
        out[name] = [_accuracy(model, corrupt(x, name, s, space=space, seed=seed + s), y, batch_size)
                     for s in range(1, 6)]
    out["mean"] = sum(sum(v) for v in out.values()) / (5 * len(names))
    return out


def _checks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, clean: float, table: dict[str, dict[str, float]],
            eps: list[float], white: list[str], loss_curve: list[float], space: InputSpace, norm: str,
            batch_size: int, seed: int) -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = []

    def add(check: str, passed: bool, detail: str) -> None:
        checks.append({"check": check, "passed": bool(passed), "detail": detail})

    above = [(a, e, v) for a, row in table.items() for e, v in row.items() if v > clean + 1e-9]
    add("no attack raises accuracy", not above,
        "every attacked accuracy is at most the clean accuracy" if not above else
        "; ".join(f"{a} at {e}: {v:.3f} > clean {clean:.3f}" for a, e, v in above))
    rising = [(a, eps[i], eps[i + 1]) for a, row in table.items() for i in range(len(eps) - 1)
              if row[_key(eps[i + 1])] > row[_key(eps[i])] + _TOLERANCE]
    add("accuracy falls as epsilon grows", not rising,
        "no attack does better at a larger epsilon" if not rising else
        "; ".join(f"{a}: higher at {b:g} than at {s:g} (too few steps?)" for a, s, b in rising))
    if loss_curve:
        add("the attack loss rises with steps", loss_curve[-1] > loss_curve[0],
            f"PGD's mean loss went from {loss_curve[0]:.4f} to {loss_curve[-1]:.4f} at epsilon {eps[-1]:g}")
    if white:
        n = min(len(x), 200)
        width = space.width if space.width != float("inf") else 10.0 * max(eps[-1], 1.0)
        big = width if norm == "linf" else width * float(x[0].numel()) ** 0.5
        right, _ = _attacked(model, x[:n], y[:n], "pgd", big, batch_size,
                             {"space": space, "norm": norm, "steps": 20, "seed": seed})
        acc = float(right.double().mean()) if len(right) else 0.0
        add("an unbounded attack reaches 0", acc <= 0.05,
            f"PGD with epsilon {big:g} (the whole range) leaves {acc:.3f} accuracy on {n} rows"
            + ("" if acc <= 0.05 else ": gradients are likely masked, or the unchangeable features decide"))
    if "square" in table and white:
        stronger = [(e, table["square"][_key(e)], min(table[a][_key(e)] for a in white)) for e in eps
                    if table["square"][_key(e)] < min(table[a][_key(e)] for a in white) - _TOLERANCE]
        add("the black-box attack is not stronger than the white-box ones", not stronger,
            "Square never beats PGD/APGD" if not stronger else
            "gradient masking is likely: " + "; ".join(f"at {e:g} square leaves {s:.3f}, white-box {w:.3f}"
                                                      for e, s, w in stronger))
    return checks
