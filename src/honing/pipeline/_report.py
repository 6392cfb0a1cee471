"""Turn a run's results and study into the plain data the HTML report renders."""

from __future__ import annotations

from typing import Any

from honing.pipeline._fairness import fairness_tables
from honing.pipeline._spikes import spikes_tables


def report_data(results: dict[str, Any], *, study: Any, history: list[dict[str, float]],
                test_extra: dict[str, Any], class_names: list[str] | None, directions: list[str],
                log_params: set[str]) -> Any:
    from honing.report import ReportData

    trials = list(study.trials) if study is not None else []
    importances: dict[str, float] = {}
    if study is not None and len(directions) == 1:
        from honing.tune import param_importances

        try:
            importances = param_importances(study)
        except Exception:  # importances are a nicety; a report without them is still a report
            importances = {}
    selected = results.get("best_trial")
    objectives = results.get("objectives") or [results["metric"]]
    return ReportData(
        title=f"honing run: {results['name']}",
        task=results["task"],
        metric=results["metric"],
        directions=list(directions),
        objective_names=list(objectives),
        best_params=results.get("best_params") or {},
        best_value=results.get("best_value") if len(directions) == 1 else None,
        counts=results.get("trials") or {},
        trials=trials,
        param_importances=importances,
        log_params=set(log_params),
        pareto=[t["number"] for t in (study.pareto if study is not None and len(directions) > 1 else [])],
        selected_trial=selected,
        final_history=list(history),
        test_metrics=results.get("test_metrics") or {},
        confusion_matrix=test_extra.get("confusion_matrix"),
        class_names=class_names,
        residuals=test_extra.get("residuals"),
        timings=results.get("timings") or {},
        recipe=results.get("recipe") or {},
        versions=results.get("versions") or {},
        seed=results.get("seed", 0),
        data_summary=results.get("data") or {},
        baselines=results.get("baselines") or {},
        vs_baseline=results.get("vs_baseline"),
        primary_metric=results.get("primary_metric"),
        final_validation=results.get("final_validation"),
        warnings=list(results.get("warnings") or []),
        tie_break=results.get("tie_break"),
        extra_tables=(_nas_tables(results.get("nas")) + _transfer_tables(results.get("transfer")) + _ensemble_tables(results.get("ensemble"),
                                                                                   results.get("primary_metric"))
                      + _compress_tables(results.get("compress")) + _robust_tables(results.get("robustness"))
                      + fairness_tables(results.get("fairness")) + spikes_tables(results.get("spikes"))
                      + _energy_tables(results.get("energy"))),
    )


def _energy_tables(e: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Joules and seconds per part of the run, with how each was measured."""
    if not e:
        return []
    rows = [[part.replace("_", " "), f"{r['joules']:.1f}", f"{r.get('seconds', 0):.1f}",
             r["method"] + (f" ({r['trials']} trials)" if r.get("trials") else ""), r.get("detail", "")]
            for part, r in e.items()]
    estimated = any(r["method"] == "estimated" for r in e.values())
    note = ("Energy per part of the run. " + ("'estimated' is CPU time x a power per busy core, not a measurement "
                                              "(HONING_CPU_WATTS_PER_CORE)." if estimated else ""))
    return [{"title": "Energy", "note": note, "columns": ["part", "joules", "seconds", "method", "how"],
             "rows": rows}]


def _robust_tables(r: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Accuracy under each attack per epsilon beside the clean accuracy, corruptions, the checks."""
    if not r or r.get("skipped"):
        return []
    eps = [f"{e:g}" for e in r["epsilons"]]
    rows = [["clean", *[f"{r['clean_accuracy']:.4f}"] * len(eps), ""]]
    for name, row in r["accuracy"].items():
        rows.append([name + (" (black-box)" if name == "square" else ""), *[f"{row[e]:.4f}" for e in eps],
                     f"{r['seconds'].get(name, 0):.1f}"])
    rows.append(["robust (rows no attack fooled)", *[f"{r['robust_accuracy'][e]:.4f}" for e in eps], ""])
    note = (f"{r['rows']} test rows; epsilon ({r['norm']}) in {r['units']}. "
            + " ".join(f"{'ok' if c['passed'] else 'FAILED'}: {c['check']} ({c['detail']})." for c in r["checks"]))
    tables = [{"title": "Adversarial robustness", "note": note,
               "columns": ["attack", *[f"accuracy at epsilon {e}" for e in eps], "seconds"], "rows": rows}]
    corr = r.get("corruptions")
    if corr:
        tables.append({"title": "Image corruptions", "note": f"accuracy at severities 1-5 (clean {r['clean_accuracy']:.4f}); "
                                                            f"mean over all: {corr['mean']:.4f}",
                       "columns": ["corruption", "1", "2", "3", "4", "5"],
                       "rows": [[k, *[f"{v:.4f}" for v in vals]] for k, vals in corr.items() if k != "mean"]})
    return tables


def _transfer_tables(t: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The fine-tuning summary: source, strategy, parameters trained, the old task kept or forgotten."""
    if not t:
        return []
    total, trained = t["parameters"], t["trainable_parameters"]
    rows = [["pretrained source", t["from"]], ["strategy", t["strategy"]],
            ["parameters", f"{total:,}"],
            ["trained", f"{trained:,} ({100 * trained / max(total, 1):.2f}%)"]]
    old = t.get("old_task")
    if old:
        rows += [["old task", old["source"]],
                 ["old task accuracy before / after", f"{old['before']:.4f} / {old['after']:.4f}"],
                 ["forgetting (points)", f"{100 * old['forgetting']:.2f}"]]
    return [{"title": "Fine-tuning", "columns": ["", ""], "rows": rows,
             "note": "LoRA adapters are merged into the saved model." if t["strategy"] == "lora" else ""}]


def _nas_tables(n: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The architecture search: the chosen architecture beside the recipe's own, and the front."""
    if not n:
        return []

    def arch(model: Any) -> str:
        if isinstance(model, str):
            return model
        value = next(iter(model.values()))
        if isinstance(value, list) and value and isinstance(value[0], dict):  # mobilenet blocks
            return "; ".join(f"{b.get('op', 'ir')} {b['out']} k{b.get('kernel', 3)}"
                             + (f" x{b['expand']}" if "expand" in b else "")
                             + (" s2" if b.get("stride") == 2 else "") + (" se" if b.get("se") else "") for b in value)
        return ", ".join(map(str, value))

    fmt = lambda o, v: f"{v:,.0f}" if o in ("params", "flops") else f"{v:.4g}"  # noqa: E731
    rows = [["chosen", n["chosen"]["index"], arch(n["chosen"]["model"]),
             *[fmt(o, v) for o, v in zip(n["objectives"], n["chosen"]["scores"])]],
            ["the recipe's own", "", arch(n["baseline"]["model"]),
             *[fmt(o, v) for o, v in zip(n["objectives"], n["baseline"]["scores"])]]]
    rows += [["Pareto front", f["index"], arch(f["model"]), *[fmt(o, v) for o, v in zip(n["objectives"], f["scores"])]]
             for f in n["front"]]
    rows += [["promoted", p["index"], arch(p["model"]), f"{p['full']:.4g} after the full training (proxy {p['proxy']:.4g})",
              *[""] * (len(n["objectives"]) - 1)] for p in n.get("promoted", [])]
    note = (f"{n['strategy']} over {n['size']:,} architectures of the {n['space']} space: {n['evaluated']} candidates, "
            f"{n['failed']} failed, {n['seconds']:.0f} s. {n['note']}."
            + (f" latency_ms: one row, CPU, in {n['latency_runtime']}."
               if n.get("latency_runtime") and "latency_ms" in n["objectives"] else "")
            + (f" latency_ratio: one row, CPU, in {n.get('latency_runtime', 'torch')}, a multiple of the reference's "
               f"({n['reference'].get('name')}), timed side by side." if n.get("reference") else "")
            + (f" Promoted: the best {len(n['promoted'])} trained again as the final model is (every training row, "
               "training.epochs); the chosen is the best of them after that training." if n.get("promoted") else ""))
    table: dict[str, Any] = {"title": "Architecture search", "columns": ["", "candidate", "architecture",
                                                                         *n["objectives"]], "rows": rows, "note": note}
    if len(n["objectives"]) > 1 and n.get("candidates"):
        table["pareto"] = {"points": [c[:3] for c in n["candidates"]], "front": [f["index"] for f in n["front"]],
                           "selected": n["chosen"]["index"], "names": n["objectives"][:2],
                           "directions": n["directions"][:2]}
    return [table]


def _ensemble_tables(e: dict[str, Any] | None, primary: str | None) -> list[dict[str, Any]]:
    """The ensemble against the best single trial and the final model on the test rows, and each member."""
    if not e:
        return []
    if e.get("skipped"):
        return [{"title": "Ensemble", "columns": ["", ""], "rows": [["skipped", e["skipped"]]], "note": ""}]
    test = e.get("test")
    weight = {m["trial"]: m["weight"] for m in e["members"]}
    if not test:
        rows = [[f"trial {m['trial']}", m["weight"], m["value"]] for m in e["members"]]
        return [{"title": "Ensemble", "columns": ["member", "weight", "validation value"], "rows": rows, "note": ""}]
    metrics = list(test["ensemble"]["metrics"])
    metric = primary if primary in metrics else metrics[0]
    cols = [metric] + (["loss"] if metric != "loss" else [])
    ece = "ece" in test["ensemble"]

    def line(label: str, row: dict[str, Any], w: Any = "") -> list[Any]:
        return ([label, w] + [f"{row['metrics'].get(c, float('nan')):.4f}" for c in cols]
                + ([f"{row['ece']:.4f}"] if ece else []) + [f"{row['parameters']:,}",
                                                            f"{row['latency_ms']:.3f}" if "latency_ms" in row else ""])

    rows = [line("ensemble", test["ensemble"], "1.0"),
            line(f"best single trial ({test['best_single']['trial']})", test["best_single"]),
            line("final model", test["final_model"])]
    for name, row in test["members"].items():
        number = int(name.split()[-1])
        rows.append(line(f"member: {name}", row, "" if weight.get(number) is None else f"{weight[number]:.2f}"))
    columns = ["model", "weight", *[f"test {c}" for c in cols], *(["ECE"] if ece else []), "parameters",
               "latency b1 (ms)"]
    sel = e["selection_loss"]
    note = (f"{e['method']} over the search's best trials, weights chosen on {e['rows']} (no further training); "
            f"{sel['what']} there: ensemble {sel['ensemble']:.4g}, best single trial {sel['best_single']:.4g} "
            f"({sel['note']}). Temperature {e['temperature']} ({e.get('calibration', '')}). The final model was {test['final_model']['how']}. "
            f"Saved as a model folder: {e['folder']}." + (f" Missing values: {e['imputed']}." if e.get("imputed") else ""))
    return [{"title": "Ensemble", "columns": columns, "rows": rows, "note": note}]


def _compress_tables(c: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per compressed stage: size, parameters, latency, test metric, each against the
    uncompressed model (ratios; the metric as a difference in points)."""
    if not c:
        return []
    metric, sizes = c["metric"], [str(b) for b in c["latency"]["batch_sizes"]]
    rows = []
    for row in c["stages"]:
        vs = row.get("vs_uncompressed") or {}
        ratio = lambda key: f" ({vs[key]:.2f}x)" if vs.get(key) is not None else ""  # noqa: E731
        value = row["metrics"].get(metric)
        cells = [row["stage"], row["runtime"], f"{row['size_bytes'] / 1024:,.1f} KiB{ratio('size')}",
                 f"{row['parameters']:,}" + (f" ({row['nonzero_parameters']:,} non-zero)"
                                             if row.get("nonzero_parameters", row["parameters"]) < row["parameters"]
                                             else "") + ratio("parameters")]
        cells += [f"{row['latency_ms'][b]:.3f}{ratio('latency_' + b)}" for b in sizes]
        cells.append("" if value is None else f"{value:.4f}" + (f" ({100 * vs[metric]:+.2f} pt)" if metric in vs else ""))
        cells.append(str(row.get("notes") or ""))
        rows.append(cells)
    for f in c.get("failed") or []:
        rows.append([f["stage"], "failed", "", "", *["" for _ in sizes], "", f["error"]])
    columns = ["stage", "runtime", "size on disk", "parameters", *[f"latency b{b} (ms)" for b in sizes],
               f"test {metric}", "notes"]
    lat = c["latency"]
    note = (f"Latency on CPU with {lat['threads']} thread(s): the stages were timed in turn, "
            f"{lat.get('rounds', 3)} rounds of {lat['repeats']} forward passes each after warm-up; the median over "
            "rounds of each round's median. Every stage was read back from its folder under compress/ before it "
            "was tested and timed.")
    return [{"title": "Compression", "columns": columns, "rows": rows, "note": note}]
