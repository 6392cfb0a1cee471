"""``render_report`` / ``write_report``: one self-contained HTML page (inline CSS and SVG, no JS)."""

from __future__ import annotations

import os
from html import escape
from pathlib import Path

from honing._core import ConfigError, atomic_write_text
from honing.report import _sections as sec
from honing.report._data import ReportData

_CSS = """
:root { --fg: #1d1d1f; --muted: #5f6368; --line: #dadce0; --accent: #0072b2; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", Arial, sans-serif; }
header { padding: 18px 32px 10px; border-bottom: 1px solid var(--line); background: #f8f9fa; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: var(--muted); }
nav { margin-top: 8px; }
nav a { color: var(--accent); text-decoration: none; margin-right: 14px; font-size: 13px; }
nav a:hover { text-decoration: underline; }
main { padding: 8px 32px 40px; max-width: 1060px; }
section { margin-top: 22px; }
h2 { font-size: 18px; border-bottom: 2px solid var(--accent); padding-bottom: 3px; }
h3 { font-size: 15px; margin: 14px 0 6px; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
thead th { background: #f1f3f4; }
td { font-variant-numeric: tabular-nums; }
table.kv td:first-child { color: var(--muted); }
table.confusion td { text-align: right; min-width: 36px; }
table.trials { font-size: 12px; }
table.failures code, table.failures pre { white-space: pre-wrap; word-break: break-word; font-size: 12px; }
.grid { display: flex; flex-wrap: wrap; gap: 8px 32px; align-items: flex-start; }
.grid .wide { flex-basis: 100%; }
.row { display: flex; flex-wrap: wrap; gap: 8px; }
.badge { display: inline-block; border: 2px solid #999; border-radius: 12px; padding: 1px 10px;
  margin: 0 6px 6px 0; }
figure { margin: 8px 0 14px; }
figcaption, .note { color: var(--muted); font-size: 12.5px; }
svg.chart { max-width: 100%; height: auto; display: block; font-family: inherit; }
svg .tick { fill: #555; }
svg .halo { paint-order: stroke; stroke: #fff; stroke-width: 3px; stroke-linejoin: round; }
svg .axis-title { fill: #333; font-size: 12px; }
svg .callout { fill: #cc3311; font-weight: 600; }
.warnings { border-left: 4px solid #cc3311; background: #fdf0ec; padding: 8px 14px; margin: 0 0 14px; }
.warnings ul { margin: 4px 0 0; padding-left: 18px; }
table.baselines tr.ours { background: #fff3bf; font-weight: 600; }
span.balance { display: inline-block; height: 10px; background: #6a3d9a; }
details { margin: 6px 0; }
summary { cursor: pointer; color: var(--accent); }
pre { background: #f8f9fa; border: 1px solid var(--line); padding: 10px; overflow-x: auto; font-size: 12px; }
footer { color: var(--muted); font-size: 12px; padding: 0 32px 24px; }
@media print { nav { display: none; } details { display: block; } }
"""


def _sections(data: ReportData) -> list[tuple[str, str, str]]:
    """The present sections, in page order."""
    found = [sec.summary(data), sec.data_section(data), sec.baselines_section(data), sec.history(data),
             sec.importances(data), sec.parallel(data), sec.curves(data), sec.test_results(data), sec.pareto(data),
             sec.failures(data)]
    found += sec.extra_tables(data)
    found += [sec.recipe(data), sec.environment(data)]
    return [x for x in found if x is not None]


def render_report(data: ReportData) -> str:
    """The report as one self-contained HTML document (inline CSS and SVG, nothing fetched).

    Sections whose data is absent are left out. The output depends only on ``data``.
    """
    if not isinstance(data, ReportData):
        raise ConfigError(f"invalid report data: got {type(data).__name__}; allowed: a ReportData")
    sections = _sections(data)
    nav = "".join(f'<a href="#{escape(sid)}">{escape(title)}</a>' for sid, title, _ in sections)
    body = "".join(f'<section id="{escape(sid)}"><h2>{escape(title)}</h2>{html}</section>'
                   for sid, title, html in sections)
    names = ", ".join(data.objective_labels())
    subtitle = f"{data.task} · {names}"
    if data.counts:
        subtitle += f" · {sum(v for v in data.counts.values() if isinstance(v, int))} trials"
    versions = data.versions.get("honing")
    footer = f"Made by honing {escape(versions)}." if versions else "Made by honing."
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(data.title)}</title><style>{_CSS}</style></head><body>"
            f"<header><h1>{escape(data.title)}</h1><p>{escape(subtitle)}</p><nav>{nav}</nav></header>"
            f"<main>{body}</main><footer>{footer}</footer></body></html>\n")


def write_report(path: str | os.PathLike[str], data: ReportData) -> Path:
    """Render ``data`` and write it to ``path`` atomically; returns the path."""
    return atomic_write_text(path, render_report(data))
