"""The report's sections: each takes ``ReportData`` and returns (id, heading, html) or None."""

from __future__ import annotations

import json
import numbers
from collections.abc import Sequence
from html import escape
from typing import Any

from honing.report import _charts as c
from honing.report import _svg as s
from honing.report._data import TRIAL_STATES, ReportData

Section = tuple[str, str, str]


# ---------------------------------------------------------------------------- small HTML helpers
def cell(v: Any) -> str:
    """One value as escaped table text: floats rounded, lists as JSON."""
    if v is None or (isinstance(v, numbers.Real) and not isinstance(v, bool)):
        return escape(s.fmt(v))
    return escape(c.label_of(v))


def table(columns: Sequence[Any], rows: Sequence[Sequence[Any]], *, cls: str = "") -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in columns)
    thead = f"<thead><tr>{head}</tr></thead>" if any(str(h) for h in columns) else ""
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    klass = f' class="{cls}"' if cls else ""
    return f"<table{klass}>{thead}<tbody>{body}</tbody></table>"


def kv_table(pairs: dict[str, Any], *, key: str, value: str) -> str:
    return table([key, value], [[k, v] for k, v in pairs.items()], cls="kv")


def duration(seconds: Any) -> str:
    if not s.is_number(seconds):
        return "—"
    sec = float(seconds)
    if sec < 60:
        return f"{sec:.1f} s"
    if sec < 3600:
        return f"{int(sec // 60)} min {int(sec % 60):02d} s"
    return f"{int(sec // 3600)} h {int(sec % 3600 // 60):02d} min"


def figure(svg_markup: str, caption: str = "") -> str:
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f'<figure>{svg_markup}{cap}</figure>' if svg_markup else ""


def plain(obj: Any) -> Any:
    """JSON/YAML-safe copy: tuples and sets to lists, keys to str, unknown objects to str."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((plain(v) for v in obj), key=str)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


# ---------------------------------------------------------------------------- sections
def summary(data: ReportData) -> Section:
    names = data.objective_labels()
    facts: dict[str, Any] = {"task": data.task}
    facts["objective" if len(names) == 1 else "objectives"] = ", ".join(
        f"{n} ({d})" for n, d in zip(names, data.directions))
    if data.best_value is not None and not data.multi_objective:
        chosen = f" (trial {data.selected_trial}, the chosen trial)" if data.selected_trial is not None else ""
        facts[f"best validation value{chosen}"] = data.best_value
    elif data.selected_trial is not None:
        facts["selected trial"] = data.selected_trial
    fv = data.final_validation or {}
    if fv.get("value") is not None:
        facts["final model's validation value"] = f"{s.fmt(fv['value'])} ({fv.get('note', '')})"
    if data.tie_break:
        facts["tie break"] = data.tie_break
    if data.seed is not None:
        facts["seed"] = data.seed
    parts = ['<div class="grid">', "<div><h3>Run</h3>", kv_table(facts, key="", value=""), "</div>"]
    if data.test_metrics:
        first = [data.primary_metric] if data.primary_metric in data.test_metrics else []
        ordered = {_metric_label(k): data.test_metrics[k] for k in first + [k for k in data.test_metrics
                                                                           if k not in first]}
        parts += ['<div><h3>Test metrics</h3>', kv_table(ordered, key="metric", value="value"), "</div>"]
    if data.counts:
        order = [k for k in TRIAL_STATES if k in data.counts] + sorted(
            k for k in data.counts if k not in TRIAL_STATES)
        badges = "".join(
            f'<span class="badge" style="border-color:{s.STATE_COLORS.get(k.upper(), "#999")}">'
            f"{escape(k.lower())} <b>{escape(str(data.counts[k]))}</b></span>" for k in order)
        total = sum(v for v in data.counts.values() if isinstance(v, int))
        parts += [f"<div><h3>Trials ({total})</h3><p>{badges}</p></div>"]
    if data.timings:
        parts += ["<div><h3>Timings</h3>", table(["stage", "time"], [
            [k, duration(v)] for k, v in data.timings.items()], cls="kv"), "</div>"]
    if data.best_params:
        title = "Selected parameters" if data.multi_objective else "Best parameters"
        parts += [f'<div class="wide"><h3>{title}</h3>',
                  kv_table(data.best_params, key="parameter", value="value"), "</div>"]
    parts.append("</div>")
    if data.warnings:
        items = "".join(f"<li>{escape(w)}</li>" for w in data.warnings)
        parts.insert(0, f'<div class="warnings"><b>Read this first</b><ul>{items}</ul></div>')
    return "summary", "Summary", "".join(parts)


def _metric_label(key: str) -> str:
    """Macro averages say so (a reader must not take them for accuracy)."""
    labels = {"f1_macro": "f1_macro (macro average over classes)",
              "precision_macro": "precision_macro (macro average)", "recall_macro": "recall_macro (macro average)",
              "balanced_accuracy": "balanced_accuracy (mean recall per class)"}
    return labels.get(key, key)


_DROP_WORDS = {"duplicates": "duplicate rows (drop_duplicates)", "missing_target": "rows without a target",
               "empty_text": "rows with empty text", "other_classes": "rows of other labels"}


def data_section(data: ReportData) -> Section | None:
    """Source, target, rows per split, rows dropped, columns by kind, values imputed, class balance."""
    d = data.data_summary
    if not d:
        return None
    read = d.get("rows_read") or 0
    facts: dict[str, Any] = {"source": d.get("source"), "target": ", ".join(map(str, d.get("target") or [])),
                             "target chosen by": d.get("target_from"), "rows read": read}
    for key, n in (d.get("dropped") or {}).items():
        facts[f"dropped: {_DROP_WORDS.get(key, key)}"] = f"{n} ({100 * n / read:.1f}%)" if read else n
    rows = d.get("rows") or {}
    facts["rows per split"] = ", ".join(f"{k} {v}" for k, v in rows.items())
    if d.get("test_rows_from"):
        facts["test rows"] = d["test_rows_from"]
    if d.get("scale_target"):
        facts["target standardized for training"] = ("yes" if d["scale_target"]["on"] else "no") + (
            f" ({d['scale_target']['origin']})" if d["scale_target"].get("origin") != "default" else " (the default)")
    if d.get("columns"):
        facts["columns"] = f"{d['columns']['numeric']} numeric, {d['columns']['categorical']} categorical"
    imputed = d.get("imputed")
    if imputed is not None:
        cols = imputed.get("columns") or {}
        facts["values imputed"] = (f"{imputed.get('values', 0)}" + (
            " (" + ", ".join(f"{c}: {n}" for c, n in list(cols.items())[:8]) + (", ..." if len(cols) > 8 else "")
            + f"; numeric with the {imputed.get('numeric_with')}, categorical with the most frequent)" if cols else ""))
    issues = d.get("label_issues")
    if issues:
        facts["labels that look wrong (data.check_labels)"] = (
            f"{issues['found']} of {issues['checked']} train+validation rows ({issues['train']} training, "
            f"{issues['val']} validation; {issues['how']})" + (
                f"; {issues['dropped']} training rows dropped" if issues["action"] == "drop" else "; kept"))
    parts = ['<div class="grid"><div class="wide">', kv_table(facts, key="", value=""), "</div></div>"]
    if issues and issues.get("rows"):
        body = "".join(f"<tr><td>{escape(r['split'])}</td><td>{r['row']}</td><td>{escape(str(r['given']))}</td>"
                       f"<td>{escape(str(r['suggested']))}</td><td>{r['confidence']:.3f}</td></tr>"
                       for r in issues["rows"][:20])
        parts.append("<h3>Labels that look wrong</h3><table><thead><tr><th>split</th><th>row in the source</th>"
                     "<th>given label</th><th>likely label</th><th>probability of the given label</th></tr></thead>"
                     f"<tbody>{body}</tbody></table>")
    classes = d.get("classes")
    if classes:
        splits = list(next(iter(classes.values())).keys())
        totals = {sp: sum(c[sp] for c in classes.values()) or 1 for sp in splits}
        top = max(c.get("train", 0) for c in classes.values()) or 1
        body = []
        for name, counts in list(classes.items())[:50]:
            share = counts.get("train", 0) / top
            bar = (f'<span class="balance" style="width:{max(1, round(160 * share))}px"></span>')
            cells = "".join(f"<td>{counts[sp]} ({100 * counts[sp] / totals[sp]:.1f}%)</td>" for sp in splits)
            body.append(f"<tr><th>{escape(str(name))}</th>{cells}<td>{bar}</td></tr>")
        head = "".join(f"<th>{escape(sp)}</th>" for sp in splits)
        more = f"<p class=\"note\">{len(classes) - 50} more classes in results.json.</p>" if len(classes) > 50 else ""
        parts.append(f'<h3>Class balance</h3><table class="balance-table"><thead><tr><th>class</th>{head}'
                     f'<th>training rows</th></tr></thead><tbody>{"".join(body)}</tbody></table>{more}')
    return "data", "Data", "".join(parts)


def baselines_section(data: ReportData) -> Section | None:
    """The model beside quick baselines on the same test rows."""
    if not data.baselines or not data.test_metrics:
        return None
    first = [data.primary_metric] if data.primary_metric in data.test_metrics else []
    keys = first + [k for k in data.test_metrics if k not in first and k != "loss"]
    head = "".join(f"<th>{escape(_metric_label(k))}</th>" for k in keys)
    rows = [f'<tr class="ours"><th>honing (this model)</th>'
            + "".join(f"<td>{cell(data.test_metrics[k])}</td>" for k in keys) + "<td>the chosen model</td></tr>"]
    for name, entry in data.baselines.items():
        if "metrics" not in entry:
            rows.append(f"<tr><th>{escape(name)}</th><td colspan=\"{len(keys)}\">skipped: "
                        f"{escape(str(entry.get('error', '')))}</td><td>{escape(str(entry.get('what', '')))}</td></tr>")
            continue
        rows.append(f"<tr><th>{escape(name)}</th>" + "".join(f"<td>{cell(entry['metrics'].get(k))}</td>" for k in keys)
                    + f"<td>{escape(str(entry.get('what', '')))}</td></tr>")
    vs = data.vs_baseline
    verdict = ""
    if vs:
        word = "better than" if vs["better"] else "<b>not better than</b>"
        verdict = (f"<p>On {escape(str(vs['metric']))}, honing's model ({s.fmt(vs['model'])}) is {word} the best "
                   f"baseline, {escape(str(vs['best_baseline']))} ({s.fmt(vs['baseline'])}).</p>")
    note = ('<p class="note">Baselines learn from the same training and validation rows, with the same '
            "preprocessing, and are scored on the same test rows with the same metrics.</p>")
    return ("baselines", "Baselines", verdict + f'<table class="baselines"><thead><tr><th>model</th>{head}'
            f"<th>what</th></tr></thead><tbody>{''.join(rows)}</tbody></table>" + note)


def history(data: ReportData) -> Section | None:
    trials = data.trials
    names = data.objective_labels()
    charts = []
    for i, (name, direction) in enumerate(zip(names, data.directions)):
        if any(c.trial_value(t, i) is not None for t in trials):
            charts.append(figure(c.history_chart(trials, index=i, direction=direction, name=name,
                                                 best_line=not data.multi_objective)))
    if not charts:
        return None
    note = ("<p class=\"note\">Points: each trial's value, coloured by state; early-stopped "
            "(pruned) trials at their last reported value; failed trials as crosses at the bottom."
            "</p>")
    return "history", "Optimization history", note + "".join(charts) + all_trials(data)


def all_trials(data: ReportData) -> str:
    params = sorted({p for t in data.trials for p in (t.get("params") or {})})
    who = [str((t.get("user_attrs") or {}).get("proposed_by", "")) for t in data.trials]
    marked = any(who)
    rows = []
    for t in sorted(data.trials, key=lambda t: t.get("number", 0)):
        values = t.get("values")
        shown = ", ".join(s.fmt(v) for v in values) if values else None
        by = [(t.get("user_attrs") or {}).get("proposed_by", "")] if marked else []
        rows.append([t.get("number"), t.get("state"), shown, duration(t.get("duration_s"))] + by
                    + [(t.get("params") or {}).get(p, "") for p in params])
    counts: dict[str, int] = {}
    for w in who:
        if w:
            counts[w] = counts.get(w, 0) + 1
    tally = (f'<p class="note">Proposed by: {escape(", ".join(f"{k} {v}" for k, v in sorted(counts.items())))} '
             "(recipe: the recipe's own values; warm start: an earlier study's best; user: honing suggest; "
             "sampler: the search's own proposals, by route).</p>") if marked else ""
    return ("<details><summary>All trials</summary>" + tally
            + table(["#", "state", "value", "duration"] + (["proposed by"] if marked else []) + params, rows,
                    cls="trials")
            + "</details>")


def importances(data: ReportData) -> Section | None:
    imp = {k: v for k, v in data.param_importances.items() if s.is_number(v)}
    if not imp:
        return None
    values = {c.trial_value(t) for t in data.trials if t.get("state") == "COMPLETE"} - {None}
    if len(values) == 1 and len(data.trials) > 1:
        return ("importances", "Parameter importances",
                f'<p class="note">Every complete trial scored the same ({s.fmt(next(iter(values)))}): the '
                "search could not tell the parameters apart, so no importances are shown. A larger validation "
                "split or tune.cv would separate the trials.</p>")
    return ("importances", "Parameter importances",
            figure(c.importance_chart(imp), "How much each parameter explains the objective "
                   "(relative; larger matters more)."))


def parallel(data: ReportData) -> Section | None:
    done = c.ranked(data.trials, data.directions[0])
    params = sorted({p for t in done for p in (t.get("params") or {})})
    if len(done) < 2 or not params:
        return None
    imp = data.param_importances
    params.sort(key=lambda p: (-(imp.get(p, 0.0) if s.is_number(imp.get(p)) else 0.0), p))
    note = ""
    if len(params) > 12:
        note = f'<p class="note">Showing the 12 most important of {len(params)} parameters.</p>'
        params = params[:12]
    name = data.objective_labels()[0]
    chart = c.parallel_chart(data.trials, params=params, log_params=set(data.log_params),
                             objective=name, direction=data.directions[0])
    return ("parallel", "Parallel coordinates", note + figure(
        chart, f"One line per complete trial, coloured by {name}; 'absent' marks a parameter "
               "that was not active in a trial."))


def curves(data: ReportData) -> Section | None:
    parts = []
    if data.trials and not data.multi_objective:
        chart = c.learning_chart(data.trials, direction=data.directions[0], metric=data.metric)
        if chart:
            parts.append("<h3>Best trials</h3>" + figure(
                chart, "Validation metric by epoch for the 5 best trials; early-stopped trials faint."))
    if data.final_history:
        base = data.metric[4:] if data.metric.startswith("val_") else data.metric
        keys = set().union(*(r.keys() for r in data.final_history))
        metric_keys = [k for k in (f"val_{base}", base) if k in keys and base and base != "loss"]
        if not metric_keys:
            metric_keys = sorted(k for k in keys if k.startswith("val_") and k != "val_loss")[:4]
        charts = [c.series_chart(data.final_history, ["loss", "val_loss"], title="loss"),
                  c.series_chart(data.final_history, metric_keys, title=base or "metric", log=False),
                  c.series_chart(data.final_history, ["lr"], title="learning rate")]
        charts = [ch for ch in charts if ch]
        if charts:
            parts.append('<h3>Final training</h3><div class="row">'
                         + "".join(figure(ch) for ch in charts) + "</div>")
    if not parts:
        return None
    return "curves", "Learning curves", "".join(parts)


def confusion(matrix: list[list[int]], names: Sequence[str]) -> str:
    """The confusion matrix as a heat-map table (rows: true class), with per-class recall."""
    if len(matrix) > 30:
        return figure(s.heat_map(matrix, row_labels=names, col_labels=names, label="confusion matrix",
                                 x_title="predicted", y_title="true"))
    head = "<th>true \\ predicted</th>" + "".join(f"<th>{escape(n)}</th>" for n in names)
    rows = []
    for i, row in enumerate(matrix):
        total = sum(v for v in row if s.is_number(v))
        cells = []
        for j, v in enumerate(row):
            t = v / total if total and s.is_number(v) else 0.0
            fg = "#ffffff" if t > 0.55 else "#111111"
            cells.append(f'<td style="background:{s.heat_color(t)};color:{fg}" '
                         f'title="{escape(str(names[i]))} → {escape(str(names[j]))}">{cell(v)}</td>')
        recall = matrix[i][i] / total if total and i < len(row) else None
        rows.append(f"<tr><th>{escape(names[i])}</th>{''.join(cells)}<td>{cell(recall)}</td></tr>")
    return (f'<table class="confusion"><thead><tr>{head}<th>recall</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def test_results(data: ReportData) -> Section | None:
    if data.task == "classification" and data.confusion_matrix:
        n = len(data.confusion_matrix)
        names = [str(x) for x in (data.class_names or [])]
        names += [str(i) for i in range(len(names), n)]
        return "test", "Test results", "<h3>Confusion matrix</h3>" + confusion(data.confusion_matrix, names)
    if data.task == "regression" and data.residuals:
        chart = c.residual_chart(data.residuals.get("y_true") or [], data.residuals.get("y_pred") or [])
        if chart:
            return "test", "Test results", "<h3>Residuals</h3>" + figure(
                chart, "Residual (true − predicted) against the prediction on the test set.")
    return None


def pareto(data: ReportData) -> Section | None:
    if not data.multi_objective or not data.pareto:
        return None
    names = data.objective_labels()
    by_number = {t.get("number"): t for t in data.trials}
    rows = []
    for n in sorted(data.pareto):
        t = by_number.get(n, {})
        rows.append([n, "yes" if n == data.selected_trial else ""] + list(t.get("values") or []))
    parts = []
    if len(data.directions) == 2:
        parts.append(figure(c.pareto_chart(data.trials, pareto=data.pareto, selected=data.selected_trial,
                                           names=names, directions=data.directions)))
    parts.append(table(["trial", "selected"] + names, rows))
    return "pareto", "Pareto front", "".join(parts)


def failures(data: ReportData) -> Section | None:
    failed = [t for t in data.trials if t.get("state") == "FAIL"]
    if not failed:
        return None
    rows = []
    for t in sorted(failed, key=lambda t: t.get("number", 0)):
        error = str((t.get("user_attrs") or {}).get("error", "")) or "(no error recorded)"
        first = error.strip().splitlines()[0] if error.strip() else error
        err_html = (f"<details><summary>{escape(first[:200])}</summary><pre>{escape(error[:20000])}</pre>"
                    "</details>" if "\n" in error.strip() or len(first) > 200 else
                    f"<code>{escape(error)}</code>")
        params = ", ".join(f"{k}={c.label_of(v)}" for k, v in (t.get("params") or {}).items())
        rows.append(f"<tr><td>{cell(t.get('number'))}</td><td>{escape(params)}</td>"
                    f"<td>{err_html}</td></tr>")
    return ("failures", f"Failed trials ({len(failed)})",
            '<table class="failures"><thead><tr><th>#</th><th>parameters</th><th>error</th></tr>'
            f"</thead><tbody>{''.join(rows)}</tbody></table>")


def extra_tables(data: ReportData) -> list[Section]:
    out = []
    for i, t in enumerate(data.extra_tables):
        title = str(t.get("title") or f"Table {i + 1}")
        note = f'<p class="note">{escape(str(t["note"]))}</p>' if t.get("note") else ""
        chart = _extra_pareto(t.get("pareto"))
        out.append((f"extra-{i + 1}", title, note + chart + table(list(t.get("columns") or []),
                                                                  [list(r) for r in t.get("rows") or []])))
    return out


def _extra_pareto(spec: Any) -> str:
    """An extra table's optional front: ``{"points": [[n, a, b], ...], "front": [n, ...], "selected": n,
    "names": [a, b], "directions": [a, b]}``."""
    if not isinstance(spec, dict) or not spec.get("points"):
        return ""
    from honing.report._charts import pareto_chart

    trials = [{"number": int(n), "state": "COMPLETE", "values": [a, b]} for n, a, b in spec["points"]]
    svg = pareto_chart(trials, pareto=spec.get("front") or [], selected=spec.get("selected"),
                       names=spec.get("names") or ["objective 1", "objective 2"],
                       directions=spec.get("directions") or ["maximize", "minimize"])
    return figure(svg) if svg else ""


def recipe(data: ReportData) -> Section | None:
    if not data.recipe:
        return None
    try:
        import yaml

        text = yaml.safe_dump(plain(data.recipe), sort_keys=False, allow_unicode=True,
                              default_flow_style=False)
        kind = "YAML"
    except Exception:  # pragma: no cover - pyyaml is a dependency; JSON keeps the report going
        text = json.dumps(plain(data.recipe), indent=2, sort_keys=False)
        kind = "JSON"
    return ("recipe", "Recipe", f"<details><summary>Resolved recipe ({kind})</summary>"
            f'<pre class="recipe">{escape(text)}</pre></details>')


def environment(data: ReportData) -> Section | None:
    rows: dict[str, Any] = dict(data.versions)
    if data.seed is not None:
        rows = {"seed": data.seed, **rows}
    if not rows:
        return None
    return "environment", "Versions and seed", kv_table(rows, key="", value="")
