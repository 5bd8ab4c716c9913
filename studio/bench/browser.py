"""Headless chromium for the browser tests and the page benchmarks (click to splats visible).

Debian's ``chromium`` (apt-get install chromium; Playwright's own browser download is not used)
driven by Playwright. There is no GPU: WebGL, which draws viser's canvas and its splats, runs
on the CPU. ``headless_chromium()`` prefers Mesa's llvmpipe (ANGLE on EGL: LLVM-compiled,
multi-threaded, what a Linux desktop without GPU drivers uses) and falls back to chromium's own
SwiftShader when Mesa's EGL is missing; ``webgl_renderer(page)`` says which one a page got.
Splat drawing is fill-rate bound there, so keep viewports small.

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
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
RENDERER_ARGS = {
    # Mesa llvmpipe through ANGLE's EGL backend (chromium blocklists software GL by default)
    "llvmpipe": ("--ignore-gpu-blocklist", "--use-angle=gl-egl"),
    # chromium's bundled software Vulkan (Subzero JIT): works everywhere, several times slower
    "swiftshader": ("--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"),
}
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


_WEBGL_RENDERER_JS = """() => {
  const gl = document.createElement('canvas').getContext('webgl2');
  if (!gl) return null;
  const info = gl.getExtension('WEBGL_debug_renderer_info');
  return gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER);
}"""


def webgl_renderer(page: Any) -> str | None:
    """The WebGL2 renderer string of a page's browser (None without WebGL2)."""
    return page.evaluate(_WEBGL_RENDERER_JS)


@contextlib.contextmanager
def headless_chromium(renderer: str = "auto") -> Iterator[Any]:
    """A Playwright ``Browser`` on the system chromium; closed on exit.

    renderer: "llvmpipe", "swiftshader" or "auto" (llvmpipe when it gives WebGL2, else
    swiftshader)."""
    reason = missing_reason()
    if reason is not None:
        raise RuntimeError(reason)
    assert renderer in ("auto", *RENDERER_ARGS), f"unknown renderer {renderer!r}"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        for name in RENDERER_ARGS if renderer == "auto" else (renderer,):
            args = [*LAUNCH_ARGS, *RENDERER_ARGS[name]]
            browser = p.chromium.launch(executable_path=chromium_path(), args=args)
            if renderer == "auto" and name == "llvmpipe":
                probe = browser.new_page()
                got = webgl_renderer(probe) or ""
                probe.close()
                if "llvmpipe" not in got:
                    browser.close()
                    continue
            break
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
