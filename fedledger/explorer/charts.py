"""Server-rendered SVG charts and heat-map colours: no JS chart library, no CDN, works offline."""

from __future__ import annotations

from html import escape

PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#db2777", "#65a30d", "#4f46e5", "#ca8a04"]


def colour(i: int) -> str:
    """A distinct line colour for series `i` (cycled)."""
    return PALETTE[i % len(PALETTE)]


def heat_colour(bps: int) -> str:
    """hsl() of a score: red up to ~40 %, orange-amber at 50-70 %, green from ~85 %.

    Absolute (a 40 % score looks bad even if every score is low) and curved (t squared), because
    peer accuracies crowd the top of the range: the curve spends more hues where the scores are.
    """
    t = max(0.0, min(1.0, bps / 10000))
    return f"hsl({4 + 126 * t * t:.0f},66%,{56 - 12 * t:.0f}%)"


def heat(bps: int | None) -> str:
    """CSS for one heat-map cell; grey when blank (own model, or no score)."""
    if bps is None:
        return "background:#eef0f3;color:#9aa3ae"
    return f"background:{heat_colour(bps)};color:#fff"


def heat_legend() -> str:
    """CSS gradient matching `heat`, for the legend bar."""
    stops = ", ".join(heat_colour(v) for v in range(0, 10001, 1000))
    return f"background:linear-gradient(90deg,{stops})"


def line_chart(
    series: list[tuple[str, list[float | None]]],
    *,
    x_labels: list[str],
    y_min: float = 0.0,
    y_max: float = 1.0,
    y_format: str = "{:.0%}",
    width: int = 560,
    height: int = 220,
    title: str = "",
) -> str:
    """An SVG line chart: one polyline per series over the same x positions, with a legend."""
    left, right, top, bottom = 48, 12, 14, 28
    legend_h = 18 * ((len(series) + 3) // 4)
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(1, len(x_labels) - 1)
    span = (y_max - y_min) or 1.0

    def xy(i: int, v: float) -> tuple[float, float]:
        return left + plot_w * i / n, top + plot_h * (1 - (v - y_min) / span)

    out = [f'<svg class="chart" viewBox="0 0 {width} {height + legend_h}" role="img" aria-label="{escape(title)}">']
    for k in range(5):  # horizontal grid with y labels
        v = y_min + span * k / 4
        _, y = xy(0, v)
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">{escape(y_format.format(v))}</text>'
        )
    for i, label in enumerate(x_labels):
        x, _ = xy(i, y_min)
        out.append(f'<text x="{x:.1f}" y="{height - 8}" text-anchor="middle" class="axis">{escape(label)}</text>')
    for s, (name, values) in enumerate(series):
        pts = [xy(i, v) for i, v in enumerate(values) if v is not None]
        c = colour(s)
        if len(pts) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="2"/>')
        for x, y in pts:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{c}"><title>{escape(name)}</title></circle>')
        lx, ly = left + (s % 4) * (plot_w / 4), height + 4 + 18 * (s // 4)
        out.append(f'<rect x="{lx:.0f}" y="{ly}" width="10" height="10" fill="{c}" rx="2"/>')
        out.append(f'<text x="{lx + 14:.0f}" y="{ly + 9}" class="legend">{escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)
