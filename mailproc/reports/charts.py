"""PNG charts of a report, drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only, never a display

from matplotlib.figure import Figure

_MET, _MISSED, _NEUTRAL, _PREVIOUS = "#2e7d32", "#c62828", "#1565c0", "#9e9e9e"


def kpi_bars(rows: Sequence[tuple[str, float | None, float, bool | None]]) -> bytes:
    """Percentage KPIs as horizontal bars, green when met and red when missed, with the
    target marked; ``rows`` are (label, value, target, met)."""
    figure = Figure(figsize=(7, 0.45 * len(rows) + 1.2), dpi=96)
    axes = figure.add_subplot()
    labels = [label for label, *_ in rows]
    values = [value or 0.0 for _, value, _, _ in rows]
    colors = [_MET if met else _MISSED if met is False else _PREVIOUS for *_, met in rows]
    positions = range(len(rows))
    axes.barh(positions, values, color=colors)
    axes.scatter(
        [target for _, _, target, _ in rows],
        positions,
        marker="|",
        s=400,
        c="black",
        label="target",
        zorder=3,
    )
    axes.set_yticks(list(positions), labels)
    axes.invert_yaxis()
    axes.set_xlim(0, 100)
    axes.set_xlabel("%")
    axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    return _png(figure)


def daily_volume(current: Mapping[dt.date, int], previous: Mapping[dt.date, int]) -> bytes:
    """Tickets opened per day this period (bars) next to the period before (line)."""
    figure = Figure(figsize=(7, 3), dpi=96)
    axes = figure.add_subplot()
    days = list(current)
    axes.bar(range(len(days)), list(current.values()), color=_NEUTRAL, label="this period")
    earlier = list(previous.values())[: len(days)]
    axes.plot(range(len(earlier)), earlier, color=_PREVIOUS, marker="o", label="period before")
    step = max(1, len(days) // 10)
    axes.set_xticks(range(0, len(days), step), [f"{d:%a %d}" for d in days[::step]])
    axes.set_ylabel("tickets")
    axes.legend(fontsize="small")
    figure.tight_layout()
    return _png(figure)


def codes_by_month(months: Mapping[str, Mapping[str, int]], codes: Sequence[str]) -> bytes:
    """Tickets per error code, one group of bars per code and one bar per month."""
    figure = Figure(figsize=(8, 3.5), dpi=96)
    axes = figure.add_subplot()
    width = 0.8 / max(1, len(months))
    for index, (month, counts) in enumerate(months.items()):
        axes.bar(
            [n + index * width for n in range(len(codes))],
            [counts.get(code, 0) for code in codes],
            width,
            label=month,
        )
    axes.set_xticks(
        [n + 0.4 - width / 2 for n in range(len(codes))], list(codes), rotation=45, ha="right"
    )
    axes.set_ylabel("tickets")
    axes.legend(fontsize="small")
    figure.tight_layout()
    return _png(figure)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
