"""The report's charts, built from plain trial dicts with the kit in ``_svg``."""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Sequence
from html import escape
from typing import Any

from honing.report import _svg as s

_WITH_LEGEND = (24, 170, 44, 62)  # plot margins (top, right, bottom, left) leaving room for a legend


# ---------------------------------------------------------------------------- trial helpers
def curve(trial: dict[str, Any]) -> list[tuple[int, float]]:
    """The trial's intermediate values as sorted (epoch, value) pairs, non-finite ones dropped."""
    out = []
    for k, v in (trial.get("intermediate") or {}).items():
        try:
            epoch = int(k)
        except (TypeError, ValueError):
            continue
        if s.is_number(v):
            out.append((epoch, float(v)))
    return sorted(out)


def trial_value(trial: dict[str, Any], index: int = 0) -> float | None:
    """Objective ``index`` of a complete trial; a pruned trial's last intermediate value."""
    values = trial.get("values") or []
    if trial.get("state") == "COMPLETE" and index < len(values) and s.is_number(values[index]):
        return float(values[index])
    if trial.get("state") == "PRUNED" and index == 0:
        c = curve(trial)
        return c[-1][1] if c else None
    return None


def ranked(trials: Sequence[dict[str, Any]], direction: str) -> list[dict[str, Any]]:
    """Complete trials with a finite first objective, best first (ties by trial number)."""
    done = [t for t in trials if t.get("state") == "COMPLETE" and trial_value(t) is not None]
    sign = -1.0 if direction == "maximize" else 1.0
    return sorted(done, key=lambda t: (sign * trial_value(t), t.get("number", 0)))  # type: ignore[operator]


def label_of(v: Any) -> str:
    """A parameter value as a short label: lists as JSON, None as ``None``."""
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v, default=str, sort_keys=True)
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        return s.fmt(v)
    return str(v)


LOG_RATIO = 20.0  # positive values spanning this factor or more are drawn on a log axis


def _auto_log(values: Sequence[float]) -> bool:
    """A log axis for positive values that span orders of magnitude (losses of diverging trials),
    so the useful ones are not squashed at zero."""
    vals = s.finite(values)
    return bool(vals) and min(vals) > 0 and max(vals) / min(vals) >= LOG_RATIO


# ---------------------------------------------------------------------------- charts
def history_chart(trials: Sequence[dict[str, Any]], *, index: int, direction: str, name: str,
                  best_line: bool) -> str:
    """Each trial's value by number, coloured by state, with the best-so-far step line."""
    numbers = [int(t.get("number", i)) for i, t in enumerate(trials)]
    points = [(int(t.get("number", i)), trial_value(t, index), t) for i, t in enumerate(trials)]
    vals = [v for _, v, _ in points if v is not None]
    log = _auto_log(vals)
    plot = s.Plot(width=900, height=340, x_range=(min(numbers) - 0.5, max(numbers) + 0.5),
                  y_range=s.extent(vals, pad=0.08, log=log), y_log=log, margin=_WITH_LEGEND)
    plot.axes(x_label="trial number", y_label=f"{name} ({direction})", x_integer=True)
    if best_line:
        best, steps = None, []
        for n, v, t in sorted(points, key=lambda p: p[0]):
            if t.get("state") != "COMPLETE" or v is None:
                continue
            if best is None or (v > best if direction == "maximize" else v < best):
                if best is not None:
                    steps.append((n, best))
                best = v
                steps.append((n, best))
        if steps:
            steps.append((max(numbers), steps[-1][1]))
            plot.polyline([p[0] for p in steps], [p[1] for p in steps], stroke="#cc3311", width=2,
                          title=f"best so far: {s.fmt(steps[-1][1])}")
    seen_states: list[str] = []
    for n, v, t in points:
        state = str(t.get("state", "?"))
        color = s.STATE_COLORS.get(state, "#999999")
        if state == "FAIL":
            err = str((t.get("user_attrs") or {}).get("error", ""))[:200]
            plot.parts.append(s.cross(plot.x(n), plot.bottom - 6, 4, stroke=color,
                                      title=f"trial {n} FAIL: {err}"))
        elif v is not None:
            extra = " (last intermediate value)" if state == "PRUNED" else ""
            plot.parts.append(s.circle(*plot.point(n, v), 4, fill=color, opacity=0.85,
                                       title=f"trial {n} {state}: {s.fmt(v)}{extra}"))
        else:
            continue
        if state not in seen_states:
            seen_states.append(state)
    items = [(st.lower(), s.STATE_COLORS.get(st, "#999999"), "cross" if st == "FAIL" else "dot")
             for st in sorted(seen_states, key=lambda x: list(s.STATE_COLORS).index(x)
                              if x in s.STATE_COLORS else 99)]
    if best_line:
        items.append(("best so far", "#cc3311", "line"))
    plot.legend(items)
    return plot.render(f"optimization history: {name}")


def importance_chart(importances: dict[str, float]) -> str:
    items = sorted(importances.items(), key=lambda kv: (-(kv[1] if s.is_number(kv[1]) else 0), kv[0]))
    return s.hbars([k for k, _ in items], [float(v) if s.is_number(v) else 0.0 for _, v in items],
                   width=900, label="parameter importances", value_label="importance")


_MISSING = object()


def short_name(name: str, max_chars: int) -> str:
    """The last dotted components of ``name`` that fit in ``max_chars`` (``training.optimizer.lr``
    -> ``optimizer.lr``), cut with an ellipsis when even the last one is too long."""
    if len(name) <= max_chars:
        return name
    parts = name.split(".")
    out = parts[-1]
    for p in reversed(parts[:-1]):
        if len(p) + 1 + len(out) > max_chars:
            break
        out = f"{p}.{out}"
    return out if len(out) <= max_chars else out[:max_chars - 1] + "…"


def _axis_spec(name: str, values: list[Any], log_params: set[str]) -> dict[str, Any]:
    """How one parallel-coordinates axis places values: numeric (linear/log) or categorical.

    Absent values (inactive conditional parameters) and None go to a slot under the axis.
    """
    present = [v for v in values if v is not _MISSING and v is not None]
    absent, none = any(v is _MISSING for v in values), any(v is None for v in values)
    slot = "/".join(x for x, on in (("None", none), ("absent", absent)) if on)
    if present and all(s.is_number(v) for v in present):
        log = name in log_params and min(present) > 0
        lo, hi = s.extent(present, pad=0.0, log=log)
        return {"kind": "num", "lo": lo, "hi": hi, "log": log, "slot": slot}
    cats = sorted({label_of(v) for v in present})
    return {"kind": "cat", "cats": cats, "slot": slot}


def parallel_chart(trials: Sequence[dict[str, Any]], *, params: Sequence[str], log_params: set[str],
                   objective: str, direction: str) -> str:
    """One polyline per complete trial across one axis per parameter and the objective."""
    done = ranked(trials, direction)[::-1]  # worst first, so the best lines are drawn on top
    width, height, top, bottom = 940.0, 420.0, 64.0, 350.0
    left, right = 80.0, width - 120
    names = list(params) + [objective]
    xs = [left + (right - left) * i / max(1, len(names) - 1) for i in range(len(names))]
    gap = (right - left) / max(1, len(names) - 1)
    stagger = len(names) > 1 and gap < 130
    max_chars = max(6, int((gap * (2 if stagger else 1) - 10) / 6.4))
    columns = [[(t.get("params") or {}).get(p, _MISSING) for t in done] for p in params]
    objective_vals = [trial_value(t) for t in done]
    specs = [_axis_spec(p, col, log_params) for p, col in zip(params, columns)]
    lo, hi = s.extent(objective_vals, pad=0.0)
    specs.append({"kind": "num", "slot": "", "log": False, "lo": lo, "hi": hi})
    slot_y = bottom + 22
    scales = [s.Scale(sp["lo"], sp["hi"], bottom, top, log=sp["log"]) if sp["kind"] == "num" else None
              for sp in specs]

    def place(k: int, v: Any) -> float:
        if v is _MISSING or v is None:
            return slot_y
        if scales[k] is not None:
            return scales[k](float(v))  # type: ignore[misc]
        cats = specs[k]["cats"]
        return bottom - (bottom - top) * (cats.index(label_of(v)) + 0.5) / len(cats)

    parts: list[str] = []
    for k, (t, value) in enumerate(zip(done, objective_vals)):
        ys = [place(j, col[k]) for j, col in enumerate(columns)] + [place(len(params), value)]
        color = s.colormap((value - lo) / (hi - lo) if hi > lo else 1.0)  # type: ignore[operator]
        desc = "; ".join(f"{p}={label_of((t.get('params') or {}).get(p, 'absent'))}" for p in params)
        parts.append(s.polyline(list(zip(xs, ys)), stroke=color, width=1.6, opacity=0.8,
                                title=f"trial {t.get('number')}: {objective}={s.fmt(value)}; {desc}"))
    for i, (x, name, spec) in enumerate(zip(xs, names, specs)):  # axes on top of the lines
        parts.append(s.line(x, top, x, bottom, stroke="#444"))
        y_label = top - 30 if stagger and i % 2 == 0 else top - 14
        parts.append(f'<g class="axis-label">{s.text(x, y_label, short_name(name, max_chars), anchor="middle")}'
                     f"<title>{escape(name)}</title></g>")
        ticks: list[tuple[float, str]] = []
        if scales[i] is not None:
            sc = scales[i]
            for tk in (sc.ticks(5) if spec["hi"] > spec["lo"] else [spec["lo"]]):  # type: ignore[union-attr]
                if top - 0.5 <= sc(tk) <= bottom + 0.5:  # type: ignore[misc]
                    ticks.append((sc(tk), s.fmt(tk, 3)))  # type: ignore[misc]
            if spec["log"]:
                parts.append(s.text(x + 4, top - 2, "log", size=9, cls="tick"))
        else:
            cats = spec["cats"]
            every = max(1, math.ceil(len(cats) / 14))
            ticks += [(bottom - (bottom - top) * (j + 0.5) / len(cats), c) for j, c in enumerate(cats)
                      if j % every == 0]
        if spec["slot"]:
            ticks.append((slot_y, spec["slot"]))
        for y, label in ticks:
            parts.append(s.line(x - 3, y, x + 3, y, stroke="#444"))
            shown = label if len(label) <= 16 else label[:15] + "…"
            parts.append(f"<g>{s.text(x - 5, y + 3.5, shown, anchor='end', size=9, cls='tick halo')}"
                         f"<title>{escape(label)}</title></g>")
    parts.append(s.color_bar(x=width - 70, y=top, height=bottom - top, lo=lo, hi=hi,
                             label=short_name(objective, 16), gradient_id="pc-gradient"))
    return s.svg(width, height, parts, label="parallel coordinates")


def learning_chart(trials: Sequence[dict[str, Any]], *, direction: str, metric: str, top_k: int = 5) -> str:
    """Intermediate values by epoch: the best ``top_k`` complete trials, pruned trials faint."""
    best = [t for t in ranked(trials, direction) if curve(t)][:top_k]
    pruned = [t for t in trials if t.get("state") == "PRUNED" and curve(t)]
    if not best and not pruned:
        return ""
    curves = [curve(t) for t in best + pruned]
    epochs = [e for c in curves for e, _ in c]
    vals = [v for c in curves for _, v in c]
    log = _auto_log(vals)
    plot = s.Plot(width=900, height=340, x_range=(min(epochs) - 0.2, max(epochs) + 0.2),
                  y_range=s.extent(vals, pad=0.06, log=log), y_log=log, margin=_WITH_LEGEND)
    plot.axes(x_label="epoch", y_label=metric, x_integer=True)
    for t in pruned:
        c = curve(t)
        plot.polyline([e for e, _ in c], [v for _, v in c], stroke="#888888", width=1, opacity=0.45,
                      title=f"trial {t.get('number')} (pruned at epoch {c[-1][0]})")
    items = []
    for i, t in enumerate(best):
        c = curve(t)
        color = s.PALETTE[i % len(s.PALETTE)]
        label = f"trial {t.get('number')}: {s.fmt(trial_value(t))}"
        plot.polyline([e for e, _ in c], [v for _, v in c], stroke=color, width=2, title=label)
        items.append((label, color, "line"))
    if pruned:
        items.append(("pruned trials", "#888888", "faint"))
    plot.legend(items)
    return plot.render("learning curves of the best trials")


def series_chart(history: Sequence[dict[str, Any]], keys: Sequence[str], *, title: str,
                 log: bool | None = None, width: float = 326) -> str:
    """Per-epoch series from ``history`` (one line per key present), e.g. loss and val_loss."""
    rows = [(r.get("epoch", i + 1), r) for i, r in enumerate(history)]
    keys = [k for k in keys if any(s.is_number(r.get(k)) for _, r in rows)]
    if not keys:
        return ""
    vals = [r[k] for _, r in rows for k in keys if s.is_number(r.get(k))]
    if log is None:
        log = _auto_log(vals)
    epochs = [e for e, _ in rows if s.is_number(e)] or [0]
    plot = s.Plot(width=width, height=280, x_range=(min(epochs) - 0.2, max(epochs) + 0.2),
                  y_range=s.extent(vals, pad=0.06, log=log), y_log=log, margin=(34, 12, 44, 62))
    plot.axes(x_label="epoch", y_label=title, x_integer=True)
    items = []
    for i, k in enumerate(keys):
        pts = [(e, r[k]) for e, r in rows if s.is_number(r.get(k))]
        color = s.PALETTE[i % len(s.PALETTE)]
        plot.polyline([e for e, _ in pts], [v for _, v in pts], stroke=color, width=2,
                      title=f"{k}: last {s.fmt(pts[-1][1])}")
        items.append((k, color, "line"))
    plot.legend(items, horizontal=True)
    return plot.render(f"final training: {title}")


def _flatten(rows: Sequence[Any]) -> list[list[float]]:
    return [list(r) if isinstance(r, (list, tuple)) else [r] for r in rows]


def residual_chart(y_true: Sequence[Any], y_pred: Sequence[Any], *, max_points: int = 3000) -> str:
    """Predicted value against residual (true - predicted), one colour per output."""
    t_rows, p_rows = _flatten(y_true), _flatten(y_pred)
    n = min(len(t_rows), len(p_rows))
    if n == 0:
        return ""
    step = max(1, math.ceil(n / max_points))
    pts: list[tuple[float, float, int]] = []
    for i in range(0, n, step):
        for k, (a, b) in enumerate(zip(t_rows[i], p_rows[i])):
            if s.is_number(a) and s.is_number(b):
                pts.append((float(b), float(a) - float(b), k))
    if not pts:
        return ""
    outputs = max(k for _, _, k in pts) + 1
    ry = max(abs(r) for _, r, _ in pts) or 1.0
    plot = s.Plot(width=900, height=360, x_range=s.extent([p for p, _, _ in pts]),
                  y_range=(-ry * 1.08, ry * 1.08),
                  margin=_WITH_LEGEND if outputs > 1 else (24, 16, 44, 62))
    plot.axes(x_label="predicted", y_label="residual (true − predicted)")
    plot.parts.append(s.line(plot.left, plot.y(0), plot.right, plot.y(0), stroke="#cc3311", dash="4 3"))
    r = 2.5 if len(pts) > 500 else 3.5
    for p, res, k in pts:
        plot.parts.append(s.circle(*plot.point(p, res), r, fill=s.PALETTE[k % len(s.PALETTE)], opacity=0.55))
    if outputs > 1:
        plot.legend([(f"output {k}", s.PALETTE[k % len(s.PALETTE)], "dot") for k in range(min(outputs, 8))])
    return plot.render("residuals on the test set")


def pareto_chart(trials: Sequence[dict[str, Any]], *, pareto: Sequence[int], selected: int | None,
                 names: Sequence[str], directions: Sequence[str]) -> str:
    """Two objectives of every complete trial; the Pareto front joined, the selected one ringed."""
    pts = []
    for t in trials:
        a, b = trial_value(t, 0), trial_value(t, 1)
        if t.get("state") == "COMPLETE" and a is not None and b is not None:
            pts.append((int(t.get("number", -1)), a, b))
    if not pts:
        return ""
    front = set(int(n) for n in pareto)
    plot = s.Plot(width=900, height=400, x_range=s.extent([a for _, a, _ in pts], pad=0.08),
                  y_range=s.extent([b for _, _, b in pts], pad=0.08), margin=_WITH_LEGEND)
    plot.axes(x_label=f"{names[0]} ({directions[0]})", y_label=f"{names[1]} ({directions[1]})")
    on = sorted((p for p in pts if p[0] in front), key=lambda p: (p[1], p[2]))
    if len(on) > 1:
        plot.polyline([a for _, a, _ in on], [b for _, _, b in on], stroke=s.PALETTE[0], width=1.2,
                      dash="4 3")
    for n, a, b in pts:
        if n not in front:
            plot.parts.append(s.circle(*plot.point(a, b), 4, fill="#aaaaaa",
                                       title=f"trial {n}: {s.fmt(a)}, {s.fmt(b)}"))
    for n, a, b in on:
        plot.parts.append(s.circle(*plot.point(a, b), 5, fill=s.PALETTE[0],
                                   title=f"trial {n} (Pareto front): {s.fmt(a)}, {s.fmt(b)}"))
    items = [("trial", "#aaaaaa", "dot"), ("Pareto front", s.PALETTE[0], "dot")]
    chosen = [p for p in pts if p[0] == selected]
    if chosen:
        n, a, b = chosen[0]
        x, y = plot.point(a, b)
        plot.parts.append(s.circle(x, y, 9, fill="none", stroke="#cc3311", stroke_width=2.5,
                                   title=f"selected trial {n}: {s.fmt(a)}, {s.fmt(b)}"))
        plot.parts.append(s.text(x + 12, y - 10, f"selected: trial {n}", size=11, cls="callout"))
        items.append(("selected", "#cc3311", "ring"))
    plot.legend(items)
    return plot.render("Pareto front")
