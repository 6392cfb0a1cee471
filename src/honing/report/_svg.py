"""A tiny chart kit: scales, ticks (linear and log), axes, lines, points, bars, heat maps, legends.

Everything returns SVG markup as a string; all text goes through ``html.escape``. Output is
deterministic: coordinates are rounded to one decimal and no ids are random.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from html import escape

# Okabe-Ito palette (colour-blind safe), then a few more.
PALETTE = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442",
           "#000000", "#999999", "#882255"]
STATE_COLORS = {"COMPLETE": "#0072b2", "PRUNED": "#e69f00", "FAIL": "#d55e00",
                "RUNNING": "#009e73", "WAITING": "#999999"}
# Viridis, sampled at 9 stops; ``colormap`` interpolates between them.
_VIRIDIS = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962",
            "#addc30", "#fde725"]


def num(v: float) -> str:
    """A coordinate with one decimal, without a trailing ``.0``."""
    text = f"{v:.1f}"
    return text[:-2] if text.endswith(".0") else text


def fmt(v: object, digits: int = 4) -> str:
    """A value for display: ints as they are, floats with ``digits`` significant digits."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, numbers.Real):
        v = float(v)
        if math.isnan(v) or math.isinf(v):
            return str(v)
        if 10 ** digits <= abs(v) < 1e15:  # 17980.0 -> "17980", not "1.798e+04"
            return f"{v:.0f}"
        return f"{v:.{digits}g}"
    return str(v)


def finite(values: Iterable[object]) -> list[float]:
    """The finite real numbers among ``values`` (bools, None, NaN and inf dropped)."""
    return [float(v) for v in values if is_number(v)]  # type: ignore[arg-type]


def is_number(v: object) -> bool:
    """A finite real number (numpy scalars included), not a bool."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def colormap(t: float) -> str:
    """Viridis colour for ``t`` in [0, 1] (clamped)."""
    t = min(1.0, max(0.0, t if math.isfinite(t) else 0.0))
    pos = t * (len(_VIRIDIS) - 1)
    i = min(int(pos), len(_VIRIDIS) - 2)
    frac = pos - i
    a, b = _VIRIDIS[i], _VIRIDIS[i + 1]
    rgb = [round(int(a[k:k + 2], 16) * (1 - frac) + int(b[k:k + 2], 16) * frac) for k in (1, 3, 5)]
    return "#" + "".join(f"{c:02x}" for c in rgb)


def heat_color(t: float) -> str:
    """White to dark blue for ``t`` in [0, 1], for heat maps with dark text on light cells."""
    t = min(1.0, max(0.0, t if math.isfinite(t) else 0.0))
    lo, hi = (255, 255, 255), (8, 48, 107)
    return "#" + "".join(f"{round(l_ * (1 - t) + h * t):02x}" for l_, h in zip(lo, hi))


# ---------------------------------------------------------------------------- scales and ticks
def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 times a power of ten) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    err = raw / mag  # in [1, 10): round to 1, 2, 5 or 10 times the power of ten (as d3 does)
    step = mag * (10 if err >= 7.07 else 5 if err >= 3.16 else 2 if err >= 1.41 else 1)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    k = 0
    while first + k * step <= hi + step * 1e-9:
        ticks.append(round(first + k * step, 12))
        k += 1
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten in [lo, hi]; with 1, 2 and 5 times them when the range spans few decades."""
    if lo <= 0 or hi <= 0 or hi < lo:
        return []
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    mults = (1, 2, 5) if b - a <= 2 else (1,)
    ticks = [m * 10.0 ** e for e in range(a, b + 1) for m in mults]
    ticks = [t for t in ticks if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]
    if len(ticks) < 2:  # less than a decade with no power inside: fall back to linear ticks
        return [t for t in nice_ticks(lo, hi, 4) if t > 0]
    if b - a > 8:  # thin out many decades
        every = math.ceil((b - a) / 8)
        ticks = [t for t in ticks if round(math.log10(t)) % every == 0]
    return ticks


def extent(values: Sequence[float], *, pad: float = 0.05, log: bool = False) -> tuple[float, float]:
    """(lo, hi) of the finite values with ``pad`` margin (multiplicative on a log scale)."""
    vals = [v for v in finite(values) if not log or v > 0]
    if not vals:
        return (1.0, 10.0) if log else (0.0, 1.0)
    lo, hi = min(vals), max(vals)
    if log:
        if hi == lo:
            return lo / 2, hi * 2
        f = (hi / lo) ** pad
        return lo / f, hi * f
    if hi == lo:
        d = abs(lo) * 0.1 or 1.0
        return lo - d, hi + d
    d = (hi - lo) * pad
    return lo - d, hi + d


class Scale:
    """Maps data values in [lo, hi] to pixels in [out_lo, out_hi], linearly or on a log axis."""

    def __init__(self, lo: float, hi: float, out_lo: float, out_hi: float, *, log: bool = False) -> None:
        self.log = log and lo > 0 and hi > 0
        self.lo, self.hi = lo, hi
        self.out_lo, self.out_hi = out_lo, out_hi
        self._a = math.log10(lo) if self.log else lo
        self._b = math.log10(hi) if self.log else hi
        if self._b == self._a:
            self._b = self._a + 1.0

    def __call__(self, v: float) -> float:
        if self.log:
            v = math.log10(v) if v > 0 else self._a
        t = (v - self._a) / (self._b - self._a)
        return self.out_lo + t * (self.out_hi - self.out_lo)

    def ticks(self, count: int = 5) -> list[float]:
        if self.log:
            return log_ticks(self.lo, self.hi)
        return nice_ticks(self.lo, self.hi, count)


# ---------------------------------------------------------------------------- primitives
def svg(width: float, height: float, body: Sequence[str], *, label: str, css_class: str = "chart") -> str:
    """A root ``<svg>`` with a viewBox; it shrinks with the page but never grows past ``width``."""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" role="img" '
            f'viewBox="0 0 {num(width)} {num(height)}" width="{num(width)}" height="{num(height)}" '
            f'aria-label="{escape(label)}"><title>{escape(label)}</title>' + "".join(body) + "</svg>")


def text(x: float, y: float, content: str, *, anchor: str = "start", size: float = 11,
         cls: str = "", extra: str = "") -> str:
    attrs = f' class="{cls}"' if cls else ""
    return (f'<text x="{num(x)}" y="{num(y)}" font-size="{num(size)}" text-anchor="{anchor}"'
            f'{attrs}{extra}>{escape(content)}</text>')


def line(x1: float, y1: float, x2: float, y2: float, *, stroke: str = "#888", width: float = 1,
         dash: str = "") -> str:
    d = f' stroke-dasharray="{dash}"' if dash else ""
    return (f'<line x1="{num(x1)}" y1="{num(y1)}" x2="{num(x2)}" y2="{num(y2)}" '
            f'stroke="{stroke}" stroke-width="{num(width)}"{d}/>')


def polyline(points: Sequence[tuple[float, float]], *, stroke: str, width: float = 1.5,
             opacity: float = 1.0, title: str = "", dash: str = "") -> str:
    pts = " ".join(f"{num(x)},{num(y)}" for x, y in points)
    extra = f' stroke-opacity="{opacity:g}"' if opacity < 1 else ""
    extra += f' stroke-dasharray="{dash}"' if dash else ""
    head = (f'<polyline points="{pts}" fill="none" stroke="{stroke}" stroke-width="{num(width)}" '
            f'stroke-linejoin="round"{extra}')
    return f"{head}><title>{escape(title)}</title></polyline>" if title else head + "/>"


def circle(x: float, y: float, r: float, *, fill: str, title: str = "", stroke: str = "",
           opacity: float = 1.0, stroke_width: float = 1.0) -> str:
    extra = f' stroke="{stroke}" stroke-width="{num(stroke_width)}"' if stroke else ""
    extra += f' fill-opacity="{opacity:g}"' if opacity < 1 else ""
    head = f'<circle cx="{num(x)}" cy="{num(y)}" r="{num(r)}" fill="{fill}"{extra}'
    return f"{head}><title>{escape(title)}</title></circle>" if title else head + "/>"


def cross(x: float, y: float, r: float, *, stroke: str, title: str = "") -> str:
    """An x-shaped marker (failed trials)."""
    d = (f"M{num(x - r)},{num(y - r)}L{num(x + r)},{num(y + r)}"
         f"M{num(x - r)},{num(y + r)}L{num(x + r)},{num(y - r)}")
    head = f'<path d="{d}" stroke="{stroke}" stroke-width="1.8" fill="none"'
    return f"{head}><title>{escape(title)}</title></path>" if title else head + "/>"


def rect(x: float, y: float, w: float, h: float, *, fill: str, title: str = "", extra: str = "") -> str:
    head = (f'<rect x="{num(x)}" y="{num(y)}" width="{num(max(w, 0))}" height="{num(max(h, 0))}" '
            f'fill="{fill}"{extra}')
    return f"{head}><title>{escape(title)}</title></rect>" if title else head + "/>"


# ---------------------------------------------------------------------------- composite parts
class Plot:
    """A plot area inside margins, with an x and a y scale; collects SVG parts in ``parts``."""

    def __init__(self, *, width: float, height: float, x_range: tuple[float, float],
                 y_range: tuple[float, float], x_log: bool = False, y_log: bool = False,
                 margin: tuple[float, float, float, float] = (24, 16, 44, 62)) -> None:
        top, right, bottom, left = margin
        self.width, self.height = width, height
        self.left, self.right = left, width - right
        self.top, self.bottom = top, height - bottom
        self.x = Scale(*x_range, self.left, self.right, log=x_log)
        self.y = Scale(*y_range, self.bottom, self.top, log=y_log)
        self.parts: list[str] = []

    def axes(self, *, x_label: str = "", y_label: str = "", x_ticks: Sequence[float] | None = None,
             y_ticks: Sequence[float] | None = None, x_integer: bool = False) -> None:
        """Grid lines, tick labels, axis lines and axis titles."""
        p = self.parts
        xt = list(x_ticks) if x_ticks is not None else self.x.ticks(6)
        if x_integer:
            xt = [t for t in xt if float(t).is_integer()]
        yt = list(y_ticks) if y_ticks is not None else self.y.ticks(5)
        shown = [fmt(t, 3) for t in yt if self.top - 0.5 <= self.y(t) <= self.bottom + 0.5]
        need = 6 + 6.2 * max((len(label) for label in shown), default=0) + (22 if y_label else 4)
        if need > self.left:  # room for the tick labels and the axis title beside them (no overlap)
            self.left = need
            self.x = Scale(self.x.lo, self.x.hi, self.left, self.right, log=self.x.log)
        title_x = max(12.0, self.left - 6 - 6.2 * max((len(label) for label in shown), default=0) - 10)
        for t in yt:
            y = self.y(t)
            if self.top - 0.5 <= y <= self.bottom + 0.5:
                p.append(line(self.left, y, self.right, y, stroke="#e5e5e5"))
                p.append(text(self.left - 6, y + 3.5, fmt(t, 3), anchor="end", size=10, cls="tick"))
        for t in xt:
            x = self.x(t)
            if self.left - 0.5 <= x <= self.right + 0.5:
                p.append(line(x, self.bottom, x, self.bottom + 4, stroke="#888"))
                label = str(int(t)) if x_integer else fmt(t, 3)
                p.append(text(x, self.bottom + 16, label, anchor="middle", size=10, cls="tick"))
        p.append(line(self.left, self.bottom, self.right, self.bottom, stroke="#555"))
        p.append(line(self.left, self.top, self.left, self.bottom, stroke="#555"))
        if x_label:
            p.append(text((self.left + self.right) / 2, self.height - 8, x_label, anchor="middle",
                          cls="axis-title"))
        if y_label:
            cy = (self.top + self.bottom) / 2
            p.append(text(title_x, cy, y_label, anchor="middle", cls="axis-title",
                          extra=f' transform="rotate(-90 {num(title_x)} {num(cy)})"'))

    def point(self, x: float, y: float) -> tuple[float, float]:
        return self.x(x), self.y(y)

    def polyline(self, xs: Sequence[float], ys: Sequence[float], **kw: object) -> None:
        pts = [self.point(x, y) for x, y in zip(xs, ys) if is_number(x) and is_number(y)]
        if len(pts) >= 2:
            self.parts.append(polyline(pts, **kw))  # type: ignore[arg-type]
        elif len(pts) == 1:
            self.parts.append(circle(*pts[0], 2.5, fill=str(kw.get("stroke", "#333")),
                                     title=str(kw.get("title", ""))))

    def legend(self, items: Sequence[tuple[str, str, str]], *, horizontal: bool = False) -> None:
        """Right of the plot area (keep a right margin of ~150), or in one row above it."""
        if horizontal:
            self.parts.append(legend(items, x=self.left + 4, y=self.top - 22, horizontal=True))
        else:
            self.parts.append(legend(items, x=self.right + 16, y=self.top))

    def render(self, label: str) -> str:
        return svg(self.width, self.height, self.parts, label=label)


def legend(items: Sequence[tuple[str, str, str]], *, x: float, y: float,
           horizontal: bool = False) -> str:
    """Legend entries (label, colour, kind), kind "line", "dot", "ring", "faint" or "cross"; stacked
    in a box, or in one row without a box (``horizontal``)."""
    parts = []
    if not horizontal:
        width = 30 + 6.6 * max((len(lbl) for lbl, _, _ in items), default=0)
        parts.append(rect(x - 4, y - 2, width, 16 * len(items) + 4, fill="#ffffff",
                          extra=' fill-opacity="0.85" stroke="#ddd"'))
    cx, cy = x, y + 8
    for label, color, kind in items:
        if kind == "dot":
            parts.append(circle(cx + 8, cy, 4, fill=color))
        elif kind == "cross":
            parts.append(cross(cx + 8, cy, 3.5, stroke=color))
        elif kind == "ring":
            parts.append(circle(cx + 8, cy, 5, fill="none", stroke=color, stroke_width=2))
        else:
            parts.append(line(cx, cy, cx + 16, cy, stroke=color, width=2 if kind == "line" else 1.2,
                              dash="" if kind == "line" else "3 2"))
        parts.append(text(cx + 22, cy + 4, label, size=11))
        if horizontal:
            cx += 36 + 6.6 * len(label)
        else:
            cy += 16
    return '<g class="legend">' + "".join(parts) + "</g>"


def color_bar(*, x: float, y: float, height: float, lo: float, hi: float, label: str,
              gradient_id: str) -> str:
    """A vertical viridis colour bar from ``lo`` (bottom) to ``hi`` (top) with end labels."""
    stops = "".join(f'<stop offset="{i / 8:g}" stop-color="{c}"/>'
                    for i, c in enumerate(reversed(_VIRIDIS)))
    return ('<g class="colorbar">'
            f'<defs><linearGradient id="{escape(gradient_id)}" x1="0" y1="0" x2="0" y2="1">'
            f"{stops}</linearGradient></defs>"
            + rect(x, y, 12, height, fill=f"url(#{escape(gradient_id)})", extra=' stroke="#999"')
            + text(x + 16, y + 9, fmt(hi), size=10) + text(x + 16, y + height, fmt(lo), size=10)
            + text(x + 6, y - 6, label, anchor="middle", size=10) + "</g>")


def hbars(labels: Sequence[str], values: Sequence[float], *, width: float = 720,
          label: str = "bars", value_label: str = "") -> str:
    """Horizontal bars, one row per label, values from 0 to the largest."""
    label_w = min(260.0, 12 + 6.3 * max((len(s) for s in labels), default=4))
    row = 22.0
    height = 30 + row * len(labels) + 24
    top = 10.0
    vmax = max(finite(values) or [1.0]) or 1.0
    scale = Scale(0.0, vmax, label_w, width - 70)
    parts: list[str] = []
    for t in nice_ticks(0.0, vmax, 5):
        x = scale(t)
        parts.append(line(x, top, x, top + row * len(labels), stroke="#eee"))
        parts.append(text(x, top + row * len(labels) + 14, fmt(t, 3), anchor="middle", size=10))
    for i, (name, v) in enumerate(zip(labels, values)):
        y = top + row * i
        shown = name if len(name) <= 40 else name[:39] + "…"
        parts.append(text(label_w - 8, y + 15, shown, anchor="end", size=11))
        vv = v if is_number(v) and v > 0 else 0.0
        parts.append(rect(label_w, y + 4, scale(vv) - label_w, row - 8, fill=PALETTE[0],
                          title=f"{name}: {fmt(v)}"))
        parts.append(text(scale(vv) + 5, y + 15, fmt(v, 3), size=10))
    if value_label:
        parts.append(text((label_w + width - 70) / 2, height - 4, value_label, anchor="middle",
                          cls="axis-title"))
    return svg(width, height, parts, label=label)


def heat_map(matrix: Sequence[Sequence[float]], *, row_labels: Sequence[str],
             col_labels: Sequence[str], label: str = "heat map", cell: float = 14,
             x_title: str = "", y_title: str = "") -> str:
    """A matrix as coloured cells (white to dark blue, scaled per row), labels on two sides."""
    n_rows, n_cols = len(matrix), max((len(r) for r in matrix), default=0)
    lw = 10 + 6 * max((len(s) for s in row_labels), default=2)
    lh = 10 + 6 * max((len(s) for s in col_labels), default=2)
    left, top = lw + 18, lh + 18
    width, height = left + cell * n_cols + 10, top + cell * n_rows + 10
    parts: list[str] = []
    for j, name in enumerate(col_labels):
        x = left + cell * (j + 0.5) + 3
        parts.append(text(x, top - 4, name, size=9,
                          extra=f' transform="rotate(-90 {num(x)} {num(top - 4)})"'))
    for i, row in enumerate(matrix):
        rmax = max(finite(row) or [0.0]) or 1.0
        y = top + cell * i
        if i < len(row_labels):
            parts.append(text(left - 4, y + cell * 0.75, row_labels[i], anchor="end", size=9))
        for j, v in enumerate(row):
            t = v / rmax if is_number(v) else 0.0
            parts.append(rect(left + cell * j, y, cell, cell, fill=heat_color(t),
                              title=f"{row_labels[i] if i < len(row_labels) else i} → "
                                    f"{col_labels[j] if j < len(col_labels) else j}: {fmt(v)}"))
    if y_title:
        parts.append(text(10, top + cell * n_rows / 2, y_title, anchor="middle", cls="axis-title",
                          extra=f' transform="rotate(-90 10 {num(top + cell * n_rows / 2)})"'))
    if x_title:
        parts.append(text(left + cell * n_cols / 2, 11, x_title, anchor="middle", cls="axis-title"))
    return svg(width, height, parts, label=label)
