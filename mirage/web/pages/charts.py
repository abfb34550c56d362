"""Charts as inline SVG, drawn on the server: no script, no external file, every label escaped. Each chart has a
data table beside it in the page (the accessible alternative); the SVG itself is `role="img"` with a title.
Colours come from CSS custom properties (classes below), so the light and dark themes restyle them."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape


def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def bars(
    title: str, labels: Sequence[str], series: Sequence[tuple[str, str, Sequence[int]]], *, height: int = 220
) -> Markup:
    """Grouped bars: one group per label, one bar per series (name, css class, values)."""
    n, k = max(1, len(labels)), max(1, len(series))
    width, left, bottom, top = 960, 36, 24, 8
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = max([1, *(v for _, _, values in series for v in values)])
    group = plot_w / n
    bar = max(1.0, min(28.0, group * 0.8 / k))
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for frac in (0.5, 1.0):
        y = top + plot_h * (1 - frac)
        parts.append(f'<line class="grid" x1="{left}" x2="{width - 8}" y1="{_num(y)}" y2="{_num(y)}"/>')
        parts.append(
            f'<text class="axis" x="{left - 4}" y="{_num(y + 4)}" text-anchor="end">{round(peak * frac)}</text>'
        )
    step = max(1, n // 10)
    for i, label in enumerate(labels):
        x0 = left + i * group + (group - bar * k) / 2
        for j, (name, css, values) in enumerate(series):
            v = values[i] if i < len(values) else 0
            h = plot_h * v / peak
            parts.append(
                f'<rect class="{escape(css)}" x="{_num(x0 + j * bar)}" y="{_num(top + plot_h - h)}" '
                f'width="{_num(bar - 1)}" height="{_num(h)}" rx="3">'
                f"<title>{escape(label)} · {escape(name)}: {v}</title></rect>"
            )
        if i % step == 0:
            cx = left + i * group + group / 2
            parts.append(
                f'<text class="axis" x="{_num(cx)}" y="{height - 6}" text-anchor="middle">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  (every interpolated string above is escaped)


def heatmap(title: str, rows: Sequence[str], matrix: Sequence[Sequence[int]]) -> Markup:
    """Weekday x hour cells, darker for more messages."""
    cell, left, top = 26, 40, 18
    width, height = left + 24 * cell + 4, top + len(rows) * cell + 4
    peak = max([1, *(v for r in matrix for v in r)])
    parts = [
        f'<svg class="chart heat" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for h in range(0, 24, 3):
        parts.append(f'<text class="axis" x="{left + h * cell + cell / 2}" y="12" text-anchor="middle">{h}h</text>')
    for i, name in enumerate(rows):
        y = top + i * cell
        parts.append(
            f'<text class="axis" x="{left - 6}" y="{y + cell / 2 + 4}" text-anchor="end">{escape(name)}</text>'
        )
        for h in range(24):
            v = matrix[i][h] if i < len(matrix) and h < len(matrix[i]) else 0
            level = 0 if v == 0 else 1 + min(4, int(5 * v / (peak + 1)))
            parts.append(
                f'<rect class="cell l{level}" x="{left + h * cell}" y="{y}" width="{cell - 3}" height="{cell - 3}" '
                f'rx="5"><title>{escape(name)} {h}h: {v}</title></rect>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  (every interpolated string above is escaped)
