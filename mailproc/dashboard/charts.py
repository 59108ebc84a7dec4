"""Charts drawn on the server as inline SVG: no script, no external asset, every label escaped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 360, 170
LEFT, RIGHT, TOP, BOTTOM = 34, 8, 22, 22
SERIES_CLASSES = {"P0": "p0", "P1": "p1", "P2": "p2", "P3": "p3"}


def _svg(title: str, body: list[str]) -> Markup:
    label = escape(title)
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{label}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{label}</title>{"".join(body)}</svg>'
    )


def _axis(y_max: float, unit: str) -> list[str]:
    """Horizontal grid lines at 0, half and the top, with their values."""
    parts = []
    plot_h = HEIGHT - TOP - BOTTOM
    for fraction in (0.0, 0.5, 1.0):
        y = TOP + plot_h * (1 - fraction)
        value = y_max * fraction
        text = f"{value:.0f}{unit}" if value >= 10 or value == int(value) else f"{value:.1f}{unit}"
        parts.append(
            f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{LEFT - 4}" y="{y + 3:.1f}" text-anchor="end">{text}</text>'
        )
    return parts


def _x_labels(labels: Sequence[str], slot: float, every: int) -> list[str]:
    return [
        f'<text class="tick" x="{LEFT + slot * (i + 0.5):.1f}" y="{HEIGHT - 6}" '
        f'text-anchor="middle">{escape(label)}</text>'
        for i, label in enumerate(labels)
        if (len(labels) - 1 - i) % every == 0  # anchored on the latest label
    ]


def _no_data(parts: list[str]) -> None:
    parts.append(
        f'<text class="empty" x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT / 2}" '
        'text-anchor="middle">no data yet</text>'
    )


def stacked_bars(
    title: str, labels: Sequence[str], series: Mapping[str, Sequence[float | None]]
) -> Markup:
    """One bar per label, stacked by series (tickets per day by priority), with a legend."""
    totals = [sum(values[i] or 0 for values in series.values()) for i in range(len(labels))]
    y_max = max(max(totals, default=0), 1)
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(len(labels), 1)
    parts = _axis(y_max, "")
    for i in range(len(labels)):
        base = float(TOP + plot_h)
        for name, values in series.items():
            value = values[i] or 0
            if not value:
                continue
            h = plot_h * value / y_max
            base -= h
            parts.append(
                f'<rect class="bar {SERIES_CLASSES.get(name, "other")}" '
                f'x="{LEFT + slot * i + slot * 0.15:.1f}" y="{base:.1f}" '
                f'width="{slot * 0.7:.1f}" height="{h:.1f}">'
                f"<title>{escape(labels[i])} {escape(name)}: {value:.0f}</title></rect>"
            )
    parts += _x_labels(labels, slot, 3)
    for n, name in enumerate(series):
        x = LEFT + n * 44
        parts.append(
            f'<rect class="bar {SERIES_CLASSES.get(name, "other")}" x="{x}" y="4" width="9" '
            f'height="9"/><text class="legend" x="{x + 12}" y="12">{escape(name)}</text>'
        )
    if not any(totals):
        _no_data(parts)
    return _svg(title, parts)


def bars_with_target(
    title: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    y_max: float,
    target: float,
    unit: str = "",
) -> Markup:
    """One bar per label against a dashed target line; bars under the target are marked."""
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(len(labels), 1)
    parts = _axis(y_max, unit)
    for i, value in enumerate(values):
        if value is None:
            continue
        h = plot_h * min(value, y_max) / y_max
        kind = "ok" if value >= target else "miss"
        x = LEFT + slot * i + slot * 0.2
        parts.append(
            f'<rect class="bar {kind}" x="{x:.1f}" y="{TOP + plot_h - h:.1f}" '
            f'width="{slot * 0.6:.1f}" height="{max(h, 1):.1f}">'
            f"<title>{escape(labels[i])}: {value:.1f}{escape(unit)}</title></rect>"
        )
    y = TOP + plot_h * (1 - target / y_max)
    parts.append(
        f'<line class="target" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>'
        f'<text class="legend" x="{WIDTH - RIGHT}" y="12" text-anchor="end">'
        f"target {target:g}{escape(unit)}</text>"
    )
    parts += _x_labels(labels, slot, 2)
    if all(value is None for value in values):
        _no_data(parts)
    return _svg(title, parts)


def horizontal_bars(title: str, items: Sequence[tuple[str, int]]) -> Markup:
    """One labelled bar per item, longest first (top error codes)."""
    parts: list[str] = []
    top = max((count for _, count in items), default=0)
    row_h = (HEIGHT - TOP - 6) / max(len(items), 1)
    label_w = 78
    for i, (label, count) in enumerate(items):
        y = TOP + row_h * i
        w = (WIDTH - label_w - RIGHT - 30) * count / top
        parts.append(
            f'<text class="tick" x="{label_w - 4}" y="{y + row_h * 0.65:.1f}" '
            f'text-anchor="end">{escape(label)}</text>'
            f'<rect class="bar code" x="{label_w}" y="{y + row_h * 0.15:.1f}" width="{w:.1f}" '
            f'height="{row_h * 0.7:.1f}"><title>{escape(label)}: {count}</title></rect>'
            f'<text class="tick" x="{label_w + w + 4:.1f}" y="{y + row_h * 0.65:.1f}">'
            f"{count}</text>"
        )
    parts.append('<text class="legend" x="4" y="12">tickets, last 30 days</text>')
    if not items:
        _no_data(parts)
    return _svg(title, parts)
