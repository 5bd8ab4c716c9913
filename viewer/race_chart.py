"""The race's chart: test PSNR against wall time on a log time axis, one line per contender,
drawn on the server into an image for the Compare panel.

Drawn here rather than with viser's uPlot: uPlot needs one shared x array for every series, and
curves that start and end at different times would need gaps, which viser's binary arrays can
only carry as NaN, and one NaN blanks the whole chart (viser 1.1.1).

Examples:
    >>> img = race_chart({"refined": [(12.0, 20.1), (30.0, 25.3)], "SfM points": [(5.0, 15.0), (40.0, 26.0)]})
    >>> img.shape, img.dtype
    ((300, 480, 3), dtype('uint8'))
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

from pipelines.paths.video import _font

COLORS = ((214, 51, 108), (28, 126, 214), (55, 178, 77), (245, 159, 0))  # one per contender
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 44, 12, 26, 34


def _log_ticks(lo: float, hi: float) -> list[float]:
    """1, 2, 5 x 10^k inside [lo, hi] (at least the decades)."""
    ticks = []
    for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            t = m * 10.0**k
            if lo <= t <= hi:
                ticks.append(t)
    return ticks


def race_chart(
    curves: Mapping[str, Sequence[tuple[float, float]]], *, width: int = 480, height: int = 300
) -> np.ndarray:
    """uint8 [height, width, 3]: each curve's (time_s, psnr) points joined by a line (points
    marked), time on a log axis spanning every curve, a legend in the top left."""
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = _font(11)
    pts = [(t, p) for c in curves.values() for t, p in c if t > 0 and math.isfinite(p)]
    x0, x1 = MARGIN_LEFT, width - MARGIN_RIGHT
    y0, y1 = MARGIN_TOP, height - MARGIN_BOTTOM
    draw.rectangle([x0, y0, x1, y1], outline=(190, 190, 190))
    draw.text((x0, height - 14), "wall time (s, log scale)", fill=(60, 60, 60), font=font)
    draw.text((4, 6), "test PSNR (dB)", fill=(60, 60, 60), font=font)
    if not pts:
        draw.text((x0 + 8, (y0 + y1) // 2), "no points yet", fill=(120, 120, 120), font=font)
        return np.asarray(img)
    t_lo, t_hi = min(t for t, _ in pts) / 1.2, max(t for t, _ in pts) * 1.2
    p_lo, p_hi = min(p for _, p in pts), max(p for _, p in pts)
    pad = max(0.5, 0.08 * (p_hi - p_lo))
    p_lo, p_hi = p_lo - pad, p_hi + pad

    def xy(t: float, p: float) -> tuple[float, float]:
        u = (math.log10(t) - math.log10(t_lo)) / (math.log10(t_hi) - math.log10(t_lo))
        v = (p - p_lo) / (p_hi - p_lo)
        return x0 + u * (x1 - x0), y1 - v * (y1 - y0)

    for t in _log_ticks(t_lo, t_hi):
        x = xy(t, p_lo)[0]
        draw.line([x, y0, x, y1], fill=(235, 235, 235))
        draw.text((x - 6, y1 + 3), f"{t:g}", fill=(90, 90, 90), font=font)
    step = max(1, round((p_hi - p_lo) / 5))
    for p in range(math.ceil(p_lo), math.floor(p_hi) + 1, step):
        y = xy(t_lo, p)[1]
        draw.line([x0, y, x1, y], fill=(235, 235, 235))
        draw.text((4, y - 6), f"{p}", fill=(90, 90, 90), font=font)
    for k, (name, curve) in enumerate(curves.items()):
        color = COLORS[k % len(COLORS)]
        line = [xy(t, p) for t, p in curve if t > 0 and math.isfinite(p)]
        if len(line) > 1:
            draw.line(line, fill=color, width=2)
        for x, y in line:
            draw.ellipse([x - 2.5, y - 2.5, x + 2.5, y + 2.5], fill=color)
        draw.rectangle([x0 + 8, y0 + 6 + 14 * k, x0 + 18, y0 + 14 + 14 * k], fill=color)
        draw.text((x0 + 22, y0 + 4 + 14 * k), name, fill=(40, 40, 40), font=font)
    return np.asarray(img)
