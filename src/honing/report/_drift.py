"""The drift page: ``honing drift --html`` writes one self-contained page (no network) from a
drift report's ``to_dict()``: the verdict, then one row per test."""

from __future__ import annotations

from html import escape
from typing import Any

from honing.report._render import _CSS


def drift_section(report: dict[str, Any]) -> str:
    """The drift table as an HTML fragment (a section of a report)."""
    verdict = "drift" if report.get("drifted") else "no drift"
    tests = report.get("tests") or []
    drifted = sum(bool(t.get("drifted")) for t in tests)
    head = (f"<p><strong>{escape(verdict)}</strong>: {drifted} of {len(tests)} tests drifted over "
            f"{int(report.get('rows') or 0)} rows (alpha {report.get('alpha')}, "
            f"{escape(str(report.get('correction', '')))} across p-values; method {escape(str(report.get('method')))})"
            "</p>")
    if report.get("accuracy_estimate") is not None:
        head += (f"<p>label-free accuracy estimate {report['accuracy_estimate']:.4f} (the model's accuracy on its "
                 f"held-out rows: {report.get('reference_accuracy') or 0:.4f})</p>")
    bad = ' class="bad"'
    rows = "".join(
        f"<tr{bad if t.get('drifted') else ''}><td>{escape(str(t['name']))}</td>"
        f"<td>{escape(str(t['kind']))}</td><td>{escape(str(t['test']))}</td><td>{t['statistic']:.4f}</td>"
        f"<td>{'' if t.get('p_value') is None else format(t['p_value'], '.4g')}</td>"
        f"<td>{'drift' if t.get('drifted') else ''}</td></tr>" for t in tests)
    table = ("<table><thead><tr><th>feature</th><th>kind</th><th>test</th><th>statistic</th><th>p-value</th>"
             f"<th></th></tr></thead><tbody>{rows}</tbody></table>")
    return head + table


def drift_page(report: dict[str, Any], *, title: str = "drift") -> str:
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
            f"<style>{_CSS} tr.bad td{{color:#b00020;font-weight:600}}</style></head><body><header><h1>"
            f"{escape(title)}</h1></header><main><section id=\"drift\"><h2>Drift</h2>{drift_section(report)}"
            "</section></main></body></html>")
