"""Charts drawn on the server as inline SVG: no script, no fetch, nothing from the internet.

Each chart scales to its container (``viewBox`` with ``width=100%``), so the
same markup serves a desktop and a 390 px phone.  Every text is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

PALETTE = ("#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d")
W, H, PAD_L, PAD_B, PAD_T = 640, 260, 56, 44, 16


def _number(value: float) -> str:
    value = float(value)
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f}k"
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def _svg(body: str, title: str, height: int = H) -> Markup:
    return Markup(f'<svg class="chart" viewBox="0 0 {W} {height}" width="100%" role="img" aria-label="{escape(title)}" '
                  f'preserveAspectRatio="xMidYMid meet"><title>{escape(title)}</title>{body}</svg>')


def _empty(title: str) -> Markup:
    return _svg(f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" class="muted">No data yet</text>', title)


def _axis(top: float) -> str:
    parts = []
    for i in range(5):
        value = top * i / 4
        y = H - PAD_B - (H - PAD_B - PAD_T) * i / 4
        parts.append(f'<line x1="{PAD_L}" x2="{W - 8}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{_number(value)}</text>')
    return "".join(parts)


def _x_labels(labels: Sequence[str], xs: Sequence[float]) -> str:
    every = max(1, len(labels) // 8)
    # a label at the right edge ends there instead of being centred on it and cut in half
    return "".join(f'<text x="{x:.1f}" y="{H - PAD_B + 16}" text-anchor="{"end" if x > W - 30 else "middle"}" class="tick">'
                   f'{escape(str(label))}</text>'
                   for i, (label, x) in enumerate(zip(labels, xs, strict=True)) if i % every == 0)


def bar_chart(labels: Sequence[str], values: Sequence[float], title: str) -> Markup:
    if not values:
        return _empty(title)
    top = max(max(values), 1e-9)
    step = (W - PAD_L - 8) / len(values)
    bars = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = (H - PAD_B - PAD_T) * max(value, 0) / top
        x = PAD_L + i * step + step * 0.15
        bars.append(f'<rect x="{x:.1f}" y="{H - PAD_B - h:.1f}" width="{step * 0.7:.1f}" height="{h:.1f}" fill="{PALETTE[0]}">'
                    f'<title>{escape(str(label))}: {_number(value)}</title></rect>')
    xs = [PAD_L + (i + 0.5) * step for i in range(len(values))]
    return _svg(_axis(top) + "".join(bars) + _x_labels(labels, xs), title)


def hbar_chart(labels: Sequence[str], values: Sequence[float], title: str, limit: int = 12) -> Markup:
    """Horizontal bars, largest first, for long labels (countries, cells)."""
    if not values:
        return _empty(title)
    pairs = list(zip(labels, values, strict=True))[:limit]
    top = max(max(v for _, v in pairs), 1e-9)
    row, left = 24, 170
    height = PAD_T + row * len(pairs) + 8
    parts = []
    for i, (label, value) in enumerate(pairs):
        y = PAD_T + i * row
        w = (W - left - 70) * max(value, 0) / top
        parts.append(f'<text x="{left - 8}" y="{y + 16}" text-anchor="end" class="tick">{escape(str(label))[:26]}</text>'
                     f'<rect x="{left}" y="{y + 4}" width="{w:.1f}" height="{row - 8}" fill="{PALETTE[i % len(PALETTE)]}"/>'
                     f'<text x="{left + w + 6:.1f}" y="{y + 16}" class="tick">{_number(value)}</text>')
    return _svg("".join(parts), title, height)


def line_chart(labels: Sequence[str], series: dict[str, Sequence[float | None]], title: str) -> Markup:
    """One line per series over shared x labels (days), with a legend."""
    values = [v for s in series.values() for v in s if v is not None]
    if not labels or not values:
        return _empty(title)
    top = max(max(values), 1e-9)
    step = (W - PAD_L - 16) / max(len(labels) - 1, 1)
    xs = [PAD_L + 8 + i * step for i in range(len(labels))]
    parts = [_axis(top)]
    for n, (name, points) in enumerate(series.items()):
        colour = PALETTE[n % len(PALETTE)]
        coords = [f"{xs[i]:.1f},{H - PAD_B - (H - PAD_B - PAD_T) * v / top:.1f}" for i, v in enumerate(points) if v is not None]
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(coords)}"/>')
        if len(coords) == 1:
            x, y = coords[0].split(",")
            parts.append(f'<circle cx="{x}" cy="{y}" r="3" fill="{colour}"/>')
        parts.append(f'<rect x="{PAD_L + n * 110}" y="{H - 14}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{PAD_L + 14 + n * 110}" y="{H - 5}" class="tick">{escape(name)[:14]}</text>')
    parts.append(_x_labels(labels, xs))
    return _svg("".join(parts), title)


def rfm_heatmap(cells: dict[tuple[int, int], tuple[int, float]], title: str) -> Markup:
    """Recency (rows, 5 on top) x frequency (columns): each cell's customers and revenue; darker is more customers."""
    if not cells:
        return _empty(title)
    top = max(c for c, _ in cells.values()) or 1
    size_w, size_h, left, head = (W - 80) / 5, 44, 60, 20
    parts = [f'<text x="{left + 2.5 * size_w}" y="14" text-anchor="middle" class="tick">frequency score →</text>']
    for r in range(5, 0, -1):
        y = head + (5 - r) * size_h
        parts.append(f'<text x="{left - 8}" y="{y + size_h / 2 + 4}" text-anchor="end" class="tick">R {r}</text>')
        for f in range(1, 6):
            count, revenue = cells.get((r, f), (0, 0.0))
            x = left + (f - 1) * size_w
            alpha = 0.08 + 0.85 * count / top
            ink = "#fff" if alpha > 0.5 else "#111827"
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{size_w - 2:.1f}" height="{size_h - 2}" fill="{PALETTE[0]}" '
                         f'fill-opacity="{alpha:.2f}"><title>R{r} F{f}: {count} customers, revenue {_number(revenue)}</title></rect>'
                         f'<text x="{x + size_w / 2:.1f}" y="{y + 18}" text-anchor="middle" fill="{ink}" class="cell">{count}</text>'
                         f'<text x="{x + size_w / 2:.1f}" y="{y + 34}" text-anchor="middle" fill="{ink}" class="tick">{_number(revenue)}</text>')
    return _svg("".join(parts), title, head + 5 * size_h + 24)


def funnel_chart(stages: Sequence[str], values: Sequence[float], title: str) -> Markup:
    """Stages top to bottom as centred bars narrowing with the count, each with its count and share of the first stage."""
    if not values or not values[0]:
        return _empty(title)
    row, left, right = 40, 110, 90
    height = PAD_T + row * len(values) + 8
    span = W - left - right
    parts = []
    for i, (stage, value) in enumerate(zip(stages, values, strict=True)):
        y = PAD_T + i * row
        w = max(span * max(value, 0) / values[0], 2)
        x = left + (span - w) / 2
        share = 100 * value / values[0]
        parts.append(f'<text x="{left - 8}" y="{y + 21}" text-anchor="end" class="tick">{escape(stage)}</text>'
                     f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{row - 8}" fill="{PALETTE[i % len(PALETTE)]}">'
                     f'<title>{escape(stage)}: {_number(value)} ({share:.1f}%)</title></rect>'
                     f'<text x="{W - right + 8}" y="{y + 21}" class="tick">{_number(value)} · {share:.0f}%</text>')
    return _svg("".join(parts), title, height)
