"""Headless chromium for the browser tests and the page benchmarks (click to splats visible).

Debian's ``chromium`` (apt-get install chromium; Playwright's own browser download is not used)
driven by Playwright. There is no GPU: WebGL runs on SwiftShader through ANGLE, which draws
viser's canvas, splats included, on the CPU, so keep viewports small.

Examples:
    >>> with headless_chromium() as browser:                          # doctest: +SKIP
    ...     page = browser.new_page(viewport=VIEWPORT)
    ...     before = screenshot_rgb(page, CANVAS_CLIP)
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import shutil
from collections.abc import Iterator
from typing import Any

import numpy as np

LAUNCH_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-angle=swiftshader",  # WebGL without a GPU: what renders viser's canvas here
    "--enable-unsafe-swiftshader",
)
VIEWPORT = {"width": 960, "height": 640}
# The 3D view left of the control panel (which viser docks on the right) and below the
# "software WebGL" notice, in VIEWPORT pixels.
CANVAS_CLIP = {"x": 40, "y": 170, "width": 480, "height": 440}


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def missing_reason() -> str | None:
    """Why a headless browser cannot run here, or None when it can."""
    if chromium_path() is None:
        return "chromium is not installed (Debian: apt-get install -y chromium; .ci/run does this)"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install playwright)"
    return None


@contextlib.contextmanager
def headless_chromium() -> Iterator[Any]:
    """A Playwright ``Browser`` on the system chromium; closed on exit."""
    reason = missing_reason()
    if reason is not None:
        raise RuntimeError(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=list(LAUNCH_ARGS))
        try:
            yield browser
        finally:
            browser.close()


def screenshot_rgb(page: Any, clip: dict = CANVAS_CLIP) -> np.ndarray:
    """A page region as uint8 [H, W, 3]."""
    import imageio.v3 as iio

    return iio.imread(io.BytesIO(page.screenshot(clip=clip)))[..., :3]


def changed_fraction(a: np.ndarray, b: np.ndarray, *, threshold: int = 40) -> float:
    """Fraction of pixels whose largest channel difference between uint8 [H, W, 3] images
    exceeds ``threshold``."""
    assert a.shape == b.shape, f"images differ in shape: {a.shape} vs {b.shape}"
    return float((np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2) > threshold).mean())
