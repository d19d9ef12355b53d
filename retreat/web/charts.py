"""Server-rendered SVG charts: grouped or stacked bar charts and line charts.

``bar_chart`` and ``line_chart`` compute the geometry (scales, ticks, bars, points) in Python; the
Jinja macro ``chart`` in ``templates/_macros/charts.html`` draws it as an inline ``<svg>`` with a
title and description for screen readers, a legend, and the same numbers in a data table. No
JavaScript, nothing loaded from elsewhere. Values are plain numbers (e.g. minor units); pass a
``fmt`` function to label them (e.g. as money in one currency — never mix currencies in a chart).
Negative values (refunds, fees) are drawn below a zero line.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

WIDTH, HEIGHT = 640, 300
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 84, 16, 16, 48
MAX_SERIES_CLASSES = 6
_ids = itertools.count(1)


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[int | float]
    css: str | None = None  # a fixed "series-N" class, so a figure keeps its colour across charts

    def css_class(self, index: int) -> str:
        return self.css or f"series-{index % MAX_SERIES_CLASSES}"


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    label: str  # "<series>, <category>: <value>" (a tooltip and an accessible name)


@dataclass
class Line:
    points: str
    css: str
    name: str
    dots: list[tuple[float, float, str]]


@dataclass
class Chart:
    kind: str  # "bar" | "line"
    title: str
    desc: str
    id: str
    width: int
    height: int
    plot: tuple[float, float, float, float]  # x0, y0 (top), x1, y1 (bottom)
    zero_y: float
    y_ticks: list[tuple[float, str]]
    x_labels: list[tuple[float, str]]
    legend: list[tuple[str, str]]  # (css class, series name)
    table_head: list[str]
    table_rows: list[list[str]]
    bars: list[Bar] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not self.table_rows


def _nice_step(span: float, ticks: int = 5) -> float:
    raw = span / max(1, ticks)
    if raw <= 0:
        return 1
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _scale(lo: float, hi: float) -> tuple[float, float, float]:
    lo, hi = min(0.0, lo), max(0.0, hi)
    if lo == hi:
        hi = lo + 1
    step = _nice_step(hi - lo)
    return math.floor(lo / step) * step, math.ceil(hi / step) * step, step


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "chart"


def _frame(kind: str, title: str, desc: str, labels: Sequence[str], series: Sequence[Series],
           lo: float, hi: float, fmt: Callable, width: int, height: int) -> tuple[Chart, Callable[[float], float]]:
    y_min, y_max, step = _scale(lo, hi)
    x0, y0, x1, y1 = PAD_LEFT, PAD_TOP, width - PAD_RIGHT, height - PAD_BOTTOM

    def y_of(v: float) -> float:
        return y1 - (v - y_min) / (y_max - y_min) * (y1 - y0)

    ticks = []
    v = y_min
    while v <= y_max + step / 2:
        ticks.append((round(y_of(v), 2), fmt(v)))
        v += step
    chart = Chart(kind=kind, title=title, desc=desc, id=f"chart-{_slug(title)}-{next(_ids)}", width=width,
                  height=height, plot=(x0, y0, x1, y1), zero_y=round(y_of(0), 2), y_ticks=ticks, x_labels=[],
                  legend=[(s.css_class(i), s.name) for i, s in enumerate(series)],
                  table_head=["", *[s.name for s in series]],
                  table_rows=[[label, *[fmt(s.values[i]) for s in series]] for i, label in enumerate(labels)])
    return chart, y_of


def _label_every(n: int, width: float) -> int:
    return max(1, math.ceil(n * 56 / max(1, width)))  # about 56 px per readable label


def _checked_labels(labels: Iterable[str], series: Sequence[Series]) -> list[str]:
    """The labels as a list; every series must have one value per label."""
    labels = list(labels)
    for s in series:
        if len(s.values) != len(labels):
            raise ValueError(f"series {s.name!r} has {len(s.values)} values for {len(labels)} labels")
    return labels


def bar_chart(title: str, labels: Sequence[str], series: Sequence[Series], *, stacked: bool = False,
              fmt: Callable[[float], str] = lambda v: f"{v:,.0f}", desc: str = "", width: int = WIDTH,
              height: int = HEIGHT) -> Chart:
    """One group of bars per label (one bar per series), or one stacked bar per label."""
    labels = _checked_labels(labels, series)
    if stacked:
        highs = [sum(max(0, s.values[i]) for s in series) for i in range(len(labels))]
        lows = [sum(min(0, s.values[i]) for s in series) for i in range(len(labels))]
    else:
        highs = [max((s.values[i] for s in series), default=0) for i in range(len(labels))]
        lows = [min((s.values[i] for s in series), default=0) for i in range(len(labels))]
    chart, y_of = _frame("bar", title, desc or title, labels, series, min(lows, default=0), max(highs, default=0),
                         fmt, width, height)
    x0, _, x1, _ = chart.plot
    n = max(1, len(labels))
    slot = (x1 - x0) / n
    inner = slot * 0.8
    every = _label_every(n, x1 - x0)
    for i, label in enumerate(labels):
        left = x0 + i * slot + (slot - inner) / 2
        if i % every == 0:
            chart.x_labels.append((round(x0 + i * slot + slot / 2, 2), label))
        up = down = 0.0
        for k, s in enumerate(series):
            v = s.values[i]
            css = s.css_class(k)
            text = f"{s.name}, {label}: {fmt(v)}"
            if stacked:
                base = up if v >= 0 else down
                top, bottom = (base + v, base) if v >= 0 else (base, base + v)
                if v >= 0:
                    up += v
                else:
                    down += v
                bx, bw = left, inner
            else:
                top, bottom = max(v, 0), min(v, 0)
                bw = inner / max(1, len(series))
                bx = left + k * bw
            ya, yb = y_of(top), y_of(bottom)
            chart.bars.append(Bar(round(bx, 2), round(ya, 2), round(max(bw - 1, 1), 2), round(yb - ya, 2), css, text))
    return chart


def line_chart(title: str, labels: Sequence[str], series: Sequence[Series], *,
               fmt: Callable[[float], str] = lambda v: f"{v:,.0f}", desc: str = "", width: int = WIDTH,
               height: int = HEIGHT) -> Chart:
    """One line per series across the labels (e.g. months)."""
    labels = _checked_labels(labels, series)
    values = [v for s in series for v in s.values]
    chart, y_of = _frame("line", title, desc or title, labels, series, min(values, default=0),
                         max(values, default=0), fmt, width, height)
    x0, _, x1, _ = chart.plot
    n = max(1, len(labels))
    slot = (x1 - x0) / n
    every = _label_every(n, x1 - x0)
    xs = [round(x0 + i * slot + slot / 2, 2) for i in range(len(labels))]
    chart.x_labels = [(xs[i], label) for i, label in enumerate(labels) if i % every == 0]
    for k, s in enumerate(series):
        pts = [(xs[i], round(y_of(v), 2)) for i, v in enumerate(s.values)]
        chart.lines.append(Line(points=" ".join(f"{x},{y}" for x, y in pts), css=s.css_class(k), name=s.name,
                                dots=[(x, y, f"{s.name}, {labels[i]}: {fmt(s.values[i])}")
                                      for i, (x, y) in enumerate(pts)]))
    return chart
