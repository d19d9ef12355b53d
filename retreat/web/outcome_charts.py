"""Server-rendered SVG line charts of questionnaire totals over timepoints, with severity bands.

``line_chart`` computes the geometry only (pure Python, no request, no database); the Jinja macro
``templates/_macros/outcome_charts.html`` draws it as an accessible SVG (``role="img"`` with
title and description) followed by the same numbers as a data table. Missing values (not answered,
or suppressed in an aggregate) break the line instead of being drawn as zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WIDTH = 600
HEIGHT = 260
LEFT, RIGHT, TOP, BOTTOM = 40, 156, 14, 36
BAND_CLASSES = ("band-0", "band-1", "band-2", "band-3", "band-4")


@dataclass
class ChartPoint:
    x: float
    y: float
    value: float
    label: str


@dataclass
class ChartSeries:
    name: str
    css: str
    segments: list[str] = field(default_factory=list)  # "x,y x,y ..." polylines, broken at gaps
    points: list[ChartPoint] = field(default_factory=list)


@dataclass
class Band:
    y: float
    height: float
    label: str
    css: str
    label_y: float
    low: int
    high: int


@dataclass
class Chart:
    id: str
    title: str
    desc: str
    width: int
    height: int
    left: int
    right: float
    top: int
    bottom: float
    x_ticks: list[tuple[float, str]]
    y_ticks: list[tuple[float, int]]
    bands: list[Band]
    series: list[ChartSeries]
    x_labels: list[str]
    table_rows: list[tuple[str, list[str]]]
    value_suffix: str = ""


def _fmt(value: float | None, missing: str) -> str:
    if value is None:
        return missing
    return f"{value:g}" if isinstance(value, int) or float(value).is_integer() else f"{value:.1f}"


def line_chart(chart_id: str, *, title: str, x_labels: list[str], series: list[tuple[str, list[float | None]]],
               y_max: int, bands: tuple[tuple[int, str], ...] = (), missing: str = "not answered",
               summary: str = "") -> Chart:
    """Geometry of a line chart: ``series`` is ``[(name, [value per x label or None])]``; ``bands``
    are ``(lower bound, label)`` pairs in increasing order (as in ``screening.PHQ9_BANDS``)."""
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    right = LEFT + plot_w
    bottom = TOP + plot_h

    def x_at(i: int) -> float:
        return round(LEFT + (plot_w * (i + 0.5) / max(1, len(x_labels))), 1)

    def y_at(v: float) -> float:
        v = min(max(v, 0), y_max)
        return round(bottom - plot_h * v / y_max, 1)

    band_objs = []
    for i, (low, label) in enumerate(bands):
        high = bands[i + 1][0] - 1 if i + 1 < len(bands) else y_max
        top_y = y_at(high + (1 if i + 1 < len(bands) else 0))
        low_y = y_at(low)
        band_objs.append(Band(y=top_y, height=round(low_y - top_y, 1), label=label,
                              css=BAND_CLASSES[min(i, len(BAND_CLASSES) - 1)],
                              label_y=round((top_y + low_y) / 2 + 4, 1), low=low, high=high))
    step = 5 if y_max > 10 else 1
    y_ticks = [(y_at(v), v) for v in range(0, y_max + 1, step)]
    out_series = []
    for n, (name, values) in enumerate(series):
        s = ChartSeries(name=name, css=f"series-{n % 4}")
        current: list[str] = []
        for i, v in enumerate(values):
            if v is None:
                if current:
                    s.segments.append(" ".join(current))
                current = []
                continue
            p = ChartPoint(x_at(i), y_at(v), v, x_labels[i])
            s.points.append(p)
            current.append(f"{p.x},{p.y}")
        if current:
            s.segments.append(" ".join(current))
        s.segments = [seg for seg in s.segments if " " in seg]  # a lone point is drawn as a dot only
        out_series.append(s)
    parts = []
    for name, values in series:
        known = [f"{x_labels[i]} {_fmt(v, '')}" for i, v in enumerate(values) if v is not None]
        parts.append(f"{name}: " + (", ".join(known) if known else "no values yet"))
    desc = (summary + " " if summary else "") + "; ".join(parts) + f". Scale 0 to {y_max}."
    if bands:
        desc += " Bands: " + ", ".join(f"{b.label} {b.low}–{b.high}" for b in band_objs) + "."
    table_rows = [(name, [_fmt(v, missing) for v in values]) for name, values in series]
    return Chart(id=chart_id, title=title, desc=desc, width=WIDTH, height=HEIGHT, left=LEFT, right=right, top=TOP,
                 bottom=bottom, x_ticks=[(x_at(i), lbl) for i, lbl in enumerate(x_labels)], y_ticks=y_ticks,
                 bands=band_objs, series=out_series, x_labels=list(x_labels), table_rows=table_rows)
