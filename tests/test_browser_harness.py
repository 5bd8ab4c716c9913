"""The headless browser the page tests and benchmarks use has WebGL2 (viser needs it) on the CPU."""

from __future__ import annotations

import pytest

from studio.bench.browser import headless_chromium, missing_reason, webgl_renderer

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("renderer", ["auto", "swiftshader"])
def test_headless_chromium_draws_webgl2_in_software(renderer):
    """auto: Mesa's llvmpipe when its EGL is there, else SwiftShader; swiftshader on request."""
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    with headless_chromium(renderer) as browser:
        got = webgl_renderer(browser.new_page()) or ""
    want = ("llvmpipe", "SwiftShader") if renderer == "auto" else ("SwiftShader",)
    assert any(w in got for w in want), got
